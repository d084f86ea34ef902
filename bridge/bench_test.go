package bridge

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	spoollog "github.com/spoolmq/spool/log"
)

var benchBacklogMB = flag.Int("bridge.backlog-mb", 100, "backlog size, in MB of record values, for BenchmarkDrainBacklog")

// BenchmarkDrainBacklog measures how fast a link drains a backlog of
// 200-byte records to a kfake cluster that acknowledges without storing
// (kfake.BlackholeProduce), so the figure is the bridge's: local reads,
// decoding, re-batching, compression, cursor stores. Each iteration is a
// new link (new cursors) over the same backlog.
func BenchmarkDrainBacklog(b *testing.B) {
	for _, tc := range []struct {
		partitions  int32
		compression string
	}{{1, "zstd"}, {4, "zstd"}, {4, "none"}} {
		b.Run(fmt.Sprintf("partitions=%d/compression=%s", tc.partitions, tc.compression), func(b *testing.B) {
			benchDrain(b, tc.partitions, tc.compression)
		})
	}
}

func benchDrain(b *testing.B, partitions int32, compression string) {
	const valueSize = 200
	l := newTestLog(b, spoollog.Options{})
	tp := createTopic(b, l, "backlog", partitions, func(c *spoollog.TopicConfig) { c.Sync = spoollog.SyncNever })
	total := int64(*benchBacklogMB) << 20 / valueSize
	rng := rand.New(rand.NewPCG(1, 2))
	batch := make([]spoollog.Record, 1000)
	for i := range batch {
		v := make([]byte, valueSize)
		for j := range v {
			v[j] = "abcdefghijklmnopqrstuvwxyz0123456789"[rng.IntN(36)] // sensor-ish text, compresses ~2x
		}
		batch[i] = spoollog.Record{Key: fmt.Appendf(nil, "device-%04d", i%500), Value: v}
	}
	for n := int64(0); n < total; n += int64(len(batch)) {
		now := time.Now().UnixMilli()
		for i := range batch {
			batch[i].Timestamp = now
		}
		p := partition(b, tp, int32(n/int64(len(batch)))%partitions)
		if _, err := p.AppendRecords(batch, spoollog.DefaultBatchOptions); err != nil {
			b.Fatal(err)
		}
	}
	// The local read of the same backlog, in the same run, as the
	// baseline: reading whole batches and decoding their records is the
	// least any consumer of the log does.
	readStart := time.Now()
	var readRecords int64
	for _, p := range tp.Partitions() {
		for off := p.LogStartOffset(); off < p.HighWatermark(); {
			data, err := p.Read(off, 1<<20)
			if err != nil {
				b.Fatal(err)
			}
			next, err := spoollog.EachRecord(data, off, func(spoollog.Record) error { readRecords++; return nil })
			if err != nil {
				b.Fatal(err)
			}
			off = next
		}
	}
	readSecs := time.Since(readStart).Seconds()
	if readRecords != total/int64(len(batch))*int64(len(batch)) && readRecords < total {
		b.Fatalf("read %d local records, appended %d", readRecords, total)
	}
	var sizes batchSizes
	c := newCluster(b, kfake.BlackholeProduce())
	b.SetBytes(total * valueSize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k, err := NewKafkaLink(KafkaLinkOptions{
			Name: fmt.Sprintf("bench%d", i), Site: "s", Seeds: c.ListenAddrs(), Log: l,
			Topics: []string{"backlog"}, Compression: compression, ClientOpts: []kgo.Opt{kgo.WithHooks(&sizes)},
		})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- k.Run(ctx) }()
		deadline := time.Now().Add(10 * time.Minute)
		for h := k.Health(); h.State != StateCaughtUp; h = k.Health() {
			if time.Now().After(deadline) {
				b.Fatalf("backlog not drained: %+v", h)
			}
			time.Sleep(time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		k.Close()
	}
	drain := float64(total) * float64(b.N) / b.Elapsed().Seconds()
	b.ReportMetric(drain, "records/s")
	b.ReportMetric(drain/(float64(readRecords)/readSecs), "x_local_read")
	if c := sizes.compressed.Load(); c > 0 {
		b.ReportMetric(float64(sizes.uncompressed.Load())/float64(c), "compression_ratio")
	}
}

// batchSizes adds up the upstream batches' sizes before and after
// compression (kgo's produce hook).
type batchSizes struct{ uncompressed, compressed atomic.Int64 }

func (s *batchSizes) OnProduceBatchWritten(_ kgo.BrokerMetadata, _ string, _ int32, m kgo.ProduceBatchMetrics) {
	s.uncompressed.Add(int64(m.UncompressedBytes))
	s.compressed.Add(int64(m.CompressedBytes))
}

var benchLimitMB = flag.Int("bridge.limit-mb", 20, "backlog, in MB of record values, for BenchmarkBandwidthLimit")

// BenchmarkBandwidthLimit drains a backlog through a link limited to
// 4 MB/s while an alarm topic with a higher priority gets a record every
// 50 ms. It reports the average rate as a fraction of the limit (after
// the first second's burst the bucket allows) and how long the alarms took
// to be acknowledged upstream, against the time one backlog round takes
// at the limit; with the alarms' priority and without it.
func BenchmarkBandwidthLimit(b *testing.B) {
	for _, prio := range []bool{true, false} {
		b.Run(fmt.Sprintf("priorities=%v", prio), func(b *testing.B) { benchLimit(b, prio) })
	}
}

func benchLimit(b *testing.B, prio bool) {
	const valueSize, limit = 200, 4 << 20
	l := newTestLog(b, spoollog.Options{})
	bulk := createTopic(b, l, "bulk", 4, func(c *spoollog.TopicConfig) { c.Sync = spoollog.SyncNever })
	alarms := createTopic(b, l, "alarms", 1, nil)
	total := int64(*benchLimitMB) << 20 / valueSize
	batch := make([]spoollog.Record, 1000)
	for i := range batch {
		batch[i] = spoollog.Record{Key: fmt.Appendf(nil, "device-%04d", i%500), Value: make([]byte, valueSize)}
	}
	for n := int64(0); n < total; n += int64(len(batch)) {
		if _, err := partition(b, bulk, int32(n/1000)%4).AppendRecords(batch, spoollog.DefaultBatchOptions); err != nil {
			b.Fatal(err)
		}
	}
	c := newCluster(b, kfake.BlackholeProduce())
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var priorities map[string]int
		if prio {
			priorities = map[string]int{"alarms": 10}
		}
		k, err := NewKafkaLink(KafkaLinkOptions{
			Priorities: priorities, Name: fmt.Sprintf("limited%d", i), Site: "s", Seeds: c.ListenAddrs(), Log: l, Topics: []string{"bulk", "alarms"},
			BandwidthBytesPerSec: limit, ReadBytes: 256 << 10,
		})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- k.Run(ctx) }()
		ap := partition(b, alarms, 0)
		var latencies []time.Duration
		for h := k.Health(); h.State != StateCaughtUp || h.Lag > 0; h = k.Health() {
			if time.Since(start) > 5*time.Minute {
				b.Fatalf("backlog not drained: %+v", h)
			}
			before := ap.HighWatermark()
			if _, err := ap.AppendRecords([]spoollog.Record{{Value: []byte("alarm")}}, spoollog.DefaultBatchOptions); err != nil {
				b.Fatal(err)
			}
			sent := time.Now()
			for storedCursor(b, l, fmt.Sprintf("limited%d", i), "alarms", 0) <= before {
				time.Sleep(time.Millisecond)
			}
			latencies = append(latencies, time.Since(sent))
			time.Sleep(50 * time.Millisecond)
		}
		elapsed := time.Since(start)
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		k.Close()
		bytes := float64(total) * (valueSize + 11) // values and keys
		// The bucket starts full: one second's worth goes at once.
		rate := (bytes - limit) / (elapsed.Seconds() - 0)
		b.ReportMetric(rate/limit, "x_limit")
		slices.Sort(latencies)
		b.ReportMetric(float64(latencies[len(latencies)/2].Milliseconds()), "alarm_p50_ms")
		b.ReportMetric(float64(latencies[len(latencies)*9/10].Milliseconds()), "alarm_p90_ms")
		b.ReportMetric(float64(256<<10)/limit*1000, "round_at_limit_ms")
	}
}
