package edge

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	spoollog "github.com/spoolmq/spool/log"
)

// TestTrimWhenIdle: memory is handed back once a quiet interval follows
// activity, not while appends go on, and not again while it stays quiet.
func TestTrimWhenIdle(t *testing.T) {
	l, err := spoollog.Open(t.TempDir(), spoollog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg := spoollog.DefaultTopicConfig()
	cfg.Sync = spoollog.SyncNever
	top, err := l.CreateTopic("t", cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := top.Partition(0)
	var frees atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const every = 20 * time.Millisecond
	go trimWhenIdle(ctx, l, every, func() { frees.Add(1) })

	busyUntil := time.Now().Add(10 * every)
	for time.Now().Before(busyUntil) {
		if _, err := p.AppendRecords([]spoollog.Record{{Value: []byte("x")}}, spoollog.DefaultBatchOptions); err != nil {
			t.Fatal(err)
		}
		time.Sleep(every / 4)
	}
	if n := frees.Load(); n > 1 {
		t.Errorf("trimmed %d times while appends went on", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for frees.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("never trimmed after the appends stopped")
		}
		time.Sleep(every)
	}
	before := frees.Load()
	time.Sleep(10 * every)
	if n := frees.Load(); n != before {
		t.Errorf("trimmed %d more times while quiet, want once per quiet period", n-before)
	}
}
