package log

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Helpers shared by retention_test.go, compact_test.go and topic_test.go
// (prefix hk, for housekeeping).

const (
	// hkBatch is the size of every fixed-size test batch; with hkConfig's
	// 1 KiB segments, a segment holds exactly hkSegBatches of them.
	hkBatch      = 200
	hkSegBatches = 5
	hkSeg        = hkBatch * hkSegBatches // bytes of a full sealed segment
)

// hkT0 is where newTestClock starts.
var hkT0 = time.UnixMilli(1_700_000_000_000)

func hkMs(t time.Time) int64 { return t.UnixMilli() }

// hkConfig rolls segments by size only (five 200-byte batches each), keeps
// everything, and does not preallocate, so that sizes are exact.
func hkConfig() TopicConfig {
	cfg := DefaultTopicConfig()
	cfg.SegmentBytes = 1024
	cfg.MaxMessageBytes = 1024
	cfg.SegmentAge = 100000 * time.Hour
	cfg.Retention = -1
	cfg.RetentionBytes = -1
	cfg.Preallocate = false
	cfg.IndexIntervalBytes = 64
	return cfg
}

type hkRig struct {
	t     *testing.T
	dir   string
	clock *testClock
	opts  Options
	l     *Log
}

func newHKRig(t *testing.T, budget int64) *hkRig {
	t.Helper()
	r := &hkRig{t: t, dir: t.TempDir(), clock: newTestClock()}
	r.opts = Options{Now: r.clock.Now, DiskBudget: budget}
	r.l = openTestLog(t, r.dir, r.opts)
	t.Cleanup(func() { r.l.Close() })
	return r
}

func (r *hkRig) reopen() {
	r.t.Helper()
	if err := r.l.Close(); err != nil {
		r.t.Fatalf("close: %v", err)
	}
	r.l = openTestLog(r.t, r.dir, r.opts)
}

func (r *hkRig) set(now time.Time) {
	r.clock.mu.Lock()
	r.clock.now = now
	r.clock.mu.Unlock()
}

func (r *hkRig) create(name string, cfg TopicConfig) *Topic {
	r.t.Helper()
	tp, err := r.l.CreateTopic(name, cfg)
	if err != nil {
		r.t.Fatalf("create topic %q: %v", name, err)
	}
	return tp
}

func (r *hkRig) maintain() {
	r.t.Helper()
	if err := r.l.Maintain(); err != nil {
		r.t.Fatalf("maintain: %v", err)
	}
}

