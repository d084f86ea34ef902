package log

import (
	"os"
	"testing"
)

// Coverage (passes): segment_bytes shrunk below the spare's size between
// the spare's creation and its reuse (newActiveSegment truncates the
// reused file, recycle.go/segment.go), then preallocate turned off while
// a spare waits (newSegment deletes it). No existing test takes either
// path. Checked: the reused file is cut to the new segment size, Log.used
// and Partition.Size match the files at each step, the data survives a
// crash copy and a reopen, Verify is clean.
func TestRecycleAfterConfigChanges(t *testing.T) {
	cfg := recycleConfig()
	e := newFaultEnv(t, cfg)
	check := func(when string) {
		t.Helper()
		if used, files := e.l.UsedBytes(), diskFiles(t, e.p.dir); used != files {
			t.Errorf("%s: Log.UsedBytes %d, .log and .spare files %d", when, used, files)
		}
		checkSizeAccounting(t, e.p)
	}
	spare := keepSpareOf(t, e)
	fi, err := os.Stat(spare)
	if err != nil {
		t.Fatal(err)
	}
	check("spare kept")

	// Smaller segments: the spare is cut to the new size at reuse.
	cfg.SegmentBytes = fi.Size() * 3 / 4
	if err := e.l.AlterTopic(faultTopic, cfg); err != nil {
		t.Fatal(err)
	}
	fillUntil(t, e, 2, 300)
	if e.l.Stats().SegmentsRecycled != 1 {
		t.Fatal("the roll did not reuse the spare")
	}
	act := e.p.active()
	if afi, err := os.Stat(act.path); err != nil || afi.Size() != cfg.SegmentBytes {
		t.Errorf("reused file: %v, %v; want %d bytes", afi.Size(), err, cfg.SegmentBytes)
	}
	check("reused after segment_bytes shrank")
	for e.activeSize() < cfg.SegmentBytes/2 {
		e.mustAppend(7, 217)
	}
	check("half written")
	l2, p2 := openCrashCopy(t, e)
	checkIntegrity(t, p2, e.lg)
	checkSizeAccounting(t, p2)
	l2.Close()

	// Fill past the shrunk size: the roll seals a segment no larger.
	fillUntil(t, e, 3, 300)
	checkSealedTrimmed(t, e.p.dir)
	check("rolled out of the reused file")
	expireSealed(t, e)
	if len(spareFiles(t, e.p)) != 1 {
		t.Fatal("no spare kept the second time")
	}
	// Preallocation off: the spare is deleted at the next roll, not reused.
	cfg.Preallocate = false
	if err := e.l.AlterTopic(faultTopic, cfg); err != nil {
		t.Fatal(err)
	}
	fillUntil(t, e, 2, 300)
	if n := e.l.Stats().SegmentsRecycled; n != 1 {
		t.Errorf("SegmentsRecycled %d with preallocate off, want 1", n)
	}
	if len(spareFiles(t, e.p)) != 0 {
		t.Error("spare left after a roll with preallocate off")
	}
	check("preallocate off")
	checkIntegrity(t, e.p, e.lg)
	e.reopen(false)
	check("reopened")
	verifyClean(t, e.dir)
}
