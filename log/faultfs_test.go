package log

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// ---------------------------------------------------------------------------
// faultFS: a fault-injecting FS over OSFS.
// ---------------------------------------------------------------------------

// faultFS wraps the real file system and injects failures into the files it
// opens. Every switch is guarded by mu, so tests may flip them while the
// flusher runs.
type faultFS struct {
	FS // the real file system

	mu sync.Mutex

	// fsync faults: let syncSkip matching fsyncs pass, then fail the next
	// syncFail of them with syncErrno (the data is not synced).
	syncSkip, syncFail int
	syncErrno          syscall.Errno
	syncMatch          func(path string) bool

	// short writes: the next shortWrites matching writes store the first
	// half of the buffer and return ENOSPC.
	shortWrites int
	shortMatch  func(path string, p []byte) bool

	// disk full: while limited, files may grow by spaceLeft more bytes in
	// total; a write that would grow them further stores what fits and
	// returns ENOSPC. Overwriting allocated bytes needs no space.
	limited    bool
	spaceLeft  int64
	spaceMatch func(path string) bool // the files limited; all when nil

	// create faults: the next createFail OpenFile calls with O_CREATE on a
	// matching path fail with ENOSPC.
	createFail  int
	createMatch func(path string) bool

	// writeHook, when set, is called (outside mu) before a matching write.
	// It is one-shot: it is cleared when it fires.
	writeHook  func(path string, p []byte, off int64)
	writeMatch func(path string, p []byte) bool

	// readDirHook, when set, is called (outside mu) before ReadDir; it is
	// one-shot too.
	readDirHook func(name string)

	// Counters.
	syncs, syncFailures   int
	writes, writeFailures int
	dirSyncs              int
	// fallocate calls (Reserve), and those refused for want of space
	reserves, reserveFailures int
	// noReserve: a file system without fallocate
	noReserve bool
}

func newFaultFS() *faultFS { return &faultFS{FS: OSFS{}} }

type faultCounts struct {
	syncs, syncFailures, writes, writeFailures, dirSyncs int
}

func (f *faultFS) counts() faultCounts {
	f.mu.Lock()
	defer f.mu.Unlock()
	return faultCounts{f.syncs, f.syncFailures, f.writes, f.writeFailures, f.dirSyncs}
}

// failSyncs lets skip matching fsyncs pass and fails the n after them with errno.
func (f *faultFS) failSyncs(skip, n int, errno syscall.Errno, match func(string) bool) {
	f.mu.Lock()
	f.syncSkip, f.syncFail, f.syncErrno, f.syncMatch = skip, n, errno, match
	f.mu.Unlock()
}

// shortWrite makes the next n matching writes store half their buffer and
// return ENOSPC.
func (f *faultFS) shortWrite(n int, match func(string, []byte) bool) {
	f.mu.Lock()
	f.shortWrites, f.shortMatch = n, match
	f.mu.Unlock()
}

// diskFull limits how much the files may still grow, in total.
func (f *faultFS) diskFull(spaceLeft int64) { f.diskFullFor(spaceLeft, nil) }

// diskFullFor is diskFull for the matching files only (all when nil).
func (f *faultFS) diskFullFor(spaceLeft int64, match func(string) bool) {
	f.mu.Lock()
	f.limited, f.spaceLeft, f.spaceMatch = true, spaceLeft, match
	f.mu.Unlock()
}

// diskFree ends diskFull: space returns.
func (f *faultFS) diskFree() {
	f.mu.Lock()
	f.limited = false
	f.mu.Unlock()
}

func (f *faultFS) failCreates(n int, match func(string) bool) {
	f.mu.Lock()
	f.createFail, f.createMatch = n, match
	f.mu.Unlock()
}

// blockNextWrite makes the next matching write wait: blocked is closed when
// it is reached, and it proceeds once release is closed.
func (f *faultFS) blockNextWrite(match func(string, []byte) bool) (blocked <-chan struct{}, release chan<- struct{}) {
	b, r := make(chan struct{}), make(chan struct{})
	f.mu.Lock()
	f.writeMatch = match
	f.writeHook = func(string, []byte, int64) {
		close(b)
		<-r
	}
	f.mu.Unlock()
	return b, r
}

func (f *faultFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	if flag&os.O_CREATE != 0 {
		f.mu.Lock()
		fail := f.createFail > 0 && (f.createMatch == nil || f.createMatch(name))
		if fail {
			f.createFail--
		}
		f.mu.Unlock()
		if fail {
			return nil, &os.PathError{Op: "open", Path: name, Err: syscall.ENOSPC}
		}
	}
	file, err := f.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f, path: name}, nil
}

// blockNextReadDir makes the next ReadDir wait like blockNextWrite.
func (f *faultFS) blockNextReadDir() (blocked <-chan struct{}, release chan<- struct{}) {
	b, r := make(chan struct{}), make(chan struct{})
	f.mu.Lock()
	f.readDirHook = func(string) {
		close(b)
		<-r
	}
	f.mu.Unlock()
	return b, r
}

func (f *faultFS) ReadDir(name string) ([]fs.DirEntry, error) {
	f.mu.Lock()
	hook := f.readDirHook
	f.readDirHook = nil
	f.mu.Unlock()
	if hook != nil {
		hook(name)
	}
	return f.FS.ReadDir(name)
}

func (f *faultFS) SyncDir(name string) error {
	f.mu.Lock()
	f.dirSyncs++
	f.mu.Unlock()
	return f.FS.SyncDir(name)
}

type faultFile struct {
	File
	fs   *faultFS
	path string
}

func enospc(path string) error { return &os.PathError{Op: "write", Path: path, Err: syscall.ENOSPC} }