func hkPart(t testing.TB, tp *Topic, i int32) *Partition {
	t.Helper()
	p, err := tp.Partition(i)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// hkSized returns one record per key, all stamped ts, the last one's value
// padded so that they encode as one batch of exactly size bytes.
func hkSized(t testing.TB, size int, ts int64, keys ...string) []Record {
	t.Helper()
	recs := make([]Record, len(keys))
	for i, k := range keys {
		recs[i] = Record{Timestamp: ts, Key: []byte(k), Value: []byte{}}
	}
	for pad := 0; pad <= size; pad++ {
		recs[len(recs)-1].Value = bytes.Repeat([]byte{'x'}, pad)
		b, err := AppendBatch(nil, recs, DefaultBatchOptions)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == size {
			return recs
		}
	}
	t.Fatalf("no padding makes a %d-byte batch of keys %q", size, keys)
	return nil
}

func hkKey(off int64) string { return fmt.Sprintf("k%03d", off%1000) }

// hkFill appends n single-record batches of hkBatch bytes, the record at
// offset o keyed hkKey(o) and stamped ts(o), checking the offsets.
func hkFill(t testing.TB, p *Partition, n int, ts func(off int64) int64) {
	t.Helper()
	for range n {
		off := p.HighWatermark()
		res, err := p.AppendRecords(hkSized(t, hkBatch, ts(off), hkKey(off)), DefaultBatchOptions)
		if err != nil {
			t.Fatalf("append at %d: %v", off, err)
		}
		if res.BaseOffset != off || res.LastOffset != off {
			t.Fatalf("append at %d landed at %d..%d", off, res.BaseOffset, res.LastOffset)
		}
	}
}

// hkAt stamps every record with a fixed time.
func hkAt(ts time.Time) func(int64) int64 { return func(int64) int64 { return hkMs(ts) } }

func hkOffsets(recs []Record) []int64 {
	out := make([]int64, len(recs))
	for i, r := range recs {
		out[i] = r.Offset
	}
	return out
}

func hkRange(from, to int64) []int64 {
	out := []int64{}
	for o := from; o < to; o++ {
		out = append(out, o)
	}
	return out
}

// hkSegBases lists the base offsets of the partition's .log files on disk,
// and checks that no index file outlives its segment (the log start file
// of DeleteRecords is the one other file a partition has).
func hkSegBases(t testing.TB, p *Partition) []int64 {
	t.Helper()
	entries, err := os.ReadDir(p.dir)
	if err != nil {
		t.Fatal(err)
	}
	logs := map[string]bool{}
	var bases []int64
	for _, e := range entries {
		if base, ok := parseSegmentName(e.Name()); ok {
			bases = append(bases, base)
			logs[strings.TrimSuffix(e.Name(), logSuffix)] = true
		}
	}
	for _, e := range entries {
		stem, _, _ := strings.Cut(e.Name(), ".")
		if !logs[stem] && e.Name() != logStartFile {
			t.Errorf("%s: %s has no segment", p.dir, e.Name())
		}
	}
	slices.Sort(bases)
	return bases
}

// hkCheck asserts a partition's log start, high watermark, surviving
// offsets (each record keyed hkKey), size and segment files.
func hkCheck(t testing.TB, p *Partition, start, hw int64, bases []int64) {
	t.Helper()
	if got := p.LogStartOffset(); got != start {
		t.Errorf("log start %d, want %d", got, start)
	}
	if got := p.HighWatermark(); got != hw {
		t.Errorf("high watermark %d, want %d", got, hw)
	}
	got := readAll(t, p)
	if !slices.Equal(hkOffsets(got), hkRange(start, hw)) {
		t.Errorf("offsets %v, want %v", hkOffsets(got), hkRange(start, hw))
	}
	for _, r := range got {
		if string(r.Key) != hkKey(r.Offset) {
			t.Errorf("offset %d holds key %q, want %q", r.Offset, r.Key, hkKey(r.Offset))
		}
	}
	if want := (hw - start) * hkBatch; p.Size() != want {
		t.Errorf("size %d, want %d", p.Size(), want)
	}
	if gotBases := hkSegBases(t, p); !slices.Equal(gotBases, bases) {
		t.Errorf("segments on disk %v, want %v", gotBases, bases)
	}
	if start > 0 {
		for _, off := range []int64{0, start - 1} {
			if _, err := p.Read(off, 1<<20); !errors.Is(err, ErrOffsetOutOfRange) {
				t.Errorf("read at %d below log start %d: %v, want ErrOffsetOutOfRange", off, start, err)
			}
		}
	}
}

// hkBases returns the segment bases from start (a segment boundary) up to
// the active segment of a partition whose high watermark is hw.
func hkBases(start, hw int64) []int64 {
	var out []int64
	for b := start; b < hw || b == start; b += hkSegBatches {
		out = append(out, b)
	}
	return out
}

func TestRetentionTimeDeletesOnlyExpiredSealedSegments(t *testing.T) {
	// 18 records: sealed segments [0,5) [5,10) [10,15), active [15,18).
	// Record o is stamped T0 + (o/5) h + (o%5) min: the newest record of
	// segment i is T0 + i h + 4 min.
	ts := func(off int64) int64 {
		return hkMs(hkT0.Add(time.Duration(off/5)*time.Hour + time.Duration(off%5)*time.Minute))
	}
	newest := func(seg int) time.Time { return hkT0.Add(time.Duration(seg)*time.Hour + 4*time.Minute) }
	cases := []struct {
		name      string
		retention time.Duration
		now       time.Time
		start     int64
	}{
		{"negative retention keeps forever", -1, hkT0.Add(100000 * time.Hour), 0},
		{"nothing old enough", 2 * time.Hour, hkT0.Add(time.Hour), 0},
		{"oldest record expired but not the newest", 2 * time.Hour, hkT0.Add(2*time.Hour + time.Minute), 0},
		{"newest record exactly at retention", 2 * time.Hour, newest(0).Add(2 * time.Hour), 0},
		{"first segment just expired", 2 * time.Hour, newest(0).Add(2*time.Hour + time.Millisecond), 5},
		{"two segments expired", 2 * time.Hour, newest(1).Add(2*time.Hour + time.Millisecond), 10},
		{"all sealed expired, active stays", 2 * time.Hour, newest(3).Add(1000 * time.Hour), 15},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newHKRig(t, 0)
			cfg := hkConfig()
			cfg.Retention = tc.retention
			tp := r.create("events", cfg)
			p := hkPart(t, tp, 0)
			hkFill(t, p, 18, ts)
			hkCheck(t, p, 0, 18, []int64{0, 5, 10, 15})
			usedBefore := r.l.UsedBytes()

			r.set(tc.now)
			r.maintain()
			hkCheck(t, p, tc.start, 18, hkBases(tc.start, 18))
			if got, want := r.l.UsedBytes(), usedBefore-tc.start*hkBatch; got != want {
				t.Errorf("used bytes %d, want %d", got, want)
			}
			r.maintain() // a second pass finds nothing more
			hkCheck(t, p, tc.start, 18, hkBases(tc.start, 18))
			if tp.DroppedRecords() != 0 {
				t.Errorf("retention counted %d dropped records", tp.DroppedRecords())
			}
			hkFill(t, p, 1, hkAt(tc.now))
			if p.HighWatermark() != 19 {
				t.Errorf("append after retention: high watermark %d", p.HighWatermark())
			}
		})
	}
}

