package log

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func recycleConfig() TopicConfig {
	cfg := DefaultTopicConfig()
	cfg.SegmentBytes = 2 << 20
	cfg.MaxMessageBytes = 1 << 20
	cfg.Retention = time.Hour
	cfg.Compression = CodecNone // sizes as written, so that segments fill predictably
	return cfg
}

// fillUntil appends batches of 10 records of size bytes until the
// partition has segs segments.
func fillUntil(t *testing.T, e *faultEnv, segs, size int) {
	t.Helper()
	for e.numSegments() < segs {
		e.mustAppend(10, size)
	}
}

// spares lists the partition directory's spare files.
func spareFiles(t *testing.T, p *Partition) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(p.dir, "*"+spareSuffix))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// keepSpareOf fills three segments and lets time retention delete the
// sealed ones, the first kept as the partition's spare; it returns the
// spare's path.
func keepSpareOf(t *testing.T, e *faultEnv) string {
	t.Helper()
	fillUntil(t, e, 3, 300)
	expireSealed(t, e)
	sp := spareFiles(t, e.p)
	if len(sp) != 1 {
		t.Fatalf("spare files after retention: %v, want one", sp)
	}
	return sp[0]
}

// openCrashCopy copies e's data directory without closing the log, as a
// crash leaves it, checks that Verify calls the copy clean, and opens it.
func openCrashCopy(t *testing.T, e *faultEnv) (*Log, *Partition) {
	t.Helper()
	crashed := t.TempDir()
	copyTree(t, e.dir, crashed)
	verifyClean(t, crashed)
	l := openTestLog(t, crashed, Options{Now: e.clock.Now})
	tp, err := l.Topic(faultTopic)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := tp.Partition(0)
	return l, p
}

// expireSealed makes time retention delete every sealed segment.
func expireSealed(t *testing.T, e *faultEnv) {
	t.Helper()
	e.clock.Advance(24 * time.Hour)
	if err := e.l.Maintain(); err != nil {
		t.Fatal(err)
	}
	if n := e.numSegments(); n != 1 {
		t.Fatalf("%d segments after retention, want the active one only", n)
	}
	e.lg.mu.Lock()
	for off := range e.lg.acked {
		if off < e.p.LogStartOffset() {
			delete(e.lg.acked, off) // deleted by retention, as asked
		}
	}
	e.lg.mu.Unlock()
}

func verifyClean(t *testing.T, dir string) {
	t.Helper()
	probs, err := Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, pr := range probs {
		t.Errorf("verify: %v", pr)
	}
}

