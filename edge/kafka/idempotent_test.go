package kafka_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/spoolmq/spool/edge/kafka"
	spoollog "github.com/spoolmq/spool/log"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// rawProduce sends one produce request of one batch with the given
// producer id, epoch and first sequence, and returns the partition's
// answer.
func rawProduce(t *testing.T, c *kgo.Client, topic string, pid int64, epoch int16, seq int32, n int) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	recs := make([]spoollog.Record, n)
	for i := range recs {
		recs[i] = spoollog.Record{Timestamp: 1, Value: []byte("seq " + strconv.Itoa(int(seq)+i))}
	}
	batch, err := spoollog.AppendBatch(nil, recs, spoollog.BatchOptions{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq})
	if err != nil {
		t.Fatal(err)
	}
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = batch
	rt.Partitions = []kmsg.ProduceRequestTopicPartition{rp}
	req.Topics = []kmsg.ProduceRequestTopic{rt}
	resp, err := req.RequestWith(ctx(t), c)
	if err != nil {
		t.Fatalf("produce: %v", err)
	}
	return resp.Topics[0].Partitions[0]
}

func initProducer(t *testing.T, c *kgo.Client) (int64, int16) {
	t.Helper()
	resp, err := kmsg.NewPtrInitProducerIDRequest().RequestWith(ctx(t), c)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	if err != nil {
		t.Fatalf("init producer id: %v", err)
	}
	return resp.ProducerID, resp.ProducerEpoch
}

// TestIdempotentRetries: a retried batch (the client never saw the
// answer) is answered with its original offset and not stored twice;
// a gap in the sequence and an old epoch are refused with Kafka's errors.
func TestIdempotentRetries(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	tb.createTopic("idem", 1)
	c := tb.client()
	pid, epoch := initProducer(t, c)

	first := rawProduce(t, c, "idem", pid, epoch, 0, 3)
	second := rawProduce(t, c, "idem", pid, epoch, 3, 2)
	if first.ErrorCode != 0 || second.ErrorCode != 0 || first.BaseOffset != 0 || second.BaseOffset != 3 {
		t.Fatalf("first %+v, second %+v", first, second)
	}
	// Both retried: the answers repeat, nothing new is stored.
	for _, r := range []struct {
		seq  int32
		n    int
		base int64
	}{{0, 3, 0}, {3, 2, 3}} {
		got := rawProduce(t, c, "idem", pid, epoch, r.seq, r.n)
		if got.ErrorCode != 0 || got.BaseOffset != r.base {
			t.Errorf("retry of sequence %d: %+v, want offset %d", r.seq, got, r.base)
		}
	}
	p, _ := tb.Log.Topic("idem")
	part, _ := p.Partition(0)
	if hw := part.HighWatermark(); hw != 5 {
		t.Errorf("high watermark %d after retries, want 5", hw)
	}

	if got := rawProduce(t, c, "idem", pid, epoch, 7, 1); got.ErrorCode != kerr.OutOfOrderSequenceNumber.Code {
		t.Errorf("gap in the sequence: %v, want OUT_OF_ORDER_SEQUENCE_NUMBER", kerr.ErrorForCode(got.ErrorCode))
	}
	if got := rawProduce(t, c, "idem", pid, epoch+1, 5, 1); got.ErrorCode != kerr.OutOfOrderSequenceNumber.Code {
		t.Errorf("new epoch not starting at 0: %v", kerr.ErrorForCode(got.ErrorCode))
	}
	if got := rawProduce(t, c, "idem", pid, epoch+1, 0, 1); got.ErrorCode != 0 || got.BaseOffset != 5 {
		t.Errorf("new epoch from 0: %+v", got)
	}
	if got := rawProduce(t, c, "idem", pid, epoch, 5, 1); got.ErrorCode != kerr.InvalidProducerEpoch.Code {
		t.Errorf("fenced epoch: %v, want INVALID_PRODUCER_EPOCH", kerr.ErrorForCode(got.ErrorCode))
	}
	if hw := part.HighWatermark(); hw != 6 {
		t.Errorf("high watermark %d, want 6: a refused batch was stored", hw)
	}
}