func TestRetentionBytesPerPartition(t *testing.T) {
	// Partition 0: 23 records, sealed [0,5) [5,10) [10,15) [15,20), active
	// [20,23): 4600 bytes. Partition 1: 8 records, sealed [0,5), active
	// [5,8): 1600 bytes. The limit is per partition, not per topic.
	cases := []struct {
		name           string
		retentionBytes int64
		start0, start1 int64
	}{
		{"negative is unbounded", -1, 0, 0},
		{"limit above the partitions", 5000, 0, 0},
		{"limit equal to partition 0", 4600, 0, 0},
		{"deleting one segment reaches the limit exactly", 3600, 5, 0},
		{"just below that keeps the second segment", 3599, 5, 0},
		{"one byte over two segments", 2601, 5, 0},
		{"limit equal to partition 1", 1600, 15, 0},
		{"partition 1 would go below the limit", 601, 15, 0},
		{"partition 1 trimmed to its active segment", 600, 20, 5},
		{"zero deletes every sealed segment", 0, 20, 5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newHKRig(t, 0)
			cfg := hkConfig()
			cfg.Partitions = 2
			tp := r.create("sizes", cfg)
			p0, p1 := hkPart(t, tp, 0), hkPart(t, tp, 1)
			hkFill(t, p0, 23, hkAt(hkT0))
			hkFill(t, p1, 8, hkAt(hkT0))
			// Retention never forgets: time retention is off (-1), so
			// only the size limit can delete.
			cfg.RetentionBytes = tc.retentionBytes
			if err := r.l.AlterTopic("sizes", cfg); err != nil {
				t.Fatal(err)
			}
			r.set(hkT0.Add(100000 * time.Hour))
			r.maintain()
			hkCheck(t, p0, tc.start0, 23, hkBases(tc.start0, 23))
			hkCheck(t, p1, tc.start1, 8, hkBases(tc.start1, 8))
			if got, want := r.l.UsedBytes(), (23-tc.start0+8-tc.start1)*hkBatch; got != want {
				t.Errorf("used bytes %d, want %d", got, want)
			}
		})
	}
}

func TestRetentionPinHoldsSegments(t *testing.T) {
	// 23 records: sealed [0,5) [5,10) [10,15) [15,20), active [20,23), all
	// expired. A pin keeps every segment holding offsets at or after it.
	cases := []struct {
		name  string
		pins  map[string]int64
		start int64
	}{
		{"no pin", nil, 20},
		{"pin at zero", map[string]int64{"bridge": 0}, 0},
		{"pin inside the first segment", map[string]int64{"bridge": 3}, 0},
		{"pin at a segment boundary", map[string]int64{"bridge": 5}, 5},
		{"pin at the last offset of a segment", map[string]int64{"bridge": 14}, 10},
		{"lowest pin wins", map[string]int64{"a": 12, "b": 7, "c": 19}, 5},
		{"pin in the active segment", map[string]int64{"bridge": 22}, 20},
		{"pin past the high watermark", map[string]int64{"bridge": 100}, 20},
	}
	for _, policy := range []string{"time", "size"} {
		for _, tc := range cases {
			t.Run(policy+"/"+tc.name, func(t *testing.T) {
				r := newHKRig(t, 0)
				cfg := hkConfig()
				tp := r.create("pinned", cfg)
				p := hkPart(t, tp, 0)
				hkFill(t, p, 23, hkAt(hkT0))
				if policy == "time" {
					cfg.Retention = time.Hour
				} else {
					cfg.RetentionBytes = 0
				}
				if err := r.l.AlterTopic("pinned", cfg); err != nil {
					t.Fatal(err)
				}
				for name, off := range tc.pins {
					p.Pin(name, off)
				}
				r.set(hkT0.Add(24 * time.Hour))
				r.maintain()
				hkCheck(t, p, tc.start, 23, hkBases(tc.start, 23))

				// Unpinning releases what the pins held.
				for name := range tc.pins {
					p.Unpin(name)
				}
				r.maintain()
				hkCheck(t, p, 20, 23, []int64{20})
				if tp.DroppedRecords() != 0 {
					t.Errorf("retention under a pin counted %d dropped records", tp.DroppedRecords())
				}
			})
		}
	}
}

func TestRetentionRePinAfterUnpinStillHolds(t *testing.T) {
	r := newHKRig(t, 0)
	cfg := hkConfig()
	cfg.Retention = time.Hour
	tp := r.create("pinned", cfg)
	p := hkPart(t, tp, 0)
	hkFill(t, p, 23, hkAt(hkT0))
	r.set(hkT0.Add(2 * time.Hour))
	p.Pin("a", 2)
	p.Pin("b", 11)
	r.maintain()
	hkCheck(t, p, 0, 23, []int64{0, 5, 10, 15, 20})
	p.Unpin("a") // b still holds [10,15)
	r.maintain()
	hkCheck(t, p, 10, 23, []int64{10, 15, 20})
	p.Pin("b", 16) // moving a pin forward releases more
	r.maintain()
	hkCheck(t, p, 15, 23, []int64{15, 20})
	p.Unpin("nobody") // unknown names are harmless
	p.Unpin("b")
	r.maintain()
	hkCheck(t, p, 20, 23, []int64{20})
}

