package log

// Segment recycling: a sealed segment that retention deletes is kept, one
// per partition, as a spare file that becomes the next segment when the
// active one rolls. Its blocks are already allocated and written, so
// appends into it overwrite in place: no zero-fill ahead of small writes
// (which writes every byte twice, the wear an SD card minds) and no extent
// conversion committed with each fsync of large ones. PostgreSQL recycles
// WAL segments for the same reason.
//
// The old content past the data end is not zeros but the deleted
// segment's batches, whole and with valid CRCs. Every write into it is
// followed by an end mark (markEnd), which Recovery, Verify, Dump and
// Repair take for the end of the data, as they take zeros. Before the
// first write, what tells the old batches from data is their offsets: a
// spare is only reused as a segment whose base offset is at or past the
// spare's old next offset, so every old batch ends below the segment's
// base (recycledAt), where no batch of the segment can be.
//
// The spare stays counted in the disk budget (Log.used) but not in the
// partition's bytes (retention_bytes): it holds no records. When the disk
// budget runs short, spares are deleted before any data is (dropSpares).

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

const spareSuffix = ".spare"

// minSpareBytes: a smaller segment is deleted rather than kept, as it
// would save less than a megabyte of zero-fill. (A variable for the crash
// test, whose segments are small.)
var minSpareBytes int64 = preallocChunk

// spareFile is a partition's spare: the file of a deleted segment whose
// batches all lie below next.
type spareFile struct {
	path string
	next int64
	size int64
}

func spareName(next int64) string { return segmentName(next) + spareSuffix }

// parseSpareName returns the old next offset of a "<20 digits>.spare" name.
func parseSpareName(name string) (int64, bool) {
	stem, ok := strings.CutSuffix(name, spareSuffix)
	if !ok {
		return 0, false
	}
	return parseSegmentName(stem + logSuffix)
}

// The end mark: written right after the data while old content follows
// it, so that where the data ends never depends on where the old batches
// were cut. It reads as a zero batch length and magic (errEndOfData), with
// this base offset, which zeros never have.
const (
	endMarkBase = int64(0x53504f4f4c454e44) // "SPOOLEND"
	endMarkSize = batchMagicPos + 1
)

var endMark = func() []byte {
	b := make([]byte, endMarkSize)
	binary.BigEndian.PutUint64(b[batchBaseOffsetPos:], uint64(endMarkBase))
	return b
}()

// endMarkAt reports whether the end mark is at pos.
func endMarkAt(r *batchReader, pos int64) bool {
	b, err := r.at(pos, endMarkSize)
	return err == nil && bytes.Equal(b, endMark)
}

// restUnused reports whether nothing from pos to size is data: zeros, or
// the end mark with a recycled file's old content after it.
func restUnused(r *batchReader, pos, size int64) bool {
	return zeroFrom(r, pos, size) || endMarkAt(r, pos)
}

// markEnd keeps the end of the data recognisable after a write that ended
// at end, inside a recycled file's old content: it writes the end mark
// there, or zeros when less than a batch header of old content is left.
func (s *segment) markEnd(end int64) error {
	if end >= s.stale {
		s.stale = 0
		return nil
	}
	if s.stale-end < batchHeaderSize {
		if _, err := s.f.WriteAt(zeroChunk[:s.stale-end], end); err != nil {
			return err
		}
		s.stale = 0
		return nil
	}
	_, err := s.f.WriteAt(endMark, end)
	return err
}

// recycledAt reports whether a whole, valid batch at pos lies wholly below
// base, the offset the segment starts at: it is a recycled file's old
// content, past the end of the data.
func recycledAt(r *batchReader, pos, base int64) bool {
	h, _, err := r.batch(pos)
	return err == nil && h.LastOffset() < base
}

// keepSpare makes the detached, sealed segment s the partition's spare
// instead of deleting it, when that is worth it and the disk budget has
// room for it to stay. It reports whether it did: then s's files are
// closed and its .log renamed; else the caller deletes s as before.
func (p *Partition) keepSpare(s *segment) bool {
	cfg := p.topic.Config()
	if !cfg.Preallocate || s.alloc < minSpareBytes || s.alloc > cfg.SegmentBytes {
		return false
	}
	if l := p.l; l.budget > 0 && l.used.Load()+l.reserved.Load()+cfg.SegmentBytes > l.budget {
		return false // space is short: free it
	}
	if at := p.l.noSpaceAt.Load(); at != 0 && p.l.now().Sub(time.Unix(0, at)) < noSpaceMemory {
		return false // the disk was full a moment ago: free it
	}
	p.spareMu.Lock()
	defer p.spareMu.Unlock()
	if p.spare != nil || p.gone.Load() {
		return false
	}
	s.close()
	path := filepath.Join(p.dir, spareName(s.next))
	if err := p.l.fs.Rename(s.path, path); err != nil {
		p.lg.Warn("keeping a deleted segment for reuse failed; deleting it", "segment", s.path, "err", err)
		return false
	}
	for _, ix := range []string{s.indexPath(), s.timeIndexPath()} {
		if err := p.l.fs.Remove(ix); err != nil && !errors.Is(err, os.ErrNotExist) {
			p.lg.Warn("deleting the index of a recycled segment failed", "path", ix, "err", err)
		}
	}
	p.spare = &spareFile{path: path, next: s.next, size: s.alloc}
	p.bytes.Add(-s.alloc) // still on disk: Log.used keeps it
	return true
}