// A segment that retention deletes is kept as the partition's spare and
// becomes the next segment: the same file, written over in place (it does
// not grow while the data fits in it), its old batches never read as
// data. The new batches are cut at other places than the old ones, so the
// data mostly ends inside an old batch (the end mark). Reads, Verify,
// Dump, a clean reopen and a crash (files copied without Close) all see
// exactly the acknowledged records.
func TestRetentionRecyclesSegment(t *testing.T) {
	e := newFaultEnv(t, recycleConfig())
	spare := keepSpareOf(t, e)
	spareInfo, err := os.Stat(spare)
	if err != nil {
		t.Fatal(err)
	}
	if used, want := e.l.UsedBytes(), e.p.bytes.Load()+spareInfo.Size(); used != want {
		t.Errorf("disk budget counts %d bytes, want the partition's %d plus the spare's %d", used, e.p.bytes.Load(), spareInfo.Size())
	}

	// Roll into the spare, then write part of it.
	fillUntil(t, e, 2, 300)
	for e.activeSize() < spareInfo.Size()/2 {
		e.mustAppend(7, 217)
	}
	if left := spareFiles(t, e.p); len(left) != 0 {
		t.Fatalf("spare files after the roll: %v, want none", left)
	}
	act := e.p.active()
	actInfo, err := os.Stat(act.path)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(spareInfo, actInfo) {
		t.Fatal("the new segment is a new file, not the spare")
	}
	if n := e.l.Stats().SegmentsRecycled; n != 1 {
		t.Errorf("SegmentsRecycled = %d, want 1", n)
	}
	if actInfo.Size() != spareInfo.Size() {
		t.Errorf("recycled segment is %d bytes, was %d: it grew while its data fits", actInfo.Size(), spareInfo.Size())
	}
	data, err := os.ReadFile(act.path)
	if err != nil {
		t.Fatal(err)
	}
	if allZero(data[act.size:]) {
		t.Fatal("the recycled file holds zeros after the data, not its old content: nothing was recycled")
	}
	checkIntegrity(t, e.p, e.lg)
	checkSizeAccounting(t, e.p)
	verifyClean(t, e.dir)
	var dump bytes.Buffer
	if err := Dump(&dump, act.path, false); err != nil {
		t.Fatalf("dump: %v", err)
	}
	if !strings.Contains(dump.String(), "recycled segment file follow") {
		t.Errorf("dump of the recycled segment does not end at its data:\n%s", tail(dump.String(), 400))
	}
	batches := 0
	for _, line := range strings.Split(dump.String(), "\n") {
		var base int64
		if _, err := fmt.Sscanf(line, "baseOffset: %d", &base); err == nil {
			batches++
			if base < act.base {
				t.Fatalf("dump shows an old batch as data: %s", line)
			}
		}
	}
	if batches == 0 {
		t.Errorf("dump printed no batch:\n%s", tail(dump.String(), 400))
	}

	l2, p2 := openCrashCopy(t, e)
	checkIntegrity(t, p2, e.lg)
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
	verifyClean(t, l2.Dir())

	e.reopen(false)
	checkIntegrity(t, e.p, e.lg)
	e.mustAppend(10, 300)
	checkIntegrity(t, e.p, e.lg)
	verifyClean(t, e.dir)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// A crash right after a roll renamed the spare to the new segment's name,
// before any write reached it: the last segment holds nothing but the old
// file's batches. Verify calls it clean, and recovery opens it empty at its
// base without reporting a torn tail.
func TestRecycledSegmentCrashBeforeFirstWrite(t *testing.T) {
	e := newFaultEnv(t, recycleConfig())
	spare := keepSpareOf(t, e)
	old, err := os.ReadFile(spare)
	if err != nil {
		t.Fatal(err)
	}
	fillUntil(t, e, 2, 300)
	act := e.p.active()
	base := act.base

	crashed := t.TempDir()
	copyTree(t, e.dir, crashed)
	pdir := filepath.Join(crashed, topicsDir, faultTopic, "0")
	// As if the first write into the renamed file, and the index writes,
	// never happened.
	name := segmentName(base)
	if err := os.WriteFile(filepath.Join(pdir, name+logSuffix), old, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, ix := range []string{indexSuffix, timeIndexSuffix} {
		if err := os.Truncate(filepath.Join(pdir, name+ix), 0); err != nil {
			t.Fatal(err)
		}
	}
	verifyClean(t, crashed)
	var dump bytes.Buffer
	if err := Dump(&dump, filepath.Join(pdir, name+logSuffix), false); err != nil {
		t.Fatalf("dump: %v", err)
	}
	if strings.Contains(dump.String(), "baseOffset:") || !strings.Contains(dump.String(), "recycled segment file follow") {
		t.Errorf("dump of a recycled file before its first write shows old batches:\n%s", tail(dump.String(), 400))
	}

	var logs bytes.Buffer
	l2 := openTestLog(t, crashed, Options{Now: e.clock.Now, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	defer l2.Close()
	tp2, err := l2.Topic(faultTopic)
	if err != nil {
		t.Fatal(err)
	}
	p2, _ := tp2.Partition(0)
	if p2.HighWatermark() != base {
		t.Fatalf("high watermark %d after the crash, want the new segment's base %d", p2.HighWatermark(), base)
	}
	if got, want := int64(len(readAll(t, p2))), base-p2.LogStartOffset(); got != want {
		t.Fatalf("%d records readable, want %d", got, want)
	}
	if strings.Contains(logs.String(), "torn tail") {
		t.Errorf("recovery took the recycled file's old batches for a torn write:\n%s", logs.String())
	}
	res, err := p2.AppendRecords([]Record{{Value: []byte("after")}}, DefaultBatchOptions)
	if err != nil || res.BaseOffset != base {
		t.Fatalf("append after recovery: %+v, %v; want offset %d", res, err, base)
	}
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
	verifyClean(t, crashed)
}

// A spare whose old batches do not all lie below the next segment's base
// (only possible if offsets went back, which the log never does) is
// deleted at the roll, never written over: the old batches would then be
// indistinguishable from new ones.
func TestSpareNotReusedBelowItsOffsets(t *testing.T) {
	e := newFaultEnv(t, recycleConfig())
	e.mustAppend(10, 300)
	pdir := filepath.Join(e.dir, topicsDir, faultTopic, "0")
	bogus := filepath.Join(pdir, spareName(1<<40))
	if err := os.WriteFile(bogus, bytes.Repeat([]byte{7}, 2<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	older := filepath.Join(pdir, spareName(5))
	if err := os.WriteFile(older, bytes.Repeat([]byte{7}, 2<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	e.reopen(false) // adopts the spares written beside the open log
	if _, err := os.Stat(older); !os.IsNotExist(err) {
		t.Errorf("a second spare survived the open: %v", err)
	}
	if used, want := e.l.UsedBytes(), e.p.bytes.Load()+2<<20; used != want {
		t.Errorf("used %d bytes, want %d (the spare counted)", used, want)
	}
	fillUntil(t, e, 2, 300)
	act := e.p.active()
	data, err := os.ReadFile(act.path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.IndexByte(data[act.size:], 7) >= 0 {
		t.Fatal("a spare holding offsets past the new segment's base became it")
	}
	if _, err := os.Stat(bogus); !os.IsNotExist(err) {
		t.Errorf("the unusable spare was not deleted: %v", err)
	}
	checkIntegrity(t, e.p, e.lg)
	checkSizeAccounting(t, e.p)
	if used := e.l.UsedBytes(); used != e.p.bytes.Load() {
		t.Errorf("used %d bytes, partition %d: the deleted spare is still counted", used, e.p.bytes.Load())
	}
}

// Under a disk budget, spares go before any data: an append that needs
// room deletes them first, and the log refuses (on_full: reject) only once
// they are gone. Deleting a topic stops counting its spare.
func TestDiskBudgetDropsSparesFirst(t *testing.T) {
	dir := t.TempDir()
	clock := newTestClock()
	const budget = 24 << 20
	l := openTestLog(t, dir, Options{Now: clock.Now, DiskBudget: budget})
	defer l.Close()
	cfg := recycleConfig()
	cfg.Sync = SyncNever
	ta, err := l.CreateTopic("a", cfg)
	if err != nil {
		t.Fatal(err)
	}
	pa, _ := ta.Partition(0)
	batch := func() []Record { return budgetBatch(clock) }
	for len(pa.segments) < 3 {
		if _, err := pa.AppendRecords(batch(), DefaultBatchOptions); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(24 * time.Hour)
	if err := l.Maintain(); err != nil {
		t.Fatal(err)
	}
	if pa.spareBytes() == 0 {
		t.Fatal("no spare kept with room under the budget")
	}
	cfg.Retention = -1
	tb, err := l.CreateTopic("b", cfg)
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := tb.Partition(0)
	for {
		_, err := pb.AppendRecords(batch(), DefaultBatchOptions)
		if err == nil {
			continue
		}
		if !errors.Is(err, ErrFull) {
			t.Fatal(err)
		}
		break
	}
	if n := pa.spareBytes(); n != 0 {
		t.Errorf("refused with a %d-byte spare still on disk", n)
	}
	if sp := spareFiles(t, pa); len(sp) != 0 {
		t.Errorf("spare files left: %v", sp)
	}
	if used := l.UsedBytes(); used > budget {
		t.Errorf("used %d bytes, over the budget of %d", used, budget)
	}
	if err := l.DeleteTopic("b"); err != nil {
		t.Fatal(err)
	}
	// A spare again, then the topic deleted: nothing stays counted.
	for len(pa.segments) < 3 {
		if _, err := pa.AppendRecords(batch(), DefaultBatchOptions); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(24 * time.Hour)
	if err := l.Maintain(); err != nil {
		t.Fatal(err)
	}
	if pa.spareBytes() == 0 {
		t.Fatal("no spare kept after the other topic was deleted")
	}
	if err := l.DeleteTopic("a"); err != nil {
		t.Fatal(err)
	}
	if used := l.UsedBytes(); used != 0 {
		t.Errorf("used %d bytes with no topic left", used)
	}
}

// Size retention counts records, not the recycled file's old content past
// them: right after a roll into a spare, the partition keeps one sealed
// segment (retention_bytes is one segment) and an almost empty active one.
// Counting the recycled file's whole size from its first write would
// delete that sealed one too and keep half the data asked for.
func TestRetentionBytesCountsDataInRecycledSegment(t *testing.T) {
	cfg := recycleConfig()
	cfg.Retention = -1
	cfg.RetentionBytes = cfg.SegmentBytes
	e := newFaultEnv(t, cfg)
	for e.l.Stats().SegmentsRecycled == 0 {
		e.mustAppend(10, 1000)
	}
	for range 5 {
		e.mustAppend(10, 1000)
	}
	if n := e.numSegments(); n != 2 {
		t.Errorf("%d segments after a few appends into the recycled segment, want 2: retention counted its old content as data", n)
	}
	if got, want := e.p.retainedBytes(), e.p.Size()-(e.p.active().alloc-e.activeSize()); got != want {
		t.Errorf("retained bytes %d, want the files' %d without the active tail", got, want)
	}
}

// Under a disk budget, a recycled active segment's old content goes too
// before the log refuses: it holds no record. The segment goes on from its
// data, zero-filling as a new one does.
func TestDiskBudgetCutsRecycledTail(t *testing.T) {
	dir := t.TempDir()
	clock := newTestClock()
	const budget = 12 << 20
	l := openTestLog(t, dir, Options{Now: clock.Now, DiskBudget: budget})
	defer l.Close()
	cfg := recycleConfig()
	cfg.Sync = SyncNever
	cfg.Retention = -1
	cfg.RetentionBytes = cfg.SegmentBytes
	ta, err := l.CreateTopic("a", cfg)
	if err != nil {
		t.Fatal(err)
	}
	pa, _ := ta.Partition(0)
	batch := func() []Record { return budgetBatch(clock) }
	for l.Stats().SegmentsRecycled == 0 {
		if _, err := pa.AppendRecords(batch(), DefaultBatchOptions); err != nil {
			t.Fatal(err)
		}
	}
	act := pa.active()
	if act.alloc-act.size < 1<<20 {
		t.Fatalf("setup: the recycled segment's tail is %d bytes", act.alloc-act.size)
	}
	cfg.RetentionBytes = -1
	tb, err := l.CreateTopic("b", cfg)
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := tb.Partition(0)
	for {
		if _, err := pb.AppendRecords(batch(), DefaultBatchOptions); err != nil {
			if !errors.Is(err, ErrFull) {
				t.Fatal(err)
			}
			break
		}
	}
	fi, err := os.Stat(act.path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > act.size {
		t.Errorf("refused with the recycled segment still %d bytes for %d of data", fi.Size(), act.size)
	}
	if used := l.UsedBytes(); used > budget {
		t.Errorf("used %d bytes, over the budget of %d", used, budget)
	}
	checkSizeAccounting(t, pa)
	if _, err := pa.AppendRecords(batch(), DefaultBatchOptions); err != nil && !errors.Is(err, ErrFull) {
		t.Fatalf("append to the cut segment: %v", err)
	}
	if got, want := int64(len(readAll(t, pa))), pa.HighWatermark()-pa.LogStartOffset(); got != want {
		t.Errorf("%d records readable, want %d", got, want)
	}
	verifyClean(t, dir)
}

// budgetBatch is 10 records of 1000 bytes stamped with the clock's time.
func budgetBatch(clock *testClock) []Record {
	val := bytes.Repeat([]byte("v"), 1000)
	recs := make([]Record, 10)
	for i := range recs {
		recs[i] = Record{Timestamp: clock.Now().UnixMilli(), Value: val}
	}
	return recs
}
