package log

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// testClock is an injectable clock.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock { return &testClock{now: time.UnixMilli(1_700_000_000_000)} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func openTestLog(t testing.TB, dir string, opts Options) *Log {
	t.Helper()
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return l
}

func testConfig() TopicConfig {
	cfg := DefaultTopicConfig()
	cfg.SegmentBytes = 64 << 10
	cfg.MaxMessageBytes = 16 << 10
	cfg.IndexIntervalBytes = 512
	return cfg
}

// rec builds record i of a test sequence: key k<i%keys>, value v<i>.
func rec(i, keys int, ts int64) Record {
	return Record{
		Timestamp: ts,
		Key:       fmt.Appendf(nil, "k%d", i%keys),
		Value:     fmt.Appendf(nil, "v%d-%s", i, bytes.Repeat([]byte("x"), i%50)),
		Headers:   []Header{{Key: "i", Value: fmt.Appendf(nil, "%d", i)}},
	}
}

// readAll decodes every record of a partition from its log start.
func readAll(t testing.TB, p *Partition) []Record {
	t.Helper()
	var out []Record
	off := p.LogStartOffset()
	for off < p.HighWatermark() {
		data, err := p.Read(off, 64<<10)
		if err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
		if len(data) == 0 {
			t.Fatalf("read at %d below high watermark %d returned nothing", off, p.HighWatermark())
		}
		err = SplitBatches(data, func(h BatchHeader, b []byte) error {
			_, recs, err := DecodeRecords(b)
			if err != nil {
				return err
			}
			for _, r := range recs {
				if r.Offset >= off {
					out = append(out, r)
				}
			}
			off = h.LastOffset() + 1
			return nil
		})
		if err != nil {
			t.Fatalf("decode at %d: %v", off, err)
		}
	}
	return out
}

func TestAppendReadReopen(t *testing.T) {
	dir := t.TempDir()
	clock := newTestClock()
	l := openTestLog(t, dir, Options{Now: clock.Now})
	tp, err := l.CreateTopic("events", testConfig())
	if err != nil {
		t.Fatal(err)
	}
	p, _ := tp.Partition(0)
	const n = 4000
	for i := 0; i < n; i += 4 {
		recs := []Record{rec(i, 10, int64(i)), rec(i+1, 10, int64(i+1)), rec(i+2, 10, int64(i+2)), rec(i+3, 10, int64(i+3))}
		res, err := p.AppendRecords(recs, DefaultBatchOptions)
		if err != nil {
			t.Fatal(err)
		}
		if res.BaseOffset != int64(i) || res.LastOffset != int64(i+3) {
			t.Fatalf("append %d: got offsets %d..%d", i, res.BaseOffset, res.LastOffset)
		}
	}
	check := func(p *Partition) {
		t.Helper()
		got := readAll(t, p)
		if len(got) != n {
			t.Fatalf("read %d records, want %d", len(got), n)
		}
		for i, r := range got {
			want := rec(i, 10, int64(i))
			if r.Offset != int64(i) || !bytes.Equal(r.Key, want.Key) || !bytes.Equal(r.Value, want.Value) ||
				r.Timestamp != int64(i) || len(r.Headers) != 1 || !bytes.Equal(r.Headers[0].Value, want.Headers[0].Value) {
				t.Fatalf("record %d: got %+v", i, r)
			}
		}
	}
	check(p)
	segs := len(p.segments)
	if segs < 3 {
		t.Fatalf("expected several segments with 64 KiB segments, got %d", segs)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l = openTestLog(t, dir, Options{Now: clock.Now})
	defer l.Close()
	tp, err = l.Topic("events")
	if err != nil {
		t.Fatal(err)
	}
	p, _ = tp.Partition(0)
	if p.HighWatermark() != n {
		t.Fatalf("high watermark after reopen %d, want %d", p.HighWatermark(), n)
	}
	check(p)
	res, err := p.AppendRecords([]Record{rec(n, 10, n)}, DefaultBatchOptions)
	if err != nil || res.BaseOffset != n {
		t.Fatalf("append after reopen: %+v %v", res, err)
	}
	off, ok, err := p.OffsetForTime(1234)
	if err != nil || !ok || off != 1234 {
		t.Fatalf("OffsetForTime(1234) = %d %v %v", off, ok, err)
	}
	if _, ok, _ := p.OffsetForTime(1 << 40); ok {
		t.Fatalf("OffsetForTime past the end found something")
	}
	if _, err := p.Read(n+5, 100); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read past end: %v", err)
	}
}

// TestSegmentAgeSurvivesRestart: a reopened active segment keeps its age
// (from its first batch's timestamp), so a restart does not postpone the
// roll by segment_age.
func TestSegmentAgeSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	clock := newTestClock()
	cfg := testConfig()
	cfg.SegmentAge = time.Hour
	l := openTestLog(t, dir, Options{Now: clock.Now})
	tp, err := l.CreateTopic("aged", cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := tp.Partition(0)
	if _, err := p.AppendRecords([]Record{rec(0, 1, clock.Now().UnixMilli())}, DefaultBatchOptions); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	clock.Advance(59 * time.Minute)
	l = openTestLog(t, dir, Options{Now: clock.Now})
	defer l.Close()
	tp, _ = l.Topic("aged")
	p, _ = tp.Partition(0)
	clock.Advance(2 * time.Minute) // 61 minutes after the first batch
	res, err := p.AppendRecords([]Record{rec(1, 1, clock.Now().UnixMilli())}, DefaultBatchOptions)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(p.segments); n != 2 || p.segments[1].base != res.BaseOffset {
		t.Fatalf("after 61 minutes across a restart: %d segments, want a roll at offset %d", n, res.BaseOffset)
	}
}
