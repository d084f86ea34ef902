package log

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

// retainable returns how many of the oldest sealed segments time and size
// retention may delete: it stops at the first segment that must stay, at
// the first one holding records at or after pin (pin < 0: none), and never
// counts the active segment.
func retainable(segs []*segment, cfg TopicConfig, now time.Time, total int64, pin int64) int {
	n := 0
	for n < len(segs)-1 {
		s := segs[n]
		if pin >= 0 && s.next > pin {
			break
		}
		ref := s.maxTs
		if ref < 0 {
			ref = s.created.UnixMilli()
		}
		expired := cfg.Retention >= 0 && now.UnixMilli()-ref > cfg.Retention.Milliseconds()
		oversize := cfg.RetentionBytes >= 0 && total-s.alloc >= cfg.RetentionBytes
		if !expired && !oversize {
			break
		}
		total -= s.alloc
		n++
	}
	return n
}

// enforceRetention deletes the sealed segments that time and size
// retention allow, respecting pins.
func (p *Partition) enforceRetention(cfg TopicConfig, now time.Time) error {
	p.cleanMu.Lock()
	defer p.cleanMu.Unlock()
	p.segMu.Lock()
	n := retainable(p.segments, cfg, now, p.retainedBytes(), p.minPin())
	gone := p.detachOldestLocked(n)
	p.segMu.Unlock()
	return p.removeSegments(gone, -1, "retention")
}

// dropOldest deletes the oldest sealed segment even if a pin still needs
// it (on_full: drop_oldest), counting the records lost to the pinned
// reader. It reports whether there was a sealed segment to drop.
func (p *Partition) dropOldest() (bool, error) {
	p.cleanMu.Lock()
	defer p.cleanMu.Unlock()
	p.segMu.Lock()
	if len(p.segments) < 2 {
		p.segMu.Unlock()
		return false, nil
	}
	// Below the log start (DeleteRecords) records are gone and counted.
	pin := p.minPin()
	if pin >= 0 {
		pin = max(pin, p.logStart.Load())
	}
	gone := p.detachOldestLocked(1)
	p.segMu.Unlock()
	return true, p.removeSegments(gone, pin, "on_full: drop_oldest")
}

// detachOldestLocked takes the n oldest segments out of the list and
// raises the log start offset. segMu is held: no reader can be inside them.
func (p *Partition) detachOldestLocked(n int) []*segment {
	if n == 0 {
		return nil
	}
	gone := append([]*segment(nil), p.segments[:n]...)
	p.segments = p.segments[n:]
	if start := p.segments[0].base; start > p.logStart.Load() {
		p.logStart.Store(start)
	}
	return gone
}

// removeSegments deletes detached segments. Records at or after pin (when
// pin >= 0) had not been read by a pinned reader: they are counted on the
// topic and logged, never lost silently.
//
// Retention and DeleteRecords may keep one of them as the partition's
// spare (recycle.go); drop_oldest deletes, as it runs to free space.
func (p *Partition) removeSegments(gone []*segment, pin int64, why string) error {
	var firstErr error
	recycle := why == "retention" || why == "delete records"
	for _, s := range gone {
		var lost int64
		if pin >= 0 && s.next > pin {
			lost = recordsFrom(s, pin)
		}
		if recycle && p.keepSpare(s) {
			p.countLost(s, lost, pin, why+" (file kept for reuse)")
			continue
		}
		size := s.alloc
		if err := s.remove(); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("delete segment %s: %w", s.path, err)
		}
		p.addBytes(-size)
		p.countLost(s, lost, pin, why)
	}
	return firstErr
}

// countLost counts and logs the records of a deleted segment s that a
// pinned reader (at pin) had not read.
func (p *Partition) countLost(s *segment, lost, pin int64, why string) {
	if lost > 0 {
		p.topic.dropped.Add(lost)
		p.lg.Warn("deleted records a pinned reader had not read", "reason", why,
			"segment", s.path, "records", lost, "pin", pin)
	} else {
		p.lg.Debug("segment deleted", "reason", why, "segment", s.path)
	}
}

