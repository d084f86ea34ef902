package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Problem is one piece of damage Verify found.
type Problem struct {
	Topic     string
	Partition int32
	Path      string // the damaged file
	Position  int64  // byte position in it, -1 when the whole file is concerned
	Kind      string // see the Problem* constants
	Err       error
	// Warning marks a harmless leftover (ProblemOrphanIndex): no data is
	// at risk, and Repair removes it.
	Warning bool
}

// Kinds of problems.
const (
	ProblemCorrupt     = "corrupt batch"        // bad length, magic or CRC in stored data
	ProblemOffsetOrder = "offsets out of order" // a batch does not follow the one before
	ProblemTornTail    = "torn tail"            // the active segment ends in a partial batch (unclean stop)
	ProblemZeroTail    = "untrimmed tail"       // a sealed segment ends in preallocated zeros
	ProblemIndex       = "bad index"            // an index file is missing or disagrees with the data
	// ProblemMissingSegment: a segment's .log is gone but its index files
	// remain, above the first segment: its records are lost.
	ProblemMissingSegment = "missing segment"
	// ProblemOrphanIndex: index files below the first segment, left by an
	// interrupted retention (it deletes the .log first). A warning.
	ProblemOrphanIndex = "leftover index"
	// ProblemLogStart: the log-start-offset file cannot be parsed (Open
	// ignores it, and the records DeleteRecords removed come back), or it
	// lies past the end of the data (a tail up to it was lost).
	ProblemLogStart = "bad log start"
)

func (p Problem) String() string {
	s := fmt.Sprintf("topic %q partition %d: %s: %s at byte %d: %v", p.Topic, p.Partition, p.Kind, p.Path, p.Position, p.Err)
	if p.Warning {
		return "warning: " + s
	}
	return s
}

// partitionDir is one partition directory found in a data directory.
type partitionDir struct {
	topic     string
	partition int32
	dir       string
	bases     []int64 // segment base offsets, sorted
	orphans   []int64 // base offsets of index files without a .log, sorted
}

// partitionDirs lists every partition directory of a data directory.
func partitionDirs(dir string) ([]partitionDir, error) {
	var out []partitionDir
	topics, err := os.ReadDir(filepath.Join(dir, topicsDir))
	if err != nil {
		return nil, err
	}
	for _, t := range topics {
		if !t.IsDir() || strings.Contains(t.Name(), deletedSuffix) {
			continue
		}
		parts, err := os.ReadDir(filepath.Join(dir, topicsDir, t.Name()))
		if err != nil {
			return nil, err
		}
		for _, pe := range parts {
			id, err := strconv.Atoi(pe.Name())
			if err != nil || !pe.IsDir() {
				continue
			}
			pd := partitionDir{topic: t.Name(), partition: int32(id), dir: filepath.Join(dir, topicsDir, t.Name(), pe.Name())}
			files, err := os.ReadDir(pd.dir)
			if err != nil {
				return nil, err
			}
			indexed := map[int64]bool{}
			for _, f := range files {
				if base, ok := parseSegmentName(f.Name()); ok {
					pd.bases = append(pd.bases, base)
				} else if base, ok := parseIndexName(f.Name()); ok {
					indexed[base] = true
				}
			}
			slices.Sort(pd.bases)
			for base := range indexed {
				if _, found := slices.BinarySearch(pd.bases, base); !found {
					pd.orphans = append(pd.orphans, base)
				}
			}
			slices.Sort(pd.orphans)
			out = append(out, pd)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].topic != out[j].topic {
			return out[i].topic < out[j].topic
		}
		return out[i].partition < out[j].partition
	})
	return out, nil
}

// parseIndexName returns the base offset of a "<20 digits>.index" or
// "<20 digits>.timeindex" name.
func parseIndexName(name string) (int64, bool) {
	for _, suffix := range []string{indexSuffix, timeIndexSuffix} {
		if stem, ok := strings.CutSuffix(name, suffix); ok {
			return parseSegmentName(stem + logSuffix)
		}
	}
	return 0, false
}

// segmentScan is what scanning one segment file found.
type segmentScan struct {
	batches  []scannedBatch
	problems []Problem
	end      int64 // position after the last whole batch before any damage
	next     int64 // offset after that batch: the segment's base when none
}

type scannedBatch struct {
	pos int64
	h   BatchHeader
}

