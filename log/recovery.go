package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"
)

// tailReport says what recovery found at the end of the active segment.
type tailReport struct {
	scannedFrom int64 // position the scan started at
	size        int64 // bytes of whole batches kept
	dropped     int64 // bytes after them that were not zeros, discarded
	reason      error // why the scan stopped, when it stopped on damage
	restored    int   // batches whose damaged base offset was put back
}

// openActiveSegment opens the last segment of a partition and recovers its
// tail: it trusts the indexes up to their last entry that still points at a
// whole batch with the expected offset, scans from there checking every
// batch's length, CRC and offset continuity, and truncates the file after
// the last whole batch. That tail may hold a write torn by a crash, which
// was never acknowledged. A missing or invalid time index costs a scan of
// the whole segment, so that time retention keeps a true max timestamp.
func openActiveSegment(fsys FS, path string, base int64, cfg TopicConfig, now time.Time) (*segment, tailReport, error) {
	s := &segment{
		fs: fsys, path: path, base: base, next: base, maxTs: -1, created: now,
		prealloc: cfg.Preallocate, segmentSize: cfg.SegmentBytes,
		interval: int64(cfg.IndexIntervalBytes), loaded: true,
	}
	var rep tailReport
	var err error
	if s.f, err = fsys.OpenFile(path, os.O_RDWR, 0); err != nil {
		return nil, rep, err
	}
	fi, err := s.f.Stat()
	if err != nil {
		s.close()
		return nil, rep, err
	}
	fileSize := fi.Size()

	ib, _ := readWhole(fsys, s.indexPath())
	tb, _ := readWhole(fsys, s.timeIndexPath())
	idx, _ := decodeOffsetIndex(ib, fileSize)
	tidx, tok := decodeTimeIndex(tb, 1<<32-1)
	if !tok || (len(tidx) == 0 && len(idx) > 0) {
		// An invalid time index, or none beside offset entries (neither is
		// synced while active: a power loss can leave one without the
		// other): scan it all, or the max timestamp would only know the
		// tail.
		idx, tidx = nil, nil
	}

	r := batchReader{f: s.f, limit: fileSize}
	idx, start, next := lastValidEntry(&r, idx, base)
	// The two indexes are written one after the other and never synced
	// while active: after a power loss the time index may end earlier than
	// the offset index. The scan then starts at the last time entry, or a
	// greatest timestamp reached between it and the offset index's end
	// would be lost (and time retention would take the segment for older
	// than it is).
	if len(tidx) > 0 && start > 0 && tidx[len(tidx)-1].rel < uint32(next-base) {
		last := tidx[len(tidx)-1].rel
		for len(idx) > 0 && idx[len(idx)-1].rel > last {
			idx = idx[:len(idx)-1]
		}
		idx, start, next = lastValidEntry(&r, idx, base)
	}
	// Time entries at or past the scan start are rebuilt by the scan.
	startRel := uint32(next - base)
	for len(tidx) > 0 && tidx[len(tidx)-1].rel >= startRel && start > 0 {
		tidx = tidx[:len(tidx)-1]
	}
	if start == 0 {
		tidx = nil
	}
	s.idx, s.tidx = idx, tidx
	if len(tidx) > 0 {
		s.maxTs, s.maxTsRel = tidx[len(tidx)-1].ts, tidx[len(tidx)-1].rel
	}

	rep.scannedFrom = start
	pos := start
	var metas []batchMeta
	recycled := false
	for pos < fileSize {
		h, _, err := r.batch(pos)
		if errors.Is(err, errEndOfData) {
			break
		}
		switch {
		case err != nil:
		case damagedBase(&r, pos, fileSize, next, h):
			// Only its base offset, which the CRC does not cover, is
			// damaged: the batch after it says where it starts. Put it
			// back, as repair does, rather than cut the good data after.
			if err = restoreBase(s.f, pos, next); err == nil {
				rep.restored++
				h.BaseOffset = next
			}
		case pos == 0 && h.LastOffset() < base:
			// A recycled file's old content before the first write: the
			// end of the data, as zeros are (recycle.go). Past the first
			// batch an end mark says where the data ends; a batch below
			// the base there is damage (its base offset, which the CRC
			// does not cover) and is reported as such.
			recycled = true
		case h.BaseOffset < next:
			err = errors.New("batch offset goes back past the previous batch")
		case h.BaseOffset > next:
			// The flusher writes offsets in sequence; only repair leaves
			// a gap, where it cut a damaged batch out, and batches follow
			// it in sequence. A jump to a batch nothing continues is a
			// damaged or stale batch: taking it would make every offset
			// up to it unreadable.
			if after, ok := baseAfter(&r, pos, fileSize, h); !ok || after != h.LastOffset()+1 {
				err = fmt.Errorf("batch offset %d jumps ahead of %d", h.BaseOffset, next)
			}
		}
		if recycled {
			break
		}
		if err != nil {
			rep.reason = err
			if !zeroFrom(&r, pos, fileSize) {
				rep.dropped = fileSize - pos
			}
			break
		}
		metas = append(metas, batchMeta{base: h.BaseOffset, last: h.LastOffset(), maxTs: h.MaxTimestamp, size: h.Size(), records: h.NumRecords})
		next = h.LastOffset() + 1
		pos += int64(h.Size())
	}
	rep.size = pos

	// Drop the torn tail and the preallocated zeros: the file ends at the
	// data again, and preallocation starts afresh from there.
	if fileSize != pos {
		if err := s.f.Truncate(pos); err != nil {
			s.close()
			return nil, rep, err
		}
		if err := s.f.Sync(); err != nil {
			s.close()
			return nil, rep, err
		}
	}
	s.size, s.alloc, s.next = start, pos, next

	// Rewrite the indexes from what was kept, then replay the scanned
	// batches through the normal indexing path.
	if s.ixf, err = fsys.OpenFile(s.indexPath(), os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o644); err != nil {
		s.close()
		return nil, rep, err
	}
	if s.tixf, err = fsys.OpenFile(s.timeIndexPath(), os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o644); err != nil {
		s.close()
		return nil, rep, err
	}
	s.index(metas, start) // the scan started at an indexed batch, or at 0
	s.flushIndex()
	s.size = pos
	s.created = s.rollingSince(fi.ModTime(), now)
	return s, rep, nil
}

