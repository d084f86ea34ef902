package log

import (
	"fmt"
	"sync"
	"testing"
)

// benchRecords returns n records with 200-byte values.
func benchRecords(n int) []Record {
	recs := make([]Record, n)
	for i := range recs {
		v := make([]byte, 200)
		for j := range v {
			v[j] = byte('a' + (i+j)%26)
		}
		recs[i] = Record{Timestamp: 1_700_000_000_000, Key: fmt.Appendf(nil, "sensor-%d", i%100), Value: v}
	}
	return recs
}

func benchPartition(b *testing.B, dir string, sync SyncPolicy) (*Log, *Partition) {
	b.Helper()
	l := openTestLog(b, dir, Options{})
	cfg := DefaultTopicConfig()
	cfg.Sync = sync
	t, err := l.CreateTopic("bench", cfg)
	if err != nil {
		b.Fatal(err)
	}
	p, _ := t.Partition(0)
	return l, p
}

// BenchmarkAppend appends one encoded batch per operation from parallel
// goroutines (b.SetParallelism), with each sync policy and batch size.
func BenchmarkAppend(b *testing.B) {
	for _, sync := range []SyncPolicy{SyncAlways, SyncNever} {
		for _, n := range []int{1, 320} {
			b.Run(fmt.Sprintf("sync=%s/records=%d", sync, n), func(b *testing.B) {
				l, p := benchPartition(b, b.TempDir(), sync)
				defer l.Close()
				batch, err := AppendBatch(nil, benchRecords(n), DefaultBatchOptions)
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(len(batch)))
				b.SetParallelism(32) // 64 appenders on 2 cores
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := p.Append(batch); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "records/s")
			})
		}
	}
}

// BenchmarkRead reads a partition from the page cache in 1 MiB fetches,
// as a Kafka consumer does.
func BenchmarkRead(b *testing.B) {
	l, p := benchPartition(b, b.TempDir(), SyncNever)
	defer l.Close()
	batch, _ := AppendBatch(nil, benchRecords(320), DefaultBatchOptions)
	for p.Size() < 64<<20 {
		if _, err := p.Append(batch); err != nil {
			b.Fatal(err)
		}
	}
	hw := p.HighWatermark()
	b.ResetTimer()
	var bytes int64
	off := int64(0)
	for b.Loop() {
		data, err := p.Read(off, 1<<20)
		if err != nil {
			b.Fatal(err)
		}
		bytes += int64(len(data))
		off += int64(len(data)/len(batch)) * 320
		if off >= hw {
			off = 0
		}
	}
	b.ReportMetric(float64(bytes)/1e6/b.Elapsed().Seconds(), "MB/s")
}

// BenchmarkRecovery opens a partition with a 64 MiB active segment left by
// a process that did not close it (its index files lag), which is what a
// restart after a crash or power loss costs.
func BenchmarkRecovery(b *testing.B) {
	dir := b.TempDir()
	l, p := benchPartition(b, dir, SyncNever)
	batch, _ := AppendBatch(nil, benchRecords(320), DefaultBatchOptions)
	for p.Size() < 60<<20 {
		if _, err := p.Append(batch); err != nil {
			b.Fatal(err)
		}
	}
	want := p.HighWatermark()
	var once sync.Once
	// No Close: the segment stays preallocated and the index files lack
	// their last entries, as a killed process leaves them. Only meta.db's
	// lock is released.
	p.flushWG.Wait()
	if err := l.meta.Close(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		l2, err := Open(dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		t, _ := l2.Topic("bench")
		p2, _ := t.Partition(0)
		if p2.HighWatermark() != want {
			once.Do(func() { b.Errorf("recovered high watermark %d, want %d", p2.HighWatermark(), want) })
		}
		l2.Close()
	}
}
