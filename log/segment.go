package log

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	logSuffix       = ".log"
	indexSuffix     = ".index"
	timeIndexSuffix = ".timeindex"

	// preallocChunk is how far ahead of the write position the active
	// segment is zero-filled. Each extension costs one metadata commit;
	// every synced append inside the chunk costs none. The zeros are
	// written inline and flushed by the next fsync, which they hold up:
	// 4 MiB took 25 ms on this machine's disk (a p99 ack latency at 500
	// msg/s) and would take far longer on an SD card, while 256 KiB chunks
	// cost about 15% more CPU per message under MQTT ingest than 4 MiB
	// ones (single noisy runs).
	preallocChunk = 1 << 20
	// preallocMaxWrite is the write size (one cycle, one fsync) from which
	// reserving blocks (fallocate) costs less than zero-filling ahead.
	// Counted in device writes, which wear an SD card: zero-filling writes
	// every byte twice, while a reserved or growing file costs a journal
	// commit per fsync, about 16 or 24 KiB on ext4 (measured by
	// scripts/footprint.sh: 10 messages of 500 B per fsync, 3.8 device
	// bytes per payload byte zero-filled against 7.0 growing; 74 per
	// fsync, 3.1 against 1.8). Below 32 KiB zero-filling is also faster:
	// an overwrite's fdatasync waits for no journal commit.
	preallocMaxWrite = 32 << 10
)

var zeroChunk = make([]byte, 1<<20)

func segmentName(base int64) string { return fmt.Sprintf("%020d", base) }

// parseSegmentName returns the base offset of a "<20 digits>.log" name.
func parseSegmentName(name string) (int64, bool) {
	stem, ok := strings.CutSuffix(name, logSuffix)
	if !ok || len(stem) != 20 {
		return 0, false
	}
	base, err := strconv.ParseInt(stem, 10, 64)
	return base, err == nil && base >= 0
}

// batchMeta describes one queued batch, for the indexes.
type batchMeta struct {
	base, last int64
	maxTs      int64
	size       int
	records    int32
	mergeable  bool // Spool's own, and may share a batch with its neighbours (merge.go)
}

// segment is one .log file with its two indexes.
//
// The flusher of the owning partition is the only writer of the active
// segment's data fields (size, alloc, next, maxTs); readers use the
// partition's published durable position instead of size. Sealed segments
// never change; compaction replaces them with new segment values.
type segment struct {
	fs   FS
	path string // .log path
	base int64
	f    File

	size     int64 // bytes of whole batches
	alloc    int64 // file size, including zero-filled preallocation
	next     int64 // offset after the last batch (an upper bound once sealed)
	maxTs    int64 // largest timestamp, -1 when none
	maxTsRel uint32
	created  time.Time // for rolling by age
	sealed   bool

	prealloc    bool
	avgWrite    int64 // running average of the writes' sizes, for prealloc
	noReserve   bool  // the file system cannot fallocate (reserve)
	stale       int64 // a recycled file's old content may lie in [size, stale) (recycle.go)
	interval    int64 // index interval bytes
	indexGap    int64 // bytes written since the last offset index entry
	ixf, tixf   File  // index files, open while active
	indexErr    error // a failed index write: the files are rebuilt at seal
	segmentSize int64

	mu           sync.Mutex // guards idx, tidx, loaded and the written counts
	idx          []offsetEntry
	tidx         []timeEntry
	loaded       bool
	ixWritten    int // entries of idx already in the index file
	tixWritten   int
	indexRewrite bool // the files hold entries since dropped: rewrite them
}

func (s *segment) indexPath() string {
	return strings.TrimSuffix(s.path, logSuffix) + indexSuffix
}

func (s *segment) timeIndexPath() string {
	return strings.TrimSuffix(s.path, logSuffix) + timeIndexSuffix
}

// createSegment creates an empty active segment.
func createSegment(fsys FS, dir string, base int64, cfg TopicConfig, now time.Time) (*segment, error) {
	return newActiveSegment(fsys, dir, base, cfg, now, false)
}

