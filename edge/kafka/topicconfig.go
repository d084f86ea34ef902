package kafka

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	spoollog "github.com/spoolmq/spool/log"
)

// Topic settings under their Kafka names, so that kadm, kcat -L, the Java
// AdminClient and kafka-configs.sh read and change them. Settings with no
// Kafka counterpart are named spool.*.

// topicSetting is one Kafka config name of a topic.
type topicSetting struct {
	name string
	get  func(*spoollog.TopicConfig) string
	set  func(*spoollog.TopicConfig, string) error
	doc  string
}

func msGet(d func(*spoollog.TopicConfig) *time.Duration) func(*spoollog.TopicConfig) string {
	return func(c *spoollog.TopicConfig) string {
		v := *d(c)
		if v < 0 {
			return "-1"
		}
		return strconv.FormatInt(v.Milliseconds(), 10)
	}
}

// msSet parses milliseconds; negative is forever where allowed.
func msSet(d func(*spoollog.TopicConfig) *time.Duration, negative bool) func(*spoollog.TopicConfig, string) error {
	return func(c *spoollog.TopicConfig, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || (n < 0 && !negative) || n > math.MaxInt64/int64(time.Millisecond) {
			return fmt.Errorf("%q is not a number of milliseconds", v)
		}
		if n < 0 {
			*d(c) = -1
			return nil
		}
		*d(c) = time.Duration(n) * time.Millisecond
		return nil
	}
}

func intSet[T int32 | int64](p func(*spoollog.TopicConfig) *T) func(*spoollog.TopicConfig, string) error {
	return func(c *spoollog.TopicConfig, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || int64(T(n)) != n {
			return fmt.Errorf("%q is not an integer in range", v)
		}
		*p(c) = T(n)
		return nil
	}
}

func intGet[T int32 | int64](p func(*spoollog.TopicConfig) *T) func(*spoollog.TopicConfig) string {
	return func(c *spoollog.TopicConfig) string { return strconv.FormatInt(int64(*p(c)), 10) }
}

