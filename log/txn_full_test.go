package log

import (
	"bytes"
	"errors"
	"testing"
)

// TestTxnMarkerStoredWhenFull: a committed reader (a bridge link, an
// egress follower, an actuator) pins retention at its cursor, which cannot
// pass the last stable offset, so a pending transaction holds the pin at
// its first offset. On an on_full: reject topic that fills up behind the
// pin, the transaction's marker is still stored (a few dozen bytes over
// the limit): refused, the transaction could never end, the pin never
// move, and the partition would refuse every append for good.
func TestTxnMarkerStoredWhenFull(t *testing.T) {
	r := newHKRig(t, 0)
	cfg := hkConfig() // 1024-byte segments
	cfg.RetentionBytes = 1000
	cfg.OnFull = OnFullReject
	tp := r.create("txn2full", cfg)
	p := hkPart(t, tp, 0)

	const pid = 4242
	if err := p.BeginTxn(pid); err != nil {
		t.Fatal(err)
	}
	// The committed reader is caught up: its cursor (and pin) is the LSO.
	p.Pin("bridge.central", p.LastStableOffset())

	val := bytes.Repeat([]byte("x"), 150)
	full := false
	for i := 0; i < 100; i++ {
		res, err := p.Append(txnBatch(t, pid, 0, Record{Timestamp: hkMs(hkT0), Value: val}))
		if errors.Is(err, ErrFull) {
			full = true
			break
		}
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		p.TxnAppended(pid, res.BaseOffset)
	}
	if !full {
		t.Fatal("the partition never filled up")
	}
	if lso := p.LastStableOffset(); lso != 0 {
		t.Fatalf("LSO %d, want 0 while the transaction is pending", lso)
	}

	// The coordinator ends the transaction (EndTxn, or its timeout).
	if _, err := p.EndTxn(pid, 0, false, 0); err != nil {
		t.Errorf("EndTxn on a partition full behind a committed reader's pin: %v (the transaction can never end: LSO stays %d, the reader's pin stays, every append is refused)", err, p.LastStableOffset())
	}
	if lso, hw := p.LastStableOffset(), p.HighWatermark(); lso != hw {
		t.Errorf("after the end: LSO %d, high watermark %d", lso, hw)
	}
}
