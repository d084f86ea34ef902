package log

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// Regression (found in review): Repair turns a recycled active segment into a sealed segment that
// still holds the end mark and the deleted segment's old batches, and
// nothing ever trims it.
//
// The state repaired is the one checkLogStart/repairLogStart exist for: a
// sync: interval (or never) topic, DeleteRecords up to the high watermark
// (the log start file is synced), then a power loss that loses the unsynced
// appends. In a recycled file, losing a write means its blocks read back as
// what the last synced write left there: the data, its end mark, and the old
// segment's batches. Verify reports the log start past the end; Repair
// (repairLogStart, repair.go) creates an empty segment at the log start, so
// the recycled file stops being the last segment without being truncated
// (scanSegment reports no problem on an active segment ending in an end
// mark, and trimZeroTail, segment.go, which the Open inside Repair runs on
// the second-to-last segment, only cuts zeros). Afterwards Verify reports an
// "untrimmed tail" on a sealed segment, the sealed segment's size and
// Partition.Size count up to a segment of old content as data, and size
// retention counts it too. Worse, MaxTimestamp and OffsetForTime (Kafka's
// ListOffsets) walk a sealed segment's batches up to its file size, reach
// the end mark and fail with a CorruptionError. A repaired directory must
// verify clean and serve its partition without errors.
//
// Fixed both ways: trimZeroTail also cuts at an end mark (and at an old
// batch at position 0), and repairLogStart truncates the previously last
// segment to its data before creating the new one.
func TestRepairLogStartPastRecycledSegment(t *testing.T) {
	cfg := recycleConfig()
	cfg.Sync = SyncNever
	e := newFaultEnv(t, cfg)
	keepSpareOf(t, e)
	fillUntil(t, e, 2, 300) // roll into the spare
	if e.l.Stats().SegmentsRecycled != 1 {
		t.Fatal("the roll did not recycle the spare")
	}
	for range 20 {
		e.mustAppend(10, 300)
	}
	act := e.p.active()
	e.p.ioMu.Lock() // an interval fsync
	err := e.p.syncLocked(e.clock.Now())
	e.p.ioMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	// What the disk holds of the active segment at the last fsync.
	synced, err := os.ReadFile(act.path)
	if err != nil {
		t.Fatal(err)
	}
	syncedHW := e.p.HighWatermark()
	// More appends, never synced, then DeleteRecords of all of them.
	for range 10 {
		e.mustAppend(10, 300)
	}
	if _, err := e.p.DeleteRecords(-1); err != nil {
		t.Fatal(err)
	}
	start := e.p.LogStartOffset()
	if start <= syncedHW {
		t.Fatalf("log start %d not past the synced end %d", start, syncedHW)
	}

	// Power loss: the active segment's unsynced writes are lost, the
	// log start file (synced by DeleteRecords) is not.
	crashed := t.TempDir()
	copyTree(t, e.dir, crashed)
	pdir := filepath.Join(crashed, topicsDir, faultTopic, "0")
	if err := os.WriteFile(filepath.Join(pdir, filepath.Base(act.path)), synced, 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(pdir, logStartFile)); err != nil || string(b) != strconv.FormatInt(start, 10)+"\n" {
		t.Fatalf("log start file %q, %v", b, err)
	}

	probs, err := Verify(crashed)
	if err != nil {
		t.Fatal(err)
	}
	if !hasProblem(probs, ProblemLogStart, filepath.Join(pdir, logStartFile)) {
		t.Fatalf("verify before repair: %v, want the log start past the end", probs)
	}
	acts, err := Repair(crashed)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range acts {
		t.Logf("repair: %v", a)
	}
	// The repaired directory verifies clean and every sealed segment is
	// trimmed to its data (the package's promise).
	verifyClean(t, crashed)
	checkSealedTrimmed(t, pdir)

	l2 := openTestLog(t, crashed, Options{Now: e.clock.Now})
	defer l2.Close()
	tp, err := l2.Topic(faultTopic)
	if err != nil {
		t.Fatal(err)
	}
	p2, _ := tp.Partition(0)
	checkSizeAccounting(t, p2)
	if p2.LogStartOffset() != start || p2.HighWatermark() != start {
		t.Errorf("after repair: log [%d, %d), want empty at %d", p2.LogStartOffset(), p2.HighWatermark(), start)
	}
	// Timestamp lookups walk the sealed segment's batches up to its size:
	// into the end mark, which they take for damage.
	if _, _, _, err := p2.MaxTimestamp(); err != nil {
		t.Errorf("MaxTimestamp after repair: %v", err)
	}
	if _, _, err := p2.OffsetForTime(0); err != nil {
		t.Errorf("OffsetForTime after repair: %v", err)
	}
	p2.segMu.RLock()
	first := p2.segments[0]
	p2.segMu.RUnlock()
	if first.sealed {
		if _, end, size := scanSegmentFile(t, first.path); end != size {
			t.Errorf("sealed segment %s holds %d bytes past its data (end mark and old batches) that Partition.Size and size retention count", filepath.Base(first.path), size-end)
		}
	}
}
