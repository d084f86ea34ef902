package log

import (
	"os"
	"testing"
	"time"
)

// The active segment's two indexes are written one after the other and
// never synced: after a power loss the time index may end before the
// offset index. Recovery must still find the segment's greatest
// timestamp, or OffsetForTime skips the segment and time retention deletes
// records that have not expired.
func TestShortTimeIndexOfActiveSegment(t *testing.T) {
	dir := t.TempDir()
	clock := newTestClock()
	l := openTestLog(t, dir, Options{Now: clock.Now})
	cfg := testConfig()
	tp, err := l.CreateTopic("t", cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := tp.Partition(0)
	base := clock.Now().UnixMilli()
	const peak = 50
	for i := 0; i < 100; i++ {
		ts := base + int64(i)
		if i == peak {
			ts = base + 1_000_000
		}
		if _, err := p.AppendRecords([]Record{rec(i, 1, ts)}, DefaultBatchOptions); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	act := p.segments[len(p.segments)-1].path
	tix := timeIndexPathOf(act)
	b, err := os.ReadFile(tix)
	if err != nil {
		t.Fatal(err)
	}
	// Keep the time entries below the peak only: a valid prefix.
	entries, _ := decodeTimeIndex(b, 1<<32-1)
	keep := 0
	for keep < len(entries) && entries[keep].ts < base+1_000_000 {
		keep++
	}
	if keep == len(entries) || keep == 0 || len(readIndexEntries(t, indexPathOf(act))) == 0 {
		t.Fatalf("setup: %d time entries, %d below the peak", len(entries), keep)
	}
	if err := os.WriteFile(tix, b[:keep*timeEntrySize], 0o644); err != nil {
		t.Fatal(err)
	}

	l = openTestLog(t, dir, Options{Now: clock.Now})
	defer l.Close()
	tp, _ = l.Topic("t")
	p, _ = tp.Partition(0)
	if got := p.active().maxTs; got != base+1_000_000 {
		t.Errorf("reopened active segment's max timestamp %d, want %d", got, base+1_000_000)
	}
	for i := 100; len(p.segments) < 2; i++ {
		if _, err := p.AppendRecords([]Record{rec(i, 1, base+int64(i))}, DefaultBatchOptions); err != nil {
			t.Fatal(err)
		}
	}
	off, ok, err := p.OffsetForTime(base + 1_000_000)
	if err != nil || !ok || off != peak {
		t.Errorf("OffsetForTime(max timestamp) = %d, %v, %v; want offset %d", off, ok, err, peak)
	}
	// Time retention of 10 minutes, one minute after the newest record:
	// the sealed segment holds it and must stay.
	clock.Advance(1_000_000*time.Millisecond + time.Minute)
	cfg.Retention = 10 * time.Minute
	if err := l.AlterTopic("t", cfg); err != nil {
		t.Fatal(err)
	}
	if err := l.Maintain(); err != nil {
		t.Fatal(err)
	}
	if start := p.LogStartOffset(); start != 0 {
		t.Errorf("time retention deleted the segment holding a 1-minute-old record (log start %d, want 0)", start)
	}
}

// Lowering delete_retention applies to tombstones already kept, without
// waiting for a new segment to seal.
func TestTombstoneAfterDeleteRetentionLowered(t *testing.T) {
	r := newHKRig(t, 0)
	cfg := ctConfig(CleanupCompact)
	cfg.DeleteRetention = 1000 * time.Hour
	c := newCTPart(t, r, "tombs", cfg)
	ts := hkMs(hkT0)
	c.one(kv("k1", "v0", ts), tomb("k1", ts), kv("k2", "v2", ts))
	c.seal()
	c.one(kv("k3", "v3", ts))
	r.maintain()
	ctExpect(t, c.p, "1:k1=nil", "2:k2=v2", "3:k3=v3")

	cfg.DeleteRetention = time.Hour
	if err := r.l.AlterTopic("tombs", cfg); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(10 * time.Hour) // the tombstone is 11 hours old, delete retention 1 hour
	r.maintain()
	ctExpect(t, c.p, "2:k2=v2", "3:k3=v3")
}
