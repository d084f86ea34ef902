package kafka_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/spoolmq/spool/edge/kafka"
	spoollog "github.com/spoolmq/spool/log"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func fetchReq(topic string, maxWait, minBytes, maxBytes int32, parts map[int32]int32) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis, req.MinBytes, req.MaxBytes = maxWait, minBytes, maxBytes
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	for p := range int32(len(parts)) {
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.PartitionMaxBytes = p, parts[p]
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = []kmsg.FetchRequestTopic{rt}
	return req
}

// TestFetchLongPoll: a fetch on a partition with nothing new waits until a
// produce makes data durable and answers then, well before MaxWait; with
// nothing produced it answers empty after MaxWait.
func TestFetchLongPoll(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	tb.createTopic("poll", 1)
	c := tb.client()

	start := time.Now()
	resp, err := fetchReq("poll", 300, 1, 1<<20, map[int32]int32{0: 1 << 20}).RequestWith(ctx(t), c)
	if err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < 250*time.Millisecond || len(resp.Topics[0].Partitions[0].RecordBatches) != 0 {
		t.Errorf("empty long poll answered after %v with %d bytes, want about 300ms and none", waited, len(resp.Topics[0].Partitions[0].RecordBatches))
	}

	got := make(chan *kmsg.FetchResponse, 1)
	start = time.Now()
	go func() {
		r, err := fetchReq("poll", 20000, 1, 1<<20, map[int32]int32{0: 1 << 20}).RequestWith(ctx(t), tb.client())
		if err != nil {
			t.Error(err)
		}
		got <- r
	}()
	time.Sleep(200 * time.Millisecond)
	p := tb.client(kgo.DefaultProduceTopic("poll"))
	if err := p.ProduceSync(ctx(t), &kgo.Record{Value: []byte("wake")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if r == nil || !bytes.Contains(r.Topics[0].Partitions[0].RecordBatches, []byte("wake")) {
			t.Fatalf("the long poll answered without the record: %+v", r)
		}
		if waited := time.Since(start); waited > 10*time.Second {
			t.Errorf("the long poll answered after %v, not when the record arrived", waited)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the long poll did not answer after the produce")
	}
}

// TestFetchLimits: the first partition with data returns at least one
// whole batch even past the limits; later partitions stay within
// MaxBytes; a partition's own limit is respected after its first batch.
func TestFetchLimits(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	tb.createTopic("limits", 2)
	top, _ := tb.Log.Topic("limits")
	for i := range int32(2) {
		p, _ := top.Partition(i)
		for range 3 {
			if _, err := p.AppendRecords([]spoollog.Record{{Value: bytes.Repeat([]byte{'x'}, 5000)}}, spoollog.DefaultBatchOptions); err != nil {
				t.Fatal(err)
			}
		}
	}
	c := tb.client()
	batches := func(b []byte) int {
		n := 0
		for len(b) > 0 {
			h, err := spoollog.ParseBatchHeader(b)
			if err != nil {
				t.Fatalf("fetched bytes do not parse: %v", err)
			}
			b = b[h.Size():]
			n++
		}
		return n
	}
	for _, tc := range []struct {
		name         string
		maxBytes     int32
		partMax      int32
		want0, want1 int
	}{
		{"tiny limits: one batch of the first partition only", 100, 100, 1, 0},
		{"room for two batches", 10300, 1 << 20, 2, 0},
		{"partition limit of one batch", 1 << 20, 6000, 1, 1},
		{"everything", 1 << 20, 1 << 20, 3, 3},
	} {
		resp, err := fetchReq("limits", 0, 0, tc.maxBytes, map[int32]int32{0: tc.partMax, 1: tc.partMax}).RequestWith(ctx(t), c)
		if err != nil {
			t.Fatal(err)
		}
		ps := resp.Topics[0].Partitions
		if got0, got1 := batches(ps[0].RecordBatches), batches(ps[1].RecordBatches); got0 != tc.want0 || got1 != tc.want1 {
			t.Errorf("%s: %d and %d batches, want %d and %d", tc.name, got0, got1, tc.want0, tc.want1)
		}
		if ps[0].HighWatermark != 3 || ps[0].LogStartOffset != 0 {
			t.Errorf("%s: high watermark %d, log start %d", tc.name, ps[0].HighWatermark, ps[0].LogStartOffset)
		}
	}
}