// newActiveSegment creates an empty active segment at base. With reuse,
// its .log file exists already, a spare renamed to its path (recycle.go):
// the segment writes over the file's old content.
func newActiveSegment(fsys FS, dir string, base int64, cfg TopicConfig, now time.Time, reuse bool) (*segment, error) {
	s := &segment{
		fs: fsys, path: filepath.Join(dir, segmentName(base)+logSuffix), base: base,
		next: base, maxTs: -1, created: now, prealloc: cfg.Preallocate,
		segmentSize: cfg.SegmentBytes, interval: int64(cfg.IndexIntervalBytes), loaded: true,
	}
	var err error
	if reuse {
		if s.f, err = fsys.OpenFile(s.path, os.O_RDWR, 0); err != nil {
			return nil, err
		}
		fi, err := s.f.Stat()
		if err != nil {
			s.close()
			return nil, err
		}
		s.alloc = fi.Size()
		s.stale = s.alloc
		if s.alloc > cfg.SegmentBytes {
			// The segment size shrank since: keep what it allows.
			if err := s.f.Truncate(cfg.SegmentBytes); err != nil {
				s.close()
				return nil, err
			}
			s.alloc, s.stale = cfg.SegmentBytes, cfg.SegmentBytes
		}
	} else if s.f, err = fsys.OpenFile(s.path, os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o644); err != nil {
		return nil, err
	}
	if s.ixf, err = fsys.OpenFile(s.indexPath(), os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o644); err != nil {
		s.close()
		return nil, err
	}
	if s.tixf, err = fsys.OpenFile(s.timeIndexPath(), os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o644); err != nil {
		s.close()
		return nil, err
	}
	// The new name must survive a crash before the first append is acked.
	if err := fsys.SyncDir(dir); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// openSealedSegment opens a segment that is not the last one. It reads
// only the file size and the last time index entry (for retention); the
// indexes are loaded on first use.
func openSealedSegment(fsys FS, path string, base, next int64) (*segment, error) {
	s := &segment{fs: fsys, path: path, base: base, next: next, maxTs: -1, sealed: true}
	var err error
	if s.f, err = fsys.OpenFile(path, os.O_RDONLY, 0); err != nil {
		return nil, err
	}
	fi, err := s.f.Stat()
	if err != nil {
		s.close()
		return nil, err
	}
	s.size, s.alloc = fi.Size(), fi.Size()
	s.created = fi.ModTime()
	if ts, rel, ok := s.readLastTimeEntry(); ok {
		s.maxTs, s.maxTsRel = ts, rel
		return s, nil
	}
	if err := s.loadIndexes(); err != nil {
		s.close()
		return nil, err
	}
	// maxTs is set here, before the segment is shared, and never again.
	if n := len(s.tidx); n > 0 {
		s.maxTs, s.maxTsRel = s.tidx[n-1].ts, s.tidx[n-1].rel
	}
	return s, nil
}

// readLastTimeEntry reads the time index's last entry without loading it.
func (s *segment) readLastTimeEntry() (int64, uint32, bool) {
	f, err := s.fs.OpenFile(s.timeIndexPath(), os.O_RDONLY, 0)
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 || fi.Size()%timeEntrySize != 0 {
		return 0, 0, false
	}
	var b [timeEntrySize]byte
	if _, err := f.ReadAt(b[:], fi.Size()-timeEntrySize); err != nil {
		return 0, 0, false
	}
	es, ok := decodeTimeIndex(b[:], uint32(min(s.next-s.base, 1<<32-1)))
	if !ok || len(es) != 1 {
		return 0, 0, false
	}
	return es[0].ts, es[0].rel, true
}

// loadIndexes reads both index files of a sealed segment, rebuilding them
// from the data when either is missing or invalid.
func (s *segment) loadIndexes() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loaded {
		return nil
	}
	ib, ierr := readWhole(s.fs, s.indexPath())
	tb, terr := readWhole(s.fs, s.timeIndexPath())
	idx, iok := decodeOffsetIndex(ib, s.size)
	tidx, tok := decodeTimeIndex(tb, uint32(min(s.next-s.base, 1<<32-1)))
	if ierr == nil && terr == nil && iok && tok && len(tidx) > 0 {
		s.idx, s.tidx, s.loaded = idx, tidx, true
		return nil
	}
	if err := s.rebuildIndexesLocked(); err != nil {
		return err
	}
	s.loaded = true
	return nil
}