// rollingSince returns when a reopened active segment started, for rolling
// by age. The file's time is that of the last write, so, like Kafka, it
// uses the first batch's timestamp when there is a batch and the timestamp
// is not in the future; else the file time, at most now.
func (s *segment) rollingSince(mtime, now time.Time) time.Time {
	if s.size >= batchHeaderSize {
		var b [batchHeaderSize]byte
		if _, err := s.f.ReadAt(b[:], 0); err == nil {
			if ts := parseBatchHeader(b[:]).MaxTimestamp; ts > 0 && ts <= now.UnixMilli() {
				return time.UnixMilli(ts)
			}
		}
	}
	if s.size == 0 || mtime.After(now) {
		return now
	}
	return mtime
}

// zeroFrom reports whether the file holds only zeros from pos to end.
func zeroFrom(r *batchReader, pos, end int64) bool {
	for pos < end {
		n := int(min(int64(readChunk), end-pos))
		b, err := r.at(pos, n)
		if err != nil {
			return false
		}
		for _, c := range b {
			if c != 0 {
				return false
			}
		}
		pos += int64(n)
	}
	return true
}

// lastValidEntry drops the offset index entries at the end that do not
// point at the batch they name, and returns the rest with the position and
// offset of the last one (the start of the segment when none is left).
func lastValidEntry(r *batchReader, idx []offsetEntry, base int64) ([]offsetEntry, int64, int64) {
	for len(idx) > 0 {
		e := idx[len(idx)-1]
		if h, _, err := r.batch(int64(e.pos)); err == nil && h.BaseOffset == base+int64(e.rel) {
			return idx, int64(e.pos), h.BaseOffset
		}
		idx = idx[:len(idx)-1]
	}
	return idx, 0, base
}

// restoreBase writes base as the base offset of the batch at pos, durably.
func restoreBase(f File, pos, base int64) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(base))
	if _, err := f.WriteAt(b[:], pos+batchBaseOffsetPos); err != nil {
		return err
	}
	return f.Sync()
}
