package log

import (
	"bytes"
	"io/fs"
	"os"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestRepairZeroedBatchInSealedSegment: a batch zeroed in the middle of a
// sealed segment (a lost sector at a batch boundary) is damage, not an
// untrimmed tail: Verify reports it as corrupt and Repair keeps every
// valid batch after it.
func TestRepairZeroedBatchInSealedSegment(t *testing.T) {
	c := buildCorruptLog(t, false)
	seg := c.segs[2]
	mid := seg[len(seg)/2]
	patchFile(t, mid.path, mid.pos, make([]byte, mid.size))

	probs, err := Verify(c.dir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(probs, func(p Problem) bool { return p.Path == mid.path && p.Kind == ProblemCorrupt }) {
		t.Errorf("Verify did not report the zeroed batch at %d as corrupt; it reported:\n%s", mid.pos, problemList(probs))
	}
	acts, err := Repair(c.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range acts {
		t.Logf("repair: %s", a)
	}
	l, p := c.open(t)
	defer l.Close()
	lost := 0
	for _, db := range seg[len(seg)/2+1:] {
		h, _, err := readOneBatch(p, db.base)
		if err != nil || h.BaseOffset != db.base {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("Repair lost %d valid batches after the zeroed one (of %d)", lost, len(seg)-len(seg)/2-1)
	}
}

// TestRepairBadLengthInActiveSegment: a batch in the middle of the active
// segment with a damaged length (pointing past the end), followed by valid
// batches, is damage in the middle, not a torn tail: Repair keeps the
// valid batches after it, and the log opens with them.
func TestRepairBadLengthInActiveSegment(t *testing.T) {
	c := buildCorruptLog(t, false)
	act := c.active()
	mid := act[len(act)/2]
	setLength(t, mid.path, mid, 0x7fff0000)

	// Opening the log keeps them (the damage lies before the last index
	// entry; a read of the damaged batch reports it).
	l, p := c.open(t)
	if got := p.HighWatermark(); got != c.hw {
		t.Fatalf("setup: open put the high watermark at %d, want %d", got, c.hw)
	}
	l.Close()

	if _, err := Repair(c.dir); err != nil {
		t.Fatal(err)
	}
	l, p = c.open(t)
	defer l.Close()
	lost := 0
	for _, db := range act[len(act)/2+1:] {
		h, _, err := readOneBatch(p, db.base)
		if err != nil || h.BaseOffset != db.base {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("Repair lost %d valid batches after the damaged one (of %d); high watermark %d, was %d",
			lost, len(act)-len(act)/2-1, p.HighWatermark(), c.hw)
	}
}

// hookFS is the real file system with a hook on the fsyncs of .log files.
type hookFS struct {
	OSFS
	mu     sync.Mutex
	onSync func(path string) error // nil: pass through
}

type hookFile struct {
	File
	fs   *hookFS
	path string
}

func (h *hookFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := h.OSFS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &hookFile{File: f, fs: h, path: name}, nil
}

func (f *hookFile) Sync() error {
	f.fs.mu.Lock()
	hook := f.fs.onSync
	f.fs.mu.Unlock()
	if hook != nil && isDataFile(f.path) {
		if err := hook(f.path); err != nil {
			return err
		}
	}
	return f.File.Sync()
}

type asyncResult struct {
	name string
	res  AppendResult
	err  error
}

// overlapFailure sets up a sync: always partition where a large cycle N
// (>= overlapBytes) is fsynced beside the flusher, the next large cycle
// N+1 rolls the segment while that fsync still runs, a small append N+2
// queues behind, and then N's fsync fails with EIO. check runs while N's
// fsync is held (nothing acknowledged yet); it returns the callbacks in
// the order they ran.
func overlapFailure(t *testing.T, check func(p *Partition)) []asyncResult {
	hfs := &hookFS{}
	dir := t.TempDir()
	l := openTestLog(t, dir, Options{FS: hfs})
	defer l.Close()
	cfg := DefaultTopicConfig()
	cfg.SegmentBytes = 512 << 10
	cfg.MaxMessageBytes = 400 << 10
	cfg.Preallocate = false
	tp, err := l.CreateTopic("t", cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := tp.Partition(0)

	blocked, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	hfs.mu.Lock()
	hfs.onSync = func(string) error {
		first := false
		once.Do(func() { first = true })
		if !first {
			return nil
		}
		close(blocked)
		<-release
		return &os.PathError{Op: "fdatasync", Path: "x", Err: syscall.EIO}
	}
	hfs.mu.Unlock()

	big := func(i int) []byte {
		b, err := AppendBatch(nil, []Record{{Value: bytes.Repeat([]byte{byte('a' + i)}, 300<<10), Timestamp: 1}}, DefaultBatchOptions)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	small, _ := AppendBatch(nil, []Record{{Value: []byte("small"), Timestamp: 1}}, DefaultBatchOptions)

	var mu sync.Mutex
	var order []asyncResult
	var wg sync.WaitGroup
	cb := func(name string) func(AppendResult, error) {
		wg.Add(1)
		return func(r AppendResult, err error) {
			mu.Lock()
			order = append(order, asyncResult{name, r, err})
			mu.Unlock()
			wg.Done()
		}
	}
	if err := p.AppendAsync(big(0), cb("N")); err != nil {
		t.Fatal(err)
	}
	<-blocked // N is written, its fsync runs beside the flusher
	if err := p.AppendAsync(big(1), cb("N+1")); err != nil {
		t.Fatal(err)
	}
	// N+1 does not fit: the flusher takes it and, to roll, waits for N's
	// fsync. (Before, it rolled and published past N meanwhile.)
	time.Sleep(50 * time.Millisecond)
	p.segMu.RLock()
	n := len(p.segments)
	p.segMu.RUnlock()
	if n != 1 {
		close(release)
		t.Fatalf("the segment rolled (%d segments) while N's fsync still ran", n)
	}
	if err := p.AppendAsync(small, cb("N+2")); err != nil {
		t.Fatal(err)
	}
	if check != nil {
		check(p)
	}
	close(release)
	wg.Wait()
	return order
}

// TestRollWaitsForOverlappedFsync: with sync: always, cycle N's fsync
// runs beside the flusher and cycle N+1 rolls the segment. The roll waits
// for N's fsync before sealing and publishing, so when that fsync fails,
// readers never saw N (nor anything after it).
func TestRollWaitsForOverlappedFsync(t *testing.T) {
	var hwDuring int64
	var readDuring int
	order := overlapFailure(t, func(p *Partition) {
		hwDuring = p.HighWatermark()
		data, _ := p.Read(0, 1<<20)
		readDuring = len(data)
	})
	var nErr error
	for _, r := range order {
		if r.name == "N" {
			nErr = r.err
		}
	}
	if nErr == nil {
		t.Fatalf("setup: N's append succeeded; results %+v", order)
	}
	if hwDuring > 0 || readDuring > 0 {
		t.Errorf("before N was acknowledged (and N then failed: %v), readers saw high watermark %d and read %d bytes; want 0 and nothing",
			nErr, hwDuring, readDuring)
	}
}

// TestAsyncCallbacksInOrderOnOverlappedFailure: AppendAsync calls done in
// append order, also when an overlapped cycle's fsync fails: N, then the
// cycle written after it, then the one still queued.
func TestAsyncCallbacksInOrderOnOverlappedFailure(t *testing.T) {
	order := overlapFailure(t, nil)
	var names []string
	for _, r := range order {
		names = append(names, r.name)
	}
	if !slices.Equal(names, []string{"N", "N+1", "N+2"}) {
		t.Errorf("done callbacks ran in the order %v, want append order [N N+1 N+2]", names)
	}
}

// TestPreallocBeyondFirstChunkWithoutBudget: with preallocation on (the
// default) and no disk budget, the active segment stays zero-filled ahead
// of its data a chunk at a time for its whole life (no budget is an
// allowance of MaxInt64, which must not overflow).
func TestPreallocBeyondFirstChunkWithoutBudget(t *testing.T) {
	l := openTestLog(t, t.TempDir(), Options{})
	defer l.Close()
	cfg := DefaultTopicConfig()
	cfg.Sync = SyncNever // the bug is in the sizes, not in the fsyncs
	tp, err := l.CreateTopic("t", cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := tp.Partition(0)
	b, _ := AppendBatch(nil, []Record{{Value: bytes.Repeat([]byte{'x'}, 16<<10), Timestamp: 1}}, DefaultBatchOptions) // under preallocMaxWrite
	for written := 0; written < preallocChunk+(1<<20); written += len(b) {
		if _, err := p.Append(b); err != nil {
			t.Fatal(err)
		}
	}
	act := p.active()
	if act.alloc <= act.size {
		t.Errorf("after %d bytes the active segment's file is %d bytes for %d of data: nothing preallocated ahead (want up to %d)",
			act.size, act.alloc, act.size, 2*preallocChunk)
	}
}

// TestMissingTimeIndexOfActiveSegment: an active segment whose .timeindex
// is missing beside its .index (neither is synced while active) is
// scanned whole on open, so its max timestamp, and OffsetForTime once it
// is sealed, know every batch.
func TestMissingTimeIndexOfActiveSegment(t *testing.T) {
	dir := t.TempDir()
	clock := newTestClock()
	l := openTestLog(t, dir, Options{Now: clock.Now})
	cfg := testConfig()
	tp, err := l.CreateTopic("t", cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := tp.Partition(0)
	base := clock.Now().UnixMilli()
	// Batch 0 carries the largest timestamp; the rest are older.
	if _, err := p.AppendRecords([]Record{rec(0, 1, base+1_000_000)}, DefaultBatchOptions); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < 100; i++ {
		if _, err := p.AppendRecords([]Record{rec(i, 1, base+int64(i))}, DefaultBatchOptions); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	act := p.segments[len(p.segments)-1].path
	if len(readIndexEntries(t, indexPathOf(act))) == 0 {
		t.Fatal("setup: no offset index entries")
	}
	if err := os.Remove(timeIndexPathOf(act)); err != nil {
		t.Fatal(err)
	}

	l = openTestLog(t, dir, Options{Now: clock.Now})
	defer l.Close()
	tp, _ = l.Topic("t")
	p, _ = tp.Partition(0)
	if got := p.active().maxTs; got != base+1_000_000 {
		t.Errorf("reopened active segment's max timestamp %d, want %d", got, base+1_000_000)
	}
	// Fill the segment until it rolls, with old timestamps.
	for i := 100; len(p.segments) < 2; i++ {
		if _, err := p.AppendRecords([]Record{rec(i, 1, base+int64(i))}, DefaultBatchOptions); err != nil {
			t.Fatal(err)
		}
	}
	off, ok, err := p.OffsetForTime(base + 1_000_000)
	if err != nil || !ok || off != 0 {
		t.Errorf("OffsetForTime(max timestamp) = %d, %v, %v; want offset 0", off, ok, err)
	}
}
