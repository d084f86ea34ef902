package kafka_test

// zstd and the protocol versions before it (KIP-110, Kafka 2.1): a
// Produce below v7 may not carry a zstd batch, and a Fetch below v10 gets
// no zstd batch, UNSUPPORTED_COMPRESSION_TYPE instead.

import (
	"testing"

	"github.com/spoolmq/spool/edge/kafka"
	spoollog "github.com/spoolmq/spool/log"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func codecBatch(t *testing.T, c spoollog.Codec, vals ...string) []byte {
	t.Helper()
	opts := spoollog.DefaultBatchOptions
	opts.Codec = c
	return batchOf(t, opts, vals...)
}

// fetchAt fetches partition 0 of topic from offset at version v, over a
// connection of its own.
func fetchAt(t *testing.T, tb *testBroker, topic string, offset int64, v int16) kmsg.FetchResponseTopicPartition {
	t.Helper()
	req := fetchReq(topic, 0, 1, 1<<20, map[int32]int32{0: 1 << 20})
	req.Topics[0].Partitions[0].FetchOffset = offset
	rc := dialRaw(t, tb.addr())
	rc.request(req, v, 1)
	resp := kmsg.NewPtrFetchResponse()
	rc.response(resp, v, 1)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("fetch v%d: %d topics in the answer", v, len(resp.Topics))
	}
	return resp.Topics[0].Partitions[0]
}

// produceAt sends batch to partition 0 of topic at version v, over a
// connection of its own.
func produceAt(t *testing.T, tb *testBroker, topic string, v int16, batch []byte) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	rc := dialRaw(t, tb.addr())
	rc.request(rawProduceReq(topic, 0, -1, batch), v, 1)
	resp := kmsg.NewPtrProduceResponse()
	rc.response(resp, v, 1)
	return resp.Topics[0].Partitions[0]
}

