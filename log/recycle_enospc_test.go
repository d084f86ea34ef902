package log

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

// capFS is a disk of a fixed capacity over the real file system: the files
// under root may hold capacity bytes in all, and, unlike faultFS's
// diskFull, deleting or truncating a file gives its space back. A write
// that would pass the capacity stores what fits and returns ENOSPC;
// fallocate is all or nothing.
type capFS struct {
	OSFS
	root string

	mu       sync.Mutex
	capacity int64 // 0: unlimited
}

func (c *capFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := c.OSFS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &capFile{File: f, fs: c, path: name}, nil
}

func (c *capFS) setCapacity(n int64) {
	c.mu.Lock()
	c.capacity = n
	c.mu.Unlock()
}

// usage is the bytes of every regular file under root.
func (c *capFS) usage() int64 {
	var n int64
	filepath.WalkDir(c.root, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

type capFile struct {
	File
	fs   *capFS
	path string
}

func (f *capFile) WriteAt(p []byte, off int64) (int, error) {
	c := f.fs
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.capacity == 0 {
		return f.File.WriteAt(p, off)
	}
	fi, err := f.File.Stat()
	if err != nil {
		return 0, err
	}
	end := off + int64(len(p))
	grow := end - max(fi.Size(), off)
	if grow <= 0 {
		return f.File.WriteAt(p, off)
	}
	free := max(c.capacity-c.usage(), 0)
	if grow <= free {
		return f.File.WriteAt(p, off)
	}
	n := int(max(fi.Size(), off) + free - off)
	n = max(min(n, len(p)), 0)
	m, err := f.File.WriteAt(p[:n], off)
	if err != nil {
		return m, err
	}
	return m, &os.PathError{Op: "write", Path: f.path, Err: syscall.ENOSPC}
}

func (f *capFile) Reserve(off, n int64) error {
	r, ok := f.File.(reserver)
	if !ok {
		return errReserveUnsupported
	}
	c := f.fs
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.capacity > 0 {
		fi, err := f.File.Stat()
		if err != nil {
			return err
		}
		if grow := off + n - fi.Size(); grow > 0 && grow > c.capacity-c.usage() {
			return &os.PathError{Op: "fallocate", Path: f.path, Err: syscall.ENOSPC}
		}
	}
	return r.Reserve(off, n)
}

// Regression (found in review): with no disk budget (the default, disk_budget 0), a spare is never
// given back when the disk really fills. Log.makeRoom's dropSpares
// (retention.go) runs only for the budget; a write that fails with ENOSPC
// (recoverableWriteError, flush.go) frees nothing, and retention or
// DeleteRecords, the ways space returns, now keep the deleted segment's
// file as a spare (keepSpare skips its room check when there is no
// budget). So after the disk fills, deleting records frees nothing: the
// partition refuses every append with ErrFull ("goes on once space
// returns", README) while a segment's worth of disk holds no record. Before
// the feature the deleted segment's space came back and appends went on.
//
// Fixed: a write that fails with ENOSPC deletes every spare and goes again
// (Log.noSpace), and for ten minutes after, retention deletes segments
// rather than keep spares.
func TestSpareHeldThroughRealENOSPC(t *testing.T) {
	dir := t.TempDir()
	cfs := &capFS{root: filepath.Join(dir, topicsDir)}
	clock := newTestClock()
	l := openTestLog(t, dir, Options{FS: cfs, Now: clock.Now})
	defer l.Close()
	tp, err := l.CreateTopic(faultTopic, recycleConfig())
	if err != nil {
		t.Fatal(err)
	}
	p, _ := tp.Partition(0)
	lg := newLedger()
	appendOne := func() error {
		recs := lg.fresh(10, 300)
		res, err := p.AppendRecords(recs, DefaultBatchOptions)
		if err == nil {
			lg.ack(res, recs)
		}
		return err
	}
	numSegs := func() int {
		p.segMu.RLock()
		defer p.segMu.RUnlock()
		return len(p.segments)
	}
	for numSegs() < 3 {
		if err := appendOne(); err != nil {
			t.Fatal(err)
		}
	}
	// The disk fills up while the third segment is active.
	cfs.setCapacity(cfs.usage())
	var full error
	for range 10000 {
		if full = appendOne(); full != nil {
			break
		}
	}
	if !errors.Is(full, ErrFull) {
		t.Fatalf("append on a full disk: %v, want ErrFull", full)
	}
	if numSegs() != 3 {
		t.Fatalf("%d segments, want 3", numSegs())
	}

	// The operator frees space: the first segment's records are deleted.
	p.segMu.RLock()
	second := p.segments[1].base
	firstSize := p.segments[0].alloc
	p.segMu.RUnlock()
	if _, err := p.DeleteRecords(second); err != nil {
		t.Fatal(err)
	}
	if err := l.Maintain(); err != nil {
		t.Fatal(err)
	}
	if sp := spareFiles(t, p); len(sp) != 0 {
		t.Errorf("a deleted segment was kept as a spare right after the disk was full: %v", sp)
	}
	lg.mu.Lock()
	for off := range lg.acked {
		if off < p.LogStartOffset() {
			delete(lg.acked, off) // deleted, as asked
		}
	}
	lg.mu.Unlock()
	// Appends go on until the disk is full again: the deleted segment's
	// space, about firstSize bytes, is theirs.
	var after int64
	for fails := 0; fails < 3 && after < 2*firstSize; {
		if err := appendOne(); err != nil {
			if !errors.Is(err, ErrFull) {
				t.Fatal(err)
			}
			fails++
			continue
		}
		after += 10 * 300
	}
	if after < firstSize/2 {
		t.Errorf("after deleting a %d-byte segment from the full disk only %d bytes of records could be appended; spare files holding the space: %v",
			firstSize, after, spareFiles(t, p))
	}
	checkIntegrity(t, p, lg)
}
