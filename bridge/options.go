package bridge

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	spoollog "github.com/spoolmq/spool/log"
)

// Partitioning says how a local partition maps to an upstream partition.
type Partitioning string

const (
	// PartitionKeep sends local partition n to upstream partition n. The
	// upstream topic needs at least as many partitions; the link creates it
	// with the same count when it is missing. Order is kept per partition.
	PartitionKeep Partitioning = "keep"
	// PartitionRehash lets kgo's murmur2 key partitioner choose, as a Kafka
	// producer would: the upstream topic may have any partition count, and
	// order is kept per key.
	PartitionRehash Partitioning = "rehash"
)

// KafkaLinkOptions configure a KafkaLink. Zero values take the defaults
// written beside each field.
type KafkaLinkOptions struct {
	// Name identifies the link; its cursors live in namespace
	// "bridge."+Name and its retention pin is named the same. Required.
	Name string
	// Site is this edge's id: the {site} of Destination and the spool.edge
	// origin header. Required.
	Site string
	// Seeds are the upstream bootstrap brokers. Required.
	Seeds []string
	// ClientOpts are extra kgo options (TLS, SASL, timeouts), applied after
	// the link's own so they can override them.
	ClientOpts []kgo.Opt

	// Log is the local log to mirror from. Required.
	Log *spoollog.Log
	// Topics are the local topics to mirror, all of their partitions.
	Topics []string
	// EveryTopic says the link mirrors every local topic: it may start
	// with no Topics, and its owner adds the topics created later with
	// AddTopics.
	EveryTopic bool
	// Destination is the upstream topic name template; {site} and {topic}
	// are replaced. Default DefaultDestination.
	Destination string
	// Partitioning, default PartitionKeep.
	Partitioning Partitioning

	// BatchBytes bounds one upstream record batch
	// (kgo.ProducerBatchMaxBytes); 0 keeps kgo's default (about 1 MB, which
	// is also Kafka's default max.message.bytes).
	BatchBytes int32
	// ReadBytes bounds what one partition reads from the local log per
	// round trip to the upstream; default 1 MiB.
	ReadBytes int
	// BandwidthBytesPerSec bounds the link's average upstream rate, in key
	// and value bytes before compression, over all its partitions; 0 means
	// no limit.
	BandwidthBytesPerSec int64
	// Priorities rank topics for the bandwidth limit: when rounds wait for
	// it, those of a higher priority go first (alarms before telemetry),
	// and within one priority a partition's new records (a round that
	// reaches its end) go before another's backlog. Topics not named have
	// priority 0. Without a bandwidth limit nothing waits, and the order
	// is the upstream connection's.
	Priorities map[string]int
	// ExactlyOnce mirrors with a transactional producer (transactional id
	// "spool-<site>-<name>"): each round of every partition's records is
	// one transaction that also writes the link's cursors to OffsetsTopic
	// upstream, the way Kafka's exactly-once source connectors keep their
	// offsets. At start the link fences any earlier producer of its id
	// (aborting what it left open) and resumes from the cursors committed
	// upstream, so read_committed consumers see every record exactly
	// once, across crashes and outages.
	ExactlyOnce bool
	// OffsetsTopic is the upstream topic of the cursors of exactly-once
	// links (compacted, one partition, keyed by site, link, topic and
	// partition). Default DefaultOffsetsTopic.
	OffsetsTopic string
	// Compression is the upstream batch codec: none, gzip, snappy, lz4 or
	// zstd (default). Local batches are decoded and re-batched, so the
	// upstream codec does not depend on how records were stored.
	Compression string

	// DeliveryTimeout bounds, by the wall clock, how long one round of
	// records may wait for the upstream before kgo fails those it has not
	// sent and the link backs off and resends. Default 30 s.
	DeliveryTimeout time.Duration
	// BackoffMin and BackoffMax bound the retry backoff after a failure.
	// Defaults 100 ms and 10 s.
	BackoffMin, BackoffMax time.Duration
	// StallTimeout is how long a partition with lag may make no progress,
	// without any error, before Health reports the link failing ("connected
	// but not moving"). Default 30 s.
	StallTimeout time.Duration
	// FlushTimeout bounds how long Run waits, after its context ends, for
	// records already handed to kgo to be acknowledged. Default 5 s.
	FlushTimeout time.Duration

	// Logger, discarding when nil.
	Logger *slog.Logger
}

// withDefaults fills zero fields and reports the first invalid one.
func (o KafkaLinkOptions) withDefaults() (KafkaLinkOptions, error) {
	switch {
	case o.Name == "":
		return o, errors.New("bridge: link name is empty")
	case o.Site == "":
		return o, fmt.Errorf("bridge link %s: site is empty", o.Name)
	case len(o.Seeds) == 0:
		return o, fmt.Errorf("bridge link %s: no seed brokers", o.Name)
	case o.Log == nil:
		return o, fmt.Errorf("bridge link %s: no local log", o.Name)
	case len(o.Topics) == 0 && !o.EveryTopic:
		return o, fmt.Errorf("bridge link %s: no topics", o.Name)
	}
	if o.Destination == "" {
		o.Destination = DefaultDestination
	}
	if o.Partitioning == "" {
		o.Partitioning = PartitionKeep
	}
	if o.Partitioning != PartitionKeep && o.Partitioning != PartitionRehash {
		return o, fmt.Errorf("bridge link %s: partitioning %q is not keep or rehash", o.Name, o.Partitioning)
	}
	if o.OffsetsTopic == "" {
		o.OffsetsTopic = DefaultOffsetsTopic
	}
	if o.ReadBytes <= 0 {
		o.ReadBytes = 1 << 20
	}
	if o.Compression == "" {
		o.Compression = "zstd"
	}
	if _, err := compressionCodec(o.Compression); err != nil {
		return o, fmt.Errorf("bridge link %s: %w", o.Name, err)
	}
	if o.BatchBytes < 0 {
		return o, fmt.Errorf("bridge link %s: batch bytes %d is negative", o.Name, o.BatchBytes)
	}
	if o.DeliveryTimeout <= 0 {
		o.DeliveryTimeout = 30 * time.Second
	}
	if o.BackoffMin <= 0 {
		o.BackoffMin = 100 * time.Millisecond
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 10 * time.Second
	}
	o.BackoffMax = max(o.BackoffMax, o.BackoffMin)
	if o.StallTimeout <= 0 {
		o.StallTimeout = 30 * time.Second
	}
	if o.FlushTimeout <= 0 {
		o.FlushTimeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

func compressionCodec(name string) (kgo.CompressionCodec, error) {
	switch name {
	case "none":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("unknown compression %q (none, gzip, snappy, lz4, zstd)", name)
}