// batchCodecs lists the base offset and codec of each batch of data.
func batchCodecs(t *testing.T, data []byte) (bases []int64, codecs []spoollog.Codec) {
	t.Helper()
	err := spoollog.SplitBatches(data, func(h spoollog.BatchHeader, _ []byte) error {
		bases, codecs = append(bases, h.BaseOffset), append(codecs, h.Codec())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return bases, codecs
}

func highWatermark(t *testing.T, tb *testBroker, topic string) int64 {
	t.Helper()
	top, err := tb.Log.Topic(topic)
	if err != nil {
		t.Fatal(err)
	}
	p, err := top.Partition(0)
	if err != nil {
		t.Fatal(err)
	}
	return p.HighWatermark()
}

// A zstd batch at the fetch offset: below v10 the partition is answered
// with UNSUPPORTED_COMPRESSION_TYPE and nothing else (Kafka's
// FetchResponse.partitionResponse); from v10 on, with the batch.
func TestZstdFetchBelowV10(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	tb.createTopic("zf", 1)
	c := tb.client()
	if sp := produceRaw(t, c, "zf", 0, codecBatch(t, spoollog.CodecZstd, "z1", "z2")); sp.ErrorCode != 0 {
		t.Fatalf("produce zstd: %v", kerr.ErrorForCode(sp.ErrorCode))
	}
	for v := int16(4); v <= 12; v++ {
		sp := fetchAt(t, tb, "zf", 0, v)
		bases, codecs := batchCodecs(t, sp.RecordBatches)
		if v < 10 {
			if sp.ErrorCode != kerr.UnsupportedCompressionType.Code || len(sp.RecordBatches) != 0 || sp.HighWatermark != -1 {
				t.Errorf("fetch v%d of a zstd batch: error %v, %d bytes, high watermark %d; want UNSUPPORTED_COMPRESSION_TYPE, none, -1",
					v, kerr.ErrorForCode(sp.ErrorCode), len(sp.RecordBatches), sp.HighWatermark)
			}
			continue
		}
		if sp.ErrorCode != 0 || len(codecs) != 1 || codecs[0] != spoollog.CodecZstd || bases[0] != 0 || sp.HighWatermark != 2 {
			t.Errorf("fetch v%d of a zstd batch: error %v, batches %v at %v, high watermark %d; want the zstd batch at 0, 2",
				v, kerr.ErrorForCode(sp.ErrorCode), codecs, bases, sp.HighWatermark)
		}
	}
}

// Batches Fetch v9 can decode are served as stored.
func TestFetchV9OtherCodecs(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	tb.createTopic("zo", 1)
	c := tb.client()
	for _, codec := range []spoollog.Codec{spoollog.CodecNone, spoollog.CodecLz4, spoollog.CodecGzip, spoollog.CodecSnappy} {
		if sp := produceRaw(t, c, "zo", 0, codecBatch(t, codec, "a-"+codec.String())); sp.ErrorCode != 0 {
			t.Fatalf("produce %s: %v", codec, kerr.ErrorForCode(sp.ErrorCode))
		}
	}
	sp := fetchAt(t, tb, "zo", 0, 9)
	bases, codecs := batchCodecs(t, sp.RecordBatches)
	want := []spoollog.Codec{spoollog.CodecNone, spoollog.CodecLz4, spoollog.CodecGzip, spoollog.CodecSnappy}
	if sp.ErrorCode != 0 || len(codecs) != len(want) || sp.HighWatermark != 4 {
		t.Fatalf("fetch v9: error %v, batches %v at %v, high watermark %d; want %v, 4",
			kerr.ErrorForCode(sp.ErrorCode), codecs, bases, sp.HighWatermark, want)
	}
	for i := range want {
		if codecs[i] != want[i] || bases[i] != int64(i) {
			t.Errorf("fetch v9: batch %d is %s at %d, want %s at %d", i, codecs[i], bases[i], want[i], i)
		}
	}
}

// A zstd batch after others: below v10 the fetch returns the batches
// ahead of it, and the fetch from its offset gets the error (as Kafka's
// down-conversion, LazyDownConversionRecordsSend). Batches after it are
// not reached; v10 gets them all.
func TestZstdFetchBelowV10AfterOtherBatches(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	tb.createTopic("zl", 1)
	c := tb.client()
	for _, b := range [][]byte{
		codecBatch(t, spoollog.CodecNone, "n0", "n1"),
		codecBatch(t, spoollog.CodecLz4, "l2"),
		codecBatch(t, spoollog.CodecZstd, "z3"),
		codecBatch(t, spoollog.CodecNone, "n4"),
	} {
		if sp := produceRaw(t, c, "zl", 0, b); sp.ErrorCode != 0 {
			t.Fatalf("produce: %v", kerr.ErrorForCode(sp.ErrorCode))
		}
	}

	sp := fetchAt(t, tb, "zl", 0, 9)
	bases, codecs := batchCodecs(t, sp.RecordBatches)
	if sp.ErrorCode != 0 || len(codecs) != 2 || codecs[0] != spoollog.CodecNone || codecs[1] != spoollog.CodecLz4 || sp.HighWatermark != 5 {
		t.Errorf("fetch v9 from 0: error %v, batches %v at %v, high watermark %d; want none at 0 and lz4 at 2, 5",
			kerr.ErrorForCode(sp.ErrorCode), codecs, bases, sp.HighWatermark)
	}
	if sp := fetchAt(t, tb, "zl", 3, 9); sp.ErrorCode != kerr.UnsupportedCompressionType.Code || len(sp.RecordBatches) != 0 {
		t.Errorf("fetch v9 from the zstd batch: error %v, %d bytes; want UNSUPPORTED_COMPRESSION_TYPE, none",
			kerr.ErrorForCode(sp.ErrorCode), len(sp.RecordBatches))
	}
	if sp := fetchAt(t, tb, "zl", 4, 9); sp.ErrorCode != 0 || len(sp.RecordBatches) == 0 {
		t.Errorf("fetch v9 past the zstd batch: error %v, %d bytes; want the last batch",
			kerr.ErrorForCode(sp.ErrorCode), len(sp.RecordBatches))
	}
	sp = fetchAt(t, tb, "zl", 0, 10)
	if _, codecs := batchCodecs(t, sp.RecordBatches); sp.ErrorCode != 0 || len(codecs) != 4 {
		t.Errorf("fetch v10 from 0: error %v, batches %v; want all 4", kerr.ErrorForCode(sp.ErrorCode), codecs)
	}
}

// Produce below v7 with a zstd batch is refused for the partition with
// UNSUPPORTED_COMPRESSION_TYPE (Kafka's ProduceRequest.validateRecords),
// storing nothing, also of the batches ahead of it in the same request;
// v7 stores it.
func TestZstdProduceBelowV7(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	tb.createTopic("zp", 1)
	zstd := codecBatch(t, spoollog.CodecZstd, "z1", "z2")
	refused := map[string][]byte{
		"zstd":            zstd,
		"none, then zstd": append(codecBatch(t, spoollog.CodecNone, "n"), zstd...),
	}
	for name, records := range refused {
		for _, v := range []int16{3, 6} {
			sp := produceAt(t, tb, "zp", v, records)
			if sp.ErrorCode != kerr.UnsupportedCompressionType.Code || sp.BaseOffset != -1 {
				t.Errorf("produce v%d %s: error %v, base offset %d; want UNSUPPORTED_COMPRESSION_TYPE, -1",
					v, name, kerr.ErrorForCode(sp.ErrorCode), sp.BaseOffset)
			}
			if hw := highWatermark(t, tb, "zp"); hw != 0 {
				t.Fatalf("produce v%d %s refused, yet the high watermark is %d", v, name, hw)
			}
		}
	}
	if sp := produceAt(t, tb, "zp", 6, codecBatch(t, spoollog.CodecLz4, "l")); sp.ErrorCode != 0 || sp.BaseOffset != 0 {
		t.Fatalf("produce v6 lz4: error %v, base offset %d; want stored at 0", kerr.ErrorForCode(sp.ErrorCode), sp.BaseOffset)
	}
	if sp := produceAt(t, tb, "zp", 7, zstd); sp.ErrorCode != 0 || sp.BaseOffset != 1 {
		t.Fatalf("produce v7 zstd: error %v, base offset %d; want stored at 1", kerr.ErrorForCode(sp.ErrorCode), sp.BaseOffset)
	}
	if hw := highWatermark(t, tb, "zp"); hw != 3 {
		t.Errorf("high watermark %d after the lz4 and zstd batches, want 3", hw)
	}
	sp := fetchAt(t, tb, "zp", 1, 10)
	if bases, codecs := batchCodecs(t, sp.RecordBatches); sp.ErrorCode != 0 || len(codecs) != 1 || codecs[0] != spoollog.CodecZstd || bases[0] != 1 {
		t.Errorf("fetch v10 of the v7 zstd batch: error %v, batches %v at %v; want zstd at 1", kerr.ErrorForCode(sp.ErrorCode), codecs, bases)
	}
}