// rebuildIndexesLocked scans every batch of a sealed segment and rewrites
// both index files atomically. A segment with no timestamps keeps an empty
// time index and is aged by its file time. s.mu is held.
func (s *segment) rebuildIndexesLocked() error {
	interval := s.interval
	if interval <= 0 {
		interval = int64(DefaultTopicConfig().IndexIntervalBytes)
	}
	r := batchReader{f: s.f, limit: s.size}
	var (
		idx  []offsetEntry
		tidx []timeEntry
		gap  int64
		pos  int64
	)
	maxTs := int64(-1)
	for pos < s.size {
		h, err := r.header(pos)
		if err != nil || h.BaseOffset < s.base {
			// Index what comes before the damage (or the preallocated
			// zeros); reads that reach it report it.
			break
		}
		rel := uint32(h.BaseOffset - s.base)
		if gap >= interval {
			idx = append(idx, offsetEntry{rel: rel, pos: uint32(pos)})
			gap = 0
		}
		if h.MaxTimestamp > maxTs {
			maxTs = h.MaxTimestamp
			tidx = append(tidx, timeEntry{ts: maxTs, rel: rel})
		}
		gap += int64(h.Size())
		pos += int64(h.Size())
	}
	s.idx, s.tidx = idx, tidx
	s.ixWritten, s.tixWritten = len(idx), len(tidx)
	var ib, tb []byte
	for _, e := range idx {
		ib = appendOffsetEntry(ib, e)
	}
	for _, e := range tidx {
		tb = appendTimeEntry(tb, e)
	}
	if err := writeFileAtomic(s.fs, s.indexPath(), ib); err != nil {
		return err
	}
	return writeFileAtomic(s.fs, s.timeIndexPath(), tb)
}

func readWhole(fsys FS, path string) ([]byte, error) {
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	b := make([]byte, fi.Size())
	if _, err := f.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b, nil
}

// write appends queued batches (offsets already assigned) at the end of
// the data and indexes them. Only the flusher calls it. It returns how many
// bytes the file grew by. On error the data end is unchanged, so the next
// write overwrites whatever part of buf reached the file.
// allowance bounds the zero-filled preallocation beyond the data (the disk
// budget's headroom).
func (s *segment) write(buf []byte, metas []batchMeta, allowance int64) (grown int64, err error) {
	// Zero-filling doubles the bytes written; it pays only for small
	// synced writes, where an fdatasync would otherwise commit metadata.
	// Larger writes reserve blocks instead, which commits less of it.
	// Judged on the writes' running average: a chunk once zero-filled is
	// written twice whatever comes next, so an occasional small write
	// among large ones must not start one.
	s.avgWrite += (int64(len(buf)) - s.avgWrite) / 8
	if s.prealloc && s.size+int64(len(buf)) > s.alloc {
		if s.avgWrite < preallocMaxWrite {
			grown = s.extend(int64(len(buf)), allowance)
		} else {
			grown = s.reserve(int64(len(buf)), allowance)
		}
	}
	_, err = s.f.WriteAt(buf, s.size)
	if err == nil && s.stale > 0 {
		err = s.markEnd(s.size + int64(len(buf)))
	}
	if err != nil {
		// A short write may have left whole batches past the data end,
		// never acknowledged: cut them off, or a reopen would find them.
		before := s.alloc
		if s.f.Truncate(s.size) == nil {
			s.alloc, s.stale = s.size, 0
		} else if fi, serr := s.f.Stat(); serr == nil && fi.Size() > s.alloc {
			s.alloc = fi.Size() // counted, so that the seal trims it
		}
		return grown + s.alloc - before, err
	}
	if end := s.size + int64(len(buf)); end > s.alloc {
		grown += end - s.alloc
		s.alloc = end
	}
	s.index(metas, s.size)
	s.size += int64(len(buf))
	s.next = metas[len(metas)-1].last + 1
	return grown, nil
}

func (s *segment) lastTimeIndexed() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.tidx) == 0 {
		return -1
	}
	return s.tidx[len(s.tidx)-1].ts
}