// scanSegment checks every batch of a segment file. active says whether
// it is the partition's last segment, where a partial batch or zeros at
// the end are what an unclean stop or preallocation leave.
func scanSegment(pd partitionDir, path string, base, limitOffset int64, active bool) (segmentScan, error) {
	var sc segmentScan
	f, r, size, err := openSegmentFile(path)
	if err != nil {
		return sc, err
	}
	defer f.Close()
	prob := func(pos int64, kind string, err error) {
		sc.problems = append(sc.problems, Problem{Topic: pd.topic, Partition: pd.partition, Path: path, Position: pos, Kind: kind, Err: err})
	}
	next := base
	pos := int64(0)
	for pos < size {
		h, _, err := r.batch(pos)
		if errors.Is(err, errEndOfData) {
			if restUnused(r, pos, size) {
				if !active {
					prob(pos, ProblemZeroTail, fmt.Errorf("%d bytes of zeros or of a recycled file after the last batch", size-pos))
				}
				break
			}
			// Zeros where a batch should start, with data after them: a
			// zeroed sector, not the end.
			err = fmt.Errorf("zeroed bytes where a batch should start, with data after them: %w", err)
		}
		if err != nil {
			// A tail is torn only when no valid batch follows: a bad
			// length pointing past the end, with batches after it, is
			// damage in the middle.
			kind := ProblemCorrupt
			if active && !validAfter(r, pos, size, next) {
				kind = ProblemTornTail
			}
			prob(pos, kind, err)
			break
		}
		if damagedBase(r, pos, size, next, h) {
			prob(pos, ProblemOffsetOrder, fmt.Errorf("damaged base offset %d: the batch after it continues from %d, so this one starts at %d", h.BaseOffset, next+int64(h.LastOffsetDelta)+1, next))
			break
		}
		if active && pos == 0 && h.LastOffset() < base {
			break // a recycled file's old content, before its first write (recycle.go)
		}
		if h.BaseOffset < next || h.LastOffset() >= limitOffset {
			prob(pos, ProblemOffsetOrder, fmt.Errorf("batch %d..%d after offset %d, segment ends before %d", h.BaseOffset, h.LastOffset(), next, limitOffset))
			break
		}
		sc.batches = append(sc.batches, scannedBatch{pos: pos, h: h})
		next = h.LastOffset() + 1
		pos += int64(h.Size())
	}
	sc.end, sc.next = pos, next
	return sc, nil
}

// damagedBase reports whether the valid batch h at pos, which does not
// start at the expected offset next, has only its base offset damaged:
// the one header field the CRC does not cover. It has when the valid batch
// right after it starts where h would end had it started at next. An
// honest gap (compaction, repair) cannot look so: the batch after it
// starts past h's last offset, which lies past that point.
func damagedBase(r *batchReader, pos, size, next int64, h BatchHeader) bool {
	if h.BaseOffset == next {
		return false
	}
	after, ok := baseAfter(r, pos, size, h)
	return ok && after == next+int64(h.LastOffsetDelta)+1
}

// baseAfter returns the base offset of the whole, valid batch right after
// the batch h at pos, if there is one.
func baseAfter(r *batchReader, pos, size int64, h BatchHeader) (int64, bool) {
	at := pos + int64(h.Size())
	if at >= size {
		return 0, false
	}
	nh, _, err := r.batch(at)
	return nh.BaseOffset, err == nil
}

// validAfter reports whether a valid batch following offset next starts
// anywhere after pos: damage followed by good data is corruption, not a
// torn tail.
func validAfter(r *batchReader, pos, size, next int64) bool {
	_, _, ok := findNextBatch(r, pos+1, size, next, 1<<62)
	return ok
}

// findNextBatch searches byte by byte from pos for the start of a whole,
// valid batch whose offsets lie in [low, high).
func findNextBatch(r *batchReader, pos, size, low, high int64) (int64, BatchHeader, bool) {
	for ; pos+batchHeaderSize <= size; pos++ {
		b, err := r.at(pos, batchHeaderSize)
		if err != nil {
			return 0, BatchHeader{}, false
		}
		if b[batchMagicPos] != batchMagic {
			continue
		}
		h := parseBatchHeader(b)
		if h.Length < batchHeaderSize-batchLogOverhead || pos+int64(h.Size()) > size || h.BaseOffset < low || h.LastOffset() >= high {
			continue
		}
		if hb, _, err := r.batch(pos); err == nil {
			return pos, hb, true
		}
	}
	return 0, BatchHeader{}, false
}