// TestIdempotentProducerKgo: kgo's idempotent producer (its default)
// writes every record exactly once and in order per key, while a proxy
// cuts its first connections in the middle of responses, so that produce
// requests that were stored are retried on new connections.
func TestIdempotentProducerKgo(t *testing.T) {
	px := newCuttingProxy(t)
	tb := startBroker(t, kafka.Options{Advertised: px.addr()})
	px.target.Store(new(tb.addr()))
	tb.createTopic("idem-kgo", 3)
	px.budget.Store(8)
	p, err := kgo.NewClient(kgo.SeedBrokers(px.addr()), kgo.DefaultProduceTopic("idem-kgo"),
		kgo.RetryTimeout(testTimeout), kgo.RecordDeliveryTimeout(testTimeout), kgo.ProducerLinger(0),
		// A cut connection makes kgo reload metadata, at most this often.
		kgo.MetadataMinAge(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	const n = 3000
	errs := make(chan error, n)
	for i := range n {
		p.Produce(ctx(t), &kgo.Record{Key: []byte(strconv.Itoa(i % 30)), Value: []byte(strconv.Itoa(i))}, func(_ *kgo.Record, err error) { errs <- err })
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	if px.cuts() == 0 {
		t.Fatal("the proxy cut no connection: nothing was retried")
	}
	c := tb.client(kgo.ConsumeTopics("idem-kgo"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	last := map[string]int{}
	seen := map[string]bool{}
	for _, r := range consumeN(t, c, n) {
		if seen[string(r.Value)] {
			t.Fatalf("record %s stored twice", r.Value)
		}
		seen[string(r.Value)] = true
		v, _ := strconv.Atoi(string(r.Value))
		if prev, ok := last[string(r.Key)]; ok && v < prev {
			t.Fatalf("key %s: %d after %d", r.Key, v, prev)
		}
		last[string(r.Key)] = v
	}
	if len(seen) != n {
		t.Fatalf("%d distinct records, want %d", len(seen), n)
	}
	t.Logf("%d connections cut", px.cuts())
}

// TestIdempotentStateSurvivesRestart: after a clean restart a producer's
// retry is still answered with its original offset and not stored again,
// and its sequence still has to continue; the saved state is consumed at
// start, so that a later crash cannot bring back a stale one.
func TestIdempotentStateSurvivesRestart(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	tb.createTopic("idem-restart", 1)
	c := tb.client()
	pid, epoch := initProducer(t, c)
	for _, seq := range []int32{0, 2} {
		if got := rawProduce(t, c, "idem-restart", pid, epoch, seq, 2); got.ErrorCode != 0 {
			t.Fatalf("produce %d: %v", seq, kerr.ErrorForCode(got.ErrorCode))
		}
	}
	c.Close()
	tb.restart()
	if _, ok, err := tb.Log.Meta().GetCursor("kafka", "producers"); err != nil || ok {
		t.Errorf("the producer state is still stored after the start (%v): a crash would restore it again", err)
	}
	c = tb.client()
	if got := rawProduce(t, c, "idem-restart", pid, epoch, 2, 2); got.ErrorCode != 0 || got.BaseOffset != 2 {
		t.Errorf("retry after the restart: offset %d, %v; want the original 2", got.BaseOffset, kerr.ErrorForCode(got.ErrorCode))
	}
	if got := rawProduce(t, c, "idem-restart", pid, epoch, 9, 1); got.ErrorCode != kerr.OutOfOrderSequenceNumber.Code {
		t.Errorf("gap after the restart: %v, want OUT_OF_ORDER_SEQUENCE_NUMBER", kerr.ErrorForCode(got.ErrorCode))
	}
	if got := rawProduce(t, c, "idem-restart", pid, epoch, 4, 1); got.ErrorCode != 0 || got.BaseOffset != 4 {
		t.Errorf("next batch after the restart: offset %d, %v", got.BaseOffset, kerr.ErrorForCode(got.ErrorCode))
	}
	top, _ := tb.Log.Topic("idem-restart")
	p, _ := top.Partition(0)
	if hw := p.HighWatermark(); hw != 5 {
		t.Errorf("high watermark %d, want 5: the retry was stored twice", hw)
	}
	// A new producer id is never one handed out before the restart.
	if pid2, _ := initProducer(t, c); pid2 <= pid {
		t.Errorf("producer id %d after the restart, %d before", pid2, pid)
	}
}
