package kafka_test

import (
	"strings"
	"testing"
	"time"

	"github.com/spoolmq/spool/edge/kafka"
	spoollog "github.com/spoolmq/spool/log"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestPipelinedRequests: requests sent back to back without waiting are
// answered in order; produces are stored in order; a request of another
// kind after them sees what they stored; acks=0 produces get no answer.
func TestPipelinedRequests(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	tb.createTopic("pipe", 1)
	rc := dialRaw(t, tb.addr())
	produce := func(value string, acks int16) *kmsg.ProduceRequest {
		b, err := spoollog.AppendBatch(nil, []spoollog.Record{{Value: []byte(value)}}, spoollog.DefaultBatchOptions)
		if err != nil {
			t.Fatal(err)
		}
		req := kmsg.NewPtrProduceRequest()
		req.Acks, req.TimeoutMillis = acks, 10000
		req.Topics = []kmsg.ProduceRequestTopic{{Topic: "pipe", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: b}}}}
		return req
	}
	for i := range 6 {
		acks := int16(-1)
		if i == 3 {
			acks = 0
		}
		rc.request(produce(string(rune('a'+i)), acks), 9, int32(i))
	}
	lo := kmsg.NewPtrListOffsetsRequest()
	lo.Topics = []kmsg.ListOffsetsRequestTopic{{Topic: "pipe", Partitions: []kmsg.ListOffsetsRequestTopicPartition{{Partition: 0, Timestamp: -1}}}}
	rc.request(lo, 7, 100)

	for _, corr := range []int32{0, 1, 2, 4, 5} { // 3 was acks=0
		resp := kmsg.NewPtrProduceResponse()
		rc.response(resp, 9, corr)
		want := int64(corr)
		if p := resp.Topics[0].Partitions[0]; p.ErrorCode != 0 || p.BaseOffset != want {
			t.Errorf("produce %d: offset %d error %d, want offset %d", corr, p.BaseOffset, p.ErrorCode, want)
		}
	}
	lr := kmsg.NewPtrListOffsetsResponse()
	rc.response(lr, 7, 100)
	if got := lr.Topics[0].Partitions[0].Offset; got != 6 {
		t.Errorf("latest offset after the produces: %d, want 6", got)
	}
	top, _ := tb.Log.Topic("pipe")
	p, _ := top.Partition(0)
	data, err := p.Read(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var values []string
	for len(data) > 0 {
		h, err := spoollog.ParseBatchHeader(data)
		if err != nil {
			t.Fatal(err)
		}
		_, recs, err := spoollog.DecodeRecords(data[:h.Size()])
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			values = append(values, string(r.Value))
		}
		data = data[h.Size():]
	}
	if got := strings.Join(values, ""); got != "abcdef" {
		t.Errorf("stored %q, want abcdef in order", got)
	}
}

// TestClientVanishes: a client that sends produce requests and closes its
// connection without reading the answers leaves the batches stored (they
// were appended) and the server serving; the connection is gone from the
// count.
func TestClientVanishes(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	tb.createTopic("gone", 1)
	before := tb.S.Stats().Connections.Load() // the admin client's
	rc := dialRaw(t, tb.addr())
	b, err := spoollog.AppendBatch(nil, []spoollog.Record{{Value: []byte("v")}}, spoollog.DefaultBatchOptions)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		req := kmsg.NewPtrProduceRequest()
		req.Acks, req.TimeoutMillis = -1, 10000
		req.Topics = []kmsg.ProduceRequestTopic{{Topic: "gone", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: b}}}}
		rc.request(req, 9, int32(i))
	}
	rc.c.Close()
	top, _ := tb.Log.Topic("gone")
	p, _ := top.Partition(0)
	deadline := time.Now().Add(testTimeout)
	for p.HighWatermark() != 3 || tb.S.Stats().Connections.Load() != before {
		if time.Now().After(deadline) {
			t.Fatalf("high watermark %d, %d connections open: want 3 and %d", p.HighWatermark(), tb.S.Stats().Connections.Load(), before)
		}
		time.Sleep(10 * time.Millisecond)
	}
	tb.createTopic("still-serving", 1)
}
