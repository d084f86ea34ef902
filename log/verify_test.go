package log

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// buildClosedLog creates topic name with cfg in a fresh data directory,
// calls appendFn n times on its partition 0 and closes the log. It returns
// the data directory and the partition directory.
func buildClosedLog(t *testing.T, name string, cfg TopicConfig, n int, appendFn func(p *Partition, i int)) (string, string) {
	t.Helper()
	dir := t.TempDir()
	clock := newTestClock()
	l := openTestLog(t, dir, Options{Now: clock.Now})
	tp, err := l.CreateTopic(name, cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := tp.Partition(0)
	for i := 0; i < n; i++ {
		appendFn(p, i)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, p.dir
}

// appendTimestamped returns an appendFn for buildClosedLog that appends
// one single-record batch of 100 bytes per call, timestamps growing by a
// second from ts0.
func appendTimestamped(t *testing.T, ts0 int64) func(p *Partition, i int) {
	return func(p *Partition, i int) {
		t.Helper()
		recs := []Record{{Timestamp: ts0 + int64(i)*1000, Key: []byte{'k', byte('a' + i%5)}, Value: bytes.Repeat([]byte{'v'}, 100)}}
		if _, err := p.AppendRecords(recs, DefaultBatchOptions); err != nil {
			t.Fatal(err)
		}
	}
}

// atLeastThreeSegments returns the segment files of partDir, failing the
// test unless there is a sealed segment with sealed segments around it.
func atLeastThreeSegments(t *testing.T, partDir string) []string {
	t.Helper()
	segs := segmentFiles(t, partDir)
	if len(segs) < 3 {
		t.Fatalf("setup: %d segments, want at least 3", len(segs))
	}
	return segs
}

// smallSegmentsConfig makes segments of a few batches, each indexed.
func smallSegmentsConfig() TopicConfig {
	cfg := hkConfig()
	cfg.SegmentBytes = 2048
	cfg.IndexIntervalBytes = 64
	return cfg
}

// verifyProblems runs Verify on dir and returns what it reported.
func verifyProblems(t *testing.T, dir string) []Problem {
	t.Helper()
	probs, err := Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	return probs
}

// hasProblem reports whether probs holds a problem of kind about path.
func hasProblem(probs []Problem, kind, path string) bool {
	return slices.ContainsFunc(probs, func(p Problem) bool { return p.Kind == kind && p.Path == path })
}

// A sealed segment's time index must end with the segment's greatest
// timestamp (time retention reads only that entry): Verify reports one
// that lost its last entry.
func TestVerifyTimeIndexMissingLastEntry(t *testing.T) {
	ts0 := time.Now().Add(-time.Hour).UnixMilli()
	dir, partDir := buildClosedLog(t, "t", smallSegmentsConfig(), 60, appendTimestamped(t, ts0))
	segs := atLeastThreeSegments(t, partDir)
	tix := timeIndexPathOf(segs[1])
	b, err := os.ReadFile(tix)
	if err != nil || len(b) < 2*timeEntrySize {
		t.Fatalf("setup: time index %d bytes, %v", len(b), err)
	}
	if probs := verifyProblems(t, dir); len(probs) != 0 {
		t.Fatalf("setup: Verify of the intact log reported:\n%s", problemList(probs))
	}
	if err := os.WriteFile(tix, b[:len(b)-timeEntrySize], 0o644); err != nil {
		t.Fatal(err)
	}
	if probs := verifyProblems(t, dir); !hasProblem(probs, ProblemIndex, tix) {
		t.Errorf("Verify of a sealed segment whose time index lacks its last entry (the segment's greatest timestamp) reported:\n%s", problemList(probs))
	}
}

// Time index entries never go back in timestamp or offset: Verify
// reports two entries swapped.
func TestVerifyTimeIndexOutOfOrder(t *testing.T) {
	ts0 := time.Now().Add(-time.Hour).UnixMilli()
	dir, partDir := buildClosedLog(t, "t", smallSegmentsConfig(), 60, appendTimestamped(t, ts0))
	segs := atLeastThreeSegments(t, partDir)
	tix := timeIndexPathOf(segs[1])
	b, err := os.ReadFile(tix)
	if err != nil || len(b) < 3*timeEntrySize {
		t.Fatalf("setup: time index %d bytes, %v", len(b), err)
	}
	e0 := append([]byte(nil), b[:timeEntrySize]...)
	copy(b[:timeEntrySize], b[timeEntrySize:2*timeEntrySize])
	copy(b[timeEntrySize:2*timeEntrySize], e0)
	if err := os.WriteFile(tix, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if probs := verifyProblems(t, dir); !hasProblem(probs, ProblemIndex, tix) {
		t.Errorf("Verify of a time index whose first two entries are swapped reported:\n%s", problemList(probs))
	}
}

// Offset index entries grow strictly in offset and position: Verify
// reports two entries swapped.
func TestVerifyOffsetIndexOutOfOrder(t *testing.T) {
	ts0 := time.Now().Add(-time.Hour).UnixMilli()
	dir, partDir := buildClosedLog(t, "t", smallSegmentsConfig(), 60, appendTimestamped(t, ts0))
	segs := atLeastThreeSegments(t, partDir)
	ix := indexPathOf(segs[1])
	b, err := os.ReadFile(ix)
	if err != nil || len(b) < 3*offsetEntrySize {
		t.Fatalf("setup: index %d bytes, %v", len(b), err)
	}
	e0 := append([]byte(nil), b[:offsetEntrySize]...)
	copy(b[:offsetEntrySize], b[offsetEntrySize:2*offsetEntrySize])
	copy(b[offsetEntrySize:2*offsetEntrySize], e0)
	if err := os.WriteFile(ix, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if probs := verifyProblems(t, dir); !hasProblem(probs, ProblemIndex, ix) {
		t.Errorf("Verify of an offset index whose first two entries are swapped reported:\n%s", problemList(probs))
	}
}

// Open ignores a log-start-offset file it cannot parse, which brings back
// the records DeleteRecords removed: Verify reports it. A stored start
// below the first segment, where retention leaves it, is no problem.
func TestVerifyLogStartOffset(t *testing.T) {
	ts0 := time.Now().Add(-time.Hour).UnixMilli()
	dir, partDir := buildClosedLog(t, "t", smallSegmentsConfig(), 60, func(p *Partition, i int) {
		appendTimestamped(t, ts0)(p, i)
		if i == 59 {
			if _, err := p.DeleteRecords(5); err != nil {
				t.Fatal(err)
			}
		}
	})
	path := filepath.Join(partDir, logStartFile)
	if probs := verifyProblems(t, dir); len(probs) != 0 {
		t.Fatalf("Verify after DeleteRecords reported:\n%s", problemList(probs))
	}

	// Retention deleting the first segment leaves the stored start below
	// the new first one.
	segs := atLeastThreeSegments(t, partDir)
	for _, p := range []string{segs[0], indexPathOf(segs[0]), timeIndexPathOf(segs[0])} {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	if probs := verifyProblems(t, dir); len(probs) != 0 {
		t.Errorf("Verify of a log start below the first segment (retention passed it) reported:\n%s", problemList(probs))
	}

	if err := os.WriteFile(path, []byte("x5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if probs := verifyProblems(t, dir); !hasProblem(probs, ProblemLogStart, path) {
		t.Errorf("Verify of an unreadable %s (Open ignores it: the deleted records come back) reported:\n%s", logStartFile, problemList(probs))
	}
}

// A segment whose .log file is gone while its .index and .timeindex remain
// lost its records: Verify reports it, and Repair removes the index files,
// naming the offsets lost. Index files below the first segment, which an
// interrupted retention leaves, are only a warning, and Repair removes
// them too.
func TestVerifyMissingSegmentWithOrphanIndex(t *testing.T) {
	ts0 := time.Now().Add(-time.Hour).UnixMilli()
	dir, partDir := buildClosedLog(t, "t", smallSegmentsConfig(), 60, appendTimestamped(t, ts0))
	segs := atLeastThreeSegments(t, partDir)
	for _, seg := range []string{segs[0], segs[2]} {
		if err := os.Remove(seg); err != nil {
			t.Fatal(err)
		}
	}
	probs := verifyProblems(t, dir)
	if !hasProblem(probs, ProblemMissingSegment, segs[2]) {
		t.Errorf("Verify of a partition whose segment %s is missing (its .index and .timeindex remain) reported:\n%s", filepath.Base(segs[2]), problemList(probs))
	}
	leftover := slices.IndexFunc(probs, func(p Problem) bool { return p.Kind == ProblemOrphanIndex })
	if leftover < 0 || !probs[leftover].Warning || probs[leftover].Path != indexPathOf(segs[0]) {
		t.Errorf("Verify did not warn of the index files left below the first segment; it reported:\n%s", problemList(probs))
	}

	if _, err := Repair(dir); err != nil {
		t.Fatal(err)
	}
	for _, seg := range []string{segs[0], segs[2]} {
		for _, p := range []string{indexPathOf(seg), timeIndexPathOf(seg)} {
			if _, err := os.Stat(p); err == nil {
				t.Errorf("Repair left %s", filepath.Base(p))
			}
		}
	}
	if probs := verifyProblems(t, dir); len(probs) != 0 {
		t.Errorf("Verify after Repair reported:\n%s", problemList(probs))
	}
}

// Preallocated zeros too short to hold a batch header (the data ends a
// few bytes before a preallocated chunk does) end the data of the active
// segment like any other zeros: Verify and Dump see a clean end, not a
// truncated batch.
func TestVerifyShortZeroTail(t *testing.T) {
	dir, pdir := buildClosedLog(t, "short", hkConfig(), 5, appendTimestamped(t, 1_700_000_000_000))
	segs := segmentFiles(t, pdir)
	last := segs[len(segs)-1]
	fi, err := os.Stat(last)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(last, fi.Size()+batchHeaderSize-1); err != nil {
		t.Fatal(err)
	}
	for _, pr := range verifyProblems(t, dir) {
		t.Errorf("verify: %v", pr)
	}
	var out bytes.Buffer
	if err := Dump(&out, last, false); err != nil {
		t.Errorf("dump: %v", err)
	}
	l := openTestLog(t, dir, Options{})
	defer l.Close()
	tp, err := l.Topic("short")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := tp.Partition(0)
	if got := len(readAll(t, p)); got != 5 {
		t.Errorf("%d records after reopening, want 5", got)
	}
}
