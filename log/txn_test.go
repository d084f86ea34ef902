package log

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Tests of the transaction support of txn.go (prefix txn). Every test
// name contains "Txn" so that -run Txn selects them all.

// txnBatch encodes recs as one transactional batch of producer pid.
func txnBatch(t testing.TB, pid int64, epoch int16, recs ...Record) []byte {
	t.Helper()
	ts := recs[0].Timestamp
	h := BatchHeader{
		Attributes:      attrTransactional,
		LastOffsetDelta: int32(len(recs) - 1),
		BaseTimestamp:   ts,
		MaxTimestamp:    ts,
		ProducerID:      pid,
		ProducerEpoch:   epoch,
		BaseSequence:    0,
	}
	for _, r := range recs {
		h.MaxTimestamp = max(h.MaxTimestamp, r.Timestamp)
	}
	b, err := appendBatch(nil, h, recs, false)
	if err != nil {
		t.Fatal(err)
	}
	if hh, err := ParseBatchHeader(b); err != nil || !hh.Transactional() || hh.Control() {
		t.Fatalf("txnBatch: header %+v, %v", hh, err)
	}
	return b
}

// txnRig is a log with one topic for transaction tests.
type txnRig struct {
	t     *testing.T
	dir   string
	clock *testClock
	opts  Options
	l     *Log
	tp    *Topic
	p     *Partition
	name  string
	cfg   TopicConfig
}

func txnTestConfig() TopicConfig {
	cfg := testConfig()
	cfg.Sync = SyncNever
	cfg.Preallocate = false
	return cfg
}

func newTxnRig(t *testing.T, cfg TopicConfig) *txnRig {
	t.Helper()
	return newTxnRigFS(t, cfg, nil)
}

