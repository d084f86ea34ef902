package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
}

// Kinds of problems.
const (
	ProblemCorrupt     = "corrupt batch"        // bad length, magic or CRC in stored data
	ProblemOffsetOrder = "offsets out of order" // a batch does not follow the one before
	ProblemTornTail    = "torn tail"            // the active segment ends in a partial batch (unclean stop)
	ProblemZeroTail    = "untrimmed tail"       // a sealed segment ends in preallocated zeros
	ProblemIndex       = "bad index"            // an index file is missing or disagrees with the data
)

func (p Problem) String() string {
	return fmt.Sprintf("topic %q partition %d: %s: %s at byte %d: %v", p.Topic, p.Partition, p.Kind, p.Path, p.Position, p.Err)
}

// partitionDir is one partition directory found in a data directory.
type partitionDir struct {
	topic     string
	partition int32
	dir       string
	bases     []int64 // segment base offsets, sorted
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
			for _, f := range files {
				if base, ok := parseSegmentName(f.Name()); ok {
					pd.bases = append(pd.bases, base)
				}
			}
			sort.Slice(pd.bases, func(i, j int) bool { return pd.bases[i] < pd.bases[j] })
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

// segmentScan is what scanning one segment file found.
type segmentScan struct {
	batches  []scannedBatch
	problems []Problem
	end      int64 // position after the last whole batch before any damage
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
			if zeroFrom(r, pos, size) {
				if !active {
					prob(pos, ProblemZeroTail, fmt.Errorf("%d bytes of zeros after the last batch", size-pos))
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
		if h.BaseOffset < next || h.LastOffset() >= limitOffset {
			prob(pos, ProblemOffsetOrder, fmt.Errorf("batch %d..%d after offset %d, segment ends before %d", h.BaseOffset, h.LastOffset(), next, limitOffset))
			break
		}
		sc.batches = append(sc.batches, scannedBatch{pos: pos, h: h})
		next = h.LastOffset() + 1
		pos += int64(h.Size())
	}
	sc.end = pos
	return sc, nil
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
	for i := 0; i+offsetEntrySize <= len(ib); i += offsetEntrySize {
		e := offsetEntry{rel: binary.BigEndian.Uint32(ib[i:]), pos: binary.BigEndian.Uint32(ib[i+4:])}
		if b, ok := starts[e.rel]; !ok || b.pos != int64(e.pos) {
			prob(stem+indexSuffix, int64(i), fmt.Errorf("entry offset %d position %d is not a batch start", base+int64(e.rel), e.pos))
			break
		}
	}
	if len(tb)%timeEntrySize != 0 && !active {
		prob(stem+timeIndexSuffix, int64(len(tb)/timeEntrySize*timeEntrySize), errors.New("partial entry"))
	}
	for i := 0; i+timeEntrySize <= len(tb); i += timeEntrySize {
		ts, rel := int64(binary.BigEndian.Uint64(tb[i:])), binary.BigEndian.Uint32(tb[i+8:])
		if b, ok := starts[rel]; !ok || b.h.MaxTimestamp != ts {
			prob(stem+timeIndexSuffix, int64(i), fmt.Errorf("entry timestamp %d offset %d matches no batch", ts, base+int64(rel)))
			break
		}
	}
	return probs
}

// Verify checks every segment and index of the data directory dir: batch
// lengths, magic, CRCs, offset order, and that the indexes point where they
// say. It reads only. A torn tail on an active segment is reported too;
// opening the log (or Repair) truncates it.
func Verify(dir string) ([]Problem, error) {
	var probs []Problem
	err := scanSegments(dir, func(seg segmentFile, sc segmentScan) error {
		probs = append(probs, sc.problems...)
		if len(sc.problems) == 0 {
			probs = append(probs, checkIndexes(seg.pd, seg.path, seg.base, sc, seg.active)...)
		}
		return nil
	})
	return probs, err
}

// segmentFile names one segment of a partition directory.
type segmentFile struct {
	pd     partitionDir
	path   string
	base   int64
	limit  int64 // the next segment's base: offsets must stay below it
	active bool  // the partition's last segment
}

// scanSegments scans every segment of the data directory dir, in order,
// and hands each one's findings to fn.
func scanSegments(dir string, fn func(segmentFile, segmentScan) error) error {
	pds, err := partitionDirs(dir)
	if err != nil {
		return err
	}
	for _, pd := range pds {
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
	}
	return nil
}