// index adds index entries for batches written at pos: an offset entry
// every interval bytes, and with it a time entry when the max timestamp grew.
func (s *segment) index(metas []batchMeta, pos int64) {
	interval := s.interval
	var added []offsetEntry
	var addedT []timeEntry
	lastT := s.lastTimeIndexed()
	for _, m := range metas {
		rel := uint32(m.base - s.base)
		if s.indexGap >= interval {
			added = append(added, offsetEntry{rel: rel, pos: uint32(pos)})
			s.indexGap = 0
			if s.maxTs > lastT {
				addedT = append(addedT, timeEntry{ts: s.maxTs, rel: s.maxTsRel})
				lastT = s.maxTs
			}
		}
		if m.maxTs > s.maxTs {
			s.maxTs, s.maxTsRel = m.maxTs, rel
		}
		s.indexGap += int64(m.size)
		pos += int64(m.size)
	}
	if len(added) > 0 {
		s.appendIndex(added, addedT)
	}
}

// indexFlushEntries is how many new offset index entries accumulate in
// memory before they are written to the index file. The files are caches,
// so writing them in bulk costs little after a crash (a longer tail scan)
// and saves a system call on most flushes.
const indexFlushEntries = 64

// appendIndex records new index entries in memory, writing them to the
// index files once enough have accumulated.
func (s *segment) appendIndex(added []offsetEntry, addedT []timeEntry) {
	s.mu.Lock()
	s.idx = append(s.idx, added...)
	s.tidx = append(s.tidx, addedT...)
	pending := len(s.idx) - s.ixWritten
	s.mu.Unlock()
	if pending >= indexFlushEntries {
		s.flushIndex()
	}
}

// flushIndex writes the index entries not yet in the files. A failed write
// is remembered and the files are rebuilt when the segment is sealed (or
// on the next open): they are caches, the data is unaffected.
func (s *segment) flushIndex() {
	if s.indexErr != nil || s.ixf == nil {
		return
	}
	s.mu.Lock()
	if s.indexRewrite {
		s.indexRewrite = false
		if err := s.ixf.Truncate(0); err != nil {
			s.indexErr = err
		} else if err := s.tixf.Truncate(0); err != nil {
			s.indexErr = err
		}
	}
	var ib, tb []byte
	for _, e := range s.idx[s.ixWritten:] {
		ib = appendOffsetEntry(ib, e)
	}
	for _, e := range s.tidx[s.tixWritten:] {
		tb = appendTimeEntry(tb, e)
	}
	iat, tat := int64(s.ixWritten)*offsetEntrySize, int64(s.tixWritten)*timeEntrySize
	s.ixWritten, s.tixWritten = len(s.idx), len(s.tidx)
	s.mu.Unlock()
	if _, err := s.ixf.WriteAt(ib, iat); err != nil {
		s.indexErr = err
		return
	}
	if _, err := s.tixf.WriteAt(tb, tat); err != nil {
		s.indexErr = err
	}
}

// extend zero-fills the file ahead of the write position so that the next
// appends overwrite allocated blocks. A failure (a full disk) only turns
// preallocation off for this segment: the data write that follows reports
// the real error if there is one.
func (s *segment) extend(need, allowance int64) (grown int64) {
	target := s.preallocTarget(need, allowance)
	for pos := s.alloc; pos < target; {
		n := min(int64(len(zeroChunk)), target-pos)
		if _, err := s.f.WriteAt(zeroChunk[:n], pos); err != nil {
			s.prealloc = false
			if fi, serr := s.f.Stat(); serr == nil && fi.Size() > s.alloc {
				grown = fi.Size() - s.alloc
				s.alloc = fi.Size()
			}
			return grown
		}
		pos += n
	}
	grown = target - s.alloc
	s.alloc = target
	return grown
}

// preallocTarget is the file size a preallocation for a write of need
// bytes extends to: whole chunks, within the segment and the allowance.
func (s *segment) preallocTarget(need, allowance int64) int64 {
	target := s.alloc
	for target < s.size+need {
		target += preallocChunk
	}
	target = min(target, s.segmentSize)
	if allowance < target-s.alloc { // (alloc+allowance overflows: no budget is MaxInt64)
		target = s.alloc + allowance
	}
	return max(target, s.size+need)
}

