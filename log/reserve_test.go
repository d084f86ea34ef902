package log

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// largeWrites appends n batches of one 40 KiB record each, one append at a
// time (one write, one fsync each), returning their records.
func largeWrites(t *testing.T, e *faultEnv, n int) {
	t.Helper()
	for range n {
		if _, err := e.append(1, 40<<10); err != nil {
			t.Fatalf("append: %v", err)
		}
	}
}

// needReserve skips a test on a file system that cannot fallocate (the
// log then grows files, as TestReserveUnsupported checks).
func needReserve(t *testing.T) {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "probe")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := (osFile{f}).Reserve(0, 1<<20); errors.Is(err, errReserveUnsupported) {
		t.Skip("the temporary directory's file system cannot fallocate")
	} else if err != nil {
		t.Fatal(err)
	}
}

func reserveConfig() TopicConfig {
	cfg := faultConfig(true)
	cfg.SegmentBytes = 64 << 20
	cfg.MaxMessageBytes = 1 << 20
	cfg.IndexIntervalBytes = 4096
	return cfg
}

// Writes too large to be worth zero-filling reserve blocks ahead
// (fallocate) instead of growing the file at every fsync: the file is
// larger than its data and its blocks are allocated, and the log reads
// back whole after a clean reopen and after a
// crash (reopened without Close).
func TestReserveAheadOfLargeWrites(t *testing.T) {
	needReserve(t)
	e := newFaultEnv(t, reserveConfig())
	largeWrites(t, e, 80) // the first MiB is zero-filled while the average climbs
	e.ffs.mu.Lock()
	reserves := e.ffs.reserves
	e.ffs.mu.Unlock()
	if reserves == 0 {
		t.Fatal("no fallocate for 40 KiB writes")
	}
	act := e.p.active()
	name := act.f.(*faultFile).path
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	if act.alloc <= act.size || fi.Size() != act.alloc {
		t.Fatalf("file %d bytes, alloc %d, data %d: nothing reserved ahead", fi.Size(), act.alloc, act.size)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Blocks*512 < fi.Size()-4096 {
		t.Errorf("%d bytes allocated for a %d-byte file: the tail is a hole, not reserved", st.Blocks*512, fi.Size())
	}
	zeros := 0
	e.ffs.mu.Lock()
	writes := e.ffs.writes
	e.ffs.mu.Unlock()
	// 80 data writes, one 1 MiB zero-fill, index writes; no zero-fill of
	// the reserved part.
	if data, _ := os.ReadFile(name); !allZero(data[act.size:]) {
		t.Error("the reserved tail does not read as zeros")
	} else {
		zeros = len(data) - int(act.size)
	}
	t.Logf("%d writes, %d reserves, %d bytes reserved past the data", writes, reserves, zeros)
	checkIntegrity(t, e.p, e.lg)
	checkSizeAccounting(t, e.p)

	// A crash: the files as they are, opened again without a Close.
	crashed := t.TempDir()
	copyTree(t, e.dir, crashed)
	e.reopen(false)
	checkIntegrity(t, e.p, e.lg)
	l2 := openTestLog(t, crashed, Options{})
	defer l2.Close()
	tp, _ := l2.Topic(faultTopic)
	p2, _ := tp.Partition(0)
	if p2.HighWatermark() != e.p.HighWatermark() {
		t.Fatalf("after a crash the high watermark is %d, want %d", p2.HighWatermark(), e.p.HighWatermark())
	}
	checkIntegrity(t, p2, e.lg)
}

// A full disk at the reservation: fallocate fails whole, the append
// still stores its data if that fits (the file grows instead), or fails
// with ErrFull if not; the partition is not sticky and reads back whole.
func TestReserveENOSPC(t *testing.T) {
	needReserve(t)
	for _, tc := range []struct {
		name     string
		space    int64
		dataFits bool
	}{
		{"reserve fails, data fits", 60 << 10, true},
		{"reserve and data fail", 10 << 10, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newFaultEnv(t, reserveConfig())
			largeWrites(t, e, 80)
			act := e.p.active()
			for act.alloc-act.size >= 40<<10 { // use up the reserved room
				largeWrites(t, e, 1)
			}
			hw := e.p.HighWatermark()
			e.ffs.diskFullFor(tc.space, isDataFile)
			_, err := e.append(1, 40<<10)
			e.ffs.mu.Lock()
			refused := e.ffs.reserveFailures
			e.ffs.mu.Unlock()
			if refused == 0 {
				t.Fatal("the fault did not hit a reservation")
			}
			switch {
			case tc.dataFits && err != nil:
				t.Fatalf("append: %v, want success (the data fits)", err)
			case !tc.dataFits && !errors.Is(err, ErrFull):
				t.Fatalf("append: %v, want ErrFull", err)
			case !tc.dataFits && e.p.HighWatermark() != hw:
				t.Fatalf("high watermark moved from %d to %d on a failed append", hw, e.p.HighWatermark())
			}
			e.wantNotSticky("fallocate ENOSPC")
			checkIntegrity(t, e.p, e.lg)
			checkSizeAccounting(t, e.p)
			e.ffs.diskFree()
			largeWrites(t, e, 3) // space is back
			e.reopen(false)
			checkIntegrity(t, e.p, e.lg)
		})
	}
}

// A file system without fallocate: the file grows as it is written, and
// the log does not ask again for every write, nor for every new segment.
func TestReserveUnsupported(t *testing.T) {
	cfg := reserveConfig()
	cfg.SegmentBytes = 1 << 20 // a roll every 25 writes or so
	e := newFaultEnv(t, cfg)
	e.ffs.noReserve = true
	largeWrites(t, e, 80)
	if n := e.numSegments(); n < 3 {
		t.Fatalf("%d segments: the test needs rolls", n)
	}
	e.ffs.mu.Lock()
	reserves := e.ffs.reserves
	e.ffs.mu.Unlock()
	if reserves != 1 {
		t.Errorf("%d fallocate calls on a file system without it, want 1", reserves)
	}
	act := e.p.active()
	if act.alloc != act.size && act.alloc > act.size+preallocChunk {
		t.Errorf("alloc %d for %d of data", act.alloc, act.size)
	}
	checkIntegrity(t, e.p, e.lg)
	e.reopen(false)
	checkIntegrity(t, e.p, e.lg)
	if got := readAll(t, e.p); len(got) != 80 {
		t.Errorf("%d records after reopen, want 80", len(got))
	}
}

// copyTree copies the regular files under src to dst, as a crash would
// leave them (the page cache is what a reader sees).
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}