func (f *faultFile) WriteAt(p []byte, off int64) (int, error) {
	ffs := f.fs
	ffs.mu.Lock()
	if hook := ffs.writeHook; hook != nil && (ffs.writeMatch == nil || ffs.writeMatch(f.path, p)) {
		ffs.writeHook = nil
		ffs.mu.Unlock()
		hook(f.path, p, off)
		ffs.mu.Lock()
	}
	ffs.writes++
	if ffs.shortWrites > 0 && (ffs.shortMatch == nil || ffs.shortMatch(f.path, p)) {
		ffs.shortWrites--
		ffs.writeFailures++
		ffs.mu.Unlock()
		n, err := f.File.WriteAt(p[:len(p)/2], off)
		if err != nil {
			return n, err
		}
		return n, enospc(f.path)
	}
	if !ffs.limited || (ffs.spaceMatch != nil && !ffs.spaceMatch(f.path)) {
		ffs.mu.Unlock()
		return f.File.WriteAt(p, off)
	}
	// Disk full: account growth under mu so that concurrent writers share
	// the space left.
	defer ffs.mu.Unlock()
	fi, err := f.File.Stat()
	if err != nil {
		return 0, err
	}
	end := off + int64(len(p))
	if end <= fi.Size() {
		return f.File.WriteAt(p, off) // overwrites allocated bytes
	}
	from := max(fi.Size(), off)
	n := int(min(end, from+ffs.spaceLeft) - off)
	m, err := f.File.WriteAt(p[:n], off)
	if grew := off + int64(m) - from; grew > 0 {
		ffs.spaceLeft -= grew
	}
	if err != nil {
		return m, err
	}
	if n < len(p) {
		ffs.writeFailures++
		return m, enospc(f.path)
	}
	return m, nil
}

// Reserve passes fallocate through to the real file. While the disk is
// full it takes space as a write would, all or nothing as fallocate does.
func (f *faultFile) Reserve(off, n int64) error {
	r, ok := f.File.(reserver)
	if !ok {
		return errReserveUnsupported
	}
	ffs := f.fs
	ffs.mu.Lock()
	defer ffs.mu.Unlock()
	ffs.reserves++
	if ffs.noReserve {
		return errReserveUnsupported
	}
	if !ffs.limited || (ffs.spaceMatch != nil && !ffs.spaceMatch(f.path)) {
		return r.Reserve(off, n)
	}
	fi, err := f.File.Stat()
	if err != nil {
		return err
	}
	grow := max(off+n-fi.Size(), 0)
	if grow > ffs.spaceLeft {
		ffs.reserveFailures++
		return &os.PathError{Op: "fallocate", Path: f.path, Err: syscall.ENOSPC}
	}
	if err := r.Reserve(off, n); err != nil {
		return err
	}
	ffs.spaceLeft -= grow
	return nil
}

func (f *faultFile) Sync() error {
	ffs := f.fs
	ffs.mu.Lock()
	ffs.syncs++
	var errno syscall.Errno
	if ffs.syncFail > 0 && (ffs.syncMatch == nil || ffs.syncMatch(f.path)) {
		if ffs.syncSkip > 0 {
			ffs.syncSkip--
		} else {
			ffs.syncFail--
			ffs.syncFailures++
			errno = ffs.syncErrno
		}
	}
	ffs.mu.Unlock()
	if errno != 0 {
		return &os.PathError{Op: "fdatasync", Path: f.path, Err: errno}
	}
	return f.File.Sync()
}

// Matchers.
func isDataFile(path string) bool { return strings.HasSuffix(path, logSuffix) }

func isDataWrite(path string, p []byte) bool { return isDataFile(path) && !allZero(p) }

func isZeroFill(path string, p []byte) bool { return isDataFile(path) && allZero(p) }

func allZero(p []byte) bool {
	for _, c := range p {
		if c != 0 {
			return false
		}
	}
	return true
}

// ---------------------------------------------------------------------------
// ledger and integrity checks, shared with corruption_test.go.
// ---------------------------------------------------------------------------

// ledger remembers every record a test tried to append (by its unique
// value) and every acknowledged one (by offset).
type ledger struct {
	mu    sync.Mutex
	seq   int
	tried map[string]Record
	acked map[int64]Record
	dupes []string
}

func newLedger() *ledger {
	return &ledger{tried: map[string]Record{}, acked: map[int64]Record{}}
}

// fresh returns n records never used before, of about size bytes each.
func (lg *ledger) fresh(n, size int) []Record {
	lg.mu.Lock()
	defer lg.mu.Unlock()
	recs := make([]Record, n)
	for i := range recs {
		id := lg.seq
		lg.seq++
		r := Record{
			Timestamp: 1_700_000_000_000 + int64(id),
			Key:       fmt.Appendf(nil, "k%d", id%7),
			Value:     fmt.Appendf(nil, "v%08d-", id),
			Headers:   []Header{{Key: "id", Value: fmt.Appendf(nil, "%d", id)}},
		}
		if pad := size - len(r.Value); pad > 0 {
			r.Value = append(r.Value, bytes.Repeat([]byte{byte('a' + id%26)}, pad)...)
		}
		lg.tried[string(r.Value)] = r
		recs[i] = r
	}
	return recs
}

// ack records an acknowledged append of recs.
func (lg *ledger) ack(res AppendResult, recs []Record) {
	lg.mu.Lock()
	defer lg.mu.Unlock()
	if res.LastOffset-res.BaseOffset+1 != int64(len(recs)) {
		lg.dupes = append(lg.dupes, fmt.Sprintf("append of %d records acknowledged as offsets %d..%d", len(recs), res.BaseOffset, res.LastOffset))
	}
	for i, r := range recs {
		off := res.BaseOffset + int64(i)
		if prev, ok := lg.acked[off]; ok {
			lg.dupes = append(lg.dupes, fmt.Sprintf("offset %d acknowledged twice: %q and %q", off, prev.Value, r.Value))
		}
		lg.acked[off] = r
	}
}

func sameRecord(a, b Record) bool {
	if !bytes.Equal(a.Key, b.Key) || !bytes.Equal(a.Value, b.Value) || a.Timestamp != b.Timestamp || len(a.Headers) != len(b.Headers) {
		return false
	}
	for i := range a.Headers {
		if a.Headers[i].Key != b.Headers[i].Key || !bytes.Equal(a.Headers[i].Value, b.Headers[i].Value) {
			return false
		}
	}
	return true
}