// reserve allocates blocks ahead of the write position without writing
// them (fallocate), for writes too large to be worth zero-filling. An
// fdatasync into reserved blocks still commits metadata (the extents turn
// from unwritten to written), but less than a growing file's: measured on
// ext4, 16 KiB of device writes per fsync against 24 KiB, and no slower.
// Blocks never written read back as zeros, as a zero-filled tail does.
// Where the file system cannot reserve, the file grows as it is written.
func (s *segment) reserve(need, allowance int64) (grown int64) {
	r, ok := s.f.(reserver)
	if !ok || s.noReserve {
		return 0
	}
	target := s.preallocTarget(need, allowance)
	if err := r.Reserve(s.alloc, target-s.alloc); err != nil {
		if errors.Is(err, errReserveUnsupported) {
			s.noReserve = true
			return 0
		}
		s.prealloc = false // a full disk: the data write reports it
		// ext4 extends the size extent by extent before it runs out of
		// space: what it reserved counts, and the seal trims it.
		if fi, serr := s.f.Stat(); serr == nil && fi.Size() > s.alloc {
			grown = fi.Size() - s.alloc
			s.alloc = fi.Size()
		}
		return grown
	}
	grown = target - s.alloc
	s.alloc = target
	return grown
}

// seal makes the active segment immutable: a final time index entry, the
// file trimmed to its data, everything fsynced. It returns the bytes freed.
func (s *segment) seal() (freed int64, err error) {
	if s.sealed {
		return 0, nil
	}
	if s.maxTs > s.lastTimeIndexed() {
		s.appendIndex(nil, []timeEntry{{ts: s.maxTs, rel: s.maxTsRel}})
	}
	s.flushIndex()
	if s.alloc > s.size {
		if err := s.f.Truncate(s.size); err != nil {
			return 0, err
		}
		freed = s.alloc - s.size
		s.alloc = s.size
	}
	if err := s.f.Sync(); err != nil {
		return freed, err
	}
	if s.indexErr == nil {
		if err := s.ixf.Sync(); err == nil {
			s.indexErr = s.tixf.Sync()
		} else {
			s.indexErr = err
		}
	}
	if s.indexErr != nil {
		// The index files are caches: if they cannot be written (a full
		// disk), remove them; they are rebuilt on first use after a restart.
		s.mu.Lock()
		if s.rebuildIndexesLocked() != nil {
			s.fs.Remove(s.indexPath())
			s.fs.Remove(s.timeIndexPath())
		}
		s.mu.Unlock()
		s.indexErr = nil
	}
	s.ixf.Close()
	s.tixf.Close()
	s.ixf, s.tixf = nil, nil
	s.sealed = true
	return freed, nil
}

// lookup returns the position of the first batch in [start, limit) whose
// last offset is at least offset, or limit when there is none.
func (s *segment) lookup(offset, limit int64) (int64, error) {
	if err := s.loadIndexes(); err != nil {
		return 0, err
	}
	rel := uint32(0)
	if offset > s.base {
		rel = uint32(min(offset-s.base, 1<<32-1))
	}
	pos := s.indexedPos(rel, limit)
	return s.scanTo(pos, limit, func(h BatchHeader) bool { return h.LastOffset() >= offset })
}

// indexedPos returns the position of the last offset index entry at or
// below rel within limit, after checking that a batch with the entry's
// offset starts there. The index is a cache that a crash or bad media can
// leave wrong: an entry that does not hold is dropped with every entry
// after it, so that lookups scan further instead of failing, and the index
// file is rewritten.
func (s *segment) indexedPos(rel uint32, limit int64) int64 {
	for {
		s.mu.Lock()
		i := sort.Search(len(s.idx), func(i int) bool { return s.idx[i].rel > rel })
		for i > 0 && int64(s.idx[i-1].pos) >= limit {
			i-- // not yet readable, not wrong
		}
		if i == 0 {
			s.mu.Unlock()
			return 0
		}
		e := s.idx[i-1]
		s.mu.Unlock()
		if s.batchStartsAt(int64(e.pos), s.base+int64(e.rel), limit) {
			return int64(e.pos)
		}
		s.dropIndexEntries(i-1, -1)
	}
}

