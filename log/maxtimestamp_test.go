package log

import (
	"sync"
	"testing"
)

// MaxTimestamp finds the first record with the greatest timestamp, also
// when timestamps go backwards, across segments, and after DeleteRecords
// removed the records that held it.
func TestMaxTimestamp(t *testing.T) {
	l, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg := DefaultTopicConfig()
	cfg.SegmentBytes, cfg.MaxMessageBytes = 1024, 1024 // three batches per segment
	tp, err := l.CreateTopic("ts", cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := tp.Partition(0)
	if _, _, found, err := p.MaxTimestamp(); err != nil || found {
		t.Fatalf("empty partition: found %v, %v", found, err)
	}
	for _, ts := range []int64{5, 9, 3, 9, 1, 7, 2} {
		if _, err := p.AppendRecords([]Record{{Timestamp: ts, Value: make([]byte, 300)}}, DefaultBatchOptions); err != nil {
			t.Fatal(err)
		}
	}
	check := func(wantOff, wantTs int64) {
		t.Helper()
		off, ts, found, err := p.MaxTimestamp()
		if err != nil || !found || off != wantOff || ts != wantTs {
			t.Errorf("MaxTimestamp = %d, %d, %v, %v; want %d, %d", off, ts, found, err, wantOff, wantTs)
		}
	}
	check(1, 9)
	if _, err := p.DeleteRecords(2); err != nil {
		t.Fatal(err)
	}
	check(3, 9)
	if _, err := p.DeleteRecords(4); err != nil {
		t.Fatal(err)
	}
	check(5, 7)
}

// MaxTimestamp runs beside the flusher without touching the active
// segment's fields, which the flusher writes without a lock the reader
// holds (the race detector, in CI's -race run, checks it).
func TestMaxTimestampBesideFlusher(t *testing.T) {
	l, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg := DefaultTopicConfig()
	cfg.Sync = SyncNever
	tp, err := l.CreateTopic("race", cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := tp.Partition(0)
	if _, err := p.AppendRecords([]Record{{Timestamp: 1, Value: []byte("x")}}, DefaultBatchOptions); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, _, _, err := p.MaxTimestamp(); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := range 2000 {
		if _, err := p.AppendRecords([]Record{{Timestamp: int64(i + 2), Value: []byte("y")}}, DefaultBatchOptions); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
}