// newSegment starts the segment at base for a roll: in the spare's file
// when there is a spare that may become it (its batches all lie below
// base), else in a new file. A spare that never can is deleted.
func (p *Partition) newSegment(base int64, cfg TopicConfig, now time.Time) (*segment, error) {
	p.spareMu.Lock()
	sp := p.spare
	p.spare = nil
	if sp != nil && (sp.next > base || !cfg.Preallocate) {
		p.removeSpareLocked(sp)
		sp = nil
	}
	p.spareMu.Unlock()
	if sp == nil {
		return createSegment(p.l.fs, p.dir, base, cfg, now)
	}
	path := filepath.Join(p.dir, segmentName(base)+logSuffix)
	if err := p.l.fs.Rename(sp.path, path); err != nil {
		p.lg.Warn("reusing a spare segment file failed; deleting it", "path", sp.path, "err", err)
		p.spareMu.Lock()
		p.removeSpareLocked(sp)
		p.spareMu.Unlock()
		return createSegment(p.l.fs, p.dir, base, cfg, now)
	}
	s, err := newActiveSegment(p.l.fs, p.dir, base, cfg, now, true)
	if err != nil {
		// Back to being the spare, still counted; should that fail, the
		// file is emptied, so that what is counted matches the disk.
		p.spareMu.Lock()
		if rerr := p.l.fs.Rename(path, sp.path); rerr == nil && p.spare == nil {
			p.spare = sp
		} else if rerr == nil {
			p.removeSpareLocked(sp)
		} else if f, oerr := p.l.fs.OpenFile(path, os.O_RDWR, 0); oerr == nil {
			f.Truncate(0)
			f.Close()
			p.l.addUsed(-sp.size)
		} else {
			p.l.addUsed(-sp.size) // gone, or a reopen counts it
		}
		p.spareMu.Unlock()
		return nil, err
	}
	p.l.addUsed(s.alloc - sp.size) // counted already, unless truncated
	p.bytes.Add(s.alloc)
	p.l.stats.recycled.Add(1)
	return s, nil
}

// removeSpareLocked deletes a spare that is no longer p.spare.
func (p *Partition) removeSpareLocked(sp *spareFile) {
	if err := p.l.fs.Remove(sp.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		p.lg.Warn("deleting a spare segment file failed", "path", sp.path, "err", err)
		return
	}
	p.l.addUsed(-sp.size)
}

// dropSpare deletes the partition's spare, if any, and returns its size.
func (p *Partition) dropSpare() int64 {
	p.spareMu.Lock()
	defer p.spareMu.Unlock()
	sp := p.spare
	if sp == nil {
		return 0
	}
	p.spare = nil
	p.removeSpareLocked(sp)
	return sp.size
}

// spareBytes is the size of the partition's spare, 0 when it has none.
func (p *Partition) spareBytes() int64 {
	p.spareMu.Lock()
	defer p.spareMu.Unlock()
	if p.spare == nil {
		return 0
	}
	return p.spare.size
}

// loadSpares adopts the spare found among the partition directory's
// names at open (or Recover), the one with the highest old next offset,
// and deletes any other. The disk budget counts the one kept. It holds
// spareMu throughout: the disk budget may delete the spare meanwhile
// (dropSpare), and a spare listed but gone since is no spare.
func (p *Partition) loadSpares(names []string) error {
	p.spareMu.Lock()
	defer p.spareMu.Unlock()
	var found []*spareFile
	for _, name := range names {
		next, ok := parseSpareName(name)
		if !ok {
			continue
		}
		path := filepath.Join(p.dir, name)
		fi, err := p.l.fs.Stat(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		found = append(found, &spareFile{path: path, next: next, size: fi.Size()})
	}
	var best *spareFile
	for _, sp := range found {
		if best == nil || sp.next > best.next {
			best = sp
		}
	}
	for _, sp := range found {
		if sp != best {
			if err := p.l.fs.Remove(sp.path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("delete spare segment file: %w", err)
			}
		}
	}
	var was int64
	if p.spare != nil {
		was = p.spare.size
	}
	p.spare = best
	var now int64
	if best != nil {
		now = best.size
	}
	p.l.addUsed(now - was)
	return nil
}

// noSpaceMemory is how long after a write found the disk full retention
// deletes segments rather than keep spares.
const noSpaceMemory = 10 * time.Minute

// noSpace records that a write found the disk full and deletes every
// spare, returning the bytes freed: the write may go again.
func (l *Log) noSpace() int64 {
	l.noSpaceAt.Store(l.now().UnixNano())
	return l.dropSpares()
}

// dropTail cuts a recycled active segment's old content off its end, for
// the disk budget: it holds no record, and the segment zero-fills or
// reserves from there on as a new one does. It returns the bytes freed.
func (p *Partition) dropTail() int64 {
	p.ioMu.Lock()
	defer p.ioMu.Unlock()
	if p.segmentsClosed() {
		return 0
	}
	act := p.active()
	if act.stale <= act.size || act.sealed {
		return 0
	}
	if err := act.f.Truncate(act.size); err != nil {
		p.lg.Warn("cutting the old content off a recycled segment failed", "segment", act.path, "err", err)
		return 0
	}
	freed := act.alloc - act.size
	act.alloc, act.stale = act.size, 0
	p.addBytes(-freed)
	p.tail.Store(0)
	return freed
}

// dropTails cuts every recycled active segment's old content, for the
// disk budget once spares are gone.
func (l *Log) dropTails() int64 { return l.sumPartitions((*Partition).dropTail) }

// dropSpares deletes every partition's spare, for the disk budget.
func (l *Log) dropSpares() int64 { return l.sumPartitions((*Partition).dropSpare) }

// sumPartitions calls f on every partition and adds up what it returns.
func (l *Log) sumPartitions(f func(*Partition) int64) int64 {
	var n int64
	for _, t := range l.allTopics() {
		for _, p := range t.Partitions() {
			n += f(p)
		}
	}
	return n
}
