package log

import (
	"sync/atomic"
	"time"
)

// FsyncBuckets are the upper bounds of the fsync latency histogram.
var FsyncBuckets = []time.Duration{
	50 * time.Microsecond, 100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond, time.Second,
}

// stats are the log's counters, updated without locks.
type stats struct {
	appendedRecords atomic.Int64
	appendedBytes   atomic.Int64
	fsyncs          atomic.Int64
	fsyncNanos      atomic.Int64
	fsyncCounts     [14]atomic.Int64 // per FsyncBuckets entry, then +Inf
	recycled        atomic.Int64
}

func (s *stats) observeFsync(d time.Duration) {
	s.fsyncs.Add(1)
	s.fsyncNanos.Add(int64(d))
	i := 0
	for i < len(FsyncBuckets) && d > FsyncBuckets[i] {
		i++
	}
	s.fsyncCounts[i].Add(1)
}

// Stats is a snapshot of the log's counters.
type Stats struct {
	AppendedRecords int64
	AppendedBytes   int64
	Fsyncs          int64
	FsyncTime       time.Duration
	// FsyncCounts[i] counts fsyncs no longer than FsyncBuckets[i] and longer
	// than the bucket before; the last element counts the rest.
	FsyncCounts []int64
	// UsedBytes counts segment files and spares (recycle.go), as the disk
	// budget does.
	UsedBytes int64
	// SegmentsRecycled counts the segments started in a deleted one's file.
	SegmentsRecycled int64
}

// Stats returns the log's counters.
func (l *Log) Stats() Stats {
	s := Stats{
		AppendedRecords:  l.stats.appendedRecords.Load(),
		AppendedBytes:    l.stats.appendedBytes.Load(),
		Fsyncs:           l.stats.fsyncs.Load(),
		FsyncTime:        time.Duration(l.stats.fsyncNanos.Load()),
		FsyncCounts:      make([]int64, len(l.stats.fsyncCounts)),
		UsedBytes:        l.used.Load(),
		SegmentsRecycled: l.stats.recycled.Load(),
	}
	for i := range l.stats.fsyncCounts {
		s.FsyncCounts[i] = l.stats.fsyncCounts[i].Load()
	}
	return s
}