// batchStartsAt reports whether a batch with base offset base starts at pos.
func (s *segment) batchStartsAt(pos, base, limit int64) bool {
	var b [batchHeaderSize]byte
	if pos+batchHeaderSize > limit {
		return false
	}
	if _, err := s.f.ReadAt(b[:], pos); err != nil {
		return false
	}
	h := parseBatchHeader(b[:])
	// Only where the batch starts is checked: a batch damaged in its
	// length or body is still where the index says, and reading it
	// reports the damage.
	return h.Magic == batchMagic && h.BaseOffset == base
}

// dropIndexEntries removes offset index entry i and time index entry j
// (negative: none) and rewrites the index files.
func (s *segment) dropIndexEntries(i, j int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i >= 0 && i < len(s.idx) {
		s.idx = append(s.idx[:i:i], s.idx[i+1:]...)
	}
	if j >= 0 && j < len(s.tidx) {
		s.tidx = append(s.tidx[:j:j], s.tidx[j+1:]...)
	}
	if s.ixf != nil {
		// Active: the next flush rewrites both files from the start.
		s.ixWritten, s.tixWritten, s.indexRewrite = 0, 0, true
		return
	}
	var ib, tb []byte
	for _, e := range s.idx {
		ib = appendOffsetEntry(ib, e)
	}
	for _, e := range s.tidx {
		tb = appendTimeEntry(tb, e)
	}
	// A failure leaves the old files, which the next open checks again.
	if writeFileAtomic(s.fs, s.indexPath(), ib) == nil {
		writeFileAtomic(s.fs, s.timeIndexPath(), tb)
	}
}

// lookupTime returns the position of the first batch in the segment whose
// max timestamp is at least ts, or limit. The time index entry it starts
// from is checked against the batch it names, like offset entries are.
func (s *segment) lookupTime(ts, limit int64) (int64, error) {
	if err := s.loadIndexes(); err != nil {
		return 0, err
	}
	pos := int64(0)
	for {
		s.mu.Lock()
		i := sort.Search(len(s.tidx), func(i int) bool { return s.tidx[i].ts >= ts })
		var e timeEntry
		if i > 0 {
			e = s.tidx[i-1]
		}
		s.mu.Unlock()
		if i == 0 {
			break
		}
		at, h, err := s.findBase(s.base+int64(e.rel), limit)
		if err != nil {
			return 0, err
		}
		if at < limit && h.BaseOffset == s.base+int64(e.rel) && h.MaxTimestamp == e.ts {
			pos = at
			break
		}
		if at >= limit {
			break // the entry names data not yet readable: scan it all
		}
		s.dropIndexEntries(-1, i-1)
	}
	return s.scanTo(pos, limit, func(h BatchHeader) bool { return h.MaxTimestamp >= ts })
}

// findBase returns the position and header of the first batch whose base
// offset is at least base, or limit.
func (s *segment) findBase(base, limit int64) (int64, BatchHeader, error) {
	pos := s.indexedPos(uint32(base-s.base), limit)
	r := batchReader{f: s.f, limit: limit}
	for pos < limit {
		h, err := r.header(pos)
		if err != nil {
			return 0, h, &CorruptionError{Segment: s.path, Position: pos, Err: zeroDamage(err)}
		}
		if h.BaseOffset >= base {
			return pos, h, nil
		}
		pos += int64(h.Size())
	}
	return limit, BatchHeader{}, nil
}

func (s *segment) scanTo(pos, limit int64, found func(BatchHeader) bool) (int64, error) {
	r := batchReader{f: s.f, limit: limit}
	for pos < limit {
		// limit is the end of the data: zeros before it are damage.
		h, err := r.header(pos)
		if err != nil {
			return 0, &CorruptionError{Segment: s.path, Position: pos, Err: zeroDamage(err)}
		}
		if found(h) {
			return pos, nil
		}
		pos += int64(h.Size())
	}
	return limit, nil
}