func TestRetentionBudgetRejectThenRetentionFreesSpace(t *testing.T) {
	// Budget 2000 bytes: [0,5) stamped T0 and sealed, [5,10) stamped T0+1h
	// and active. Retention 3h.
	cases := []struct {
		name     string
		now      time.Time
		maintain bool // run Maintain before appending (else the append retains)
		wantErr  bool
		start    int64
	}{
		{"first segment exactly at retention", hkT0.Add(3 * time.Hour), false, true, 0},
		{"first segment expired, append retains", hkT0.Add(3*time.Hour + time.Millisecond), false, false, 5},
		{"first segment expired, maintain retains", hkT0.Add(3*time.Hour + time.Millisecond), true, false, 5},
		// [5,10) is expired too but still the active segment: never deleted.
		{"both expired, active segment stays", hkT0.Add(4*time.Hour + time.Millisecond), true, false, 5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newHKRig(t, 2000)
			cfg := hkConfig()
			cfg.Retention = 3 * time.Hour
			cfg.OnFull = OnFullReject
			tp := r.create("budget", cfg)
			p := hkPart(t, tp, 0)
			hkFill(t, p, 5, hkAt(hkT0))
			r.set(hkT0.Add(time.Hour))
			hkFill(t, p, 5, hkAt(hkT0.Add(time.Hour)))
			if r.l.UsedBytes() != 2000 {
				t.Fatalf("used bytes %d, want 2000", r.l.UsedBytes())
			}

			// Full: nothing expired yet, on_full reject.
			r.set(hkT0.Add(2 * time.Hour))
			for _, keys := range [][]string{{"k010"}, {"a", "b", "c"}} {
				res, err := p.AppendRecords(hkSized(t, hkBatch, hkMs(hkT0.Add(2*time.Hour)), keys...), DefaultBatchOptions)
				if !errors.Is(err, ErrFull) {
					t.Fatalf("append of %d records over the budget: %+v %v, want ErrFull", len(keys), res, err)
				}
			}
			hkCheck(t, p, 0, 10, []int64{0, 5})
			if r.l.UsedBytes() != 2000 {
				t.Errorf("refused appends changed used bytes to %d", r.l.UsedBytes())
			}
			r.maintain()
			hkCheck(t, p, 0, 10, []int64{0, 5})

			r.set(tc.now)
			if tc.maintain {
				r.maintain()
			}
			res, err := p.AppendRecords(hkSized(t, hkBatch, hkMs(tc.now), hkKey(10)), DefaultBatchOptions)
			if tc.wantErr {
				if !errors.Is(err, ErrFull) {
					t.Fatalf("append: %+v %v, want ErrFull", res, err)
				}
				hkCheck(t, p, 0, 10, []int64{0, 5})
				return
			}
			if err != nil {
				t.Fatalf("append once retention freed space: %v", err)
			}
			// The refused appends took no offsets.
			if res.BaseOffset != 10 || res.LastOffset != 10 {
				t.Fatalf("append landed at %d..%d, want 10", res.BaseOffset, res.LastOffset)
			}
			hkCheck(t, p, tc.start, 11, hkBases(tc.start, 11))
			if got, want := r.l.UsedBytes(), (11-tc.start)*hkBatch; got != want {
				t.Errorf("used bytes %d, want %d", got, want)
			}
			if tp.DroppedRecords() != 0 {
				t.Errorf("reject topic counted %d dropped records", tp.DroppedRecords())
			}
		})
	}
}

func TestRetentionBudgetDropOldestPastPin(t *testing.T) {
	// Budget 2400 bytes, nothing expires. 12 records: sealed [0,5)
	// [5,10), active [10,12). Appending offset 12 drops [0,5); appending
	// 13..17 fills up again and offset 17 drops [5,10).
	cases := []struct {
		name       string
		pin        int64 // -1: none
		drop1, all int64 // DroppedRecords after each drop
	}{
		{"no pin", -1, 0, 0},
		{"pin at zero", 0, 5, 10},
		{"pin inside the first segment", 2, 3, 8},
		{"pin inside the second segment", 7, 0, 3},
		{"pin at the active segment", 10, 0, 0},
		{"pin past the high watermark", 40, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newHKRig(t, 2400)
			cfg := hkConfig()
			cfg.OnFull = OnFullDropOldest
			tp := r.create("lossy", cfg)
			p := hkPart(t, tp, 0)
			hkFill(t, p, 12, hkAt(hkT0))
			if tc.pin >= 0 {
				p.Pin("bridge", tc.pin)
			}
			hkFill(t, p, 1, hkAt(hkT0))
			hkCheck(t, p, 5, 13, []int64{5, 10})
			if got := tp.DroppedRecords(); got != tc.drop1 {
				t.Errorf("after dropping [0,5): %d dropped records, want %d", got, tc.drop1)
			}
			for i := 13; i <= 17; i++ {
				hkFill(t, p, 1, hkAt(hkT0))
				if r.l.UsedBytes() > 2400 {
					t.Fatalf("after offset %d: used bytes %d over the budget", i, r.l.UsedBytes())
				}
			}
			hkCheck(t, p, 10, 18, []int64{10, 15})
			if got := tp.DroppedRecords(); got != tc.all {
				t.Errorf("after dropping [5,10): %d dropped records, want %d", got, tc.all)
			}
			if r.l.UsedBytes() != 1600 {
				t.Errorf("used bytes %d, want 1600", r.l.UsedBytes())
			}
		})
	}
}