func newTxnRigFS(t *testing.T, cfg TopicConfig, fsys FS) *txnRig {
	t.Helper()
	r := &txnRig{t: t, dir: t.TempDir(), clock: newTestClock(), name: "tx", cfg: cfg}
	r.opts = Options{Now: r.clock.Now, FS: fsys}
	r.l = openTestLog(t, r.dir, r.opts)
	t.Cleanup(func() { r.l.Close() })
	tp, err := r.l.CreateTopic(r.name, cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.tp = tp
	r.p = hkPart(t, tp, 0)
	return r
}

func (r *txnRig) reopen() {
	r.t.Helper()
	if err := r.l.Close(); err != nil {
		r.t.Fatalf("close: %v", err)
	}
	l, err := Open(r.dir, r.opts)
	if err != nil {
		r.t.Fatalf("reopen: %v", err)
	}
	r.l = l
	tp, err := l.Topic(r.name)
	if err != nil {
		r.t.Fatal(err)
	}
	r.tp = tp
	r.p = hkPart(r.t, tp, 0)
}

func (r *txnRig) ts() int64 { return r.clock.Now().UnixMilli() }

// plain appends one non-transactional batch of one record per value.
func (r *txnRig) plain(vals ...string) AppendResult {
	r.t.Helper()
	return txnPlain(r.t, r.p, r.ts(), vals...)
}

func txnPlain(t testing.TB, p *Partition, ts int64, vals ...string) AppendResult {
	t.Helper()
	recs := make([]Record, len(vals))
	for i, v := range vals {
		recs[i] = Record{Timestamp: ts, Value: []byte(v)}
	}
	res, err := p.AppendRecords(recs, DefaultBatchOptions)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	return res
}

// kplain appends one non-transactional record with a key.
func (r *txnRig) kplain(k, v string) AppendResult {
	r.t.Helper()
	res, err := r.p.AppendRecords([]Record{kv(k, v, r.ts())}, DefaultBatchOptions)
	if err != nil {
		r.t.Fatalf("append: %v", err)
	}
	return res
}

// txn appends one transactional batch of pid (one record per value) and
// tells the partition, as edge/kafka's produce path does.
func (r *txnRig) txn(pid int64, vals ...string) AppendResult {
	r.t.Helper()
	recs := make([]Record, len(vals))
	for i, v := range vals {
		recs[i] = Record{Timestamp: r.ts(), Value: []byte(v)}
	}
	return r.txnRecs(pid, recs...)
}

func (r *txnRig) txnRecs(pid int64, recs ...Record) AppendResult {
	r.t.Helper()
	res, err := r.p.Append(txnBatch(r.t, pid, 0, recs...))
	if err != nil {
		r.t.Fatalf("append: %v", err)
	}
	r.p.TxnAppended(pid, res.BaseOffset)
	return res
}

func (r *txnRig) begin(pid int64) {
	r.t.Helper()
	if err := r.p.BeginTxn(pid); err != nil {
		r.t.Fatalf("BeginTxn(%d): %v", pid, err)
	}
}

func (r *txnRig) end(pid int64, commit bool) int64 {
	r.t.Helper()
	off, err := r.p.EndTxn(pid, 0, commit, 7)
	if err != nil {
		r.t.Fatalf("EndTxn(%d, %t): %v", pid, commit, err)
	}
	return off
}

func (r *txnRig) wantLSO(want int64) {
	r.t.Helper()
	if got := r.p.LastStableOffset(); got != want {
		r.t.Errorf("LSO %d, want %d (HW %d)", got, want, r.p.HighWatermark())
	}
}

// txnCommitted reads the partition with ReadCommitted and EachCommitted
// from `from` to the LSO, maxBytes at a time, as Spool's readers do, and
// renders the records as "offset:value". It fails if a read makes no
// progress.
func txnCommitted(t testing.TB, p *Partition, from int64, maxBytes int) []string {
	t.Helper()
	out := []string{}
	off := from
	for i := 0; off < p.LastStableOffset(); i++ {
		if i > 10000 {
			t.Fatalf("reader loop did not finish: at %d, LSO %d", off, p.LastStableOffset())
		}
		data, err := p.ReadCommitted(off, maxBytes)
		if err != nil {
			t.Fatalf("ReadCommitted(%d): %v", off, err)
		}
		next, err := p.EachCommitted(data, off, func(r Record) error {
			out = append(out, fmt.Sprintf("%d:%s", r.Offset, r.Value))
			return nil
		})
		if err != nil {
			t.Fatalf("EachCommitted at %d: %v", off, err)
		}
		if next <= off {
			t.Fatalf("reader stuck at %d (LSO %d, HW %d, %d bytes read)", off, p.LastStableOffset(), p.HighWatermark(), len(data))
		}
		off = next
	}
	if lso := p.LastStableOffset(); off != lso {
		t.Errorf("reader ended at %d, want the LSO %d", off, lso)
	}
	return out
}

// txnBases lists the base offsets of the batches in data.
func txnBases(t testing.TB, data []byte) []int64 {
	t.Helper()
	var bases []int64
	err := SplitBatches(data, func(h BatchHeader, _ []byte) error {
		bases = append(bases, h.BaseOffset)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return bases
}

// 1. The last stable offset.
func TestTxnLastStableOffset(t *testing.T) {
	r := newTxnRig(t, txnTestConfig())
	const p1, p2, p3 = 101, 102, 103

	r.plain("a0", "a1")
	r.plain("a2")
	if r.p.HighWatermark() != 3 {
		t.Fatalf("HW %d, want 3", r.p.HighWatermark())
	}
	r.wantLSO(3) // no transaction: LSO == HW

	r.begin(p1)
	if !r.p.TxnPending(p1) || r.p.TxnPending(p2) {
		t.Errorf("TxnPending: p1 %t p2 %t, want true false", r.p.TxnPending(p1), r.p.TxnPending(p2))
	}
	r.wantLSO(3)
	r.plain("b3")
	r.plain("b4")
	r.wantLSO(3) // other producers' appends stay behind the begin offset
	r.begin(p1)  // again: no change
	r.wantLSO(3)

	if res := r.txn(p1, "t5"); res.BaseOffset != 5 {
		t.Fatalf("txn batch at %d, want 5", res.BaseOffset)
	}
	r.wantLSO(5) // tightened to the first transactional batch
	r.txn(p1, "t6")
	r.wantLSO(5) // a later batch does not move it
	r.p.TxnAppended(p1, 6)
	r.wantLSO(5)

	r.begin(p2) // at 7
	r.txn(p2, "u7")
	r.wantLSO(5)            // the min over pending producers
	r.p.TxnAppended(999, 7) // no such transaction: nothing happens
	r.wantLSO(5)

	if off := r.end(p1, true); off != 8 {
		t.Errorf("commit marker of p1 at %d, want 8", off)
	}
	r.wantLSO(7) // p2 still pending
	if r.p.TxnPending(p1) {
		t.Error("p1 still pending after EndTxn")
	}
	if off, err := r.p.EndTxn(p1, 0, true, 7); off != -1 || err != nil {
		t.Errorf("EndTxn of an ended transaction: %d, %v; want -1, nil", off, err)
	}
	if r.p.HighWatermark() != 9 {
		t.Errorf("HW %d, want 9: a second EndTxn wrote a marker", r.p.HighWatermark())
	}
	if off := r.end(p2, true); off != 9 {
		t.Errorf("commit marker of p2 at %d, want 9", off)
	}
	r.wantLSO(10)
	if r.p.HighWatermark() != 10 {
		t.Errorf("HW %d, want 10", r.p.HighWatermark())
	}

	// A base below where the transaction began is not believed.
	r.begin(p3)
	r.p.TxnAppended(p3, 4)
	r.wantLSO(10)
	r.plain("c10")
	r.wantLSO(10)
	r.end(p3, false)
	r.wantLSO(r.p.HighWatermark())
}

// 2. ReadCommitted and EachCommitted, and a reader loop over a log with
// committed and aborted transactions interleaved with plain batches.
func TestTxnReadCommittedAndReaderLoop(t *testing.T) {
	r := newTxnRig(t, txnTestConfig())
	const p1, p2, p3 = 201, 202, 203

	r.plain("A0")    // 0
	r.begin(p1)      // at 1
	r.txn(p1, "t1a") // 1
	r.plain("A2")    // 2
	r.begin(p2)      // at 3
	r.txn(p2, "t2a") // 3
	r.txn(p1, "t1b") // 4
	r.wantLSO(1)

	// Nothing at or past the LSO; data cut before it.
	for _, off := range []int64{1, 2, 3, 4, 5} {
		data, err := r.p.ReadCommitted(off, 1<<20)
		if err != nil || len(data) != 0 {
			t.Errorf("ReadCommitted(%d) at LSO 1: %d bytes, %v; want nothing", off, len(data), err)
		}
	}
	data, err := r.p.ReadCommitted(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if got := txnBases(t, data); !slices.Equal(got, []int64{0}) {
		t.Errorf("ReadCommitted(0) at LSO 1: batches %v, want [0]", got)
	}
	if got := txnCommitted(t, r.p, 0, 1<<20); !slices.Equal(got, []string{"0:A0"}) {
		t.Errorf("committed %q", got)
	}
	if _, err := r.p.ReadCommitted(6, 1<<20); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Errorf("ReadCommitted past the HW: %v, want ErrOffsetOutOfRange", err)
	}

	if off := r.end(p1, true); off != 5 {
		t.Fatalf("marker at %d, want 5", off)
	}
	r.wantLSO(3)
	data, err = r.p.ReadCommitted(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if got := txnBases(t, data); !slices.Equal(got, []int64{0, 1, 2}) {
		t.Errorf("ReadCommitted(0) at LSO 3: batches %v, want [0 1 2]", got)
	}

	r.plain("A6")           // 6, inside p2's aborted range
	r.end(p2, false)        // marker 7
	r.begin(p3)             // at 8
	r.txn(p3, "t3a", "t3b") // 8..9
	r.end(p3, false)        // marker 10: a trailing aborted batch and marker
	if hw := r.p.HighWatermark(); hw != 11 {
		t.Fatalf("HW %d, want 11", hw)
	}
	r.wantLSO(11)

	want := []string{"0:A0", "1:t1a", "2:A2", "4:t1b", "6:A6"}
	for _, maxBytes := range []int{1, 100, 1 << 20} {
		if got := txnCommitted(t, r.p, 0, maxBytes); !slices.Equal(got, want) {
			t.Errorf("maxBytes %d: committed records\n got %q\nwant %q", maxBytes, got, want)
		}
	}
	// Starting inside the log, and at each offset.
	for from := int64(0); from <= 11; from++ {
		var w []string
		for _, s := range want {
			var off int64
			fmt.Sscanf(s, "%d:", &off)
			if off >= from {
				w = append(w, s)
			}
		}
		if w == nil {
			w = []string{}
		}
		if got := txnCommitted(t, r.p, from, 1); !slices.Equal(got, w) {
			t.Errorf("from %d: got %q, want %q", from, got, w)
		}
	}

	// EachCommitted on the data of one aborted batch alone returns the
	// offset after it, skipping its records.
	data, err = r.p.ReadCommitted(8, 1)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	next, err := r.p.EachCommitted(data, 8, func(Record) error { n++; return nil })
	if err != nil || next != 10 || n != 0 {
		t.Errorf("EachCommitted over the aborted batch at 8: next %d, %d records, %v; want 10, 0, nil", next, n, err)
	}
	// And EachRecord (not committed-only) sees them.
	n = 0
	next, err = EachRecord(data, 8, func(Record) error { n++; return nil })
	if err != nil || next != 10 || n != 2 {
		t.Errorf("EachRecord over the aborted batch at 8: next %d, %d records, %v; want 10, 2, nil", next, n, err)
	}
	// A marker alone: skipped, next is after it.
	data, _ = r.p.ReadCommitted(10, 1)
	next, err = r.p.EachCommitted(data, 10, func(Record) error { n++; return nil })
	if err != nil || next != 11 || n != 2 {
		t.Errorf("EachCommitted over the marker at 10: next %d, %v; want 11 and no record", next, err)
	}
}

// 3. AbortedTxns filtering.
func TestTxnAbortedTxnsFilter(t *testing.T) {
	r := newTxnRig(t, txnTestConfig())
	const p1, p2, p3 = 301, 302, 303
	r.begin(p1)
	r.txn(p1, "x0")
	r.end(p1, false) // {p1 0 1}
	r.plain("a2")
	r.begin(p2)
	r.txn(p2, "x3", "x4")
	r.end(p2, false) // {p2 3 5}
	r.begin(p3)
	r.txn(p3, "c6")
	r.end(p3, true) // committed: not listed
	r.begin(p1)
	r.txn(p1, "x8")
	r.end(p1, false) // {p1 8 9}

	a1 := AbortedTxn{ProducerID: p1, First: 0, Last: 1}
	a2 := AbortedTxn{ProducerID: p2, First: 3, Last: 5}
	a3 := AbortedTxn{ProducerID: p1, First: 8, Last: 9}
	cases := []struct {
		from, to int64
		want     []AbortedTxn
	}{
		{0, math.MaxInt64, []AbortedTxn{a1, a2, a3}},
		{1, math.MaxInt64, []AbortedTxn{a1, a2, a3}},
		{2, math.MaxInt64, []AbortedTxn{a2, a3}},
		{5, math.MaxInt64, []AbortedTxn{a2, a3}},
		{6, math.MaxInt64, []AbortedTxn{a3}},
		{9, math.MaxInt64, []AbortedTxn{a3}},
		{10, math.MaxInt64, nil},
		{0, 0, []AbortedTxn{a1}},
		{0, 2, []AbortedTxn{a1}},
		{0, 3, []AbortedTxn{a1, a2}},
		{2, 7, []AbortedTxn{a2}},
		{2, 8, []AbortedTxn{a2, a3}},
		{6, 7, nil},
	}
	for _, c := range cases {
		if got := r.p.AbortedTxns(c.from, c.to); !slices.Equal(got, c.want) {
			t.Errorf("AbortedTxns(%d, %d) = %+v, want %+v", c.from, c.to, got, c.want)
		}
	}
	if got := txnCommitted(t, r.p, 0, 1); !slices.Equal(got, []string{"2:a2", "6:c6"}) {
		t.Errorf("committed %q", got)
	}
}

// 4. Persistence across a reopen.
func TestTxnStateSurvivesReopen(t *testing.T) {
	r := newTxnRig(t, txnTestConfig())
	const p1, p2 = 401, 402
	r.begin(p2)
	r.txn(p2, "x0")
	r.end(p2, false) // aborted {p2 0 1}
	r.plain("a2")
	r.begin(p1) // at 3
	r.txn(p1, "t3")
	r.plain("a4")
	r.wantLSO(3)
	wantAborted := []AbortedTxn{{ProducerID: p2, First: 0, Last: 1}}

	r.reopen()
	if !r.p.TxnPending(p1) {
		t.Fatal("p1's transaction is not pending after reopen")
	}
	if r.p.TxnPending(p2) {
		t.Error("p2's ended transaction pending after reopen")
	}
	r.wantLSO(3)
	if got := r.p.AbortedTxns(0, math.MaxInt64); !slices.Equal(got, wantAborted) {
		t.Errorf("aborted after reopen %+v, want %+v", got, wantAborted)
	}
	if got := txnCommitted(t, r.p, 0, 1); !slices.Equal(got, []string{"2:a2"}) {
		t.Errorf("committed after reopen %q, want [2:a2]", got)
	}

	if off := r.end(p1, true); off != 5 {
		t.Errorf("marker after reopen at %d, want 5", off)
	}
	r.wantLSO(6)
	want := []string{"2:a2", "3:t3", "4:a4"}
	if got := txnCommitted(t, r.p, 0, 1); !slices.Equal(got, want) {
		t.Errorf("committed %q, want %q", got, want)
	}

	r.reopen()
	if r.p.TxnPending(p1) {
		t.Error("p1 pending again after a second reopen: its end was not stored")
	}
	r.wantLSO(6)
	if got := r.p.AbortedTxns(0, math.MaxInt64); !slices.Equal(got, wantAborted) {
		t.Errorf("aborted after second reopen %+v, want %+v", got, wantAborted)
	}
	if got := txnCommitted(t, r.p, 0, 1); !slices.Equal(got, want) {
		t.Errorf("committed after second reopen %q, want %q", got, want)
	}

	// Aborting after a reopen lists the transaction from where it began.
	r.begin(p1) // at 6
	r.txn(p1, "x6")
	r.reopen()
	r.wantLSO(6)
	if off := r.end(p1, false); off != 7 {
		t.Errorf("abort marker at %d, want 7", off)
	}
	wantAborted = append(wantAborted, AbortedTxn{ProducerID: p1, First: 6, Last: 7})
	r.reopen()
	if got := r.p.AbortedTxns(0, math.MaxInt64); !slices.Equal(got, wantAborted) {
		t.Errorf("aborted %+v, want %+v", got, wantAborted)
	}
	if got := txnCommitted(t, r.p, 0, 1); !slices.Equal(got, want) {
		t.Errorf("committed %q, want %q", got, want)
	}
	if v, err := r.l.meta.getTxns(r.name, 0); err != nil || len(v) == 0 {
		t.Errorf("meta.db txns of %s/0: %q, %v; want the aborted list", r.name, v, err)
	}
}

// 4b. The produce path calls TxnAppended for every transactional batch.
// After a reopen the partition must not take a later batch of a pending
// transaction for its first: the LSO would pass the transaction's first
// batch (exposing uncommitted records), and an abort would list the
// transaction from the later batch on, so its earlier batches would read
// as committed.
func TestTxnAppendedAfterReopenKeepsFirstBatch(t *testing.T) {
	r := newTxnRig(t, txnTestConfig())
	const p1 = 411
	r.plain("a0")
	r.begin(p1)     // at 1
	r.txn(p1, "x1") // first batch, 1
	r.wantLSO(1)
	r.reopen()
	r.wantLSO(1)
	r.plain("a2")
	r.txn(p1, "x3") // the next batch of the same transaction: TxnAppended(p1, 3)
	r.wantLSO(1)
	if got := txnCommitted(t, r.p, 0, 1); !slices.Equal(got, []string{"0:a0"}) {
		t.Errorf("committed while p1 is pending: %q, want [0:a0] (x1 is not committed)", got)
	}
	r.end(p1, false)
	if got := r.p.AbortedTxns(0, math.MaxInt64); len(got) != 1 || got[0].First > 1 {
		t.Errorf("aborted %+v, want p1 from offset 1 or below", got)
	}
	if got := txnCommitted(t, r.p, 0, 1); !slices.Equal(got, []string{"0:a0", "2:a2"}) {
		t.Errorf("committed after the abort: %q, want [0:a0 2:a2]", got)
	}
}

// 4c. A topic with several partitions where only some have transactions
// reopens, and can grow.
func TestTxnReopenWithPartitionsWithoutTxns(t *testing.T) {
	cfg := txnTestConfig()
	cfg.Partitions = 2
	r := newTxnRig(t, cfg)
	r.begin(501) // partition 0 only
	r.txn(501, "x0")
	if err := r.l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err := Open(r.dir, r.opts)
	if err != nil {
		t.Fatalf("reopen with a pending transaction on partition 0 of 2: %v", err)
	}
	r.l = l
	tp, err := l.Topic(r.name)
	if err != nil {
		t.Fatal(err)
	}
	p0, p1 := hkPart(t, tp, 0), hkPart(t, tp, 1)
	if !p0.TxnPending(501) || p1.TxnPending(501) {
		t.Errorf("pending: partition 0 %t, partition 1 %t; want true, false", p0.TxnPending(501), p1.TxnPending(501))
	}
	cfg.Partitions = 3
	if err := l.AlterTopic(r.name, cfg); err != nil {
		t.Errorf("adding a partition to a topic with a pending transaction: %v", err)
	}
}

// 4d. Deleting a topic deletes its transactions.
func TestTxnDeleteTopicRemovesTxnState(t *testing.T) {
	cfg := txnTestConfig()
	cfg.Partitions = 2
	r := newTxnRig(t, cfg)
	r.plain("a0")
	r.begin(601)
	r.txn(601, "x1")
	r.begin(602)
	r.end(602, false) // an aborted entry too
	p1 := hkPart(t, r.tp, 1)
	if err := p1.BeginTxn(603); err != nil {
		t.Fatal(err)
	}
	if err := r.l.DeleteTopic(r.name); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int32{0, 1} {
		if v, err := r.l.meta.getTxns(r.name, i); err != nil || v != nil {
			t.Errorf("meta.db txns of deleted %s/%d: %q, %v; want none", r.name, i, v, err)
		}
	}
	cfg.Partitions = 1
	tp, err := r.l.CreateTopic(r.name, cfg)
	if err != nil {
		t.Fatalf("re-create: %v", err)
	}
	p := hkPart(t, tp, 0)
	if p.TxnPending(601) || p.TxnPending(602) {
		t.Error("re-created topic inherits a pending transaction")
	}
	if len(p.AbortedTxns(0, math.MaxInt64)) != 0 {
		t.Errorf("re-created topic inherits aborted transactions %+v", p.AbortedTxns(0, math.MaxInt64))
	}
	txnPlain(t, p, r.ts(), "b0")
	if lso, hw := p.LastStableOffset(), p.HighWatermark(); lso != hw || hw != 1 {
		t.Errorf("re-created topic: LSO %d HW %d, want 1 1", lso, hw)
	}
	r.reopen()
	if r.p.TxnPending(601) || r.p.LastStableOffset() != r.p.HighWatermark() {
		t.Errorf("after reopen: pending %t, LSO %d, HW %d", r.p.TxnPending(601), r.p.LastStableOffset(), r.p.HighWatermark())
	}
}

// 5. Retention prunes aborted transactions whose marker it deleted.
func TestTxnRetentionPrunesAborted(t *testing.T) {
	cfg := ctConfig(CleanupDelete) // rolls by age: each hour a new segment
	cfg.Retention = 90 * time.Minute
	r := newTxnRig(t, cfg)
	const p1, p2, p3 = 701, 702, 703
	seal := func() { r.clock.Advance(time.Hour) }

	// Segment 0 (T0): p1's aborted data; segment 1 (T0+1h): p1's marker;
	// segment 2 (T0+2h): p2's aborted data and marker; active (T0+3h).
	r.begin(p1)
	r.txn(p1, "x0")
	seal()
	r.plain("a1")
	m1 := r.end(p1, false)
	seal()
	r.begin(p2)
	r.txn(p2, "y3")
	m2 := r.end(p2, false)
	seal()
	r.plain("a5")
	if m1 != 2 || m2 != 4 {
		t.Fatalf("markers at %d %d, want 2 4", m1, m2)
	}
	if got := hkSegBases(t, r.p); !slices.Equal(got, []int64{0, 1, 3, 5}) {
		t.Fatalf("segments %v, want [0 1 3 5]", got)
	}
	a1 := AbortedTxn{ProducerID: p1, First: 0, Last: 2}
	a2 := AbortedTxn{ProducerID: p2, First: 3, Last: 4}

	// Now T0+3h: segment 0 (newest T0) is past 90 minutes, segment 1
	// (T0+1h) too, segment 2 (T0+2h) is not.
	r.clock.Advance(-time.Hour) // T0+2h: only segment 0 expires
	if err := r.l.Maintain(); err != nil {
		t.Fatal(err)
	}
	if r.p.LogStartOffset() != 1 {
		t.Fatalf("log start %d, want 1", r.p.LogStartOffset())
	}
	r.begin(p3) // a save: p1's marker is still there
	r.end(p3, true)
	if got := r.p.AbortedTxns(0, math.MaxInt64); !slices.Equal(got, []AbortedTxn{a1, a2}) {
		t.Errorf("aborted with p1's marker still stored: %+v, want %+v", got, []AbortedTxn{a1, a2})
	}

	r.clock.Advance(time.Hour) // T0+3h: segment 1 expires
	if err := r.l.Maintain(); err != nil {
		t.Fatal(err)
	}
	if r.p.LogStartOffset() != 3 {
		t.Fatalf("log start %d, want 3", r.p.LogStartOffset())
	}
	r.begin(p3) // the next save prunes
	if got := r.p.AbortedTxns(0, math.MaxInt64); !slices.Equal(got, []AbortedTxn{a2}) {
		t.Errorf("aborted after p1's marker was deleted: %+v, want %+v", got, []AbortedTxn{a2})
	}
	r.end(p3, true)
	r.reopen()
	if got := r.p.AbortedTxns(0, math.MaxInt64); !slices.Equal(got, []AbortedTxn{a2}) {
		t.Errorf("aborted after reopen: %+v, want %+v", got, []AbortedTxn{a2})
	}
	if got := txnCommitted(t, r.p, r.p.LogStartOffset(), 1); !slices.Equal(got, []string{"5:a5"}) {
		t.Errorf("committed %q, want [5:a5]", got)
	}
}

// txnBatchList renders every batch from the log start as "offset:key=value"
// for data records and "offset:commit"/"offset:abort" for markers.
func txnBatchList(t testing.TB, p *Partition) []string {
	t.Helper()
	out := []string{}
	for off := p.LogStartOffset(); off < p.HighWatermark(); {
		data, err := p.Read(off, 1<<20)
		if err != nil || len(data) == 0 {
			t.Fatalf("read at %d: %d bytes, %v", off, len(data), err)
		}
		err = SplitBatches(data, func(h BatchHeader, b []byte) error {
			if h.LastOffset() < off {
				return nil
			}
			off = h.LastOffset() + 1
			if h.Control() {
				commit, err := ControlMarker(b)
				if err != nil {
					return err
				}
				out = append(out, fmt.Sprintf("%d:%s", h.BaseOffset, map[bool]string{true: "commit", false: "abort"}[commit]))
				return nil
			}
			_, recs, err := DecodeRecords(b)
			if err != nil {
				return err
			}
			for _, r := range recs {
				out = append(out, fmt.Sprintf("%d:%s=%s", r.Offset, ctShow(r.Key), ctShow(r.Value)))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// 6. Compaction and transactions.
func TestTxnCompaction(t *testing.T) {
	r := newTxnRig(t, ctConfig(CleanupCompact))
	const p1, p2, p3 = 801, 802, 803
	seal := func() { r.clock.Advance(time.Hour) }
	k := func(key, v string) Record { return kv(key, v, r.ts()) }

	// Segment 0.
	r.kplain("k1", "a0")              // 0
	r.kplain("k2", "b1")              // 1
	r.begin(p1)                       // at 2
	r.txnRecs(p1, k("k1", "x2"))      // 2: aborted, must not supersede a0
	r.txnRecs(p1, tomb("k2", r.ts())) // 3: an aborted tombstone
	r.end(p1, false)                  // 4
	r.begin(p2)                       // at 5
	r.txnRecs(p2, k("k2", "c5"))      // 5: committed, supersedes b1
	r.end(p2, true)                   // 6
	r.kplain("k3", "d7")              // 7
	seal()
	// Segment 1: p3 pending.
	r.begin(p3)                  // at 8
	r.txnRecs(p3, k("k3", "p8")) // 8
	r.kplain("k1", "a9")         // 9: past the LSO, supersedes nothing yet
	r.kplain("k3", "d10")        // 10
	seal()
	r.kplain("k4", "e11") // 11, active
	if got := hkSegBases(t, r.p); !slices.Equal(got, []int64{0, 8, 11}) {
		t.Fatalf("segments %v, want [0 8 11]", got)
	}
	r.wantLSO(8)

	if err := r.l.Maintain(); err != nil {
		t.Fatal(err)
	}
	want := []string{"0:k1=a0", "4:abort", "5:k2=c5", "6:commit", "7:k3=d7",
		"8:k3=p8", "9:k1=a9", "10:k3=d10", "11:k4=e11"}
	if got := txnBatchList(t, r.p); !slices.Equal(got, want) {
		t.Errorf("after compaction with p3 pending:\n got %q\nwant %q", got, want)
	}
	wantCommitted := []string{"0:a0", "5:c5", "7:d7"}
	if got := txnCommitted(t, r.p, 0, 1); !slices.Equal(got, wantCommitted) {
		t.Errorf("committed %q, want %q", got, wantCommitted)
	}

	r.end(p3, true) // 12
	seal()
	r.kplain("k5", "f13") // 13: seals [11, 13)
	r.wantLSO(14)
	if err := r.l.Maintain(); err != nil {
		t.Fatal(err)
	}
	want = []string{"4:abort", "5:k2=c5", "6:commit", "9:k1=a9", "10:k3=d10", "11:k4=e11", "12:commit", "13:k5=f13"}
	if got := txnBatchList(t, r.p); !slices.Equal(got, want) {
		t.Errorf("after compaction with p3 committed:\n got %q\nwant %q", got, want)
	}
	wantCommitted = []string{"5:c5", "9:a9", "10:d10", "11:e11", "13:f13"}
	if got := txnCommitted(t, r.p, r.p.LogStartOffset(), 1); !slices.Equal(got, wantCommitted) {
		t.Errorf("committed %q, want %q", got, wantCommitted)
	}
	if probs, err := Verify(r.dir); err != nil || len(probs) != 0 {
		t.Errorf("Verify after compaction: %v, %s", err, problemList(probs))
	}
}

// 6b. An aborted transaction's tombstone deletes nothing, even past
// delete_retention, and the aborted transactional records are removed
// while a later transaction of the same producer commits.
func TestTxnCompactionAbortedTombstoneAndSameProducer(t *testing.T) {
	cfg := ctConfig(CleanupCompact)
	cfg.DeleteRetention = time.Minute
	r := newTxnRig(t, cfg)
	const p1 = 811
	seal := func() { r.clock.Advance(time.Hour) }
	k := func(key, v string) Record { return kv(key, v, r.ts()) }

	r.kplain("k1", "a0")                            // 0
	r.begin(p1)                                     // 1
	r.txnRecs(p1, tomb("k1", r.ts()), k("k2", "x")) // 1..2 aborted
	r.end(p1, false)                                // 3
	r.begin(p1)                                     // 4
	r.txnRecs(p1, k("k2", "y4"), k("k3", "y5"))     // 4..5 committed
	r.end(p1, true)                                 // 6
	seal()
	r.kplain("k9", "z7")
	seal()
	r.kplain("k9", "z8")
	if err := r.l.Maintain(); err != nil {
		t.Fatal(err)
	}
	want := []string{"0:k1=a0", "3:abort", "4:k2=y4", "5:k3=y5", "6:commit", "7:k9=z7", "8:k9=z8"}
	if got := txnBatchList(t, r.p); !slices.Equal(got, want) {
		t.Errorf("after compaction:\n got %q\nwant %q", got, want)
	}
	if got := txnCommitted(t, r.p, 0, 1); !slices.Equal(got, []string{"0:a0", "4:y4", "5:y5", "7:z7", "8:z8"}) {
		t.Errorf("committed %q", got)
	}
}

// 7. Readers waiting on Notify wake when the LSO moves.
func TestTxnNotifyWakesOnLSO(t *testing.T) {
	r := newTxnRig(t, txnTestConfig())
	const p1 = 901

	// TxnAppended tightening the LSO wakes.
	r.begin(p1)
	r.plain("a0")
	res, err := r.p.Append(txnBatch(t, p1, 0, Record{Timestamp: r.ts(), Value: []byte("x1")}))
	if err != nil {
		t.Fatal(err)
	}
	ch := r.p.Notify()
	r.p.TxnAppended(p1, res.BaseOffset)
	select {
	case <-ch:
	default:
		t.Error("TxnAppended moved the LSO without waking readers")
	}
	r.end(p1, true)

	// A reader tailing at the LSO gets the transaction's records once it
	// ends, every time.
	for round := 0; round < 50; round++ {
		pid := int64(1000 + round)
		r.begin(pid)
		start := r.p.LastStableOffset()
		r.txn(pid, fmt.Sprintf("r%d", round))
		got := make(chan []string, 1)
		go func() {
			off := start
			var recs []string
			deadline := time.After(5 * time.Second)
			for len(recs) == 0 {
				ch := r.p.Notify()
				data, err := r.p.ReadCommitted(off, 1<<20)
				if err != nil {
					got <- []string{err.Error()}
					return
				}
				next, _ := r.p.EachCommitted(data, off, func(rec Record) error {
					recs = append(recs, string(rec.Value))
					return nil
				})
				if len(data) > 0 {
					off = next
					continue
				}
				select {
				case <-ch:
				case <-deadline:
					got <- []string{fmt.Sprintf("timeout at %d, LSO %d", off, r.p.LastStableOffset())}
					return
				}
			}
			got <- recs
		}()
		time.Sleep(time.Millisecond)
		commit := round%2 == 0
		r.end(pid, commit)
		if !commit {
			// Nothing to read: the reader must still get past the
			// transaction. Append one more record to give it something.
			r.plain(fmt.Sprintf("r%d", round))
		}
		recs := <-got
		if !slices.Equal(recs, []string{fmt.Sprintf("r%d", round)}) {
			t.Fatalf("round %d: reader got %q", round, recs)
		}
	}
}

// 7b. EndTxn wakes readers once the transaction has ended, not only when
// its marker is published: a reader that looked between the two (and
// found the LSO still held) must not sleep on. The test holds the
// transaction lock while the marker is published, takes the Notify
// channel then, and lets EndTxn finish.
func TestTxnEndTxnWakesAfterMarker(t *testing.T) {
	ffs := newFaultFS()
	r := newTxnRigFS(t, txnTestConfig(), ffs)
	const p1 = 951
	r.begin(p1)
	r.txn(p1, "x0")
	isMarker := func(path string, b []byte) bool {
		return isDataWrite(path, b) && len(b) >= batchHeaderSize && parseBatchHeader(b).Control()
	}
	blocked, release := ffs.blockNextWrite(isMarker)
	ended := make(chan error, 1)
	go func() {
		_, err := r.p.EndTxn(p1, 0, true, 0)
		ended <- err
	}()
	select {
	case <-blocked:
	case <-time.After(5 * time.Second):
		t.Fatal("the marker was never written")
	}
	r.p.txn.mu.Lock()
	close(release)
	for deadline := time.Now().Add(5 * time.Second); r.p.HighWatermark() < 2; {
		if time.Now().After(deadline) {
			r.p.txn.mu.Unlock()
			t.Fatalf("marker not published: HW %d", r.p.HighWatermark())
		}
		time.Sleep(time.Millisecond)
	}
	ch := r.p.Notify() // the marker's publish has happened; the LSO is still 0
	r.p.txn.mu.Unlock()
	if err := <-ended; err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	case <-time.After(2 * time.Second):
		t.Fatal("EndTxn moved the LSO without waking a reader that waited after the marker")
	}
	r.wantLSO(2)
}

// 8. Markers: ControlMarker, Dump and Verify.
func TestTxnControlMarkerDumpVerify(t *testing.T) {
	r := newTxnRig(t, txnTestConfig())
	r.begin(1)
	r.txn(1, "c0")
	r.begin(2)
	r.txn(2, "x1")
	mc, err := r.p.EndTxn(1, 3, true, 42)
	if err != nil {
		t.Fatal(err)
	}
	ma, err := r.p.EndTxn(2, 5, false, 43)
	if err != nil {
		t.Fatal(err)
	}
	r.plain("a4")
	for _, c := range []struct {
		off              int64
		pid              int64
		epoch            int16
		commit           bool
		coordinatorEpoch int32
	}{{mc, 1, 3, true, 42}, {ma, 2, 5, false, 43}} {
		data, err := r.p.Read(c.off, 1)
		if err != nil {
			t.Fatal(err)
		}
		h, err := ParseBatchHeader(data)
		if err != nil {
			t.Fatal(err)
		}
		if h.BaseOffset != c.off || !h.Control() || !h.Transactional() || h.ProducerID != c.pid || h.ProducerEpoch != c.epoch || h.NumRecords != 1 {
			t.Errorf("marker at %d: header %+v", c.off, h)
		}
		commit, err := ControlMarker(data[:h.Size()])
		if err != nil || commit != c.commit {
			t.Errorf("ControlMarker at %d: %t, %v; want %t", c.off, commit, err, c.commit)
		}
		_, recs, err := DecodeRecords(data[:h.Size()])
		if err != nil || len(recs) != 1 {
			t.Fatalf("marker records: %v, %v", recs, err)
		}
		key, val := recs[0].Key, recs[0].Value
		if len(key) != 4 || binary.BigEndian.Uint16(key) != 0 || len(val) != 6 || binary.BigEndian.Uint16(val) != 0 ||
			int32(binary.BigEndian.Uint32(val[2:])) != c.coordinatorEpoch {
			t.Errorf("marker record key %x value %x", key, val)
		}
	}
	// Not a marker.
	plain, _ := AppendBatch(nil, []Record{{Value: []byte("a")}, {Value: []byte("b")}}, DefaultBatchOptions)
	if _, err := ControlMarker(plain); err == nil {
		t.Error("ControlMarker of a two-record batch: no error")
	}
	bad, _ := AppendBatch(nil, []Record{{Key: []byte{0, 0, 0, 9}}}, DefaultBatchOptions)
	if _, err := ControlMarker(bad); err == nil {
		t.Error("ControlMarker of control type 9: no error")
	}
	// EachRecord skips markers.
	if got := txnCommitted(t, r.p, 0, 1<<20); !slices.Equal(got, []string{"0:c0", "4:a4"}) {
		t.Errorf("committed %q", got)
	}

	if err := r.l.Close(); err != nil {
		t.Fatal(err)
	}
	probs, err := Verify(r.dir)
	if err != nil || len(probs) != 0 {
		t.Errorf("Verify of a log with markers: %v, %s", err, problemList(probs))
	}
	var out bytes.Buffer
	if err := Dump(&out, r.p.dir, true); err != nil {
		t.Fatalf("Dump: %v", err)
	}
	s := out.String()
	if n := strings.Count(s, "isControl: true"); n != 2 {
		t.Errorf("Dump shows %d control batches, want 2:\n%s", n, s)
	}
	if n := strings.Count(s, "isTransactional: true"); n != 4 {
		t.Errorf("Dump shows %d transactional batches, want 4:\n%s", n, s)
	}
	if !strings.Contains(s, "baseOffset: 2 lastOffset: 2 count: 1 baseSequence: -1 lastSequence: -1 producerId: 1 producerEpoch: 3") {
		t.Errorf("Dump does not show the commit marker of producer 1:\n%s", s)
	}
	// With records, markers show as kafka-dump-log shows them.
	if !strings.Contains(s, "| offset: 2 CreateTime: ") || !strings.Contains(s, "endTxnMarker: COMMIT coordinatorEpoch: 42") ||
		!strings.Contains(s, "endTxnMarker: ABORT coordinatorEpoch: 43") {
		t.Errorf("Dump does not show the markers' type and coordinator epoch:\n%s", s)
	}
	r.l = openTestLog(t, r.dir, r.opts) // for Cleanup
}

// 9a. Concurrent aborts keep the aborted list in marker order, as
// AbortedTxns' binary search and the pruning of saveTxns need.
func TestTxnConcurrentAbortsKeepMarkerOrder(t *testing.T) {
	r := newTxnRig(t, txnTestConfig())
	const producers = 4
	for round := 0; round < 40; round++ {
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := 0; i < producers; i++ {
			pid := int64(round*producers + i + 1)
			r.begin(pid)
			r.txn(pid, fmt.Sprintf("x%d", pid))
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if _, err := r.p.EndTxn(pid, 0, false, 0); err != nil {
					t.Error(err)
				}
			}()
		}
		close(start)
		wg.Wait()
		all := r.p.AbortedTxns(0, math.MaxInt64)
		if !slices.IsSortedFunc(all, func(a, b AbortedTxn) int { return int(a.Last - b.Last) }) {
			var lasts []int64
			for _, a := range all {
				lasts = append(lasts, a.Last)
			}
			t.Errorf("round %d: aborted list not in marker order: markers %v", round, lasts)
		}
		// AbortedTxns(from, to) must return every aborted transaction
		// whose marker is at or after from.
		for from := int64(0); from <= r.p.HighWatermark(); from++ {
			var want []AbortedTxn
			for _, a := range all {
				if a.Last >= from {
					want = append(want, a)
				}
			}
			got := r.p.AbortedTxns(from, math.MaxInt64)
			for _, a := range want {
				if !slices.Contains(got, a) {
					t.Fatalf("round %d: AbortedTxns(%d, max) = %+v misses %+v (whole list %+v)", round, from, got, a, all)
				}
			}
		}
		if t.Failed() {
			return
		}
	}
	if got := txnCommitted(t, r.p, 0, 1); len(got) != 0 {
		t.Errorf("aborted records read as committed: %q", got)
	}
}

// 9b. Transactional producers, plain producers and committed readers at
// once on one partition: readers never see an aborted or pending record,
// see committed ones in order and once, and a final read returns exactly
// the committed records.
func TestTxnConcurrentProducersAndReaders(t *testing.T) {
	r := newTxnRig(t, txnTestConfig())
	p := r.p
	const txnProducers, txns, plainProducers, plains = 3, 12, 2, 30
	ts := r.ts()

	var mu sync.Mutex
	committed := map[string]bool{} // value -> committed (false: aborted)
	var plainVals []string
	var done atomic.Bool
	var wg, readers sync.WaitGroup
	errc := make(chan error, 64)
	fail := func(format string, args ...any) {
		select {
		case errc <- fmt.Errorf(format, args...):
		default:
		}
	}

	for w := 0; w < txnProducers; w++ {
		pid := int64(5000 + w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < txns; n++ {
				if err := p.BeginTxn(pid); err != nil {
					fail("BeginTxn: %v", err)
					return
				}
				commit := n%3 != 0
				for b := 0; b < 1+n%3; b++ {
					v := fmt.Sprintf("t%d-%d-%d", pid, n, b)
					mu.Lock()
					committed[v] = commit
					mu.Unlock()
					res, err := p.Append(txnBatch(t, pid, 0, Record{Timestamp: ts, Value: []byte(v)}))
					if err != nil {
						fail("append: %v", err)
						return
					}
					p.TxnAppended(pid, res.BaseOffset)
				}
				if lso, hw := p.LastStableOffset(), p.HighWatermark(); lso > hw {
					fail("LSO %d past HW %d", lso, hw)
				}
				if _, err := p.EndTxn(pid, 0, commit, 0); err != nil {
					fail("EndTxn: %v", err)
					return
				}
			}
		}()
	}
	for w := 0; w < plainProducers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < plains; n++ {
				v := fmt.Sprintf("p%d-%d", w, n)
				mu.Lock()
				committed[v] = true
				plainVals = append(plainVals, v)
				mu.Unlock()
				if _, err := p.AppendRecords([]Record{{Timestamp: ts, Value: []byte(v)}}, DefaultBatchOptions); err != nil {
					fail("append: %v", err)
					return
				}
			}
		}()
	}
	for w := 0; w < 2; w++ {
		readers.Add(1)
		go func() {
			defer readers.Done()
			off := int64(0)
			seen := map[string]bool{}
			for {
				ch := p.Notify()
				lso := p.LastStableOffset()
				if lso > p.HighWatermark() {
					fail("LSO %d past HW %d", lso, p.HighWatermark())
				}
				data, err := p.ReadCommitted(off, 200+w*300)
				if err != nil {
					fail("ReadCommitted(%d): %v", off, err)
					return
				}
				next, err := p.EachCommitted(data, off, func(rec Record) error {
					v := string(rec.Value)
					mu.Lock()
					c, ok := committed[v]
					mu.Unlock()
					if !ok || !c {
						return fmt.Errorf("reader got %q at %d (known %t, committed %t)", v, rec.Offset, ok, c)
					}
					if seen[v] {
						return fmt.Errorf("reader got %q twice", v)
					}
					seen[v] = true
					return nil
				})
				if err != nil {
					fail("%v", err)
					return
				}
				if len(data) > 0 {
					if next <= off {
						fail("reader stuck at %d", off)
						return
					}
					off = next
					continue
				}
				if done.Load() && off >= p.LastStableOffset() {
					return
				}
				select {
				case <-ch:
				case <-time.After(20 * time.Millisecond):
				}
			}
		}()
	}
	wg.Wait()
	done.Store(true)
	readers.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if lso, hw := p.LastStableOffset(), p.HighWatermark(); lso != hw {
		t.Fatalf("all transactions ended: LSO %d, HW %d", lso, hw)
	}
	got := txnCommitted(t, p, 0, 300)
	var want []string
	for v, c := range committed {
		if c {
			want = append(want, v)
		}
	}
	var gotVals []string
	last := int64(-1)
	for _, s := range got {
		off, v, _ := strings.Cut(s, ":")
		var o int64
		fmt.Sscan(off, &o)
		if o <= last {
			t.Errorf("offset %d after %d", o, last)
		}
		last = o
		gotVals = append(gotVals, v)
	}
	// Each producer's records come out in its order.
	order := map[string][]string{}
	for _, v := range gotVals {
		prod, _, _ := strings.Cut(v, "-")
		order[prod] = append(order[prod], v)
	}
	for prod, vs := range order {
		if strings.HasPrefix(prod, "p") && !slices.IsSortedFunc(vs, func(a, b string) int {
			var x, y int
			fmt.Sscanf(a[strings.Index(a, "-")+1:], "%d", &x)
			fmt.Sscanf(b[strings.Index(b, "-")+1:], "%d", &y)
			return x - y
		}) {
			t.Errorf("producer %s out of order: %q", prod, vs)
		}
	}
	slices.Sort(gotVals)
	slices.Sort(want)
	if !slices.Equal(gotVals, want) {
		t.Errorf("final read: %d records, want %d committed", len(gotVals), len(want))
	}
	_ = plainVals
}

// A transaction stored as beginning past the end the log has at open (it
// began after appends a crash lost, with sync never) begins at that end:
// its next batch lands there and must stay uncommitted.
func TestTxnBeginPastEndAfterCrashIsClamped(t *testing.T) {
	r := newTxnRig(t, txnTestConfig())
	const p1 = 77
	r.plain("a0", "a1", "a2")
	// What meta.db says if the transaction began at 10 and offsets 3..9
	// were lost.
	if err := r.l.meta.putTxns(r.name, 0, []byte(`{"ongoing":{"77":10}}`)); err != nil {
		t.Fatal(err)
	}
	r.reopen()
	r.wantLSO(3)
	r.txn(p1, "x3")
	r.plain("a4")
	r.wantLSO(3)
	if got := txnCommitted(t, r.p, 0, 1<<20); !slices.Equal(got, []string{"0:a0", "1:a1", "2:a2"}) {
		t.Errorf("committed while p1 is pending: %q", got)
	}
	r.end(p1, false)
	if got := txnCommitted(t, r.p, 0, 1<<20); !slices.Equal(got, []string{"0:a0", "1:a1", "2:a2", "4:a4"}) {
		t.Errorf("committed after the abort: %q", got)
	}
}

// ControlMarker refuses a batch that is not a control batch, even one
// shaped like a marker.
func TestTxnControlMarkerNeedsControlBatch(t *testing.T) {
	b, err := AppendBatch(nil, []Record{{Key: []byte{0, 0, 0, 1}, Value: []byte{0, 0, 0, 0, 0, 0}}}, DefaultBatchOptions)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ControlMarker(b); err == nil {
		t.Error("a plain batch decoded as a transaction marker")
	}
}
