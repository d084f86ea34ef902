package log

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// rgHookFS is OSFS with one-shot hooks: one that fails the next file Sync,
// one that holds the next SyncDir of a directory, one that holds the next
// OpenFile of a path. A held call signals entered and waits for release.
type rgHookFS struct {
	OSFS
	mu sync.Mutex

	failSync bool

	syncDirPath string
	openPath    string
	entered     chan struct{}
	release     chan struct{}
}

type rgHookFile struct {
	File
	h *rgHookFS
}

func (h *rgHookFS) hold(syncDir, open string) (entered <-chan struct{}, release chan<- struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.syncDirPath, h.openPath = syncDir, open
	h.entered, h.release = make(chan struct{}), make(chan struct{})
	return h.entered, h.release
}

func (h *rgHookFS) wait(match func(*rgHookFS) bool) {
	h.mu.Lock()
	hit := match(h)
	entered, release := h.entered, h.release
	if hit {
		h.syncDirPath, h.openPath = "", ""
	}
	h.mu.Unlock()
	if hit {
		close(entered)
		<-release
	}
}

func (h *rgHookFS) SyncDir(name string) error {
	h.wait(func(h *rgHookFS) bool { return h.syncDirPath != "" && h.syncDirPath == name })
	return h.OSFS.SyncDir(name)
}

func (h *rgHookFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	h.wait(func(h *rgHookFS) bool { return h.openPath != "" && h.openPath == name })
	f, err := h.OSFS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return rgHookFile{f, h}, nil
}

func (f rgHookFile) Sync() error {
	f.h.mu.Lock()
	fail := f.h.failSync
	f.h.failSync = false
	f.h.mu.Unlock()
	if fail {
		return &os.PathError{Op: "fdatasync", Path: "zz", Err: errors.New("injected EIO")}
	}
	return f.File.Sync()
}