func TestRetentionBudgetDropOldestCountsRecordsInsideBatches(t *testing.T) {
	// Batches of 4 records, 200 bytes each: sealed [0,20) [20,40), active
	// [40,48). Appending one more batch drops [0,20).
	cases := []struct {
		pin     int64
		dropped int64
	}{
		{0, 20},
		{3, 17},
		{6, 14}, // two records of the batch [4,8), then [8,20)
		{19, 1},
		{20, 0},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("pin %d", tc.pin), func(t *testing.T) {
			r := newHKRig(t, 2400)
			cfg := hkConfig()
			cfg.OnFull = OnFullDropOldest
			tp := r.create("lossy", cfg)
			p := hkPart(t, tp, 0)
			for i := range 13 {
				if i == 12 {
					p.Pin("bridge", tc.pin)
				}
				res, err := p.AppendRecords(hkSized(t, hkBatch, hkMs(hkT0), "a", "b", "c", "d"), DefaultBatchOptions)
				if err != nil || res.BaseOffset != int64(4*i) {
					t.Fatalf("append batch %d: %+v %v", i, res, err)
				}
			}
			if p.LogStartOffset() != 20 {
				t.Errorf("log start %d, want 20", p.LogStartOffset())
			}
			if got := tp.DroppedRecords(); got != tc.dropped {
				t.Errorf("%d dropped records, want %d", got, tc.dropped)
			}
			if r.l.UsedBytes() != 1600 {
				t.Errorf("used bytes %d, want 1600", r.l.UsedBytes())
			}
		})
	}
}

func TestRetentionBudgetDropOldestNothingSealedToDrop(t *testing.T) {
	r := newHKRig(t, 1000)
	cfg := hkConfig()
	cfg.OnFull = OnFullDropOldest
	tp := r.create("lossy", cfg)
	p := hkPart(t, tp, 0)
	p.Pin("bridge", 0)
	hkFill(t, p, 5, hkAt(hkT0))
	res, err := p.AppendRecords(hkSized(t, hkBatch, hkMs(hkT0), "k005"), DefaultBatchOptions)
	if !errors.Is(err, ErrFull) {
		t.Fatalf("append with only the active segment over the budget: %+v %v, want ErrFull", res, err)
	}
	hkCheck(t, p, 0, 5, []int64{0})
	if tp.DroppedRecords() != 0 {
		t.Errorf("%d dropped records, want 0", tp.DroppedRecords())
	}
}

func TestRetentionBudgetDropOldestAcrossTopics(t *testing.T) {
	// Three topics of 6 records each (sealed [0,5), active [5,6)) share a
	// budget of 3600 bytes. old and new drop their oldest; keep rejects.
	// keep's data is the oldest of all but is never dropped.
	r := newHKRig(t, 3600)
	drop := hkConfig()
	drop.OnFull = OnFullDropOldest
	keep := hkConfig()
	keep.OnFull = OnFullReject
	oldT, newT, keepT := r.create("old", drop), r.create("new", drop), r.create("keep", keep)
	oldP, newP, keepP := hkPart(t, oldT, 0), hkPart(t, newT, 0), hkPart(t, keepT, 0)
	hkFill(t, keepP, 6, hkAt(hkT0.Add(-time.Hour)))
	hkFill(t, oldP, 6, hkAt(hkT0))
	hkFill(t, newP, 6, hkAt(hkT0.Add(time.Hour)))
	oldP.Pin("bridge", 1)
	keepP.Pin("bridge", 0)

	// An append to new drops old's oldest segment, not its own.
	hkFill(t, newP, 1, hkAt(hkT0.Add(time.Hour)))
	hkCheck(t, oldP, 5, 6, []int64{5})
	hkCheck(t, newP, 0, 7, []int64{0, 5})
	hkCheck(t, keepP, 0, 6, []int64{0, 5})
	if oldT.DroppedRecords() != 4 || newT.DroppedRecords() != 0 || keepT.DroppedRecords() != 0 {
		t.Errorf("dropped records old %d new %d keep %d, want 4 0 0",
			oldT.DroppedRecords(), newT.DroppedRecords(), keepT.DroppedRecords())
	}
	if r.l.UsedBytes() != 2800 {
		t.Errorf("used bytes %d, want 2800", r.l.UsedBytes())
	}

	// keep (reject) fills the budget and is then refused, although new
	// still has a sealed segment a drop_oldest topic could give up.
	hkFill(t, keepP, 4, hkAt(hkT0))
	res, err := keepP.AppendRecords(hkSized(t, hkBatch, hkMs(hkT0), hkKey(10)), DefaultBatchOptions)
	if !errors.Is(err, ErrFull) {
		t.Fatalf("reject topic over the budget: %+v %v, want ErrFull", res, err)
	}
	hkCheck(t, keepP, 0, 10, []int64{0, 5})
	hkCheck(t, newP, 0, 7, []int64{0, 5})
}

