package log

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// logStartFile holds a partition's log start offset when DeleteRecords
// moved it past the first segment's base (Kafka's
// log-start-offset-checkpoint). It lives in the partition directory, so it
// goes with the partition.
const logStartFile = "log-start-offset"

// DeleteRecords makes before the partition's log start offset, as Kafka's
// DeleteRecords does: records below it are no longer readable, and sealed
// segments entirely below it are deleted. before = -1 means the high
// watermark. It returns the new log start offset. The new start is
// durable before it takes effect; records a pinned reader had not read are
// counted and logged like any retention past a pin. As in Kafka, a topic
// compacted but not deleted (cleanup.policy compact) refuses with
// ErrPolicy: its records are kept by key, not by offset.
func (p *Partition) DeleteRecords(before int64) (int64, error) {
	p.cleanMu.Lock()
	defer p.cleanMu.Unlock()
	hw := p.HighWatermark()
	start := p.LogStartOffset()
	if !p.topic.Config().deletes() {
		return start, fmt.Errorf("delete records of %s/%d: %w: cleanup.policy is compact", p.topic.name, p.id, ErrPolicy)
	}
	if before == -1 {
		before = hw
	}
	switch {
	case before < 0:
		return start, fmt.Errorf("%w: %d is not an offset (-1 means the high watermark)", ErrOffsetOutOfRange, before)
	case before > hw:
		return start, fmt.Errorf("%w: %d is past the high watermark %d", ErrOffsetOutOfRange, before, hw)
	case before <= start:
		return start, nil
	}
	if err := writeFileAtomic(p.l.fs, filepath.Join(p.dir, logStartFile), []byte(strconv.FormatInt(before, 10)+"\n")); err != nil {
		return start, fmt.Errorf("delete records of %s/%d: %w", p.topic.name, p.id, err)
	}
	// A pinned reader loses what it had not read, from its pin or the old
	// start (what lies below that was gone already, and counted then).
	from := p.minPin()
	if from >= 0 {
		from = max(from, start)
	}
	p.segMu.Lock()
	n := 0
	for n < len(p.segments)-1 && p.segments[n+1].base <= before {
		n++
	}
	gone := p.detachOldestLocked(n)
	var lostKept int64 // in the segment the new start falls into
	kept := p.segments[0]
	if from >= 0 && from < before && kept.base < before {
		if len(p.segments) == 1 {
			// The active segment is never compacted: offsets are records.
			lostKept = before - max(from, kept.base)
		} else {
			lostKept = recordsFrom(kept, from) - recordsFrom(kept, before)
		}
	}
	if before > p.logStart.Load() {
		p.logStart.Store(before)
	}
	p.segMu.Unlock()
	if lostKept > 0 {
		p.topic.dropped.Add(lostKept)
		p.lg.Warn("deleted records a pinned reader had not read", "reason", "delete records",
			"segment", kept.path, "records", lostKept, "pin", from)
	}
	p.lg.Info("records deleted", "before", before, "segments", len(gone))
	return before, p.removeSegments(gone, from, "delete records")
}

// storedLogStart reads the log start DeleteRecords stored, or -1. A file
// that cannot be read is logged and ignored: the segments' own start is a
// safe floor (it shows more records, never fewer).
func (p *Partition) storedLogStart() int64 {
	path := filepath.Join(p.dir, logStartFile)
	f, err := p.l.fs.OpenFile(path, os.O_RDONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return -1
	}
	var v int64 = -1
	if err == nil {
		buf := make([]byte, 32)
		var n int
		n, err = f.ReadAt(buf, 0)
		f.Close()
		if errors.Is(err, io.EOF) {
			err = nil
		}
		if err == nil {
			v, err = parseLogStart(buf[:n])
		}
	}
	if err != nil {
		p.lg.Warn("ignoring an unreadable log start offset", "file", path, "error", err)
		return -1
	}
	return v
}

// parseLogStart parses a log start file: a decimal offset, then a newline.
func parseLogStart(b []byte) (int64, error) {
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err == nil && v < 0 {
		return -1, fmt.Errorf("log start %d is not an offset", v)
	}
	return v, err
}