// read returns whole batches from pos, at most maxBytes of them but at
// least one, never reading at or past limit. Every batch's CRC is checked.
func (s *segment) read(pos, limit int64, maxBytes int) ([]byte, error) {
	n := min(int64(max(maxBytes, batchHeaderSize)), limit-pos)
	if n <= 0 {
		return nil, nil
	}
	buf := make([]byte, n)
	if _, err := s.f.ReadAt(buf, pos); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	end := 0
	// damaged returns the batches before the damage, or, when the damage
	// is at the start, the positional error: the read that starts there
	// reports it, and a consumer gets every intact batch before it.
	damaged := func(at int, err error) ([]byte, error) {
		if end > 0 {
			return buf[:end], nil
		}
		return nil, &CorruptionError{Segment: s.path, Position: pos + int64(at), Err: err}
	}
	for end+batchHeaderSize <= len(buf) {
		h := parseBatchHeader(buf[end:])
		if h.Length < batchHeaderSize-batchLogOverhead || h.Magic != batchMagic {
			// limit is the end of the data, so even zeros here are damage.
			return damaged(end, fmt.Errorf("%w: length %d magic %d", ErrBatchLength, h.Length, h.Magic))
		}
		if end+h.Size() > len(buf) {
			if end > 0 {
				break
			}
			// The first batch is larger than maxBytes: return it whole.
			if pos+int64(h.Size()) > limit {
				return damaged(0, fmt.Errorf("%w: batch of %d bytes passes the end of data", ErrBatchTruncated, h.Size()))
			}
			buf = make([]byte, h.Size())
			if _, err := s.f.ReadAt(buf, pos); err != nil && !errors.Is(err, io.EOF) {
				return nil, err
			}
		}
		if _, err := ParseBatchHeader(buf[end : end+h.Size()]); err != nil {
			return damaged(end, err)
		}
		end += h.Size()
	}
	return buf[:end], nil
}

// zeroDamage names zeros found inside the data.
func zeroDamage(err error) error {
	if errors.Is(err, errEndOfData) {
		return fmt.Errorf("%w: zeros inside the data", ErrBatchLength)
	}
	return err
}

// trimZeroTail cuts preallocated zeros off the end of a sealed segment: a
// crash between a roll's create and its seal leaves them. It walks batch
// headers from the last index entry and truncates only when everything
// after the last batch is zero, or begins with the end mark of a recycled
// file (recycle.go); other damage is left for reads to report.
func (s *segment) trimZeroTail() error {
	r := batchReader{f: s.f, limit: s.size}
	pos := int64(0)
	if b, err := readWhole(s.fs, s.indexPath()); err == nil {
		if idx, _ := decodeOffsetIndex(b, s.size); len(idx) > 0 && s.batchStartsAt(int64(idx[len(idx)-1].pos), s.base+int64(idx[len(idx)-1].rel), s.size) {
			pos = int64(idx[len(idx)-1].pos)
		}
	}
	for pos < s.size {
		h, err := r.header(pos)
		if errors.Is(err, errEndOfData) || (err == nil && pos == 0 && recycledAt(&r, pos, s.base)) {
			break
		}
		if err != nil {
			return nil
		}
		pos += int64(h.Size())
	}
	if pos >= s.size || !(restUnused(&r, pos, s.size) || (pos == 0 && recycledAt(&r, pos, s.base))) {
		return nil
	}
	f, err := s.fs.OpenFile(s.path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(pos); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	s.size, s.alloc = pos, pos
	return nil
}

func (s *segment) close() error {
	s.flushIndex()
	var err error
	for _, f := range []File{s.ixf, s.tixf, s.f} {
		if f != nil {
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
	}
	s.ixf, s.tixf, s.f = nil, nil, nil
	return err
}

// remove closes and deletes the segment's files.
func (s *segment) remove() error {
	s.close()
	err := s.fs.Remove(s.path)
	for _, p := range []string{s.indexPath(), s.timeIndexPath()} {
		if rerr := s.fs.Remove(p); rerr != nil && !errors.Is(rerr, os.ErrNotExist) && err == nil {
			err = rerr
		}
	}
	return err
}
