package log

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
// their offsets, so that only the damaged batches are lost; index files
// that disagree with their data are deleted, to be rebuilt on open.
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
	var actions []RepairAction
	err = scanSegments(dir, func(seg segmentFile, sc segmentScan) error {
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
	return actions, err
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
	next := base
	pos := int64(0)
	for pos < size {
		h, b, err := r.batch(pos)
		if errors.Is(err, errEndOfData) && zeroFrom(r, pos, size) {
			break // only zeros follow: the end
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
	return nil
}