// checkIndexes compares a segment's index files with its batches.
func checkIndexes(pd partitionDir, logPath string, base int64, sc segmentScan, active bool) []Problem {
	var probs []Problem
	prob := func(path string, pos int64, err error) {
		probs = append(probs, Problem{Topic: pd.topic, Partition: pd.partition, Path: path, Position: pos, Kind: ProblemIndex, Err: err})
	}
	starts := map[uint32]scannedBatch{}
	for _, b := range sc.batches {
		starts[uint32(b.h.BaseOffset-base)] = b
	}
	stem := strings.TrimSuffix(logPath, logSuffix)
	ib, ierr := os.ReadFile(stem + indexSuffix)
	tb, terr := os.ReadFile(stem + timeIndexSuffix)
	if ierr != nil || terr != nil {
		prob(stem+indexSuffix, -1, errors.Join(ierr, terr))
		return probs
	}
	if len(ib)%offsetEntrySize != 0 && !active {
		prob(stem+indexSuffix, int64(len(ib)/offsetEntrySize*offsetEntrySize), errors.New("partial entry"))
	}
	if pos, err := checkOffsetEntries(ib, base, starts); err != nil {
		prob(stem+indexSuffix, pos, err)
	}
	if len(tb)%timeEntrySize != 0 && !active {
		prob(stem+timeIndexSuffix, int64(len(tb)/timeEntrySize*timeEntrySize), errors.New("partial entry"))
	}
	pos, err := checkTimeEntries(tb, base, starts)
	if err == nil && !active {
		pos, err = checkLastTimeEntry(tb, base, sc.batches)
	}
	if err != nil {
		prob(stem+timeIndexSuffix, pos, err)
	}
	return probs
}

// checkOffsetEntries returns the position of the first bad entry of an
// offset index and what is wrong with it. Entries grow strictly in both
// fields (lookups binary-search them; decodeOffsetIndex stops at one that
// does not) and each points at the start of a batch with its offset.
func checkOffsetEntries(ib []byte, base int64, starts map[uint32]scannedBatch) (int64, error) {
	var prev offsetEntry
	for i := 0; i+offsetEntrySize <= len(ib); i += offsetEntrySize {
		e := offsetEntry{rel: binary.BigEndian.Uint32(ib[i:]), pos: binary.BigEndian.Uint32(ib[i+4:])}
		if i > 0 && (e.rel <= prev.rel || e.pos <= prev.pos) {
			return int64(i), fmt.Errorf("entry offset %d position %d does not follow offset %d position %d", base+int64(e.rel), e.pos, base+int64(prev.rel), prev.pos)
		}
		if b, ok := starts[e.rel]; !ok || b.pos != int64(e.pos) {
			return int64(i), fmt.Errorf("entry offset %d position %d is not a batch start", base+int64(e.rel), e.pos)
		}
		prev = e
	}
	return 0, nil
}

// checkTimeEntries returns the position of the first bad entry of a time
// index and what is wrong with it. Timestamps and offsets never decrease
// (decodeTimeIndex stops at one that does), and each entry names a batch
// with that max timestamp.
func checkTimeEntries(tb []byte, base int64, starts map[uint32]scannedBatch) (int64, error) {
	var prev timeEntry
	for i := 0; i+timeEntrySize <= len(tb); i += timeEntrySize {
		e := timeEntry{ts: int64(binary.BigEndian.Uint64(tb[i:])), rel: binary.BigEndian.Uint32(tb[i+8:])}
		if i > 0 && (e.ts < prev.ts || e.rel < prev.rel) {
			return int64(i), fmt.Errorf("entry timestamp %d offset %d goes back from timestamp %d offset %d", e.ts, base+int64(e.rel), prev.ts, base+int64(prev.rel))
		}
		if b, ok := starts[e.rel]; !ok || b.h.MaxTimestamp != e.ts {
			return int64(i), fmt.Errorf("entry timestamp %d offset %d matches no batch", e.ts, base+int64(e.rel))
		}
		prev = e
	}
	return 0, nil
}

// checkLastTimeEntry checks that a sealed segment's time index ends with
// its greatest timestamp, at the first batch that holds it: time retention
// reads only that entry, and would delete the segment too early without it.
func checkLastTimeEntry(tb []byte, base int64, batches []scannedBatch) (int64, error) {
	want := timeEntry{ts: -1}
	for _, b := range batches {
		if b.h.MaxTimestamp > want.ts {
			want = timeEntry{ts: b.h.MaxTimestamp, rel: uint32(b.h.BaseOffset - base)}
		}
	}
	if want.ts < 0 {
		return 0, nil // no timestamps: the segment is aged by its file time
	}
	n := len(tb) / timeEntrySize
	if n == 0 {
		return 0, fmt.Errorf("no entry for the segment's greatest timestamp %d at offset %d", want.ts, base+int64(want.rel))
	}
	i := (n - 1) * timeEntrySize
	last := timeEntry{ts: int64(binary.BigEndian.Uint64(tb[i:])), rel: binary.BigEndian.Uint32(tb[i+8:])}
	if last != want {
		return int64(i), fmt.Errorf("last entry timestamp %d offset %d, not the segment's greatest timestamp %d at offset %d", last.ts, base+int64(last.rel), want.ts, base+int64(want.rel))
	}
	return 0, nil
}

