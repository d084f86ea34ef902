package bridge

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

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
	c := newCluster(b, kfake.BlackholeProduce())
	b.SetBytes(total * valueSize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k, err := NewKafkaLink(KafkaLinkOptions{
			Name: fmt.Sprintf("bench%d", i), Site: "s", Seeds: c.ListenAddrs(), Log: l,
			Topics: []string{"backlog"}, Compression: compression,
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
	b.ReportMetric(float64(total)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
