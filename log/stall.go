package log

// Stall detection: a disk that stops answering (an fsync that never
// returns) leaves appends waiting for ever without any error. The
// partitions note when their disk work began, so that a supervisor (the
// systemd watchdog) can tell a wedged log from an idle one.

import (
	"fmt"
	"sync/atomic"
	"time"
)

// The disk work a partition tracks: the flusher's cycle (write, inline
// fsync, rolls), an fsync running beside it, and the sync: interval timer.
const (
	busyFlush = iota
	busyFsyncJob
	busyTimed
	busyKinds
)

var busyNames = [busyKinds]string{"flush (write and fsync)", "fsync", "interval fsync"}

// busySince holds, per kind of disk work, when the running one began
// (nanoseconds since stallEpoch, from the monotonic clock: a wall clock
// stepped by NTP on a board without a real-time clock would fake or hide
// a stall), or 0.
type busySince [busyKinds]atomic.Int64

var stallEpoch = time.Now()

// stallNow is the time since stallEpoch, never 0 (which means idle).
func stallNow() int64 { return int64(time.Since(stallEpoch)) + 1 }

// begin notes that work of kind k starts; the returned func ends it. It
// clears only its own mark: an fsync job ending late must not clear the
// mark of the next one, which may already run.
func (b *busySince) begin(k int) func() {
	start := stallNow()
	b[k].Store(start)
	return func() { b[k].CompareAndSwap(start, 0) }
}

// StalledError reports disk work that has run longer than allowed.
type StalledError struct {
	Topic     string
	Partition int32
	Work      string
	For       time.Duration
}

func (e *StalledError) Error() string {
	return fmt.Sprintf("log stalled: a %s of %s/%d has run for %v", e.Work, e.Topic, e.Partition, e.For.Round(time.Millisecond))
}

// Stalled returns a *StalledError for the longest-running disk work that
// has run for more than limit (a write or fsync that does not return), or
// nil. It takes no lock a stuck flusher could hold.
func (l *Log) Stalled(limit time.Duration) error {
	now := stallNow()
	var worst *StalledError
	for _, t := range l.allTopics() {
		for _, p := range t.Partitions() {
			for k := range busyKinds {
				since := p.busy[k].Load()
				if since == 0 {
					continue
				}
				if d := time.Duration(now - since); d > limit && (worst == nil || d > worst.For) {
					worst = &StalledError{Topic: t.name, Partition: p.id, Work: busyNames[k], For: d}
				}
			}
		}
	}
	if worst == nil {
		return nil
	}
	return worst
}
