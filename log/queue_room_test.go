package log

import (
	"crypto/rand"
	"syscall"
	"testing"
	"time"
)

func processCPU(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// An appender that finds the queue full (maxQueueBytes) blocks until the
// flusher takes the queue. It must not spin between the end of the cycle
// in flight and the flusher taking the next queue (callbacks run, then
// the gather wait): here the first cycle's callback holds that window
// open, and the waiting appender must use (almost) no CPU.
func TestAppendWaitingForQueueRoomUsesNoCPU(t *testing.T) {
	l, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	tp, err := l.CreateTopic("t", DefaultTopicConfig())
	if err != nil {
		t.Fatal(err)
	}
	p, _ := tp.Partition(0)
	batch := func(n int) []byte {
		v := make([]byte, n)
		rand.Read(v)
		b, err := AppendBatch(nil, []Record{{Value: v}}, DefaultBatchOptions)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	// Cycle 1: a small append whose acknowledgement runs for a while on
	// the flusher, after cycle 1's done channel is closed.
	inCallback, release := make(chan struct{}), make(chan struct{})
	if err := p.AppendAsync(batch(100), func(AppendResult, error) { close(inCallback); <-release }); err != nil {
		t.Fatal(err)
	}
	<-inCallback
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()

	// Fill the queue up to maxQueueBytes behind it.
	big := batch(512 << 10)
	for queued := 0; queued < maxQueueBytes; queued += len(big) {
		if err := p.AppendAsync(big, func(AppendResult, error) {}); err != nil {
			t.Fatal(err)
		}
	}
	p.mu.Lock()
	full, inflightDone := len(p.queue) >= maxQueueBytes, false
	if p.inflight != nil {
		select {
		case <-p.inflight.done:
			inflightDone = true
		default:
		}
	}
	p.mu.Unlock()
	if !full || !inflightDone {
		t.Fatalf("setup: queue full %v, inflight cycle done %v; want both", full, inflightDone)
	}

	// One more appender: it must wait for room.
	appended := make(chan error, 1)
	go func() { _, err := p.Append(big); appended <- err }()
	time.Sleep(50 * time.Millisecond)
	before := processCPU(t)
	time.Sleep(time.Second)
	used := processCPU(t) - before
	select {
	case err := <-appended:
		t.Fatalf("append returned (%v) while the queue was full", err)
	default:
	}
	close(release)
	released = true
	if err := <-appended; err != nil {
		t.Fatal(err)
	}
	if used > 200*time.Millisecond {
		t.Fatalf("a blocked appender burned %v of CPU in 1s waiting for queue room (enqueue busy-loops on a finished inflight cycle)", used.Round(time.Millisecond))
	}
}
