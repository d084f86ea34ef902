package log

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Coverage (passes unless noted in the report): every existing concurrency
// test uses segments below minSpareBytes, so none of them ever recycles a
// file. Here appenders roll into spares while size retention (from the
// appenders' own makeRoom), time retention and DeleteRecords (Maintain, a
// separate goroutine) make new ones, the disk budget deletes them
// (another topic's appends), and readers read every partition from its log
// start: under -race, no read may see a record that was never appended or
// offsets out of order, and at the end Log.UsedBytes must equal the .log
// and .spare files on disk, Partition.Size the .log files, Verify must be
// clean and a reopen must see the same records.
func TestRecycleConcurrentStress(t *testing.T) {
	old := minSpareBytes
	minSpareBytes = 16 << 10
	defer func() { minSpareBytes = old }()

	dir := t.TempDir()
	clock := newTestClock()
	l := openTestLog(t, dir, Options{Now: clock.Now, DiskBudget: 2 << 20})
	defer l.Close()
	cfg := DefaultTopicConfig()
	cfg.Compression = CodecNone
	cfg.Sync = SyncNever
	cfg.SegmentBytes = 64 << 10
	cfg.MaxMessageBytes = 16 << 10
	cfg.IndexIntervalBytes = 512
	cfg.RetentionBytes = 128 << 10
	cfg.Retention = -1
	cfg.OnFull = OnFullDropOldest
	ta, err := l.CreateTopic("a", cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgB := cfg
	cfgB.RetentionBytes = -1
	cfgB.Sync = SyncAlways
	tb, err := l.CreateTopic("b", cfgB)
	if err != nil {
		t.Fatal(err)
	}
	pa, _ := ta.Partition(0)
	pb, _ := tb.Partition(0)

	var seq atomic.Int64
	value := func(p *Partition, n int) []byte {
		id := seq.Add(1)
		v := fmt.Appendf(nil, "%s-%d-", p.topic.name, id)
		return append(v, bytes.Repeat([]byte{byte('a' + id%26)}, n)...)
	}
	valid := func(p *Partition, r Record) bool {
		prefix := p.topic.name + "-"
		if !bytes.HasPrefix(r.Value, []byte(prefix)) {
			return false
		}
		rest := r.Value[len(prefix):]
		i := bytes.IndexByte(rest, '-')
		if i < 0 {
			return false
		}
		var id int64
		if _, err := fmt.Sscanf(string(rest[:i]), "%d", &id); err != nil {
			return false
		}
		pad := rest[i+1:]
		return len(pad) > 0 && bytes.Count(pad, pad[:1]) == len(pad) && pad[0] == byte('a'+id%26)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var failed atomic.Bool
	fail := func(format string, args ...any) {
		if failed.CompareAndSwap(false, true) {
			t.Errorf(format, args...)
		}
	}
	appender := func(p *Partition, size int) {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			recs := make([]Record, 1+i%max(1, 12000/size))
			for j := range recs {
				recs[j] = Record{Timestamp: clock.Now().UnixMilli(), Value: value(p, size)}
			}
			if _, err := p.AppendRecords(recs, DefaultBatchOptions); err != nil && !errors.Is(err, ErrFull) {
				fail("append to %s: %v", p.topic.name, err)
				return
			}
		}
	}
	reader := func(p *Partition) {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			off := p.LogStartOffset()
			for off < p.HighWatermark() {
				data, err := p.Read(off, 32<<10)
				if errors.Is(err, ErrOffsetOutOfRange) {
					break // retention passed it meanwhile
				}
				if err != nil {
					fail("read %s at %d: %v", p.topic.name, off, err)
					return
				}
				if len(data) == 0 {
					break
				}
				err = SplitBatches(data, func(h BatchHeader, b []byte) error {
					if h.LastOffset() < off {
						return fmt.Errorf("batch %d..%d read for offset %d", h.BaseOffset, h.LastOffset(), off)
					}
					_, recs, err := DecodeRecords(b)
					if err != nil {
						return err
					}
					for _, r := range recs {
						if !valid(p, r) {
							return fmt.Errorf("offset %d: record never appended to %s: %q", r.Offset, p.topic.name, r.Value[:min(len(r.Value), 40)])
						}
					}
					off = h.LastOffset() + 1
					return nil
				})
				if err != nil {
					fail("decode %s: %v", p.topic.name, err)
					return
				}
			}
		}
	}
	wg.Add(5)
	go appender(pa, 700)
	go appender(pa, 3000)
	go appender(pb, 2000)
	go reader(pa)
	go reader(pb)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			if err := l.Maintain(); err != nil {
				fail("maintain: %v", err)
				return
			}
			if i%5 == 0 {
				hw := pa.HighWatermark()
				if _, err := pa.DeleteRecords(max(pa.LogStartOffset(), hw-200)); err != nil && !errors.Is(err, ErrOffsetOutOfRange) {
					fail("delete records: %v", err)
					return
				}
			}
		}
	}()
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	wg.Wait()
	if t.Failed() {
		return
	}
	if l.Stats().SegmentsRecycled == 0 {
		t.Fatal("nothing recycled: the test covers nothing")
	}
	t.Logf("segments recycled: %d", l.Stats().SegmentsRecycled)

	var files int64
	for _, p := range []*Partition{pa, pb} {
		checkSizeAccounting(t, p)
		files += diskFiles(t, p.dir)
	}
	if used := l.UsedBytes(); used != files {
		t.Errorf("Log.UsedBytes %d, .log and .spare files %d", used, files)
	}
	counts := map[string]int{}
	for _, p := range []*Partition{pa, pb} {
		counts[p.topic.name] = len(readAll(t, p))
	}
	copyDir := t.TempDir()
	copyTree(t, dir, copyDir)
	verifyClean(t, copyDir)
	l2 := openTestLog(t, copyDir, Options{Now: clock.Now})
	defer l2.Close()
	for name, n := range counts {
		tp, err := l2.Topic(name)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := tp.Partition(0)
		if got := len(readAll(t, p)); got != n {
			t.Errorf("topic %s: %d records after a crash copy, %d before", name, got, n)
		}
		checkSizeAccounting(t, p)
	}
	var files2 int64
	for _, name := range []string{"a", "b"} {
		files2 += diskFiles(t, filepath.Join(copyDir, topicsDir, name, "0"))
	}
	if used := l2.UsedBytes(); used != files2 {
		t.Errorf("after reopen: Log.UsedBytes %d, files %d", used, files2)
	}
}