// TestRollCrashKeepsMaxTimestamp: a crash during a roll, taken when the
// new segment's name is durable, must not leave the old segment sealed by
// name only. The active segment writes its time index in bulk and seal
// adds the last entry; a reopened sealed segment takes its max timestamp
// from that index. So a roll seals first: after the crash, time retention
// keeps the records younger than retention and OffsetForTime finds them.
func TestRollCrashKeepsMaxTimestamp(t *testing.T) {
	hook := &rgHookFS{}
	clock := newTestClock()
	dir := t.TempDir()
	l := openTestLog(t, dir, Options{FS: hook, Now: clock.Now})
	defer l.Close()
	cfg := hkConfig()
	cfg.SegmentBytes = 100 * hkBatch // 100 batches per segment
	tp, err := l.CreateTopic("ev", cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := hkPart(t, tp, 0)
	old, recent := hkT0, hkT0.Add(10*time.Hour)
	// Offsets 0..69 stamped T0, 70..99 stamped T0+10h: one full segment,
	// every append acknowledged (sync: always).
	hkFill(t, p, 100, func(off int64) int64 {
		if off < 70 {
			return hkMs(old)
		}
		return hkMs(recent)
	})

	// The 101st append rolls. Hold the roll at the directory sync of the
	// new segment's create and take what is on disk then: a kill -9 there.
	entered, release := hook.hold(p.dir, "")
	appended := make(chan error, 1)
	go func() {
		_, err := p.AppendRecords(hkSized(t, hkBatch, hkMs(recent), hkKey(100)), DefaultBatchOptions)
		appended <- err
	}()
	select {
	case <-entered:
	case err := <-appended:
		t.Fatalf("append returned (%v) without rolling", err)
	}
	crashed := t.TempDir()
	if err := crashCopyDir(dir, crashed); err != nil {
		close(release)
		t.Fatal(err)
	}
	close(release)
	if err := <-appended; err != nil {
		t.Fatal(err)
	}

	// Restart from the crash image, 1 minute after the newest record.
	cclock := newTestClock()
	cclock.now = recent.Add(time.Minute)
	cl := openTestLog(t, crashed, Options{Now: cclock.Now})
	defer cl.Close()
	ctp, err := cl.Topic("ev")
	if err != nil {
		t.Fatal(err)
	}
	cp := hkPart(t, ctp, 0)
	if hw := cp.HighWatermark(); hw != 100 {
		t.Fatalf("high watermark %d after the crash, want 100 (all acknowledged)", hw)
	}
	if off, ok, err := cp.OffsetForTime(hkMs(recent)); err != nil || !ok || off != 70 {
		t.Errorf("OffsetForTime(T0+10h) = %d, %v, %v; want 70, true: records 70..99 carry that time", off, ok, err)
	}

	// Retention of 5 hours: records 70..99 are one minute old.
	cfg.Retention = 5 * time.Hour
	if err := cl.AlterTopic("ev", cfg); err != nil {
		t.Fatal(err)
	}
	if err := cl.Maintain(); err != nil {
		t.Fatal(err)
	}
	if start := cp.LogStartOffset(); start != 0 {
		t.Errorf("time retention of 5h moved the log start to %d one minute after records 70..99 were written; "+
			"the segment's newest record is not expired, it must stay (log start 0)", start)
	}
}

// TestRecoverExcludesRetention: retention running while Recover reloads
// the segment list (here through the disk budget: another topic's append
// calls Log.makeRoom) must not have its deletions undone: the log start
// stays where retention left it, offsets below are out of range, and Size
// matches the files on disk.
func TestRecoverExcludesRetention(t *testing.T) {
	hook := &rgHookFS{}
	clock := newTestClock()
	dir := t.TempDir()
	l := openTestLog(t, dir, Options{FS: hook, Now: clock.Now, DiskBudget: 2700})
	defer l.Close()
	cfg := hkConfig()
	cfg.Retention = time.Hour
	ta, err := l.CreateTopic("a", cfg)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := l.CreateTopic("b", hkConfig())
	if err != nil {
		t.Fatal(err)
	}
	pa, pb := hkPart(t, ta, 0), hkPart(t, tb, 0)
	hkFill(t, pa, 12, hkAt(hkT0)) // sealed [0,5) [5,10), active [10,12)

	// A failed fsync makes partition a sticky; Recover must reload it.
	hook.mu.Lock()
	hook.failSync = true
	hook.mu.Unlock()
	if _, err := pa.AppendRecords(hkSized(t, hkBatch, hkMs(hkT0), hkKey(12)), DefaultBatchOptions); err == nil {
		t.Fatal("append succeeded with a failing fsync")
	}
	if pa.Err() == nil {
		t.Fatal("partition not sticky after a failed fsync")
	}

	// Two hours later segments [0,5) and [5,10) are expired.
	clock.Advance(2 * time.Hour)
	active := filepath.Join(pa.dir, segmentName(10)+logSuffix)
	entered, release := hook.hold("", active)
	recovered := make(chan error, 1)
	go func() { recovered <- pa.Recover() }()
	select {
	case <-entered: // load has opened [0,5) and [5,10) and opens the active one
	case err := <-recovered:
		close(release)
		t.Fatalf("Recover returned (%v) without opening the active segment", err)
	}
	// Meanwhile an append to topic b goes over the disk budget: the log
	// applies retention to every partition, deleting a's expired segments.
	// (A Recover that keeps retention out until it is done is fine too:
	// then the append waits, and retention runs on the reloaded list.)
	appended := make(chan error, 1)
	go func() {
		_, err := pb.AppendRecords(hkSized(t, hkBatch, hkMs(clock.Now()), hkKey(0)), DefaultBatchOptions)
		appended <- err
	}()
	select {
	case err := <-appended:
		appended <- err
	case <-time.After(500 * time.Millisecond):
	}
	close(release)
	if err := <-recovered; err != nil {
		t.Fatal(err)
	}
	if err := <-appended; err != nil {
		t.Fatalf("append to b: %v", err)
	}
	if got := hkSegBases(t, pa); len(got) != 1 || got[0] != 10 {
		t.Fatalf("retention left segments %v, want [10]", got)
	}

	if start := pa.LogStartOffset(); start != 10 {
		t.Errorf("log start %d after Recover, want 10: retention deleted [0,10) and the start must not move back", start)
	}
	if data, err := pa.Read(0, 1<<20); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Errorf("read at 0 returned %d bytes, err %v: offset 0 is in a deleted segment, want ErrOffsetOutOfRange", len(data), err)
	}
	var onDisk int64
	entries, _ := os.ReadDir(pa.dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), logSuffix) {
			if fi, err := e.Info(); err == nil {
				onDisk += fi.Size()
			}
		}
	}
	if pa.Size() != onDisk {
		t.Errorf("partition size %d, but its segment files hold %d bytes", pa.Size(), onDisk)
	}
}

