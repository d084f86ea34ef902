package log

// Reads see only acknowledged data: everything below the published
// durable state.

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// durableState is what readers may see: everything below hw, which ends at
// pos in seg. It is replaced, never mutated.
type durableState struct {
	hw  int64
	seg *segment
	pos int64
}

// publish makes data up to st visible to readers and wakes tailing
// readers. The high watermark only moves forward, unless reset (a reload
// from disk) says otherwise: a roll publishes the start of the new segment
// while cycles before it may still be completing.
func (p *Partition) publish(st *durableState, reset bool) {
	p.notifyMu.Lock()
	defer p.notifyMu.Unlock()
	if cur := p.durable.Load(); !reset && cur != nil && st.hw < cur.hw {
		return
	}
	p.durable.Store(st)
	if p.notifyDone {
		return // closed for good: readers already woke
	}
	close(p.notify)
	p.notify = make(chan struct{})
}

// Notify returns a channel closed when new data becomes readable. Take it
// before the Read that found nothing, then wait on it. Once the partition
// is closed (its topic deleted, or the log closed) the channel it returns
// is closed already, and Read returns ErrClosed.
func (p *Partition) Notify() <-chan struct{} {
	p.notifyMu.Lock()
	defer p.notifyMu.Unlock()
	return p.notify
}

// Read returns whole batches starting with the one that holds offset, at
// most maxBytes of them but always at least one, from a single segment. At
// the high watermark it returns nothing. Batches below offset in the first
// batch are included, as Kafka does; callers skip them.
func (p *Partition) Read(offset int64, maxBytes int) ([]byte, error) {
	p.segMu.RLock()
	defer p.segMu.RUnlock()
	if p.gone.Load() {
		return nil, fmt.Errorf("%w: topic %q partition %d is closed (deleted, or the log stopped)", ErrClosed, p.topic.name, p.id)
	}
	st := p.durable.Load()
	if offset < p.LogStartOffset() || offset > st.hw {
		return nil, fmt.Errorf("%w: %d not in [%d, %d]", ErrOffsetOutOfRange, offset, p.LogStartOffset(), st.hw)
	}
	if offset == st.hw {
		return nil, nil
	}
	segs := p.segments
	i := sort.Search(len(segs), func(i int) bool { return segs[i].base > offset }) - 1
	for i = max(i, 0); i < len(segs); i++ {
		s := segs[i]
		if s.base >= st.hw {
			break
		}
		limit := st.pos
		if s != st.seg {
			limit = s.size // sealed before st was published
		}
		pos, err := s.lookup(offset, limit)
		if err != nil {
			return nil, p.corruption(err)
		}
		if pos < limit {
			data, err := s.read(pos, limit, maxBytes)
			if err != nil {
				return nil, p.corruption(err)
			}
			if len(data) > 0 {
				return data, nil
			}
		}
	}
	return nil, nil
}

// corruption fills in the topic and partition of a segment's error.
func (p *Partition) corruption(err error) error {
	var ce *CorruptionError
	if errors.As(err, &ce) {
		ce.Topic, ce.Partition = p.topic.name, p.id
	}
	return err
}

// OffsetForTime returns the first offset whose record timestamp is at or
// after ts (milliseconds), and false when every record is older.
func (p *Partition) OffsetForTime(ts int64) (int64, bool, error) {
	off, _, ok, err := p.RecordForTime(ts)
	return off, ok, err
}

// RecordForTime is OffsetForTime that also returns the found record's own
// timestamp (Kafka's ListOffsets answers with both).
func (p *Partition) RecordForTime(ts int64) (offset, timestamp int64, found bool, err error) {
	p.segMu.RLock()
	defer p.segMu.RUnlock()
	st := p.durable.Load()
	for _, s := range p.segments {
		if s.base >= st.hw {
			break
		}
		limit := st.pos
		if s != st.seg {
			if s.maxTs < ts {
				continue
			}
			limit = s.size
		}
		pos, err := s.lookupTime(ts, limit)
		if err != nil {
			return 0, 0, false, p.corruption(err)
		}
		for pos < limit {
			data, err := s.read(pos, limit, 1)
			if err != nil {
				return 0, 0, false, p.corruption(err)
			}
			_, recs, err := DecodeRecords(data)
			if err != nil {
				return 0, 0, false, p.corruption(&CorruptionError{Segment: s.path, Position: pos, Err: err})
			}
			for _, r := range recs {
				if r.Timestamp >= ts && r.Offset >= p.LogStartOffset() {
					return r.Offset, r.Timestamp, true, nil
				}
			}
			pos += int64(len(data))
		}
	}
	return 0, 0, false, nil
}

