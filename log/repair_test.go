package log

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// tornBelowLogStart builds a partition of one segment whose every record
// DeleteRecords removed, then tears its last batch, as a crash before the
// data was synced can. It returns the data directory and the stored log
// start.
func tornBelowLogStart(t *testing.T) (string, int64) {
	t.Helper()
	ts0 := time.Now().Add(-time.Hour).UnixMilli()
	cfg := smallSegmentsConfig()
	cfg.SegmentBytes = 1 << 20
	var start int64
	dir, pdir := buildClosedLog(t, "t", cfg, 10, func(p *Partition, i int) {
		appendTimestamped(t, ts0)(p, i)
		if i == 9 {
			var err error
			if start, err = p.DeleteRecords(-1); err != nil {
				t.Fatal(err)
			}
		}
	})
	segs := segmentFiles(t, pdir)
	act := segs[len(segs)-1]
	batches, _, _ := scanSegmentFile(t, act)
	last := batches[len(batches)-1]
	flipByte(t, act, last.pos+last.size-3)
	return dir, start
}

// checkLogStartKept opens dir and checks that the log starts at start,
// empty, and that the next append gets offset start: no deleted record is
// readable again, and no offset a deleted record had is handed out again.
func checkLogStartKept(t *testing.T, dir string, start int64) {
	t.Helper()
	l := openTestLog(t, dir, Options{})
	defer l.Close()
	tp, _ := l.Topic("t")
	p, _ := tp.Partition(0)
	if got, hw := p.LogStartOffset(), p.HighWatermark(); got != start || hw != start {
		t.Errorf("log start %d, high watermark %d; want both at the stored log start %d", got, hw, start)
	}
	res, err := p.AppendRecords([]Record{{Value: []byte("after")}}, DefaultBatchOptions)
	if err != nil {
		t.Fatal(err)
	}
	if res.BaseOffset != start {
		t.Errorf("the next append got offset %d, want %d", res.BaseOffset, start)
	}
}

// Records up to the log start were deleted even when the data now ends
// before it (a torn tail cut at open): the log opens empty at the stored
// start.
func TestOpenKeepsLogStartPastTheData(t *testing.T) {
	dir, start := tornBelowLogStart(t)
	checkLogStartKept(t, dir, start)
}

// Verify reports a log start past the end of the data; Repair truncates
// the torn tail and makes the log go on from the stored start.
func TestRepairKeepsLogStart(t *testing.T) {
	dir, start := tornBelowLogStart(t)
	probs := verifyProblems(t, dir)
	if !hasProblem(probs, ProblemLogStart, logStartPath(dir)) {
		t.Errorf("Verify of a log start past the end of the data reported:\n%s", problemList(probs))
	}
	if _, err := Repair(dir); err != nil {
		t.Fatal(err)
	}
	if probs := verifyProblems(t, dir); len(probs) != 0 {
		t.Errorf("Verify after Repair reported:\n%s", problemList(probs))
	}
	checkLogStartKept(t, dir, start)
}

// logStartPath returns the log start file of topic t's partition 0.
func logStartPath(dir string) string {
	return filepath.Join(dir, topicsDir, "t", "0", logStartFile)
}

// The base offset is the one header field the CRC does not cover. When it
// is damaged so that a batch takes the offset of the one after it, Repair
// puts the damaged batch back at its offset and keeps the intact one that
// follows: every record stays at its own offset.
func TestRepairDamagedBaseOffset(t *testing.T) {
	dir, partDir := buildClosedLog(t, "t", smallSegmentsConfig(), 60, func(p *Partition, i int) {
		recs := []Record{{Timestamp: 1_700_000_000_000 + int64(i), Value: []byte(fmt.Sprintf("v%d", i))}}
		if _, err := p.AppendRecords(recs, DefaultBatchOptions); err != nil {
			t.Fatal(err)
		}
	})
	segs := atLeastThreeSegments(t, partDir)
	batches, _, _ := scanSegmentFile(t, segs[1])
	b := batches[3]
	if b.records != 1 || batches[4].base != b.base+1 {
		t.Fatalf("setup: batch %+v then %+v", b, batches[4])
	}
	var field [8]byte
	binary.BigEndian.PutUint64(field[:], uint64(b.base+1))
	patchFile(t, segs[1], b.pos+batchBaseOffsetPos, field[:])
	if probs := verifyProblems(t, dir); !hasProblem(probs, ProblemOffsetOrder, segs[1]) {
		t.Fatalf("Verify of a damaged base offset reported:\n%s", problemList(probs))
	}
	if _, err := Repair(dir); err != nil {
		t.Fatal(err)
	}
	if probs := verifyProblems(t, dir); len(probs) != 0 {
		t.Errorf("Verify after Repair reported:\n%s", problemList(probs))
	}
	l := openTestLog(t, dir, Options{})
	defer l.Close()
	tp, _ := l.Topic("t")
	p, _ := tp.Partition(0)
	got := map[int64]string{}
	for _, r := range readAll(t, p) {
		got[r.Offset] = string(r.Value)
	}
	for _, off := range []int64{b.base, b.base + 1} {
		if v, want := got[off], fmt.Sprintf("v%d", off); v != want {
			t.Errorf("after repair offset %d holds %q, want %q", off, v, want)
		}
	}
}

// A damaged base offset in the active segment's tail (the batch after it
// says where it starts) is put back at open, as repair does, rather than
// the good batches after it being cut off as a torn tail.
func TestOpenRestoresDamagedBaseOffsetInActiveSegment(t *testing.T) {
	dir, partDir := buildClosedLog(t, "t", DefaultTopicConfig(), 6, func(p *Partition, i int) {
		recs := []Record{{Timestamp: 1_700_000_000_000 + int64(i), Value: []byte(fmt.Sprintf("v%d", i))}}
		if _, err := p.AppendRecords(recs, DefaultBatchOptions); err != nil {
			t.Fatal(err)
		}
	})
	segs := segmentFiles(t, partDir)
	active := segs[len(segs)-1]
	batches, _, _ := scanSegmentFile(t, active)
	if len(batches) < 4 {
		t.Fatalf("setup: %d batches in the active segment", len(batches))
	}
	b := batches[2]
	var field [8]byte
	binary.BigEndian.PutUint64(field[:], uint64(b.base+7))
	patchFile(t, active, b.pos+batchBaseOffsetPos, field[:])

	for range 2 { // and again after a clean close
		l := openTestLog(t, dir, Options{})
		tp, _ := l.Topic("t")
		p, _ := tp.Partition(0)
		recs := readAll(t, p)
		if len(recs) != 6 || p.HighWatermark() != 6 {
			t.Fatalf("after open: %d records, high watermark %d; want 6", len(recs), p.HighWatermark())
		}
		for _, r := range recs {
			if want := fmt.Sprintf("v%d", r.Offset); string(r.Value) != want {
				t.Errorf("offset %d holds %q, want %q", r.Offset, r.Value, want)
			}
		}
		l.Close()
	}
}