// recordsFrom counts the records at or after offset in a sealed segment
// by reading its batch headers.
func recordsFrom(s *segment, offset int64) int64 {
	r := batchReader{f: s.f, limit: s.size}
	var n int64
	next := s.base // the offset after the batches read so far
	for pos := int64(0); pos < s.size; {
		h, err := r.header(pos)
		if err != nil {
			// Unreadable: count the offsets after what was read instead
			// of the records (a damaged header's own fields mean nothing).
			return n + max(0, s.next-max(offset, next))
		}
		next = h.LastOffset() + 1
		switch {
		case h.BaseOffset >= offset:
			n += int64(h.NumRecords)
		case h.LastOffset() >= offset && int64(h.NumRecords) == int64(h.LastOffsetDelta)+1:
			n += h.LastOffset() - offset + 1
		case h.LastOffset() >= offset:
			// Compaction left gaps in this batch: count its records.
			n += straddlingRecords(&r, pos, offset, h)
		}
		pos += int64(h.Size())
	}
	return n
}

// straddlingRecords counts the records at or after offset in the batch at
// pos, falling back to the offset span when it cannot be decoded.
func straddlingRecords(r *batchReader, pos, offset int64, h BatchHeader) int64 {
	if _, b, err := r.batch(pos); err == nil {
		if _, recs, err := DecodeRecords(b); err == nil {
			var n int64
			for _, rec := range recs {
				if rec.Offset >= offset {
					n++
				}
			}
			return n
		}
	}
	return min(int64(h.NumRecords), h.LastOffset()-offset+1)
}

// reserve checks that n more bytes may be appended to p, making room by
// retention or by the topic's on_full policy, and reserves them until the
// flusher has written them (release): appends queued behind a flush count
// against the limits too. It returns ErrFull when the append must be
// refused.
func (l *Log) reserve(p *Partition, cfg TopicConfig, n int) error {
	if cfg.RetentionBytes >= 0 && cfg.deletes() {
		// The active segment may legitimately add up to a segment on top
		// of retention_bytes; beyond that only pins hold data back.
		limit := cfg.RetentionBytes + cfg.SegmentBytes
		if p.retainedBytes()+p.reserved.Load()+int64(n) > limit {
			if err := p.makeRoom(cfg, limit-p.reserved.Load()-int64(n)); err != nil {
				return err
			}
		}
	}
	if l.budget > 0 {
		if l.used.Load()+l.reserved.Add(int64(n)) > l.budget {
			l.reserved.Add(-int64(n))
			if err := l.makeRoom(cfg, l.reserved.Load()+int64(n)); err != nil {
				return err
			}
			l.reserved.Add(int64(n))
		}
	} else {
		l.reserved.Add(int64(n))
	}
	p.reserved.Add(int64(n))
	return nil
}

// release gives back reserved bytes once they are written (and counted in
// used) or refused.
func (l *Log) release(p *Partition, n int) {
	l.reserved.Add(-int64(n))
	p.reserved.Add(-int64(n))
}

// preallocAllowance is how far the active segments may be zero-filled
// ahead of their data without passing the disk budget.
func (l *Log) preallocAllowance() int64 {
	if l.budget <= 0 {
		return math.MaxInt64
	}
	return max(0, l.budget-l.used.Load()-l.reserved.Load())
}

// testHookMakeRoom, when set by a test, runs at each pass of makeRoom's
// loop, before it looks at the segments.
var testHookMakeRoom func()