var topicSettings = []topicSetting{
	{"cleanup.policy",
		func(c *spoollog.TopicConfig) string { return string(c.CleanupPolicy) },
		func(c *spoollog.TopicConfig, v string) error {
			switch strings.ReplaceAll(v, " ", "") {
			case "delete":
				c.CleanupPolicy = spoollog.CleanupDelete
			case "compact":
				c.CleanupPolicy = spoollog.CleanupCompact
			case "compact,delete", "delete,compact":
				c.CleanupPolicy = spoollog.CleanupCompactDelete
			default:
				return fmt.Errorf("%q is not delete, compact or compact,delete", v)
			}
			return nil
		}, "delete, compact, or compact,delete"},
	{"retention.ms", msGet(func(c *spoollog.TopicConfig) *time.Duration { return &c.Retention }),
		msSet(func(c *spoollog.TopicConfig) *time.Duration { return &c.Retention }, true), "age after which sealed segments are deleted; -1 keeps them"},
	{"retention.bytes", intGet(func(c *spoollog.TopicConfig) *int64 { return &c.RetentionBytes }),
		intSet(func(c *spoollog.TopicConfig) *int64 { return &c.RetentionBytes }), "bound on each partition's size; -1 for none"},
	{"segment.bytes", intGet(func(c *spoollog.TopicConfig) *int64 { return &c.SegmentBytes }),
		intSet(func(c *spoollog.TopicConfig) *int64 { return &c.SegmentBytes }), "size at which the active segment rolls"},
	{"segment.ms", msGet(func(c *spoollog.TopicConfig) *time.Duration { return &c.SegmentAge }),
		msSet(func(c *spoollog.TopicConfig) *time.Duration { return &c.SegmentAge }, false), "age at which the active segment rolls"},
	{"max.message.bytes", intGet(func(c *spoollog.TopicConfig) *int32 { return &c.MaxMessageBytes }),
		intSet(func(c *spoollog.TopicConfig) *int32 { return &c.MaxMessageBytes }), "largest record batch accepted"},
	{"message.timestamp.type",
		func(c *spoollog.TopicConfig) string { return string(c.TimestampType) },
		func(c *spoollog.TopicConfig, v string) error {
			c.TimestampType = spoollog.TimestampType(v)
			if v != string(spoollog.CreateTime) && v != string(spoollog.LogAppendTime) {
				return fmt.Errorf("%q is not CreateTime or LogAppendTime", v)
			}
			return nil
		}, "CreateTime or LogAppendTime"},
	{"delete.retention.ms", msGet(func(c *spoollog.TopicConfig) *time.Duration { return &c.DeleteRetention }),
		msSet(func(c *spoollog.TopicConfig) *time.Duration { return &c.DeleteRetention }, false), "how long compaction keeps tombstones"},
	{"index.interval.bytes", intGet(func(c *spoollog.TopicConfig) *int32 { return &c.IndexIntervalBytes }),
		intSet(func(c *spoollog.TopicConfig) *int32 { return &c.IndexIntervalBytes }), "log bytes between two offset index entries"},
	{"preallocate",
		func(c *spoollog.TopicConfig) string { return strconv.FormatBool(c.Preallocate) },
		func(c *spoollog.TopicConfig, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("%q is not true or false", v)
			}
			c.Preallocate = b
			return nil
		}, "allocate the active segment ahead of writes (zero-filled for small ones, fallocate for large)"},
	{"spool.compression",
		func(c *spoollog.TopicConfig) string { return c.Compression.String() },
		func(c *spoollog.TopicConfig, v string) error {
			codec, err := spoollog.ParseCodec(v)
			if err == nil {
				c.Compression = codec
			}
			return err
		}, "codec of the batches Spool merges from its own appends (MQTT, HTTP, sensors); none, gzip, snappy, lz4 or zstd"},
	{"spool.sync",
		func(c *spoollog.TopicConfig) string { return string(c.Sync) },
		func(c *spoollog.TopicConfig, v string) error { c.Sync = spoollog.SyncPolicy(v); return nil },
		"always (acknowledge after fsync), interval or never"},
	{"spool.sync.interval.ms", msGet(func(c *spoollog.TopicConfig) *time.Duration { return &c.SyncInterval }),
		msSet(func(c *spoollog.TopicConfig) *time.Duration { return &c.SyncInterval }, false), "fsync period with spool.sync=interval"},
	{"spool.on.full",
		func(c *spoollog.TopicConfig) string { return string(c.OnFull) },
		func(c *spoollog.TopicConfig, v string) error { c.OnFull = spoollog.OnFull(v); return nil },
		"reject or drop_oldest, at the disk budget"},
}

// fixedSettings are Kafka settings that have one meaning on a single node
// that stores batches as produced: they are shown, and may be set only to
// that value, so that tools which send them keep working.
var fixedSettings = map[string]string{
	"compression.type":    "producer",
	"min.insync.replicas": "1",
}

// setTopicConfig applies one Kafka-named setting to c.
func setTopicConfig(c *spoollog.TopicConfig, name, value string) error {
	for _, s := range topicSettings {
		if s.name == name {
			if err := s.set(c, value); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			return nil
		}
	}
	if v, ok := fixedSettings[name]; ok {
		if value != v {
			return fmt.Errorf("%s: only %q is supported", name, v)
		}
		return nil
	}
	return fmt.Errorf("%s: not a topic setting Spool has", name)
}

// resetTopicConfig sets one setting back to its default.
func resetTopicConfig(c *spoollog.TopicConfig, name string) error {
	def := spoollog.DefaultTopicConfig()
	for _, s := range topicSettings {
		if s.name == name {
			return s.set(c, s.get(&def))
		}
	}
	if _, ok := fixedSettings[name]; ok {
		return nil
	}
	return fmt.Errorf("%s: not a topic setting Spool has", name)
}
