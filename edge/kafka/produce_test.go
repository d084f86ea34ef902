package kafka_test

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/spoolmq/spool/edge/kafka"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestProduceConsumeCodecs: records produced with every codec come back
// intact (key, value, headers, timestamp), with contiguous offsets.
func TestProduceConsumeCodecs(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	codecs := map[string]kgo.CompressionCodec{
		"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(),
		"lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression(),
	}
	for name, codec := range codecs {
		t.Run(name, func(t *testing.T) {
			topic := "codec-" + name
			tb.createTopic(topic, 1)
			p := tb.client(kgo.ProducerBatchCompression(codec), kgo.DefaultProduceTopic(topic))
			ts := time.UnixMilli(time.Now().UnixMilli())
			var recs []*kgo.Record
			for i := range 50 {
				recs = append(recs, &kgo.Record{
					Key: []byte("k" + strconv.Itoa(i)), Value: []byte(fmt.Sprintf("value %d %s", i, name)),
					Headers: []kgo.RecordHeader{{Key: "h", Value: []byte(strconv.Itoa(i))}}, Timestamp: ts,
				})
			}
			if err := p.ProduceSync(ctx(t), recs...).FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
			c := tb.client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			got := consumeN(t, c, 50)
			for i, r := range got {
				want := recs[i]
				if r.Offset != int64(i) || string(r.Key) != string(want.Key) || string(r.Value) != string(want.Value) ||
					len(r.Headers) != 1 || string(r.Headers[0].Value) != strconv.Itoa(i) || !r.Timestamp.Equal(ts) {
					t.Fatalf("record %d: offset %d key %q value %q headers %v ts %v", i, r.Offset, r.Key, r.Value, r.Headers, r.Timestamp)
				}
			}
		})
	}
}

// TestKeyedOrdering: records with the same key land on one partition,
// the one Kafka's murmur2 partitioner picks (Spool's own, franz-go's and
// the Java client's agree), in the order they were produced.
func TestKeyedOrdering(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	const topic, parts = "orders", 6
	tb.createTopic(topic, parts)
	p := tb.client(kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
	keys := []string{"pump1", "pump2", "valve-7", "sensor.a", "x"}
	for i := range 200 {
		k := keys[i%len(keys)]
		p.Produce(ctx(t), &kgo.Record{Key: []byte(k), Value: []byte(strconv.Itoa(i))}, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Errorf("produce: %v", err)
			}
		})
	}
	if err := p.Flush(ctx(t)); err != nil {
		t.Fatal(err)
	}
	top, err := tb.Log.Topic(topic)
	if err != nil {
		t.Fatal(err)
	}
	c := tb.client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	byKey := map[string][]int{}
	for _, r := range consumeN(t, c, 200) {
		if want := top.PartitionFor(r.Key, parts); r.Partition != want {
			t.Errorf("key %s on partition %d, Spool's murmur2 says %d", r.Key, r.Partition, want)
		}
		v, _ := strconv.Atoi(string(r.Value))
		byKey[string(r.Key)] = append(byKey[string(r.Key)], v)
	}
	for k, vs := range byKey {
		if !slices.IsSorted(vs) || len(vs) != 40 {
			t.Errorf("key %s: %d records, order %v", k, len(vs), vs)
		}
	}
}
