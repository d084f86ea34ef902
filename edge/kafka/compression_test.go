package kafka_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/spoolmq/spool/edge/kafka"
	spoollog "github.com/spoolmq/spool/log"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// spool.compression is a topic setting under its Spool name: zstd by
// default, set at create and by alter, an unknown codec refused.
func TestCompressionSetting(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	adm := tb.admin()
	lz4, bad := "lz4", "brotli"
	if resp, err := adm.CreateTopic(ctx(t), 1, 1, map[string]*string{"spool.compression": &lz4}, "c-lz4"); err != nil || resp.Err != nil {
		t.Fatalf("create: %v %v", err, resp.Err)
	}
	if resp, _ := adm.CreateTopic(ctx(t), 1, 1, map[string]*string{"spool.compression": &bad}, "c-bad"); !errors.Is(resp.Err, kerr.InvalidConfig) {
		t.Errorf("spool.compression=brotli: %v, want INVALID_CONFIG", resp.Err)
	}
	tb.createTopic("c-default", 1)
	rc, err := adm.DescribeTopicConfigs(ctx(t), "c-lz4", "c-default")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct{ topic, codec string }{{"c-lz4", "lz4"}, {"c-default", "zstd"}} {
		r, err := rc.On(want.topic, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		for _, c := range r.Configs {
			if c.Key == "spool.compression" {
				got = c.MaybeValue()
			}
		}
		if got != want.codec {
			t.Errorf("%s: spool.compression %q, want %q", want.topic, got, want.codec)
		}
	}
	none := "none"
	if ar, err := adm.AlterTopicConfigs(ctx(t), []kadm.AlterConfig{{Name: "spool.compression", Value: &none}}, "c-lz4"); err != nil || ar[0].Err != nil {
		t.Fatalf("alter: %v %v", err, ar)
	}
	top, _ := tb.Log.Topic("c-lz4")
	if c := top.Config().Compression; c != spoollog.CodecNone {
		t.Errorf("after alter: compression %v, want none", c)
	}
}

// Records Spool appends itself (as MQTT ingest does) are merged into
// zstd batches; franz-go and librdkafka (kcat) read every one of them
// back, in order, with its key, value and headers.
func TestMergedZstdBatchesReadByClients(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	tb.createTopic("merged", 1)
	top, _ := tb.Log.Topic("merged")
	p, _ := top.Partition(0)
	const n = 300
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := range n {
		r := spoollog.Record{Timestamp: 1_700_000_000_000 + int64(i), Key: fmt.Appendf(nil, "devices/%d/telemetry", i%7),
			Value:   fmt.Appendf(nil, `{"seq":%d,"temperature":%d.5}`, i, 20+i%9),
			Headers: []spoollog.Header{{Key: "mqtt.topic", Value: fmt.Appendf(nil, "devices/%d/telemetry", i%7)}}}
		b, err := spoollog.AppendBatch(nil, []spoollog.Record{r}, spoollog.DefaultBatchOptions)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		mu.Lock() // offsets in the order of i
		err = p.AppendOwnAsync(b, func(_ spoollog.AppendResult, err error) {
			if err != nil {
				t.Errorf("append: %v", err)
			}
			wg.Done()
		})
		mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	data, err := p.Read(0, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	zstd := 0
	if err := spoollog.SplitBatches(data, func(h spoollog.BatchHeader, _ []byte) error {
		if h.Codec() == spoollog.CodecZstd {
			zstd++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if zstd == 0 {
		t.Fatal("no zstd batch stored: the test would prove nothing")
	}

	c := tb.client(kgo.ConsumeTopics("merged"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []*kgo.Record
	for len(got) < n {
		fs := c.PollFetches(ctx(t))
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		got = append(got, fs.Records()...)
	}
	for i, r := range got {
		if r.Offset != int64(i) || string(r.Value) != fmt.Sprintf(`{"seq":%d,"temperature":%d.5}`, i, 20+i%9) ||
			string(r.Key) != fmt.Sprintf("devices/%d/telemetry", i%7) || len(r.Headers) != 1 || string(r.Headers[0].Value) != string(r.Key) {
			t.Fatalf("franz-go record %d: offset %d key %q value %q headers %v", i, r.Offset, r.Key, r.Value, r.Headers)
		}
	}

	out := kcat(t, tb, "", "-C", "-t", "merged", "-o", "beginning", "-e", "-q", "-f", "%o %k %s\n")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != n {
		t.Fatalf("kcat read %d records, want %d", len(lines), n)
	}
	for i, l := range lines {
		if want := fmt.Sprintf(`%d devices/%d/telemetry {"seq":%d,"temperature":%d.5}`, i, i%7, i, 20+i%9); l != want {
			t.Fatalf("kcat line %d: %q, want %q", i, l, want)
		}
	}
	t.Logf("%d records in %d zstd batches", n, zstd)
}
