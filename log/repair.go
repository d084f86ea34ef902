package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// RepairAction is one change Repair made.
type RepairAction struct {
	Topic     string
	Partition int32
	Path      string
	Action    string
	// LostBytes and LostOffsets say what could not be salvaged: byte
	// count, and offset ranges [from, to] missing between kept batches.
	LostBytes   int64
	LostOffsets [][2]int64
}

func (a RepairAction) String() string {
	s := fmt.Sprintf("topic %q partition %d: %s: %s", a.Topic, a.Partition, a.Path, a.Action)
	if a.LostBytes > 0 {
		s += fmt.Sprintf(" (%d bytes lost", a.LostBytes)
		for _, r := range a.LostOffsets {
			s += fmt.Sprintf(", offsets %d-%d", r[0], r[1])
		}
		s += ")"
	}
	return s
}

// Repair fixes what Verify reports in the data directory dir, which must
// not be in use (it takes meta.db's lock to make sure). Torn tails and
// untrimmed zeros are truncated; a segment with damage in the middle is
// rewritten with every whole, valid batch found around the damage, keeping
// their offsets, so that only the damaged batches are lost (a batch whose
// base offset alone is damaged is put back at its offset); index files
// that disagree with their data are deleted, to be rebuilt on open, and
// so are those of a segment file that is gone. A log start past the end
// of the data gets an empty segment there; one that cannot be parsed is
// left for the administrator.
func Repair(dir string) ([]RepairAction, error) {
	actions, err := repairFiles(dir)
	if err != nil || len(actions) == 0 {
		return actions, err
	}
	// Opening the log rebuilds the index files removed above.
	l, err := Open(dir, Options{})
	if err != nil {
		return actions, fmt.Errorf("reopen after repair: %w", err)
	}
	return actions, l.Close()
}

func repairFiles(dir string) ([]RepairAction, error) {
	meta, err := OpenMeta(filepath.Join(dir, metaFile))
	if err != nil {
		return nil, err
	}
	defer meta.Close()
	pds, err := partitionDirs(dir)
	if err != nil {
		return nil, err
	}
	var actions []RepairAction
	for _, pd := range pds {
		acts, err := repairPartition(pd)
		actions = append(actions, acts...)
		if err != nil {
			return actions, err
		}
	}
	return actions, nil
}

// repairPartition fixes one partition directory: index files whose
// segment is gone, then each segment, then the stored log start against
// the data that is left.
func repairPartition(pd partitionDir) ([]RepairAction, error) {
	var actions []RepairAction
	for _, base := range pd.orphans {
		p := orphanProblem(pd, base)
		logPath := filepath.Join(pd.dir, segmentName(base)+logSuffix)
		if err := removeIndexes(logPath); err != nil {
			return actions, err
		}
		actions = append(actions, RepairAction{Topic: pd.topic, Partition: pd.partition, Path: logPath,
			Action: fmt.Sprintf("removed the index files (%s: %v)", p.Kind, p.Err)})
	}
	err := scanPartition(pd, func(seg segmentFile, sc segmentScan) error {
		act := RepairAction{Topic: seg.pd.topic, Partition: seg.pd.partition, Path: seg.path}
		switch {
		case len(sc.problems) == 0:
			if len(checkIndexes(seg.pd, seg.path, seg.base, sc, seg.active)) == 0 {
				return nil
			}
			act.Action = "removed index files that disagree with the data (rebuilt on open)"
		case sc.problems[0].Kind == ProblemZeroTail || sc.problems[0].Kind == ProblemTornTail:
			lost, err := truncateFile(seg.path, sc.end)
			if err != nil {
				return err
			}
			act.Action, act.LostBytes = fmt.Sprintf("truncated to %d bytes (%s)", sc.end, sc.problems[0].Kind), lost
			if sc.problems[0].Kind == ProblemZeroTail {
				act.LostBytes = 0 // zeros are not data
			}
		default:
			if err := salvage(seg.path, seg.base, seg.limit, &act); err != nil {
				return err
			}
		}
		actions = append(actions, act)
		return removeIndexes(seg.path)
	})
	if err != nil {
		return actions, err
	}
	act, ok, err := repairLogStart(pd)
	if ok {
		actions = append(actions, act)
	}
	return actions, err
}

