package kafka_test

import (
	"testing"
	"time"

	"github.com/spoolmq/spool/edge/kafka"
	spoollog "github.com/spoolmq/spool/log"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// crashRestart closes the broker and removes the producer snapshot its
// clean Close wrote, as a crash would leave meta.db, then opens it again.
func crashRestart(t *testing.T, tb *testBroker) {
	t.Helper()
	tb.offline(func(l *spoollog.Log) {
		if err := l.Meta().DeleteCursor("kafka", "producers"); err != nil {
			t.Fatal(err)
		}
	})
}

// An idempotent producer that retries, after a crash, a batch stored just
// before it gets the original offset, not a second copy: its last batches
// are read back from the log's tail. Its next batch continues the
// sequence, and a KIP-360 epoch bump starts above the epoch in the log.
func TestIdempotentRetryAfterCrashNotStoredTwice(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	tb.createTopic("idem", 1)
	cl := tb.client()
	pid, epoch := initProducer(t, cl)
	batch := func(seq int32, v string) []byte {
		b, err := spoollog.AppendBatch(nil, []spoollog.Record{{Timestamp: time.Now().UnixMilli(), Value: []byte(v)}},
			spoollog.BatchOptions{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for i, v := range []string{"a", "b"} {
		if r := produceBatch(t, cl, nil, "idem", batch(int32(i), v)); r.ErrorCode != 0 || r.BaseOffset != int64(i) {
			t.Fatalf("produce %s: offset %d, %v", v, r.BaseOffset, kerr.ErrorForCode(r.ErrorCode))
		}
	}

	crashRestart(t, tb)
	cl = tb.client()
	if r := produceBatch(t, cl, nil, "idem", batch(1, "b")); r.ErrorCode != 0 || r.BaseOffset != 1 {
		t.Errorf("retried batch after the crash: offset %d, %v; want the original offset 1", r.BaseOffset, kerr.ErrorForCode(r.ErrorCode))
	}
	if r := produceBatch(t, cl, nil, "idem", batch(5, "gap")); r.ErrorCode != kerr.OutOfOrderSequenceNumber.Code {
		t.Errorf("a batch skipping sequences after the crash: %v, want OUT_OF_ORDER_SEQUENCE_NUMBER", kerr.ErrorForCode(r.ErrorCode))
	}
	if r := produceBatch(t, cl, nil, "idem", batch(2, "c")); r.ErrorCode != 0 || r.BaseOffset != 2 {
		t.Errorf("next batch after the crash: offset %d, %v; want 2", r.BaseOffset, kerr.ErrorForCode(r.ErrorCode))
	}
	if hw := mustPartition(t, tb, "idem", 0).HighWatermark(); hw != 3 {
		t.Errorf("high watermark %d, want 3 (a, b, c once each)", hw)
	}

	bump := kmsg.NewPtrInitProducerIDRequest()
	bump.ProducerID, bump.ProducerEpoch = pid, epoch
	if br := txnRaw[*kmsg.InitProducerIDResponse](t, cl, bump); br.ErrorCode != 0 || br.ProducerID != pid || br.ProducerEpoch != epoch+1 {
		t.Errorf("KIP-360 bump after the crash: producer %d epoch %d, %v; want %d epoch %d", br.ProducerID, br.ProducerEpoch, kerr.ErrorForCode(br.ErrorCode), pid, epoch+1)
	}
}

func mustPartition(t *testing.T, tb *testBroker, topic string, id int32) *spoollog.Partition {
	t.Helper()
	tp, err := tb.Log.Topic(topic)
	if err != nil {
		t.Fatal(err)
	}
	p, err := tp.Partition(id)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A producer that bumped its epoch (KIP-360) and wrote nothing at the new
// one before a crash bumps again after it: the epoch read back from its
// batches is a floor, not a reason to refuse.
func TestIdempotentBumpAfterCrashWithoutBatches(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	tb.createTopic("idem2", 1)
	cl := tb.client()
	pid, epoch := initProducer(t, cl)
	b, err := spoollog.AppendBatch(nil, []spoollog.Record{{Timestamp: time.Now().UnixMilli(), Value: []byte("a")}},
		spoollog.BatchOptions{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: 0})
	if err != nil {
		t.Fatal(err)
	}
	if r := produceBatch(t, cl, nil, "idem2", b); r.ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(r.ErrorCode))
	}
	bump := func(epoch int16) *kmsg.InitProducerIDResponse {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.ProducerID, req.ProducerEpoch = pid, epoch
		return txnRaw[*kmsg.InitProducerIDResponse](t, cl, req)
	}
	first := bump(epoch)
	if first.ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(first.ErrorCode))
	}

	crashRestart(t, tb)
	cl = tb.client()
	if br := bump(first.ProducerEpoch); br.ErrorCode != 0 || br.ProducerEpoch != first.ProducerEpoch+1 {
		t.Errorf("bump from epoch %d after the crash: epoch %d, %v; want %d", first.ProducerEpoch, br.ProducerEpoch, kerr.ErrorForCode(br.ErrorCode), first.ProducerEpoch+1)
	}
	// A stale epoch is still refused.
	if br := bump(epoch); br.ErrorCode != kerr.InvalidProducerEpoch.Code {
		t.Errorf("bump from the stale epoch %d: %v, want INVALID_PRODUCER_EPOCH", epoch, kerr.ErrorForCode(br.ErrorCode))
	}
}