// MaxTimestamp finds the first record with the greatest timestamp, as
// Kafka's ListOffsets with timestamp -3 does (KIP-734); found is false when
// the partition holds no record. Sealed segments know their greatest
// timestamp; the active one's durable part is scanned by batch headers.
func (p *Partition) MaxTimestamp() (offset, timestamp int64, found bool, err error) {
	p.segMu.RLock()
	defer p.segMu.RUnlock()
	st := p.durable.Load()
	start := p.LogStartOffset()
	type span struct {
		s     *segment
		limit int64
		maxTs int64
	}
	var spans []span
	best := int64(math.MinInt64)
	for _, s := range p.segments {
		if s.base >= st.hw {
			break
		}
		// The active segment's own fields are the flusher's: only the
		// durable state says how far it may be read.
		var sp span
		if s != st.seg {
			sp = span{s: s, limit: s.size, maxTs: s.maxTs}
		} else {
			sp = span{s: s, limit: st.pos, maxTs: math.MinInt64}
			r := batchReader{f: s.f, limit: st.pos}
			for pos := int64(0); pos < st.pos; {
				h, err := r.header(pos)
				if err != nil {
					return 0, 0, false, p.corruption(&CorruptionError{Segment: s.path, Position: pos, Err: err})
				}
				sp.maxTs = max(sp.maxTs, h.MaxTimestamp)
				pos += int64(h.Size())
			}
		}
		spans = append(spans, sp)
		best = max(best, sp.maxTs)
	}
	// The first segment holding the greatest timestamp, and in it the
	// first record with it; unless DeleteRecords removed those records
	// (rare), when every record from the log start is looked at.
	for _, sp := range spans {
		if sp.maxTs == best {
			off, ts, ok, err := p.maxRecordIn(sp.s, sp.limit, start, best-1, true)
			if err != nil || (ok && ts == best) {
				return off, ts, ok, err
			}
			break
		}
	}
	for _, sp := range spans {
		if found && sp.maxTs <= timestamp {
			continue
		}
		off, ts, ok, err := p.maxRecordIn(sp.s, sp.limit, start, timestamp, !found)
		if err != nil {
			return 0, 0, false, err
		}
		if ok {
			offset, timestamp, found = off, ts, true
		}
	}
	return offset, timestamp, found, nil
}

// maxRecordIn returns the first record of s (below limit, at or after
// offset from) with the greatest timestamp, if above above; with any,
// above is ignored and any record counts. ok is false when none does.
func (p *Partition) maxRecordIn(s *segment, limit, from, above int64, any bool) (offset, timestamp int64, ok bool, err error) {
	r := batchReader{f: s.f, limit: limit}
	for pos := int64(0); pos < limit; {
		h, err := r.header(pos)
		if err != nil {
			return 0, 0, false, p.corruption(&CorruptionError{Segment: s.path, Position: pos, Err: err})
		}
		if h.LastOffset() >= from && !h.Control() && (any || h.MaxTimestamp > above) {
			data, err := s.read(pos, limit, h.Size())
			if err != nil {
				return 0, 0, false, p.corruption(err)
			}
			_, recs, err := DecodeRecords(data)
			if err != nil {
				return 0, 0, false, p.corruption(&CorruptionError{Segment: s.path, Position: pos, Err: err})
			}
			for _, rec := range recs {
				if rec.Offset >= from && (any || rec.Timestamp > above) {
					offset, timestamp, ok, any, above = rec.Offset, rec.Timestamp, true, false, rec.Timestamp
				}
			}
		}
		pos += int64(h.Size())
	}
	return offset, timestamp, ok, nil
}