// checkIntegrity reads the whole partition and checks that offsets run
// without a gap from the log start to the high watermark, every record is
// one the test tried to append, intact and present once, and every
// acknowledged record is there at its acknowledged offset.
func checkIntegrity(t testing.TB, p *Partition, lg *ledger) {
	t.Helper()
	lg.mu.Lock()
	defer lg.mu.Unlock()
	for _, d := range lg.dupes {
		t.Errorf("ledger: %s", d)
	}
	got := readAll(t, p)
	start, hw := p.LogStartOffset(), p.HighWatermark()
	want := start
	seen := map[string]int64{}
	for _, r := range got {
		if r.Offset != want {
			t.Fatalf("record at offset %d, want %d (gap or disorder)", r.Offset, want)
		}
		want++
		tr, ok := lg.tried[string(r.Value)]
		if !ok {
			t.Fatalf("offset %d holds a record never appended: %+v", r.Offset, r)
		}
		if !sameRecord(tr, r) {
			t.Fatalf("offset %d: record damaged: got %+v, appended %+v", r.Offset, r, tr)
		}
		if prev, dup := seen[string(r.Value)]; dup {
			t.Fatalf("record %q stored twice, at offsets %d and %d", r.Value, prev, r.Offset)
		}
		seen[string(r.Value)] = r.Offset
		if a, ok := lg.acked[r.Offset]; ok && !sameRecord(a, r) {
			t.Fatalf("offset %d: acknowledged %q, read %q", r.Offset, a.Value, r.Value)
		}
	}
	if want != hw {
		t.Fatalf("read up to offset %d, high watermark %d", want, hw)
	}
	lost := 0
	for off := range lg.acked {
		if off < start || off >= hw {
			if lost < 5 {
				t.Errorf("acknowledged offset %d lost (log holds [%d, %d))", off, start, hw)
			}
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d acknowledged records lost", lost)
	}
}

// checkSizeAccounting compares the partition's byte count with its files.
func checkSizeAccounting(t testing.TB, p *Partition) {
	t.Helper()
	var total int64
	entries, err := os.ReadDir(p.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, ok := parseSegmentName(e.Name()); ok {
			fi, err := e.Info()
			if err != nil {
				t.Fatal(err)
			}
			total += fi.Size()
		}
	}
	if p.Size() != total {
		t.Errorf("partition counts %d bytes of segment files, the files hold %d", p.Size(), total)
	}
}

// diskBatch is one batch found in a segment file.
type diskBatch struct {
	path      string
	seg       int // index of the segment in the partition
	pos       int64
	size      int64
	base      int64
	last      int64
	records   int
	maxTs     int64
	firstTs   int64
	sealedSeg bool
}

// scanSegmentFile parses a segment file independently of the segment code:
// whole valid batches from the start, stopping at zeros, damage or the end.
// It returns the batches and the end of the last one.
func scanSegmentFile(t testing.TB, path string) ([]diskBatch, int64, int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []diskBatch
	pos := 0
	for pos+batchHeaderSize <= len(b) {
		h := parseBatchHeader(b[pos:])
		if h.Length <= 0 || pos+h.Size() > len(b) {
			break
		}
		h, err := ParseBatchHeader(b[pos : pos+h.Size()])
		if err != nil {
			break
		}
		_, recs, err := DecodeRecords(b[pos : pos+h.Size()])
		if err != nil {
			break
		}
		out = append(out, diskBatch{path: path, pos: int64(pos), size: int64(h.Size()), base: h.BaseOffset,
			last: h.LastOffset(), records: len(recs), maxTs: h.MaxTimestamp, firstTs: recs[0].Timestamp})
		pos += h.Size()
	}
	return out, int64(pos), int64(len(b))
}

// segmentFiles lists a partition directory's .log files, oldest first.
func segmentFiles(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if _, ok := parseSegmentName(e.Name()); ok {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(out)
	return out
}

// checkSealedTrimmed checks the package doc's promise that sealed segments
// are trimmed to their data: no bytes after the last whole batch.
func checkSealedTrimmed(t testing.TB, dir string) {
	t.Helper()
	files := segmentFiles(t, dir)
	for _, path := range files[:max(len(files)-1, 0)] {
		_, end, size := scanSegmentFile(t, path)
		if end != size {
			t.Errorf("sealed segment %s: %d bytes after its last whole batch (data ends at %d, file is %d bytes)",
				filepath.Base(path), size-end, end, size)
		}
	}
}

// ---------------------------------------------------------------------------
// Test environment.
// ---------------------------------------------------------------------------

type faultEnv struct {
	t     *testing.T
	dir   string
	ffs   *faultFS
	clock *testClock
	l     *Log
	p     *Partition
	lg    *ledger
}

const faultTopic = "faults"

func newFaultEnv(t *testing.T, cfg TopicConfig) *faultEnv {
	t.Helper()
	e := &faultEnv{t: t, dir: t.TempDir(), ffs: newFaultFS(), clock: newTestClock(), lg: newLedger()}
	e.l = openTestLog(t, e.dir, Options{FS: e.ffs, Now: e.clock.Now})
	tp, err := e.l.CreateTopic(faultTopic, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if e.p, err = tp.Partition(0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.l.Close() })
	return e
}

// append appends n fresh records of about size bytes as one batch,
// recording them in the ledger when acknowledged.
func (e *faultEnv) append(n, size int) (AppendResult, error) {
	recs := e.lg.fresh(n, size)
	res, err := e.p.AppendRecords(recs, DefaultBatchOptions)
	if err == nil {
		e.lg.ack(res, recs)
	}
	return res, err
}

func (e *faultEnv) mustAppend(n, size int) AppendResult {
	e.t.Helper()
	res, err := e.append(n, size)
	if err != nil {
		e.t.Fatalf("append: %v", err)
	}
	return res
}

// batchFor encodes fresh records as a batch, for the tests that need its
// size before appending it.
func (e *faultEnv) batchFor(n, size int) ([]byte, []Record) {
	recs := e.lg.fresh(n, size)
	b, err := AppendBatch(nil, recs, DefaultBatchOptions)
	if err != nil {
		e.t.Fatal(err)
	}
	return b, recs
}

func (e *faultEnv) appendBatch(b []byte, recs []Record) (AppendResult, error) {
	res, err := e.p.Append(b)
	if err == nil {
		e.lg.ack(res, recs)
	}
	return res, err
}

// activeSize is the data size of the active segment. Call it only while
// no append is in flight.
func (e *faultEnv) activeSize() int64 {
	e.p.segMu.RLock()
	defer e.p.segMu.RUnlock()
	return e.p.segments[len(e.p.segments)-1].size
}

// wantNotSticky reports a sticky error left by a full disk, then recovers
// the partition so that the test can go on.
func (e *faultEnv) wantNotSticky(what string) {
	e.t.Helper()
	if err := e.p.Err(); err != nil {
		e.t.Errorf("%s made the partition sticky (a full disk must only fail appends with ErrFull): %v", what, err)
		if err := e.p.Recover(); err != nil {
			e.t.Fatalf("recover: %v", err)
		}
	}
}

func (e *faultEnv) numSegments() int {
	e.p.segMu.RLock()
	defer e.p.segMu.RUnlock()
	return len(e.p.segments)
}

// reopen closes the log (wantCloseErr says whether Close must fail) and
// opens it again on the real file system, then checks integrity.
func (e *faultEnv) reopen(wantCloseErr bool) {
	e.t.Helper()
	err := e.l.Close()
	if wantCloseErr && err == nil {
		e.t.Errorf("Close succeeded, want the sticky error")
	}
	if !wantCloseErr && err != nil {
		e.t.Errorf("Close: %v", err)
	}
	e.ffs = newFaultFS()
	e.l = openTestLog(e.t, e.dir, Options{FS: e.ffs, Now: e.clock.Now})
	tp, err := e.l.Topic(faultTopic)
	if err != nil {
		e.t.Fatal(err)
	}
	if e.p, err = tp.Partition(0); err != nil {
		e.t.Fatal(err)
	}
	checkIntegrity(e.t, e.p, e.lg)
}

func faultConfig(prealloc bool) TopicConfig {
	cfg := testConfig()
	cfg.SegmentBytes = 16 << 10
	cfg.MaxMessageBytes = 8 << 10
	cfg.IndexIntervalBytes = 256
	cfg.Preallocate = prealloc
	return cfg
}

func forPrealloc(t *testing.T, fn func(t *testing.T, prealloc bool)) {
	for _, prealloc := range []bool{false, true} {
		t.Run(fmt.Sprintf("preallocate=%v", prealloc), func(t *testing.T) { fn(t, prealloc) })
	}
}

// wantFsyncError checks that err is the *IOError of a failed fsync.
func wantFsyncError(t testing.TB, err error, errno syscall.Errno) {
	t.Helper()
	var ioe *IOError
	if !errors.As(err, &ioe) || ioe.Op != "fsync" || !errors.Is(err, errno) {
		t.Fatalf("got error %v (%T), want an *IOError with Op fsync wrapping %v", err, err, errno)
	}
	if ioe.Topic != faultTopic || ioe.Partition != 0 {
		t.Errorf("IOError names topic %q partition %d", ioe.Topic, ioe.Partition)
	}
}

// ---------------------------------------------------------------------------
// Tests.
// ---------------------------------------------------------------------------

// TestFaultFsyncFailureIsSticky: with sync: always, a failed fsync fails
// the append with an *IOError (Op fsync), acknowledges nothing of the
// cycle, and stops the partition until Recover or Maintain reloads it from
// disk; Close reports it.
func TestFaultFsyncFailureIsSticky(t *testing.T) {
	forPrealloc(t, func(t *testing.T, prealloc bool) {
		e := newFaultEnv(t, faultConfig(prealloc))
		for range 20 {
			e.mustAppend(3, 40)
		}
		checkIntegrity(t, e.p, e.lg)

		// The sticky error and what it blocks, then recovery: by
		// Partition.Recover in round 0, by Log.Maintain in round 1.
		for round, recoverFn := range []func() error{e.p.Recover, e.l.Maintain} {
			hw := e.p.HighWatermark()
			e.ffs.failSyncs(0, 1, syscall.EIO, isDataFile)
			_, err := e.append(3, 40)
			wantFsyncError(t, err, syscall.EIO)
			if got := e.ffs.counts().syncFailures; got != round+1 {
				t.Fatalf("fsync failures injected: %d, want %d", got, round+1)
			}
			if e.p.HighWatermark() != hw {
				t.Fatalf("high watermark moved from %d to %d on a failed fsync", hw, e.p.HighWatermark())
			}
			if e.p.Err() == nil {
				t.Fatal("Err() is nil after a failed fsync: the error must be sticky")
			}
			for range 3 {
				_, err := e.append(1, 10)
				if err == nil {
					t.Fatal("append succeeded on a partition with a sticky error")
				}
				wantFsyncError(t, err, syscall.EIO)
			}
			if e.p.HighWatermark() != hw {
				t.Fatalf("high watermark moved from %d to %d while sticky", hw, e.p.HighWatermark())
			}
			checkIntegrity(t, e.p, e.lg) // reads keep working

			if err := recoverFn(); err != nil {
				t.Fatalf("recover (round %d): %v", round, err)
			}
			if err := e.p.Err(); err != nil {
				t.Fatalf("Err() after recovery: %v", err)
			}
			// The failed cycle's batch reached the page cache, so it may
			// be on disk: offsets continue from what is there.
			after := e.p.HighWatermark()
			if after != hw && after != hw+3 {
				t.Fatalf("high watermark after recovery %d, want %d or %d", after, hw, hw+3)
			}
			res := e.mustAppend(2, 40)
			if res.BaseOffset != after {
				t.Fatalf("first append after recovery got offset %d, want %d", res.BaseOffset, after)
			}
			for range 5 {
				e.mustAppend(3, 40)
			}
			checkIntegrity(t, e.p, e.lg)
		}

		// Sticky at close: Close returns the error, and a reopen keeps
		// every acknowledged record.
		e.ffs.failSyncs(0, 1, syscall.EIO, isDataFile)
		_, err := e.append(3, 40)
		wantFsyncError(t, err, syscall.EIO)
		e.reopen(true)
		res := e.mustAppend(2, 40)
		if res.BaseOffset != e.p.HighWatermark()-2 {
			t.Fatalf("append after reopen got offset %d, high watermark %d", res.BaseOffset, e.p.HighWatermark())
		}
		e.reopen(false)
	})
}

// TestFaultFsyncENOSPCIsSticky: fsync(2) can fail with ENOSPC (or EDQUOT)
// when the file system allocates at writeback. It is still a failed fsync:
// the written bytes are in the file past the data end, so the partition
// must not go on appending as if nothing had been written.
func TestFaultFsyncENOSPCIsSticky(t *testing.T) {
	forPrealloc(t, func(t *testing.T, prealloc bool) {
		e := newFaultEnv(t, faultConfig(prealloc))
		for range 10 {
			e.mustAppend(3, 40)
		}
		hw := e.p.HighWatermark()
		e.ffs.failSyncs(0, 1, syscall.ENOSPC, isDataFile)
		_, err := e.append(3, 40)
		wantFsyncError(t, err, syscall.ENOSPC)
		if e.p.HighWatermark() != hw {
			t.Fatalf("high watermark moved from %d to %d on a failed fsync", hw, e.p.HighWatermark())
		}
		if e.p.Err() == nil {
			t.Errorf("Err() is nil after an fsync failed with ENOSPC: a failed fsync must be sticky (doc.go: Durability)")
		}
		// Whatever the partition decided, appends that succeed must be
		// readable at their offsets.
		for range 3 {
			if _, err := e.append(2, 40); err != nil {
				if err := e.p.Recover(); err != nil {
					t.Fatal(err)
				}
			}
		}
		checkIntegrity(t, e.p, e.lg)
		e.reopen(false)
	})
}

// TestFaultShortWriteENOSPC: a write that stores part of the batch and then
// fails with ENOSPC, and a disk that stays full for a while, fail appends
// with ErrFull without making the partition sticky; once space returns,
// appends go on with contiguous offsets and nothing acknowledged is lost.
func TestFaultShortWriteENOSPC(t *testing.T) {
	forPrealloc(t, func(t *testing.T, prealloc bool) {
		// Segments large enough that the disk fills up inside one: with
		// preallocation, at an extension after the first chunk.
		// (A full disk at a roll is TestFaultPreallocENOSPC's.)
		cfg := faultConfig(prealloc)
		cfg.SegmentBytes = 8 << 20
		cfg.MaxMessageBytes = 1 << 20
		e := newFaultEnv(t, cfg)
		for range 10 {
			e.mustAppend(3, 60)
		}

		// One short write.
		hw := e.p.HighWatermark()
		e.ffs.shortWrite(1, isDataWrite)
		_, err := e.append(3, 60)
		if !errors.Is(err, ErrFull) {
			t.Fatalf("short write: got %v, want an error matching ErrFull", err)
		}
		var ioe *IOError
		if !errors.As(err, &ioe) || ioe.Op != "write" || !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("short write: got %v, want an *IOError with Op write wrapping ENOSPC", err)
		}
		if e.ffs.counts().writeFailures != 1 {
			t.Fatalf("short writes injected: %d", e.ffs.counts().writeFailures)
		}
		if err := e.p.Err(); err != nil {
			t.Fatalf("a full disk made the partition sticky: %v", err)
		}
		if e.p.HighWatermark() != hw {
			t.Fatalf("high watermark moved from %d to %d on a failed write", hw, e.p.HighWatermark())
		}
		res := e.mustAppend(2, 30) // smaller than the torn one: its tail stays in the file
		if res.BaseOffset != hw {
			t.Fatalf("append after the short write got offset %d, want %d", res.BaseOffset, hw)
		}
		checkIntegrity(t, e.p, e.lg)
		// The torn remnant after the data end must not disturb recovery.
		e.reopen(false)
		if res := e.mustAppend(3, 60); res.BaseOffset != hw+2 {
			t.Fatalf("append after reopen got offset %d, want %d", res.BaseOffset, hw+2)
		}

		// The disk fills up. Appends that fit in preallocated space may
		// still succeed; the others fail with ErrFull.
		e.ffs.diskFull(0)
		segs := e.numSegments()
		failures, successes := 0, 0
		for i := 0; failures < 4 && i < 200; i++ {
			hw := e.p.HighWatermark()
			res, err := e.append(3, 30000)
			if err == nil {
				if failures > 0 && !prealloc {
					t.Fatalf("append %d succeeded on a full disk without preallocation", i)
				}
				if res.BaseOffset != hw {
					t.Fatalf("append got offset %d, want %d", res.BaseOffset, hw)
				}
				successes++
				continue
			}
			if !errors.Is(err, ErrFull) {
				t.Fatalf("append on a full disk: got %v, want ErrFull", err)
			}
			if err := e.p.Err(); err != nil {
				t.Fatalf("a full disk made the partition sticky: %v", err)
			}
			if e.p.HighWatermark() != hw {
				t.Fatalf("high watermark moved from %d to %d on a failed write", hw, e.p.HighWatermark())
			}
			failures++
		}
		if failures == 0 {
			t.Fatalf("no append failed on a full disk (%d succeeded)", successes)
		}
		if !prealloc && successes > 0 {
			t.Fatalf("%d appends succeeded on a full disk without preallocation", successes)
		}
		if e.numSegments() != segs {
			t.Fatalf("test setup: the segment rolled while the disk was full")
		}
		checkIntegrity(t, e.p, e.lg)

		// Space returns.
		e.ffs.diskFree()
		hw = e.p.HighWatermark()
		for i := range 40 {
			res := e.mustAppend(3, 200)
			if want := hw + int64(3*i); res.BaseOffset != want {
				t.Fatalf("append %d after space returned got offset %d, want %d", i, res.BaseOffset, want)
			}
		}
		checkIntegrity(t, e.p, e.lg)
		checkSizeAccounting(t, e.p)
		e.reopen(false)
		e.mustAppend(3, 60)
		checkIntegrity(t, e.p, e.lg)
		e.reopen(false)
		checkSealedTrimmed(t, e.p.dir)
	})
}

// TestFaultShortWriteBeforeRoll: a short write near the end of a segment
// leaves part of the refused batch in the file; the next append does not
// fit and rolls. The sealed segment must end at its last whole batch
// (doc.go: sealed segments are trimmed to their data), the size accounting
// must match the files, and the segment must stay readable when its index
// files are rebuilt after a reopen.
func TestFaultShortWriteBeforeRoll(t *testing.T) {
	forPrealloc(t, func(t *testing.T, prealloc bool) {
		cfg := faultConfig(prealloc)
		e := newFaultEnv(t, cfg)
		for e.activeSize() < 9000 {
			e.mustAppend(4, 200)
		}
		size := e.activeSize()
		room := int(cfg.SegmentBytes - size)

		// A batch that fits, refused after half of it was written.
		torn, tornRecs := e.batchFor(4, (room-200)/4-20)
		if len(torn) > room || len(torn) < room/2 {
			t.Fatalf("test setup: torn batch of %d bytes for %d bytes of room", len(torn), room)
		}
		e.ffs.shortWrite(1, isDataWrite)
		hw := e.p.HighWatermark()
		if _, err := e.appendBatch(torn, tornRecs); !errors.Is(err, ErrFull) {
			t.Fatalf("short write: got %v, want ErrFull", err)
		}
		// A batch that does not fit: the segment rolls.
		big, bigRecs := e.batchFor(4, (room+200)/4)
		if len(big) <= room {
			t.Fatalf("test setup: big batch of %d bytes fits in %d", len(big), room)
		}
		segs := e.numSegments()
		res, err := e.appendBatch(big, bigRecs)
		if err != nil {
			t.Fatal(err)
		}
		if res.BaseOffset != hw || e.numSegments() != segs+1 {
			t.Fatalf("append after the short write: offset %d (want %d), %d segments (want %d)", res.BaseOffset, hw, e.numSegments(), segs+1)
		}
		for range 3 {
			e.mustAppend(2, 50)
		}
		checkIntegrity(t, e.p, e.lg)
		checkSizeAccounting(t, e.p)
		if err := e.l.Close(); err != nil {
			t.Fatal(err)
		}
		checkSealedTrimmed(t, e.p.dir)

		// Index files are caches: without them, the sealed segment is
		// scanned to rebuild them, and must read back intact.
		for _, path := range segmentFiles(t, e.p.dir) {
			stem := strings.TrimSuffix(path, logSuffix)
			os.Remove(stem + indexSuffix)
			os.Remove(stem + timeIndexSuffix)
		}
		e.l = openTestLog(t, e.dir, Options{Now: e.clock.Now})
		tp, err := e.l.Topic(faultTopic)
		if err != nil {
			t.Fatal(err)
		}
		e.p, _ = tp.Partition(0)
		checkIntegrity(t, e.p, e.lg)
	})
}

// TestFaultConcurrentAppendersFsyncFailsOnce: 8 appenders while one fsync
// fails. Each append either succeeds and is readable afterwards, or fails
// with the fsync's *IOError; after Maintain recovers the partition and
// after a reopen, every acknowledged record is there.
func TestFaultConcurrentAppendersFsyncFailsOnce(t *testing.T) {
	forPrealloc(t, func(t *testing.T, prealloc bool) {
		e := newFaultEnv(t, faultConfig(prealloc))
		e.ffs.failSyncs(10, 1, syscall.EIO, isDataFile)

		const appenders, perAppender = 8, 50
		run := func(wantErrors bool) (acked, failed int) {
			var wg sync.WaitGroup
			var mu sync.Mutex
			var bad []string
			for g := range appenders {
				wg.Go(func() {
					last := int64(-1)
					for i := range perAppender {
						res, err := e.append(1+(g+i)%3, 30+g*20)
						mu.Lock()
						switch {
						case err == nil:
							acked++
							if res.BaseOffset <= last {
								bad = append(bad, fmt.Sprintf("appender %d: offset %d after %d", g, res.BaseOffset, last))
							}
							last = res.LastOffset
						default:
							failed++
							var ioe *IOError
							// The failed fsync may be a cycle's or a roll's (sealing
							// fsyncs the old segment).
							if !wantErrors || !errors.As(err, &ioe) || !errors.Is(err, syscall.EIO) {
								bad = append(bad, fmt.Sprintf("appender %d: unexpected error %v", g, err))
							}
						}
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			for _, b := range bad {
				t.Error(b)
			}
			if len(bad) > 0 {
				t.FailNow()
			}
			return acked, failed
		}

		acked, failed := run(true)
		if got := e.ffs.counts().syncFailures; got != 1 {
			t.Fatalf("fsync failures injected: %d, want 1", got)
		}
		if failed == 0 {
			t.Fatalf("no append failed (%d acknowledged)", acked)
		}
		if e.p.Err() == nil {
			t.Fatal("Err() is nil after a failed fsync")
		}
		t.Logf("%d appends acknowledged, %d failed", acked, failed)
		checkIntegrity(t, e.p, e.lg)
		if err := e.l.Maintain(); err != nil {
			t.Fatalf("Maintain: %v", err)
		}
		if err := e.p.Err(); err != nil {
			t.Fatalf("Err() after Maintain: %v", err)
		}
		checkIntegrity(t, e.p, e.lg)

		if _, failed := run(false); failed != 0 {
			t.Fatalf("%d appends failed after recovery", failed)
		}
		checkIntegrity(t, e.p, e.lg)
		e.reopen(false)
	})
}

// TestFaultPreallocENOSPC: zero-filling the active segment runs into a full
// disk. When the data write still fits, the append succeeds; when it does
// not, it fails with ErrFull. Either way the partition is not sticky, the
// byte count matches the files, and the log reads back whole after a reopen.
func TestFaultPreallocENOSPC(t *testing.T) {
	cases := []struct {
		name string
		// atRoll: the fault hits the zero-fill of a new segment, not the
		// first one.
		atRoll bool
		// arm sets the fault up before the append that zero-fills.
		arm func(ffs *faultFS)
		// dataFits: the append itself must succeed.
		dataFits bool
		// noRoll: the roll itself may fail (sealing writes index files).
		noRoll bool
	}{
		// Space runs out in the segment files only, to aim at the zero-fill.
		{"zero-fill fails, data fits", false, func(f *faultFS) { f.diskFullFor(2000, isDataFile) }, true, false},
		{"zero-fill and data write fail", false, func(f *faultFS) { f.diskFullFor(0, isDataFile) }, false, false},
		{"zero-fill short, data write tears", false, func(f *faultFS) { f.diskFullFor(100, isDataFile) }, false, false},
		{"zero-fill short write", false, func(f *faultFS) { f.shortWrite(1, isZeroFill) }, true, false},
		{"at roll: zero-fill fails, data fits", true, func(f *faultFS) { f.diskFullFor(2000, isDataFile) }, true, false},
		{"at roll: zero-fill and data write fail", true, func(f *faultFS) { f.diskFullFor(0, isDataFile) }, false, false},
		// The whole disk is full: sealing the old segment needs space for
		// its index files too.
		{"at roll: whole disk full", true, func(f *faultFS) { f.diskFull(0) }, false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := faultConfig(true)
			e := newFaultEnv(t, cfg)
			if tc.atRoll {
				e.mustAppend(3, 100)
				for {
					b, recs := e.batchFor(3, 100)
					if e.activeSize()+int64(len(b)) > cfg.SegmentBytes {
						break // the next append rolls
					}
					if _, err := e.appendBatch(b, recs); err != nil {
						t.Fatal(err)
					}
				}
			}
			segs := e.numSegments()
			hw := e.p.HighWatermark()
			tc.arm(e.ffs)
			res, err := e.append(3, 150) // larger than the fill: it rolls when atRoll
			switch {
			case tc.dataFits && err != nil:
				t.Fatalf("append: %v, want success (the data fits)", err)
			case tc.dataFits && res.BaseOffset != hw:
				t.Fatalf("append got offset %d, want %d", res.BaseOffset, hw)
			case !tc.dataFits && !errors.Is(err, ErrFull):
				t.Fatalf("append: got %v, want ErrFull", err)
			case !tc.dataFits && e.p.HighWatermark() != hw:
				t.Fatalf("high watermark moved from %d to %d on a failed append", hw, e.p.HighWatermark())
			}
			if tc.atRoll && !tc.noRoll && e.numSegments() != segs+1 {
				t.Fatalf("%d segments, want %d: the fault did not hit a roll", e.numSegments(), segs+1)
			}
			e.wantNotSticky("ENOSPC " + tc.name)
			checkIntegrity(t, e.p, e.lg)
			checkSizeAccounting(t, e.p)

			// Appends until the space runs out fail cleanly.
			for i := 0; i < 50; i++ {
				hw := e.p.HighWatermark()
				res, err := e.append(3, 100)
				if err != nil {
					if !errors.Is(err, ErrFull) {
						t.Fatalf("append: %v, want ErrFull", err)
					}
					if e.p.HighWatermark() != hw {
						t.Fatalf("high watermark moved on a failed append")
					}
					e.wantNotSticky("ENOSPC")
					break
				}
				if res.BaseOffset != hw {
					t.Fatalf("append got offset %d, want %d", res.BaseOffset, hw)
				}
			}
			checkSizeAccounting(t, e.p)

			e.ffs.diskFree()
			e.ffs.shortWrite(0, nil)
			hw = e.p.HighWatermark()
			for i := range 60 { // several segments
				res := e.mustAppend(3, 100)
				if want := hw + int64(3*i); res.BaseOffset != want {
					t.Fatalf("append %d after space returned got offset %d, want %d", i, res.BaseOffset, want)
				}
			}
			checkIntegrity(t, e.p, e.lg)
			checkSizeAccounting(t, e.p)
			e.reopen(false)
			e.mustAppend(2, 50)
			checkIntegrity(t, e.p, e.lg)
			e.reopen(false)
			checkSealedTrimmed(t, e.p.dir)
		})
	}
}

// TestFaultFsyncFailureAfterRollInCycle: one flush cycle holds two batches;
// the first lands in the old segment, the second does not fit and rolls a
// new one, whose fsync fails. The roll's seal fsynced the first batch, so
// it is acknowledged and readable; the second fails and is not readable
// (doc.go: readers only see data up to the last acknowledged batch).
func TestFaultFsyncFailureAfterRollInCycle(t *testing.T) {
	forPrealloc(t, func(t *testing.T, prealloc bool) {
		cfg := faultConfig(prealloc)
		e := newFaultEnv(t, cfg)
		for e.activeSize() < 12000 {
			e.mustAppend(4, 200)
		}
		room := cfg.SegmentBytes - e.activeSize()

		// Cycle 1 (a1) is held in its write while b1 and b2 queue up
		// behind it to form cycle 2.
		a1, a1Recs := e.batchFor(1, 50)
		b1, b1Recs := e.batchFor(1, 100)
		b2, _ := e.batchFor(4, int(room)/4)
		if int64(len(a1)+len(b1)) > room || int64(len(a1)+len(b1)+len(b2)) <= room {
			t.Fatalf("test setup: batches of %d, %d, %d bytes for %d bytes of room", len(a1), len(b1), len(b2), room)
		}
		hw := e.p.HighWatermark()
		newSeg := filepath.Join(e.p.dir, segmentName(hw+2)+logSuffix) // b2's offset
		e.ffs.failSyncs(0, 1, syscall.EIO, func(path string) bool { return path == newSeg })

		type result struct {
			res AppendResult
			err error
		}
		results := make([]chan result, 3)
		for i := range results {
			results[i] = make(chan result, 1)
		}
		blocked, release := e.ffs.blockNextWrite(isDataWrite)
		if err := e.p.AppendAsync(a1, func(r AppendResult, err error) { results[0] <- result{r, err} }); err != nil {
			t.Fatal(err)
		}
		<-blocked
		if err := e.p.AppendAsync(b1, func(r AppendResult, err error) { results[1] <- result{r, err} }); err != nil {
			t.Fatal(err)
		}
		if err := e.p.AppendAsync(b2, func(r AppendResult, err error) { results[2] <- result{r, err} }); err != nil {
			t.Fatal(err)
		}
		close(release)
		ra, rb1, rb2 := <-results[0], <-results[1], <-results[2]
		if ra.err != nil {
			t.Fatalf("a1 (cycle 1): %v", ra.err)
		}
		e.lg.ack(ra.res, a1Recs)
		if e.ffs.counts().syncFailures != 1 {
			t.Fatalf("the fsync of %s did not fail: the batches did not form one cycle across a roll", filepath.Base(newSeg))
		}
		// b1 was sealed (and fsynced) in the old segment before the roll:
		// it is durable and acknowledged; only b2 fails.
		if rb1.err != nil {
			t.Fatalf("b1, sealed before the roll, failed: %v", rb1.err)
		}
		e.lg.ack(rb1.res, b1Recs)
		wantFsyncError(t, rb2.err, syscall.EIO)
		if got := e.p.HighWatermark(); got != rb1.res.LastOffset+1 {
			t.Errorf("high watermark %d after the failed cycle, want %d (b1 visible, b2 not)", got, rb1.res.LastOffset+1)
		}
		if e.p.Err() == nil {
			t.Fatal("Err() is nil after a failed fsync")
		}
		checkIntegrity(t, e.p, e.lg)
		if err := e.p.Recover(); err != nil {
			t.Fatal(err)
		}
		e.mustAppend(2, 50)
		checkIntegrity(t, e.p, e.lg)
		e.reopen(false)
	})
}

// TestFaultENOSPCAfterRollInCycle: as above, but the second batch's write
// into the new segment fails with ENOSPC. ErrFull promises that nothing of
// the append was stored, so the first batch, written and sealed before the
// roll, must either be acknowledged or not be in the log.
func TestFaultENOSPCAfterRollInCycle(t *testing.T) {
	forPrealloc(t, func(t *testing.T, prealloc bool) {
		cfg := faultConfig(prealloc)
		e := newFaultEnv(t, cfg)
		for e.activeSize() < 12000 {
			e.mustAppend(4, 200)
		}
		room := cfg.SegmentBytes - e.activeSize()
		a1, a1Recs := e.batchFor(1, 50)
		b1, b1Recs := e.batchFor(1, 100)
		b2, _ := e.batchFor(4, int(room)/4)
		if int64(len(a1)+len(b1)) > room || int64(len(a1)+len(b1)+len(b2)) <= room {
			t.Fatalf("test setup: batches of %d, %d, %d bytes for %d bytes of room", len(a1), len(b1), len(b2), room)
		}
		type result struct {
			res AppendResult
			err error
		}
		results := make([]chan result, 3)
		for i := range results {
			results[i] = make(chan result, 1)
		}
		blocked, release := e.ffs.blockNextWrite(isDataWrite)
		if err := e.p.AppendAsync(a1, func(r AppendResult, err error) { results[0] <- result{r, err} }); err != nil {
			t.Fatal(err)
		}
		<-blocked
		// b1 fits in the old segment; b2 goes to a new one, where every
		// write fails.
		hw := e.p.HighWatermark()
		newSeg := filepath.Join(e.p.dir, segmentName(hw+int64(1+1))+logSuffix)
		e.ffs.shortWrite(1000, func(path string, _ []byte) bool { return path == newSeg })
		for i, b := range [][]byte{b1, b2} {
			if err := e.p.AppendAsync(b, func(r AppendResult, err error) { results[i+1] <- result{r, err} }); err != nil {
				t.Fatal(err)
			}
		}
		close(release)
		ra, rb1, rb2 := <-results[0], <-results[1], <-results[2]
		if ra.err != nil {
			t.Fatalf("a1 (cycle 1): %v", ra.err)
		}
		e.lg.ack(ra.res, a1Recs)
		if !errors.Is(rb2.err, ErrFull) {
			t.Fatalf("b2: got %v, want ErrFull", rb2.err)
		}
		if rb1.err == nil {
			e.lg.ack(rb1.res, b1Recs)
		} else if got := e.p.HighWatermark(); got > rb1.res.BaseOffset {
			t.Errorf("b1 failed with %q, yet it is in the log below the high watermark %d at offset %d (ErrFull: nothing of the append was stored)",
				rb1.err, got, rb1.res.BaseOffset)
		}
		e.ffs.shortWrite(0, nil)
		res := e.mustAppend(2, 50)
		if res.BaseOffset != e.p.HighWatermark()-2 {
			t.Fatalf("append got offset %d, high watermark %d", res.BaseOffset, e.p.HighWatermark())
		}
		checkIntegrity(t, e.p, e.lg)
		e.reopen(false)
	})
}

// TestFaultRecoverWhileReading: readers keep reading while Recover reloads
// the partition from disk; a read may see the old or the new state but
// must never crash, fail or return wrong data.
func TestFaultRecoverWhileReading(t *testing.T) {
	e := newFaultEnv(t, faultConfig(true))
	for range 50 {
		e.mustAppend(3, 100)
	}
	e.ffs.failSyncs(0, 1, syscall.EIO, isDataFile)
	if _, err := e.append(1, 10); err == nil {
		t.Fatal("append succeeded with a failing fsync")
	}
	hw := e.p.HighWatermark()

	// Hold Recover in its reload (at the ReadDir of the partition
	// directory) while a reader reads what was acknowledged.
	blocked, release := e.ffs.blockNextReadDir()
	recovered := make(chan error, 1)
	go func() { recovered <- e.p.Recover() }()
	select {
	case <-blocked:
	case err := <-recovered:
		close(release)
		t.Fatalf("Recover returned (%v) without listing the partition directory", err)
	}
	readDone := make(chan any, 1)
	go func() {
		defer func() { readDone <- recover() }()
		// A Recover that keeps readers out of the segment list while it
		// reloads is fine: then there is nothing to read until it ends
		// (and waiting here would deadlock with the held Recover).
		if !e.p.segMu.TryRLock() {
			return
		}
		e.p.segMu.RUnlock()
		for off := int64(0); off < hw; off += 3 {
			data, err := e.p.Read(off, 1)
			if err != nil {
				panic(fmt.Sprintf("read at %d: %v", off, err))
			}
			var first BatchHeader
			if err := SplitBatches(data, func(h BatchHeader, _ []byte) error {
				if first.Magic == 0 {
					first = h
				}
				return nil
			}); err != nil || first.Magic == 0 || first.BaseOffset > off || first.LastOffset() < off {
				panic(fmt.Sprintf("read at %d returned %d bytes, first batch %d..%d, err %v", off, len(data), first.BaseOffset, first.LastOffset(), err))
			}
		}
	}()
	if r := <-readDone; r != nil {
		t.Errorf("reading while Recover reloads the partition: %v", r)
	}
	close(release)
	if err := <-recovered; err != nil {
		t.Fatal(err)
	}
	checkIntegrity(t, e.p, e.lg)
}

// TestFaultRollAfterFailedCreate: a roll whose new segment cannot be
// created (ENOSPC on create) fails the append with ErrFull; the next
// append must roll again and succeed. It runs in a child process because
// a failure here may be a panic in the flusher goroutine, which would
// take the whole test binary down.
func TestFaultRollAfterFailedCreate(t *testing.T) {
	if os.Getenv("SPOOL_FAULT_CHILD") == t.Name() {
		faultRollAfterFailedCreate(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "SPOOL_FAULT_CHILD="+t.Name())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child test failed: %v\n%s", err, lastLines(string(out), 40))
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

func faultRollAfterFailedCreate(t *testing.T) {
	forPrealloc(t, func(t *testing.T, prealloc bool) {
		cfg := faultConfig(prealloc)
		e := newFaultEnv(t, cfg)
		for {
			b, recs := e.batchFor(3, 100)
			if e.activeSize()+int64(len(b)) > cfg.SegmentBytes {
				break
			}
			if _, err := e.appendBatch(b, recs); err != nil {
				t.Fatal(err)
			}
		}
		hw := e.p.HighWatermark()
		e.ffs.failCreates(1, isDataFile)
		if _, err := e.append(3, 100); !errors.Is(err, ErrFull) {
			t.Fatalf("append whose roll cannot create a segment: got %v, want ErrFull", err)
		}
		e.wantNotSticky("ENOSPC creating a segment")
		res := e.mustAppend(3, 100)
		if res.BaseOffset != hw {
			t.Fatalf("append after the failed roll got offset %d, want %d", res.BaseOffset, hw)
		}
		for range 10 {
			e.mustAppend(3, 100)
		}
		checkIntegrity(t, e.p, e.lg)
		e.reopen(false)
		checkSealedTrimmed(t, e.p.dir)
	})
}