// repairLogStart handles a stored log start past the end of the data
// (records up to it were lost after DeleteRecords): it creates an empty
// segment at the log start, so that the log durably goes on from there,
// as Kafka does, rather than handing out again offsets that the deleted
// records had and consumers may have seen. A file that cannot be parsed
// is left: only the administrator knows where the log started.
func repairLogStart(pd partitionDir) (RepairAction, bool, error) {
	act := RepairAction{Topic: pd.topic, Partition: pd.partition, Path: filepath.Join(pd.dir, logStartFile)}
	start, err := readLogStart(act.Path)
	if errors.Is(err, os.ErrNotExist) {
		return act, false, nil
	}
	if err != nil {
		act.Action = fmt.Sprintf("left as it is (%v): write the log start offset into it, or delete it to serve every record of the segments again", err)
		return act, true, nil
	}
	end, endPos, known, err := partitionEnd(pd)
	if err != nil || !known || start <= end {
		return act, false, err
	}
	if n := len(pd.bases); n > 0 {
		// The last segment is sealed by the new one: trimmed to its data,
		// as every sealed segment is (preallocated zeros, or a recycled
		// file's old content, follow it).
		if _, err := truncateFile(filepath.Join(pd.dir, segmentName(pd.bases[n-1])+logSuffix), endPos); err != nil {
			return act, false, err
		}
	}
	act.Path = filepath.Join(pd.dir, segmentName(start)+logSuffix)
	f, err := os.OpenFile(act.Path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return act, false, err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = (OSFS{}).SyncDir(pd.dir)
	}
	act.Action = fmt.Sprintf("created an empty segment at the log start %d, past the end of the data at %d: offsets go on from the log start", start, end)
	return act, err == nil, err
}

// partitionEnd rescans a partition's active segment and returns the
// offset after its last record and the file position after its last batch,
// and false if damage hides them.
func partitionEnd(pd partitionDir) (int64, int64, bool, error) {
	if len(pd.bases) == 0 {
		return 0, 0, true, nil
	}
	base := pd.bases[len(pd.bases)-1]
	sc, err := scanSegment(pd, filepath.Join(pd.dir, segmentName(base)+logSuffix), base, 1<<62, true)
	if err != nil {
		return 0, 0, false, err
	}
	end, known := dataEnd(pd, sc)
	return end, sc.end, known, nil
}

func truncateFile(path string, size int64) (int64, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if err := f.Truncate(size); err != nil {
		return 0, err
	}
	return fi.Size() - size, f.Sync()
}

func removeIndexes(logPath string) error {
	stem := strings.TrimSuffix(logPath, logSuffix)
	for _, p := range []string{stem + indexSuffix, stem + timeIndexSuffix} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// salvage rewrites a damaged segment with every whole, valid batch it
// holds, in offset order, and replaces it atomically.
func salvage(path string, base, limit int64, act *RepairAction) error {
	f, r, size, err := openSegmentFile(path)
	if err != nil {
		return err
	}
	defer f.Close()

	tmpPath := path + tmpSuffix
	out, err := os.OpenFile(tmpPath, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer os.Remove(tmpPath) // after a successful rename this fails harmlessly
	var kept int64
	restored := 0
	next := base
	pos := int64(0)
	for pos < size {
		h, b, err := r.batch(pos)
		if errors.Is(err, errEndOfData) && restUnused(r, pos, size) {
			break // only zeros follow, or a recycled file's old content: the end
		}
		if err == nil && damagedBase(r, pos, size, next, h) {
			h, b, err = restoredBatch(r, pos, next)
			restored++
		}
		if err != nil || h.BaseOffset < next || h.LastOffset() >= limit {
			found, fh, ok := findNextBatch(r, pos+1, size, next, limit)
			if !ok {
				break
			}
			if fh.BaseOffset > next {
				act.LostOffsets = append(act.LostOffsets, [2]int64{next, fh.BaseOffset - 1})
			}
			pos = found
			continue
		}
		if _, err := out.Write(b); err != nil {
			out.Close()
			return err
		}
		kept += int64(len(b))
		next = h.LastOffset() + 1
		pos += int64(h.Size())
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmpPath, path); err != nil {
		return err
	}
	if err := (OSFS{}).SyncDir(filepath.Dir(path)); err != nil {
		return err
	}
	act.LostBytes = size - kept
	act.Action = fmt.Sprintf("rewrote the segment with the %d bytes of valid batches around the damage", kept)
	if restored > 0 {
		act.Action += fmt.Sprintf(", %d of them put back at the offset their damaged base offset field lost", restored)
	}
	return nil
}

// restoredBatch reads the batch at pos again (damagedBase read past it,
// reusing the reader's buffer) as a copy whose base offset is base.
func restoredBatch(r *batchReader, pos, base int64) (BatchHeader, []byte, error) {
	h, b, err := r.batch(pos)
	if err != nil {
		return h, nil, err
	}
	b = slices.Clone(b)
	binary.BigEndian.PutUint64(b[batchBaseOffsetPos:], uint64(base))
	h.BaseOffset = base
	return h, b, nil
}