func TestRetentionBytesHeldByPin(t *testing.T) {
	// retention_bytes 1000 with 1024-byte segments: the partition may hold
	// up to 2024 bytes. 10 records fill sealed [0,5) and active [5,10)
	// (2000 bytes); appending offset 10 needs [0,5) gone.
	cases := []struct {
		name    string
		onFull  OnFull
		pin     int64 // -1: none
		wantErr bool
		dropped int64
	}{
		{"reject, no pin", OnFullReject, -1, false, 0},
		{"reject, pin holds", OnFullReject, 0, true, 0},
		{"reject, pin inside the segment holds", OnFullReject, 4, true, 0},
		{"reject, pin past the segment", OnFullReject, 5, false, 0},
		{"drop_oldest, no pin", OnFullDropOldest, -1, false, 0},
		{"drop_oldest, pin at zero", OnFullDropOldest, 0, false, 5},
		{"drop_oldest, pin inside the segment", OnFullDropOldest, 3, false, 2},
		{"drop_oldest, pin past the segment", OnFullDropOldest, 10, false, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newHKRig(t, 0)
			cfg := hkConfig()
			cfg.RetentionBytes = 1000
			cfg.OnFull = tc.onFull
			tp := r.create("bounded", cfg)
			p := hkPart(t, tp, 0)
			hkFill(t, p, 10, hkAt(hkT0))
			hkCheck(t, p, 0, 10, []int64{0, 5})
			if tc.pin >= 0 {
				p.Pin("bridge", tc.pin)
			}
			res, err := p.AppendRecords(hkSized(t, hkBatch, hkMs(hkT0), hkKey(10)), DefaultBatchOptions)
			if tc.wantErr {
				if !errors.Is(err, ErrFull) {
					t.Fatalf("append: %+v %v, want ErrFull", res, err)
				}
				hkCheck(t, p, 0, 10, []int64{0, 5})
				// Unpinning lets retention make room.
				p.Unpin("bridge")
				res, err = p.AppendRecords(hkSized(t, hkBatch, hkMs(hkT0), hkKey(10)), DefaultBatchOptions)
			}
			if err != nil || res.BaseOffset != 10 {
				t.Fatalf("append: %+v %v, want offset 10", res, err)
			}
			hkCheck(t, p, 5, 11, []int64{5, 10})
			if got := tp.DroppedRecords(); got != tc.dropped {
				t.Errorf("%d dropped records, want %d", got, tc.dropped)
			}
			if r.l.UsedBytes() != 1200 {
				t.Errorf("used bytes %d, want 1200", r.l.UsedBytes())
			}
		})
	}
}

func TestRetentionUsedBytesAfterDeletionsAndDeleteTopic(t *testing.T) {
	r := newHKRig(t, 0)
	a := hkConfig()
	a.Retention = time.Hour
	b := hkConfig()
	b.Preallocate = true // the active segment counts its zero-filled allocation
	ta, tb := r.create("a", a), r.create("b", b)
	pa, pb := hkPart(t, ta, 0), hkPart(t, tb, 0)
	if r.l.UsedBytes() != 0 {
		t.Fatalf("used bytes of empty topics %d", r.l.UsedBytes())
	}
	hkFill(t, pa, 12, hkAt(hkT0)) // [0,5) [5,10) sealed, [10,12) active
	hkFill(t, pb, 7, hkAt(hkT0))  // [0,5) sealed, [5,7) active, allocated to 1024
	if pa.Size() != 2400 || pb.Size() != 2024 || r.l.UsedBytes() != 4424 {
		t.Fatalf("sizes a %d b %d used %d, want 2400 2024 4424", pa.Size(), pb.Size(), r.l.UsedBytes())
	}

	r.set(hkT0.Add(2 * time.Hour))
	r.maintain()
	hkCheck(t, pa, 10, 12, []int64{10})
	if r.l.UsedBytes() != 400+2024 {
		t.Errorf("used bytes after retention %d, want %d", r.l.UsedBytes(), 400+2024)
	}

	if err := r.l.DeleteTopic("a"); err != nil {
		t.Fatal(err)
	}
	if r.l.UsedBytes() != 2024 {
		t.Errorf("used bytes after deleting a %d, want 2024", r.l.UsedBytes())
	}
	if err := r.l.DeleteTopic("b"); err != nil {
		t.Fatal(err)
	}
	if r.l.UsedBytes() != 0 {
		t.Errorf("used bytes after deleting every topic %d, want 0", r.l.UsedBytes())
	}
	entries, err := os.ReadDir(filepath.Join(r.dir, topicsDir))
	if err != nil || len(entries) != 0 {
		t.Errorf("topics directory after deleting every topic: %v %v", entries, err)
	}
	r.reopen()
	if r.l.UsedBytes() != 0 || len(r.l.Topics()) != 0 {
		t.Errorf("after reopen: used bytes %d, topics %v", r.l.UsedBytes(), r.l.Topics())
	}
}