// Verify checks every segment and index of the data directory dir: batch
// lengths, magic, CRCs, offset order, that the indexes point where they
// say, that no segment file is missing, and the stored log start. It reads
// only. A torn tail on an active segment is reported too; opening the log
// (or Repair) truncates it.
func Verify(dir string) ([]Problem, error) {
	pds, err := partitionDirs(dir)
	if err != nil {
		return nil, err
	}
	var probs []Problem
	for _, pd := range pds {
		for _, base := range pd.orphans {
			probs = append(probs, orphanProblem(pd, base))
		}
		var active segmentScan
		err := scanPartition(pd, func(seg segmentFile, sc segmentScan) error {
			probs = append(probs, sc.problems...)
			if len(sc.problems) == 0 {
				probs = append(probs, checkIndexes(seg.pd, seg.path, seg.base, sc, seg.active)...)
			}
			if seg.active {
				active = sc
			}
			return nil
		})
		if err != nil {
			return probs, err
		}
		end, known := dataEnd(pd, active)
		if p, ok := checkLogStart(pd, end, known); ok {
			probs = append(probs, p)
		}
	}
	return probs, nil
}

// orphanProblem describes the index files of base, a segment whose .log is
// gone. Retention deletes a segment's .log before its indexes, so one it
// interrupted leaves them below the first segment: harmless. Anywhere else
// the segment itself was lost, and its records with it (or, as rarely,
// compaction was removing a segment it had emptied).
func orphanProblem(pd partitionDir, base int64) Problem {
	p := Problem{Topic: pd.topic, Partition: pd.partition, Position: -1,
		Path: filepath.Join(pd.dir, segmentName(base)+logSuffix)}
	i, _ := slices.BinarySearch(pd.bases, base)
	switch {
	case i == 0 && len(pd.bases) > 0:
		p.Path = filepath.Join(pd.dir, segmentName(base)+indexSuffix)
		p.Kind, p.Warning = ProblemOrphanIndex, true
		p.Err = fmt.Errorf("index files of a segment retention deleted, below the first segment %d", pd.bases[0])
	case i < len(pd.bases):
		p.Kind = ProblemMissingSegment
		p.Err = fmt.Errorf("the segment file is gone, its index files remain: offsets %d-%d are lost", base, pd.bases[i]-1)
	default:
		p.Kind = ProblemMissingSegment
		p.Err = fmt.Errorf("the segment file is gone, its index files remain: offsets from %d on are lost", base)
	}
	return p
}

// dataEnd returns the offset after the partition's last record as Open
// finds it (a torn tail cut off), from the scan of its active segment;
// false when damage inside that segment hides it until repaired.
func dataEnd(pd partitionDir, active segmentScan) (int64, bool) {
	if len(pd.bases) == 0 {
		return 0, true // Open creates an empty segment at 0
	}
	if len(active.problems) > 0 && active.problems[0].Kind != ProblemTornTail {
		return 0, false
	}
	return active.next, true
}

// checkLogStart checks the log start DeleteRecords stored, given the end
// of the data. Open ignores a file it cannot parse, and the deleted
// records come back. A start past the end means records up to it were lost
// after the deletion (a tail not yet synced at a crash): Open starts the
// log empty there, and Repair makes that durable. A start below the first
// segment is no problem: retention moved past it without rewriting the
// file, and Open takes the segments' start.
func checkLogStart(pd partitionDir, end int64, endKnown bool) (Problem, bool) {
	path := filepath.Join(pd.dir, logStartFile)
	start, err := readLogStart(path)
	if errors.Is(err, os.ErrNotExist) {
		return Problem{}, false
	}
	if err == nil && endKnown && start > end {
		err = fmt.Errorf("log start %d lies past the end of the data at offset %d: the records up to it were lost", start, end)
	}
	if err == nil {
		return Problem{}, false
	}
	return Problem{Topic: pd.topic, Partition: pd.partition, Path: path, Position: -1, Kind: ProblemLogStart, Err: err}, true
}

// readLogStart reads a log start file as Open does.
func readLogStart(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1, err
	}
	return parseLogStart(b)
}

// segmentFile names one segment of a partition directory.
type segmentFile struct {
	pd     partitionDir
	path   string
	base   int64
	limit  int64 // the next segment's base: offsets must stay below it
	active bool  // the partition's last segment
}

// scanPartition scans every segment of a partition directory, in order,
// and hands each one's findings to fn.
func scanPartition(pd partitionDir, fn func(segmentFile, segmentScan) error) error {
	for i, base := range pd.bases {
		seg := segmentFile{pd: pd, path: filepath.Join(pd.dir, segmentName(base)+logSuffix), base: base, limit: 1 << 62, active: i == len(pd.bases)-1}
		if !seg.active {
			seg.limit = pd.bases[i+1]
		}
		sc, err := scanSegment(pd, seg.path, base, seg.limit, seg.active)
		if err != nil {
			return err
		}
		if err := fn(seg, sc); err != nil {
			return err
		}
	}
	return nil
}
