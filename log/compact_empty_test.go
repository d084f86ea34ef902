package log

import (
	"fmt"
	"os"
	"testing"
)

// TestCompactionRemovesEmptiedSegment: a sealed segment whose every
// record a later one supersedes is deleted, not kept as an empty file; the
// log start moves past it and everything left reads back, also after a
// reopen.
func TestCompactionRemovesEmptiedSegment(t *testing.T) {
	dir := t.TempDir()
	clock := newTestClock()
	l := openTestLog(t, dir, Options{Now: clock.Now})
	cfg := DefaultTopicConfig()
	cfg.CleanupPolicy = CleanupCompact
	cfg.SegmentBytes = 4 << 10
	cfg.MaxMessageBytes = 1 << 10
	cfg.Preallocate = false
	tp, err := l.CreateTopic("c", cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := tp.Partition(0)
	// Four keys, written over and over: early segments hold only
	// superseded values.
	for i := range 400 {
		r := Record{Timestamp: clock.Now().UnixMilli(), Key: fmt.Appendf(nil, "k%d", i%4), Value: fmt.Appendf(nil, "v%03d-%080d", i, i)}
		if _, err := p.AppendRecords([]Record{r}, DefaultBatchOptions); err != nil {
			t.Fatal(err)
		}
	}
	before := len(p.segments)
	if before < 5 {
		t.Fatalf("want several segments, got %d", before)
	}
	if err := l.Maintain(); err != nil {
		t.Fatal(err)
	}
	if len(p.segments) >= before {
		t.Fatalf("compaction kept all %d segments", len(p.segments))
	}
	entries, _ := os.ReadDir(p.dir)
	for _, e := range entries {
		if fi, _ := e.Info(); fi != nil && fi.Size() == 0 && len(e.Name()) > 4 && e.Name()[len(e.Name())-4:] == ".log" {
			t.Errorf("empty segment file %s left behind", e.Name())
		}
	}
	if p.LogStartOffset() == 0 || p.LogStartOffset() != p.segments[0].base {
		t.Errorf("log start %d, first segment %d", p.LogStartOffset(), p.segments[0].base)
	}
	check := func(p *Partition) {
		t.Helper()
		latest := map[string]string{}
		for _, r := range readAll(t, p) {
			latest[string(r.Key)] = string(r.Value)
		}
		for k := range 4 {
			i := 396 + k
			if want := fmt.Sprintf("v%03d-%080d", i, i); latest[fmt.Sprintf("k%d", k)] != want {
				t.Errorf("key k%d reads %q, want %q", k, latest[fmt.Sprintf("k%d", k)], want)
			}
		}
	}
	check(p)
	start, used := p.LogStartOffset(), l.UsedBytes()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openTestLog(t, dir, Options{Now: clock.Now})
	defer l.Close()
	tp, _ = l.Topic("c")
	p, _ = tp.Partition(0)
	if p.LogStartOffset() != start || l.UsedBytes() != used {
		t.Errorf("after reopen: log start %d used %d, want %d and %d", p.LogStartOffset(), l.UsedBytes(), start, used)
	}
	check(p)
}