func TestRetentionReopenKeepsLogStart(t *testing.T) {
	r := newHKRig(t, 0)
	cfg := hkConfig()
	cfg.Retention = time.Hour
	tp := r.create("events", cfg)
	p := hkPart(t, tp, 0)
	hkFill(t, p, 10, hkAt(hkT0))
	r.set(hkT0.Add(time.Hour))
	hkFill(t, p, 13, hkAt(hkT0.Add(time.Hour))) // [0,5) [5,10) old, [10,15) [15,20) sealed, [20,23) active
	r.set(hkT0.Add(time.Hour + time.Millisecond))
	r.maintain()
	hkCheck(t, p, 10, 23, []int64{10, 15, 20})
	used := r.l.UsedBytes()

	r.reopen()
	tp, err := r.l.Topic("events")
	if err != nil {
		t.Fatal(err)
	}
	p = hkPart(t, tp, 0)
	hkCheck(t, p, 10, 23, []int64{10, 15, 20})
	if r.l.UsedBytes() != used {
		t.Errorf("used bytes after reopen %d, want %d", r.l.UsedBytes(), used)
	}
	// Time retention still knows each sealed segment's newest record.
	r.set(hkT0.Add(2*time.Hour + time.Millisecond))
	r.maintain()
	hkCheck(t, p, 20, 23, []int64{20})
	hkFill(t, p, 1, hkAt(hkT0.Add(2*time.Hour)))
	hkCheck(t, p, 20, 24, []int64{20})
}

func TestRetentionLogAppendTimeUsesBrokerTime(t *testing.T) {
	// Producers stamp their records in 1970; the segment [0,5) is
	// appended at T0. Under LogAppendTime retention counts from T0.
	cases := []struct {
		tsType TimestampType
		now    time.Time
		start  int64
	}{
		{CreateTime, hkT0, 5},
		{LogAppendTime, hkT0, 0},
		{LogAppendTime, hkT0.Add(time.Hour), 0},
		{LogAppendTime, hkT0.Add(time.Hour + time.Millisecond), 5},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s at +%v", tc.tsType, tc.now.Sub(hkT0)), func(t *testing.T) {
			r := newHKRig(t, 0)
			cfg := hkConfig()
			cfg.Retention = time.Hour
			cfg.TimestampType = tc.tsType
			tp := r.create("stamped", cfg)
			p := hkPart(t, tp, 0)
			hkFill(t, p, 6, func(off int64) int64 { return 1000 + off })
			r.set(tc.now)
			r.maintain()
			hkCheck(t, p, tc.start, 6, hkBases(tc.start, 6))
		})
	}
}

// hkGateFS blocks the first File.Sync after arm until release, so that a
// test can queue appends while a flush is in flight.
type hkGateFS struct {
	OSFS
	mu      sync.Mutex
	armed   bool
	entered chan struct{}
	release chan struct{}
}

type hkGateFile struct {
	File
	g *hkGateFS
}

func (g *hkGateFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := g.OSFS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return hkGateFile{f, g}, nil
}

func (g *hkGateFS) arm() {
	g.mu.Lock()
	g.armed = true
	g.entered = make(chan struct{})
	g.release = make(chan struct{})
	g.mu.Unlock()
}

func (f hkGateFile) Sync() error {
	f.g.mu.Lock()
	armed := f.g.armed
	f.g.armed = false
	entered, release := f.g.entered, f.g.release
	f.g.mu.Unlock()
	if armed {
		close(entered)
		<-release
	}
	return f.File.Sync()
}

