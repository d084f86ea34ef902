package kafka_test

// Places where Spool must answer as a Kafka broker does, in ways a client
// notices.

import (
	"encoding/binary"
	"hash/crc32"
	"strconv"
	"testing"
	"time"

	"github.com/spoolmq/spool/edge/kafka"
	spoollog "github.com/spoolmq/spool/log"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func batchOf(t *testing.T, opts spoollog.BatchOptions, vals ...string) []byte {
	t.Helper()
	recs := make([]spoollog.Record, len(vals))
	for i, v := range vals {
		recs[i] = spoollog.Record{Timestamp: time.Now().UnixMilli(), Value: []byte(v)}
	}
	b, err := spoollog.AppendBatch(nil, recs, opts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func rawProduceReq(topic string, part int32, acks int16, batch []byte) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = acks, 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition, rp.Records = part, batch
	rt.Partitions = []kmsg.ProduceRequestTopicPartition{rp}
	req.Topics = []kmsg.ProduceRequestTopic{rt}
	return req
}

func produceRaw(t *testing.T, c *kgo.Client, topic string, part int32, batch []byte) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	resp, err := rawProduceReq(topic, part, -1, batch).RequestWith(ctx(t), c)
	if err != nil {
		t.Fatalf("produce: %v", err)
	}
	return resp.Topics[0].Partitions[0]
}

// ListOffsets v7 with timestamp -3 (KIP-734, Kafka 3.0) answers the offset
// and timestamp of the record with the largest timestamp
// (UnifiedLog.fetchOffsetByTimestamp, MAX_TIMESTAMP).
func TestListOffsetsMaxTimestamp(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	tb.createTopic("maxts", 1)
	p := tb.client(kgo.DefaultProduceTopic("maxts"), kgo.ProducerLinger(0))
	base := time.UnixMilli(1_700_000_000_000)
	for i, d := range []time.Duration{0, 10 * time.Second, 5 * time.Second} {
		r := &kgo.Record{Value: []byte(strconv.Itoa(i)), Timestamp: base.Add(d)}
		if err := p.ProduceSync(ctx(t), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	lo, err := tb.admin().ListMaxTimestampOffsets(ctx(t), "maxts")
	if err != nil {
		t.Fatal(err)
	}
	o, _ := lo.Lookup("maxts", 0)
	if o.Err != nil || o.Offset != 1 || o.Timestamp != base.Add(10*time.Second).UnixMilli() {
		t.Fatalf("max timestamp offset: offset %d timestamp %d err %v, want offset 1 timestamp %d",
			o.Offset, o.Timestamp, o.Err, base.Add(10*time.Second).UnixMilli())
	}
}

// KIP-511: a broker answers an ApiVersions request at any version it does
// not know with a v0 response, UNSUPPORTED_VERSION and its own version
// list; Kafka does not even parse the body (RequestContext.parseRequest).
func TestApiVersionsFutureVersion(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	rc := dialRaw(t, tb.addr())
	rc.request(kmsg.NewPtrApiVersionsRequest(), 6, 7)
	av := kmsg.NewPtrApiVersionsResponse()
	rc.response(av, 0, 7)
	if av.ErrorCode != kerr.UnsupportedVersion.Code || len(av.ApiKeys) < 10 {
		t.Errorf("ApiVersions v6: error %d, %d keys", av.ErrorCode, len(av.ApiKeys))
	}
}

// With acks=0 there is no answer, so a Kafka broker closes the connection
// when a partition fails, which makes the producer refresh its metadata
// (KafkaApis handleProduceRequest: "the server will close socket server so
// that the producer client will know that some error has happened").
func TestProduceAcks0ErrorClosesConnection(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	rc := dialRaw(t, tb.addr())
	rc.request(rawProduceReq("no-such-topic", 0, 0, batchOf(t, spoollog.DefaultBatchOptions, "lost")), 7, 1)
	if !rc.closed() {
		t.Fatal("acks=0 produce to an unknown topic: connection stayed open, the producer never learns its records were dropped")
	}
}

// Acks other than -1, 0, 1 is refused with INVALID_REQUIRED_ACKS for every
// partition (ReplicaManager.appendRecords, isValidRequiredAcks).
func TestProduceInvalidAcks(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	tb.createTopic("acks", 1)
	// A raw connection: kgo rewrites the acks of a request it is given.
	rc := dialRaw(t, tb.addr())
	rc.request(rawProduceReq("acks", 0, 2, batchOf(t, spoollog.DefaultBatchOptions, "x")), 7, 1)
	resp := kmsg.NewPtrProduceResponse()
	rc.response(resp, 7, 1)
	if got := resp.Topics[0].Partitions[0].ErrorCode; got != kerr.InvalidRequiredAcks.Code {
		t.Errorf("acks=2: error %v, want INVALID_REQUIRED_ACKS", kerr.ErrorForCode(got))
	}
	top, _ := tb.Log.Topic("acks")
	if p, _ := top.Partition(0); p.HighWatermark() != 0 {
		n := p.HighWatermark()
		t.Errorf("acks=2: %d records stored, want none", n)
	}
}

// A producer must not set the LogAppendTime timestamp type; Kafka refuses
// the batch with INVALID_TIMESTAMP ("Producer should not set timestamp
// type to LogAppendTime", LogValidator.validateTimestamp).
func TestProduceLogAppendTimeFromProducer(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	tb.createTopic("tstype", 1)
	c := tb.client()
	b := batchOf(t, spoollog.DefaultBatchOptions, "a", "b")
	const attrPos, crcPos = 21, 17
	binary.BigEndian.PutUint16(b[attrPos:], binary.BigEndian.Uint16(b[attrPos:])|0x08)
	binary.BigEndian.PutUint32(b[crcPos:], crc32.Checksum(b[attrPos:], crc32.MakeTable(crc32.Castagnoli)))
	if got := produceRaw(t, c, "tstype", 0, b); got.ErrorCode != kerr.InvalidTimestamp.Code {
		t.Errorf("producer batch with LogAppendTime type: error %v, want INVALID_TIMESTAMP", kerr.ErrorForCode(got.ErrorCode))
	}
}

// A partition that has no state for a producer accepts its batch at any
// sequence (ProducerAppendInfo.checkSequence: with no current producer
// epoch, "accept writes with any sequence number"). This is what an
// idempotent producer meets when its topic is deleted and recreated: its
// next batch continues its sequence.
func TestIdempotentSequenceAfterTopicRecreate(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	tb.createTopic("recreate", 1)
	c := tb.client()
	pid, epoch := initProducer(t, c)
	for seq := range int32(2) {
		opts := spoollog.BatchOptions{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq}
		if got := produceRaw(t, c, "recreate", 0, batchOf(t, opts, "v")); got.ErrorCode != 0 {
			t.Fatalf("seq %d: %v", seq, kerr.ErrorForCode(got.ErrorCode))
		}
	}
	dr, err := tb.admin().DeleteTopics(ctx(t), "recreate")
	if err != nil || dr["recreate"].Err != nil {
		t.Fatalf("delete: %v %v", err, dr["recreate"].Err)
	}
	tb.createTopic("recreate", 1)
	opts := spoollog.BatchOptions{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: 2}
	if got := produceRaw(t, c, "recreate", 0, batchOf(t, opts, "after")); got.ErrorCode != 0 {
		t.Errorf("seq 2 into the recreated topic: %v, want accepted (no producer state in the new partition)", kerr.ErrorForCode(got.ErrorCode))
	}
}

// A Kafka broker keeps producer state per partition (each UnifiedLog has
// its ProducerStateManager) and checks a batch's epoch against that
// partition's entry only (ProducerAppendInfo.checkProducerEpoch). The Java
// producer bumps an idempotent producer's epoch locally (KIP-360) for the
// partition that failed; its batches for the other partitions, in flight
// or retried, still carry the old epoch and are accepted.
func TestIdempotentEpochIsPerPartition(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	tb.createTopic("perpart", 2)
	c := tb.client()
	pid, _ := initProducer(t, c)
	send := func(part int32, epoch int16, seq int32) int16 {
		opts := spoollog.BatchOptions{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq}
		return produceRaw(t, c, "perpart", part, batchOf(t, opts, "v")).ErrorCode
	}
	if e := send(0, 0, 0); e != 0 {
		t.Fatal(kerr.ErrorForCode(e))
	}
	if e := send(1, 0, 0); e != 0 {
		t.Fatal(kerr.ErrorForCode(e))
	}
	if e := send(0, 1, 0); e != 0 { // epoch bumped for partition 0
		t.Fatal(kerr.ErrorForCode(e))
	}
	if e := send(1, 0, 1); e != 0 {
		t.Errorf("partition 1, epoch 0 (its current epoch), seq 1: %v, want accepted", kerr.ErrorForCode(e))
	}
}

// A fetch in which any partition has an error is answered at once,
// whatever MinBytes (ReplicaManager.fetchMessages: respond immediately
// when "errorReadingData").
func TestFetchErrorAnswersAtOnce(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	tb.createTopic("ferr", 2)
	top, _ := tb.Log.Topic("ferr")
	p0, _ := top.Partition(0)
	if _, err := p0.AppendRecords([]spoollog.Record{{Value: []byte("small")}}, spoollog.DefaultBatchOptions); err != nil {
		t.Fatal(err)
	}
	req := fetchReq("ferr", 5000, 1<<20, 1<<20, map[int32]int32{0: 1 << 20, 1: 1 << 20})
	req.Topics[0].Partitions[1].FetchOffset = 1000 // beyond the high watermark 0
	start := time.Now()
	resp, err := req.RequestWith(ctx(t), tb.client())
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Topics[0].Partitions[1].ErrorCode; got != kerr.OffsetOutOfRange.Code {
		t.Fatalf("partition 1: error %v, want OFFSET_OUT_OF_RANGE", kerr.ErrorForCode(got))
	}
	if waited := time.Since(start); waited > 2*time.Second {
		t.Errorf("fetch with an OFFSET_OUT_OF_RANGE partition answered after %v, want at once", waited)
	}
}

// A Kafka leader stamps every appended batch with its partition leader
// epoch (LogValidator assignOffsets*: batch.setPartitionLeaderEpoch), so
// consumers read record.LeaderEpoch = the epoch Metadata announced (Spool:
// 0) and use it in OffsetCommit and OffsetForLeaderEpoch validation.
func TestFetchedBatchesCarryLeaderEpoch(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	tb.createTopic("epochs", 1)
	p := tb.client(kgo.DefaultProduceTopic("epochs"))
	if err := p.ProduceSync(ctx(t), &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	c := tb.client(kgo.ConsumeTopics("epochs"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	recs := consumeN(t, c, 1)
	if recs[0].LeaderEpoch != 0 {
		t.Errorf("consumed record's leader epoch %d, want 0 (the partition's leader epoch in Metadata)", recs[0].LeaderEpoch)
	}
}