// rgSyncGateFS holds the next file Sync (before it reaches the file) until
// released.
type rgSyncGateFS struct {
	OSFS
	mu      sync.Mutex
	armed   bool
	entered chan struct{}
	release chan struct{}
}

type rgSyncGateFile struct {
	File
	g *rgSyncGateFS
}

func (g *rgSyncGateFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := g.OSFS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return rgSyncGateFile{f, g}, nil
}

func (f rgSyncGateFile) Sync() error {
	f.g.mu.Lock()
	armed := f.g.armed
	f.g.armed = false
	f.g.mu.Unlock()
	if armed {
		close(f.g.entered)
		<-f.g.release
	}
	return f.File.Sync()
}

// TestRetentionWaitsForSyncJob: with sync: always, a large cycle is
// fsynced beside the flusher. A roll of that segment waits for the fsync,
// so retention cannot delete the segment (closing its file) under it:
// while the fsync runs the segment stays active and nothing is deleted;
// once it returns both appends succeed, the segment is sealed, and
// retention then deletes it with the partition still writable.
func TestRetentionWaitsForSyncJob(t *testing.T) {
	gate := &rgSyncGateFS{}
	clock := newTestClock()
	l := openTestLog(t, t.TempDir(), Options{FS: gate, Now: clock.Now})
	defer l.Close()
	cfg := hkConfig()
	cfg.SegmentBytes = 400 << 10
	cfg.MaxMessageBytes = 400 << 10
	cfg.Retention = time.Hour
	tp, err := l.CreateTopic("big", cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := hkPart(t, tp, 0)
	// Records stamped two hours ago (an edge device uploading its buffer):
	// expired as soon as their segment is sealed.
	old := hkMs(clock.Now().Add(-2 * time.Hour))
	big := func(k string) []byte {
		b, err := AppendBatch(nil, []Record{{Timestamp: old, Key: []byte(k), Value: make([]byte, 300<<10)}}, DefaultBatchOptions)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	gate.mu.Lock()
	gate.armed, gate.entered, gate.release = true, make(chan struct{}), make(chan struct{})
	gate.mu.Unlock()
	first := make(chan error, 1)
	go func() { _, err := p.Append(big("a")); first <- err }()
	<-gate.entered // the fsync job of the first cycle is about to sync segment 0

	// The second large append does not fit: the flusher must roll, and
	// waits for the first cycle's fsync first.
	second := make(chan error, 1)
	go func() { _, err := p.Append(big("b")); second <- err }()
	time.Sleep(100 * time.Millisecond)
	if err := l.Maintain(); err != nil {
		t.Errorf("maintain: %v", err)
	}
	p.segMu.RLock()
	n := len(p.segments)
	p.segMu.RUnlock()
	if n != 1 || p.LogStartOffset() != 0 {
		t.Errorf("while the fsync ran: %d segments, log start %d; want the one active segment, untouched", n, p.LogStartOffset())
	}
	close(gate.release)
	if err := <-first; err != nil {
		t.Errorf("first append failed: %v", err)
	}
	if err := <-second; err != nil {
		t.Errorf("second append failed: %v", err)
	}
	if err := l.Maintain(); err != nil {
		t.Errorf("maintain: %v", err)
	}
	if lso := p.LogStartOffset(); lso != 1 {
		t.Errorf("log start %d after retention, want 1 (segment 0 deleted)", lso)
	}
	if err := p.Err(); err != nil {
		t.Errorf("partition sticky: %v", err)
	}
}