func TestRetentionBudgetCountsQueuedAppends(t *testing.T) {
	// Budget 1000 bytes: five 200-byte batches. Ten producers append at
	// once while the first flush is still fsyncing. At most five may be
	// accepted, and the files must stay within the budget.
	gate := &hkGateFS{}
	clock := newTestClock()
	l := openTestLog(t, t.TempDir(), Options{FS: gate, Now: clock.Now, DiskBudget: 1000})
	defer l.Close()
	cfg := hkConfig()
	cfg.OnFull = OnFullReject
	tp, err := l.CreateTopic("budget", cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := hkPart(t, tp, 0)

	var (
		mu       sync.Mutex
		accepted int
		refused  int
		wg       sync.WaitGroup
	)
	done := func(_ AppendResult, err error) {
		mu.Lock()
		switch {
		case err == nil:
			accepted++
		case errors.Is(err, ErrFull):
			refused++
		default:
			t.Errorf("append: %v", err)
		}
		mu.Unlock()
		wg.Done()
	}
	batch := func(i int) []byte {
		b, err := AppendBatch(nil, hkSized(t, hkBatch, hkMs(hkT0), hkKey(int64(i))), DefaultBatchOptions)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	gate.arm()
	wg.Add(1)
	if err := p.AppendAsync(batch(0), done); err != nil {
		t.Fatal(err)
	}
	<-gate.entered // the first batch is written and being fsynced
	for i := 1; i < 10; i++ {
		wg.Add(1)
		if err := p.AppendAsync(batch(i), done); err != nil {
			wg.Done()
			if !errors.Is(err, ErrFull) {
				t.Fatalf("append %d: %v", i, err)
			}
			mu.Lock()
			refused++
			mu.Unlock()
		}
	}
	close(gate.release)
	wg.Wait()
	if accepted+refused != 10 {
		t.Fatalf("%d accepted + %d refused appends, want 10", accepted, refused)
	}
	if accepted > 5 || l.UsedBytes() > 1000 {
		t.Errorf("budget of 1000 bytes: %d appends of 200 bytes accepted, %d bytes used (high watermark %d)",
			accepted, l.UsedBytes(), p.HighWatermark())
	}
}

func TestRetentionBudgetWithPreallocation(t *testing.T) {
	// A 64 KiB budget and preallocating 1 MiB segments (the default
	// config preallocates). Ten 200-byte appends hold 2000 bytes of data:
	// they fit, and the segment files must stay within the budget.
	r := newHKRig(t, 64<<10)
	cfg := hkConfig()
	cfg.SegmentBytes = 1 << 20
	cfg.Preallocate = true
	cfg.OnFull = OnFullReject
	tp := r.create("prealloc", cfg)
	p := hkPart(t, tp, 0)
	for i := range 10 {
		res, err := p.AppendRecords(hkSized(t, hkBatch, hkMs(hkT0), hkKey(int64(i))), DefaultBatchOptions)
		if err != nil {
			t.Fatalf("append %d (%d bytes of data stored, %d bytes used, budget %d): %v",
				i, p.HighWatermark()*hkBatch, r.l.UsedBytes(), 64<<10, err)
		}
		if res.BaseOffset != int64(i) {
			t.Fatalf("append %d landed at %d", i, res.BaseOffset)
		}
		if r.l.UsedBytes() > 64<<10 {
			t.Fatalf("after append %d: %d bytes used, over the budget of %d", i, r.l.UsedBytes(), 64<<10)
		}
	}
}

// TestRetentionBytesRejectWithoutPinNeverRefuses: with on_full reject and
// no reader pinning data, retention_bytes is a retention setting, not a
// quota: appends go on forever, retention deleting the oldest segments.
// (Segments of two ~470-byte batches once made the append right after a
// roll fail, because the limit did not leave room for what retention must
// keep: up to retention_bytes plus the oldest segment, plus the active one.)
func TestRetentionBytesRejectWithoutPinNeverRefuses(t *testing.T) {
	for _, size := range []int{50, 150, 250, 300, 400, 450, 600, 900} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			for _, prealloc := range []bool{true, false} {
				l := openTestLog(t, t.TempDir(), Options{})
				defer l.Close()
				cfg := DefaultTopicConfig()
				cfg.SegmentBytes = 1 << 10
				cfg.MaxMessageBytes = 1 << 10
				cfg.RetentionBytes = 1 << 10
				cfg.OnFull = OnFullReject
				cfg.Preallocate = prealloc
				cfg.Retention = -1 // only the size limit deletes
				tp, err := l.CreateTopic("bounded", cfg)
				if err != nil {
					t.Fatal(err)
				}
				p, _ := tp.Partition(0)
				value := bytes.Repeat([]byte("x"), size)
				for i := range 40 {
					if _, err := p.AppendRecords([]Record{{Timestamp: time.Now().UnixMilli(), Value: value}}, DefaultBatchOptions); err != nil {
						t.Fatalf("preallocate %v: append %d refused with no reader pinning data: %v", prealloc, i, err)
					}
					// retention_bytes, plus the oldest segment retention must
					// keep, plus the active one, plus the zero-filled start of
					// a segment just rolled.
					if max := cfg.RetentionBytes + 3*cfg.SegmentBytes; p.Size() > max {
						t.Fatalf("preallocate %v: after append %d the partition holds %d bytes, over %d", prealloc, i, p.Size(), max)
					}
				}
				if p.LogStartOffset() == 0 {
					t.Fatalf("preallocate %v: retention deleted nothing", prealloc)
				}
			}
		})
	}
}
