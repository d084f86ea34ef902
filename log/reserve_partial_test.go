package log

import (
	"io/fs"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// partialReserveFS wraps a faultFS so that, while armed, fallocate behaves
// as ext4's does when the disk fills up in the middle of the range:
// ext4_alloc_file_blocks allocates extent by extent and updates i_size
// after each one (ext4_update_inode_size), then returns ENOSPC. The file
// is left longer than it was, by the part that was allocated.
type partialReserveFS struct {
	*faultFS
	mu    sync.Mutex
	armed int // fallocate calls still to fail half-way
	fails int
}

func (f *partialReserveFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	file, err := f.faultFS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &partialReserveFile{File: file, fs: f}, nil
}

type partialReserveFile struct {
	File
	fs *partialReserveFS
}

func (f *partialReserveFile) Reserve(off, n int64) error {
	r, ok := f.File.(reserver)
	if !ok {
		return errReserveUnsupported
	}
	f.fs.mu.Lock()
	fail := f.fs.armed > 0
	if fail {
		f.fs.armed--
		f.fs.fails++
	}
	f.fs.mu.Unlock()
	if !fail {
		return r.Reserve(off, n)
	}
	// Half of the range gets allocated, and the size follows it.
	if err := r.Reserve(off, n/2); err != nil {
		return err
	}
	return &os.PathError{Op: "fallocate", Path: "partial", Err: syscall.ENOSPC}
}

func (f *partialReserveFS) arm(n int) {
	f.mu.Lock()
	f.armed = n
	f.mu.Unlock()
}

// A fallocate that fails with ENOSPC after extending the file part of the
// way (ext4 does: it updates i_size as each extent is allocated) is
// accounted like a zero-fill that fails half-way: the partition counts the
// bytes the file really holds (or the disk budget is exceeded unseen), and
// the seal trims the file to its data (or the sealed segment keeps a zero
// tail, which Verify reports as untrimmed).
func TestReservePartialENOSPCAccounted(t *testing.T) {
	needReserve(t)
	cfg := reserveConfig()
	cfg.SegmentAge = time.Hour
	dir := t.TempDir()
	pfs := &partialReserveFS{faultFS: newFaultFS()}
	e := &faultEnv{t: t, dir: dir, ffs: pfs.faultFS, clock: newTestClock(), lg: newLedger()}
	e.l = openTestLog(t, dir, Options{FS: pfs, Now: e.clock.Now})
	tp, err := e.l.CreateTopic(faultTopic, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if e.p, err = tp.Partition(0); err != nil {
		t.Fatal(err)
	}
	defer func() { e.l.Close() }()

	largeWrites(t, e, 80)
	act := e.p.active()
	for act.alloc-act.size >= 40<<10 { // use up the reserved room
		largeWrites(t, e, 1)
	}
	pfs.arm(1)
	largeWrites(t, e, 1) // its reservation fails half-way; the data fits
	pfs.mu.Lock()
	fails := pfs.fails
	pfs.mu.Unlock()
	if fails != 1 {
		t.Fatalf("%d partial fallocate failures, want 1", fails)
	}
	checkIntegrity(t, e.p, e.lg)
	// The partition must count the bytes the segment files hold.
	checkSizeAccounting(t, e.p)

	// Roll: the seal must cut the file back to its data.
	e.clock.Advance(2 * time.Hour)
	largeWrites(t, e, 1)
	if n := e.numSegments(); n != 2 {
		t.Fatalf("%d segments, want 2 after the roll", n)
	}
	sealed := e.p.segments[0]
	fi, err := os.Stat(sealed.path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != sealed.size {
		t.Errorf("sealed segment file is %d bytes for %d bytes of data: the seal left the partially reserved tail", fi.Size(), sealed.size)
	}
	checkSizeAccounting(t, e.p)
	if err := e.l.Close(); err != nil {
		t.Fatal(err)
	}
	if problems, err := Verify(dir); err != nil || len(problems) > 0 {
		t.Errorf("verify: %v %v", problems, err)
	}
	e.l = openTestLog(t, dir, Options{FS: newFaultFS(), Now: e.clock.Now})
	tp, _ = e.l.Topic(faultTopic)
	e.p, _ = tp.Partition(0)
	checkIntegrity(t, e.p, e.lg)
	checkSizeAccounting(t, e.p)
}
