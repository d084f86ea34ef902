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

// busySince holds, per kind of disk work, when the running one began (unix
// nanoseconds), or 0.
type busySince [busyKinds]atomic.Int64

// begin notes that work of kind k starts; the returned func ends it.
func (b *busySince) begin(k int) func() {
	b[k].Store(time.Now().UnixNano())
	return func() { b[k].Store(0) }
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
	now := time.Now().UnixNano()
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
