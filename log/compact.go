package log

import (
	"errors"
	"fmt"
	"math"
	"os"
	"time"
)

// compact keeps the latest record of each key in the sealed segments of a
// cleanup_policy: compact topic. Offsets are kept (gaps appear where
// records went), records without a key are kept, and tombstones (a null
// value) are kept until delete_retention has passed since their batch's
// timestamp, so consumers that are behind still see the delete. The active
// segment is never touched. Each rewritten segment replaces the original
// atomically.
func (p *Partition) compact(cfg TopicConfig, now time.Time) error {
	p.cleanMu.Lock()
	defer p.cleanMu.Unlock()
	p.segMu.RLock()
	sealed := append([]*segment(nil), p.segments[:len(p.segments)-1]...)
	p.segMu.RUnlock()
	if len(sealed) == 0 {
		return nil
	}
	last := sealed[len(sealed)-1].base
	// The delay is the current one: delete_retention may have been
	// altered since the last pass.
	if p.compactedAny && last == p.compactedThrough && (p.oldestTombstone.IsZero() || now.Before(p.oldestTombstone.Add(cfg.DeleteRetention))) {
		return nil // nothing new sealed, no tombstone due
	}

	// Pending transactions are not compacted (the LSO bounds the pass),
	// and aborted ones never supersede anything: they are dropped.
	lso := p.LastStableOffset()
	aborted := p.AbortedTxns(0, math.MaxInt64)
	latest := map[string]int64{}
	for _, s := range sealed {
		err := eachBatch(s, func(h BatchHeader, batch []byte) error {
			if h.Control() || h.BaseOffset >= lso || isAborted(aborted, h) {
				return nil
			}
			_, recs, err := DecodeRecords(batch)
			if err != nil {
				return err
			}
			for _, r := range recs {
				if r.Key != nil {
					latest[string(r.Key)] = r.Offset
				}
			}
			return nil
		})
		if err != nil {
			return p.corruption(err)
		}
	}

	horizon := now.Add(-cfg.DeleteRetention).UnixMilli()
	next := time.Time{}
	for _, s := range sealed {
		due, err := p.compactSegment(s, latest, horizon, lso, aborted)
		if err != nil {
			return err
		}
		if !due.IsZero() && (next.IsZero() || due.Before(next)) {
			next = due
		}
	}
	p.compactedAny, p.compactedThrough, p.oldestTombstone = true, last, next
	return nil
}

// compactSegment rewrites one sealed segment without the records that a
// later record of the same key supersedes, nor expired tombstones. It
// returns the timestamp of the oldest tombstone it kept (zero if none).
func (p *Partition) compactSegment(s *segment, latest map[string]int64, horizon, lso int64, aborted []AbortedTxn) (time.Time, error) {
	var out []byte
	changed := false
	var oldestTomb int64 = -1
	err := eachBatch(s, func(h BatchHeader, batch []byte) error {
		if isAborted(aborted, h) {
			changed = true
			return nil
		}
		if h.Control() || h.BaseOffset >= lso {
			// Markers stay: a consumer reading from before them needs them
			// to end its producer's transaction.
			out = append(out, batch...)
			return nil
		}
		_, recs, err := DecodeRecords(batch)
		if err != nil {
			return err
		}
		keep := recs[:0:0]
		for _, r := range recs {
			if r.Key != nil && latest[string(r.Key)] != r.Offset {
				continue
			}
			if r.Key != nil && r.Value == nil {
				if h.MaxTimestamp < horizon {
					continue
				}
				if oldestTomb < 0 || h.MaxTimestamp < oldestTomb {
					oldestTomb = h.MaxTimestamp
				}
			}
			keep = append(keep, r)
		}
		switch {
		case len(keep) == len(recs):
			out = append(out, batch...)
		case len(keep) > 0:
			changed = true
			out, err = appendBatch(out, h, keep, true)
		default:
			changed = true
		}
		return err
	})
	var due time.Time
	if oldestTomb >= 0 {
		due = time.UnixMilli(oldestTomb)
	}
	if err != nil || !changed {
		return due, p.corruption(err)
	}
	if len(out) == 0 {
		return due, p.removeEmptySegment(s)
	}
	return due, p.replaceSegment(s, out)
}

// removeEmptySegment deletes a sealed segment that compaction emptied,
// rather than keeping an empty file whose age nothing records. The
// offsets it covered are gaps, as compaction leaves inside segments; when
// it was the first segment, the log start moves past it.
func (p *Partition) removeEmptySegment(s *segment) error {
	p.segMu.Lock()
	found := false
	for i, seg := range p.segments {
		if seg == s && i < len(p.segments)-1 {
			p.segments = append(p.segments[:i:i], p.segments[i+1:]...)
			found = true
			break
		}
	}
	if found {
		if start := p.segments[0].base; start > p.logStart.Load() {
			p.logStart.Store(start)
		}
	}
	p.segMu.Unlock()
	if !found {
		return fmt.Errorf("compact %s: segment vanished during compaction", s.path)
	}
	size := s.alloc
	if err := s.remove(); err != nil {
		return fmt.Errorf("compact %s: %w", s.path, err)
	}
	p.addBytes(-size)
	return p.l.fs.SyncDir(p.dir)
}

// replaceSegment swaps a sealed segment's data for data, crash-safely: the
// new file is written and synced beside the old one, the old indexes are
// removed (so that a crash never pairs them with the new data), the new
// file is renamed over the old, and the directory is synced.
func (p *Partition) replaceSegment(old *segment, data []byte) error {
	fsys := p.l.fs
	tmp := old.path + cleanedSuffix
	f, err := fsys.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(data, 0)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fsys.Remove(tmp)
		return fmt.Errorf("compact %s: %w", old.path, err)
	}
	for _, ix := range []string{old.indexPath(), old.timeIndexPath()} {
		if err := fsys.Remove(ix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("compact %s: %w", old.path, err)
		}
	}
	if err := fsys.Rename(tmp, old.path); err != nil {
		return fmt.Errorf("compact %s: %w", old.path, err)
	}
	if err := fsys.SyncDir(p.dir); err != nil {
		return fmt.Errorf("compact %s: %w", old.path, err)
	}
	fresh, err := openSealedSegment(fsys, old.path, old.base, old.next)
	if err != nil {
		return fmt.Errorf("compact %s: reopen: %w", old.path, err)
	}
	fresh.created = old.created
	if fresh.maxTs < 0 {
		fresh.maxTs = old.maxTs
	}

	p.segMu.Lock()
	swapped := false
	for i, s := range p.segments {
		if s == old {
			p.segments[i], swapped = fresh, true
			break
		}
	}
	p.segMu.Unlock()
	if !swapped {
		// cleanMu keeps retention out, so this cannot happen; refuse to
		// leave two owners of one file if it ever does.
		fresh.close()
		return fmt.Errorf("compact %s: segment vanished during compaction", old.path)
	}
	old.close()
	p.addBytes(fresh.alloc - old.alloc)
	return nil
}

// eachBatch calls fn for every batch of a sealed segment, checking CRCs.
func eachBatch(s *segment, fn func(BatchHeader, []byte) error) error {
	r := batchReader{f: s.f, limit: s.size}
	for pos := int64(0); pos < s.size; {
		h, b, err := r.batch(pos)
		if errors.Is(err, errEndOfData) {
			return nil
		}
		if err == nil {
			err = fn(h, b)
		}
		if err != nil {
			return &CorruptionError{Segment: s.path, Position: pos, Err: err}
		}
		pos += int64(h.Size())
	}
	return nil
}