// makeRoom brings a partition down to target bytes.
func (p *Partition) makeRoom(cfg TopicConfig, target int64) error {
	if err := p.enforceRetention(cfg, p.l.now()); err != nil {
		return err
	}
	for p.retainedBytes() > target {
		// retention_bytes is Kafka's soft limit: retention keeps a sealed
		// segment while deleting it would go below the limit, so the
		// partition can hold more than target with no reader involved.
		// Only a pin holding a segment retention would delete refuses.
		if testHookMakeRoom != nil {
			testHookMakeRoom()
		}
		now := p.l.now()
		p.segMu.Lock()
		total := p.retainedBytes()
		held := retainable(p.segments, cfg, now, total, -1) > 0
		free := retainable(p.segments, cfg, now, total, p.minPin()) > 0
		p.segMu.Unlock()
		if !held {
			return nil
		}
		if free {
			// A roll sealed a segment since the pass above: it is
			// retention's to delete, no pin holds it.
			if err := p.enforceRetention(cfg, now); err != nil {
				return err
			}
			continue
		}
		if cfg.OnFull == OnFullReject {
			return fmt.Errorf("%w: topic %q partition %d holds %d bytes, over retention_bytes %d, and a reader has not read it yet",
				ErrFull, p.topic.name, p.id, total, cfg.RetentionBytes)
		}
		dropped, err := p.dropOldest()
		if err != nil {
			return err
		}
		if !dropped {
			return fmt.Errorf("%w: topic %q partition %d is over its limit with nothing sealed to drop", ErrFull, p.topic.name, p.id)
		}
	}
	return nil
}

// makeRoom frees space under the disk budget for n bytes: first by time
// and size retention (at most once a second), then, for an on_full:
// drop_oldest topic, by dropping the oldest sealed segments of drop_oldest
// topics.
func (l *Log) makeRoom(cfg TopicConfig, n int64) error {
	l.roomMu.Lock()
	defer l.roomMu.Unlock()
	if l.used.Load()+n > l.budget {
		l.dropSpares() // they hold no records
	}
	if l.used.Load()+n > l.budget {
		l.dropTails() // nor do recycled segments past their data
	}
	now := l.now()
	if l.used.Load()+n > l.budget && now.Sub(l.lastRetained) >= time.Second {
		l.lastRetained = now
		l.retainAll(now)
	}
	for l.used.Load()+n > l.budget {
		if cfg.OnFull == OnFullReject {
			return fmt.Errorf("%w: disk budget of %d bytes reached (%d used)", ErrFull, l.budget, l.used.Load())
		}
		victim := l.oldestDroppable()
		if victim == nil {
			return fmt.Errorf("%w: disk budget of %d bytes reached and no drop_oldest topic has a sealed segment to drop", ErrFull, l.budget)
		}
		if _, err := victim.dropOldest(); err != nil {
			return err
		}
	}
	return nil
}

// oldestDroppable returns the partition of a drop_oldest topic whose
// oldest sealed segment is the oldest of all.
func (l *Log) oldestDroppable() *Partition {
	var best *Partition
	var bestTs int64
	for _, t := range l.allTopics() {
		if t.Config().OnFull != OnFullDropOldest {
			continue
		}
		for _, p := range t.Partitions() {
			p.segMu.RLock()
			if len(p.segments) > 1 {
				s := p.segments[0]
				ts := s.maxTs
				if ts < 0 {
					ts = s.created.UnixMilli()
				}
				if best == nil || ts < bestTs {
					best, bestTs = p, ts
				}
			}
			p.segMu.RUnlock()
		}
	}
	return best
}

// retainAll applies time and size retention to every partition.
func (l *Log) retainAll(now time.Time) error {
	var errs []error
	for _, t := range l.allTopics() {
		cfg := t.Config()
		if !cfg.deletes() {
			continue
		}
		for _, p := range t.Partitions() {
			if err := p.enforceRetention(cfg, now); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Maintain runs one pass of housekeeping: time and size retention,
// compaction, the disk budget, and recovery of partitions stopped by a
// sticky I/O error. Errors are returned joined; the pass goes on past them.
func (l *Log) Maintain() error {
	now := l.now()
	var errs []error
	if err := l.retainAll(now); err != nil {
		errs = append(errs, err)
	}
	for _, t := range l.allTopics() {
		cfg := t.Config()
		for _, p := range t.Partitions() {
			if cfg.Compacts() {
				if err := p.compact(cfg, now); err != nil {
					errs = append(errs, err)
				}
			}
			if p.Err() != nil {
				if err := p.Recover(); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// Run calls Maintain every interval until ctx ends, logging its errors.
func (l *Log) Run(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := l.Maintain(); err != nil {
				l.lg.Error("log maintenance", "err", err)
			}
		}
	}
}
