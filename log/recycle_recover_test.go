package log

import (
	"io/fs"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// statHookFS is faultFS with a one-shot hook called before (or, with
// after, right after) Stat of a matching path.
type statHookFS struct {
	*faultFS
	mu    sync.Mutex
	match func(string) bool
	hook  func()
	after bool
}

func (s *statHookFS) setHook(after bool, match func(string) bool, hook func()) {
	s.mu.Lock()
	s.after, s.match, s.hook = after, match, hook
	s.mu.Unlock()
}

func (s *statHookFS) takeHook(name string, after bool) func() {
	s.mu.Lock()
	defer s.mu.Unlock()
	hook := s.hook
	if hook == nil || s.after != after || !s.match(name) {
		return nil
	}
	s.hook = nil
	return hook
}

func (s *statHookFS) Stat(name string) (fs.FileInfo, error) {
	if hook := s.takeHook(name, false); hook != nil {
		hook()
	}
	fi, err := s.faultFS.Stat(name)
	if hook := s.takeHook(name, true); hook != nil {
		hook()
	}
	return fi, err
}

// newStatHookEnv is newFaultEnv on a statHookFS.
func newStatHookEnv(t *testing.T, cfg TopicConfig) (*faultEnv, *statHookFS) {
	t.Helper()
	sfs := &statHookFS{faultFS: newFaultFS()}
	e := &faultEnv{t: t, dir: t.TempDir(), ffs: sfs.faultFS, clock: newTestClock(), lg: newLedger()}
	e.l = openTestLog(t, e.dir, Options{FS: sfs, Now: e.clock.Now})
	t.Cleanup(func() { e.l.Close() })
	tp, err := e.l.CreateTopic(faultTopic, cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.p, _ = tp.Partition(0)
	return e, sfs
}

func isSpare(name string) bool { return strings.HasSuffix(name, spareSuffix) }

// diskFiles is the bytes of a partition directory's .log and .spare files:
// what Log.UsedBytes must count for it.
func diskFiles(t *testing.T, dir string) int64 {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), logSuffix) || isSpare(e.Name()) {
			fi, err := e.Info()
			if err != nil {
				t.Fatal(err)
			}
			n += fi.Size()
		}
	}
	return n
}

// makeSticky fails the next data fsync, leaving the partition stopped
// until Recover.
func makeSticky(t *testing.T, e *faultEnv) {
	t.Helper()
	e.ffs.failSyncs(0, 1, syscall.EIO, isDataFile)
	if _, err := e.append(10, 300); err == nil {
		t.Fatal("append succeeded with a failing fsync")
	}
	if e.p.Err() == nil {
		t.Fatal("no sticky error")
	}
}

// withSpareAndSticky is a partition with a spare, stopped by a failed fsync.
func withSpareAndSticky(t *testing.T) (*faultEnv, *statHookFS) {
	e, sfs := newStatHookEnv(t, recycleConfig())
	keepSpareOf(t, e)
	makeSticky(t, e)
	return e, sfs
}

// The disk budget deleting the partition's spare (dropSpare, from an
// appender of any topic, Log.makeRoom) while Recover reloads the partition
// waits for loadSpares, which holds spareMu from the Stat of the spares it
// listed to their adoption: Recover succeeds, and the spare is gone and
// uncounted once, whichever comes first. (Before, a spare deleted between
// the listing and the Stat failed Recover with "no such file", and one
// deleted between the Stat and the adoption was counted again, its file
// gone.)
func testRecoverWhileBudgetDropsSpare(t *testing.T, after bool) {
	e, sfs := withSpareAndSticky(t)
	dropped := make(chan int64, 1)
	sfs.setHook(after, isSpare, func() {
		// The drop runs now; loadSpares goes on once it is done, or
		// after 200 ms if it waits (for spareMu, as it must).
		done := make(chan struct{})
		go func() { dropped <- e.l.dropSpares(); close(done) }()
		select {
		case <-done:
		case <-time.After(200 * time.Millisecond):
		}
	})
	if err := e.p.Recover(); err != nil {
		t.Errorf("Recover while the disk budget deletes the spare: %v", err)
	}
	if err := e.p.Err(); err != nil {
		t.Errorf("partition still stopped: %v", err)
	}
	if n := <-dropped; n == 0 {
		t.Error("no spare dropped")
	}
	if used, files := e.l.UsedBytes(), diskFiles(t, e.p.dir); used != files {
		t.Errorf("Log.UsedBytes %d, files on disk %d", used, files)
	}
	if n := e.p.spareBytes(); n != 0 && len(spareFiles(t, e.p)) == 0 {
		t.Errorf("the partition's spare (%d bytes) is a file that does not exist", n)
	}
}

func TestRecoverWhileBudgetDropsSpareBeforeStat(t *testing.T) {
	testRecoverWhileBudgetDropsSpare(t, false)
}

func TestRecoverWhileBudgetDropsSpareAfterStat(t *testing.T) {
	testRecoverWhileBudgetDropsSpare(t, true)
}
