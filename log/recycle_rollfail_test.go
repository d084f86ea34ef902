package log

import (
	"errors"
	"strings"
	"testing"
)

// A roll that renamed the spare to the new segment's name and then failed
// to open it as a segment (here: creating its index file hits ENOSPC) puts
// it back as the spare, still counted: Log.UsedBytes and Partition.Size
// match the files on disk, and the retried roll reuses it. (Before, the
// spare was uncounted while its file stayed on disk under a .log name,
// and the disk budget let other topics write into space that was taken.)
func TestFailedReuseKeepsTheSpare(t *testing.T) {
	e := newFaultEnv(t, recycleConfig())
	keepSpareOf(t, e)
	if used, files := e.l.UsedBytes(), diskFiles(t, e.p.dir); used != files {
		t.Fatalf("before the roll: used %d, files %d", used, files)
	}
	e.ffs.failCreates(1, func(path string) bool { return strings.HasSuffix(path, indexSuffix) })
	var err error
	for e.numSegments() < 2 && err == nil {
		_, err = e.append(10, 300)
	}
	if !errors.Is(err, ErrFull) {
		t.Fatalf("append whose roll cannot create the index: %v, want ErrFull", err)
	}
	e.wantNotSticky("ENOSPC creating an index")
	if len(spareFiles(t, e.p)) != 1 {
		t.Fatal("the spare is not back after the failed roll")
	}
	if used, files := e.l.UsedBytes(), diskFiles(t, e.p.dir); used != files {
		t.Errorf("after the failed roll: Log.UsedBytes %d, files on disk %d (%d bytes uncounted)", used, files, files-used)
	}
	checkSizeAccounting(t, e.p)

	// The next append retries the roll: consistent again.
	e.mustAppend(10, 300)
	if used, files := e.l.UsedBytes(), diskFiles(t, e.p.dir); used != files {
		t.Errorf("after the retried roll: Log.UsedBytes %d, files on disk %d", used, files)
	}
	checkSizeAccounting(t, e.p)
	checkIntegrity(t, e.p, e.lg)
	if n := e.l.Stats().SegmentsRecycled; n != 1 {
		t.Errorf("SegmentsRecycled %d after the retried roll, want 1", n)
	}
}
