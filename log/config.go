package log

import (
	"fmt"
	"time"
)

// SyncPolicy says when appended bytes are fsynced, and therefore when an
// append is acknowledged.
type SyncPolicy string

const (
	// SyncAlways acknowledges an append only after its bytes are fsynced.
	// Concurrent appenders share fsyncs (group commit).
	SyncAlways SyncPolicy = "always"
	// SyncInterval acknowledges after the write reaches the OS and fsyncs
	// on a timer (TopicConfig.SyncInterval).
	SyncInterval SyncPolicy = "interval"
	// SyncNever acknowledges after the write reaches the OS and leaves
	// flushing to the kernel.
	SyncNever SyncPolicy = "never"
)

// OnFull says what an append does when a limit (the disk budget, or a
// partition's retention.bytes held up by pins) is reached.
type OnFull string

const (
	// OnFullReject refuses the append with ErrFull.
	OnFullReject OnFull = "reject"
	// OnFullDropOldest deletes the oldest sealed segments, even past pins,
	// counting every record removed past a pin.
	OnFullDropOldest OnFull = "drop_oldest"
)

// CleanupPolicy is Kafka's cleanup.policy.
type CleanupPolicy string

const (
	CleanupDelete  CleanupPolicy = "delete"
	CleanupCompact CleanupPolicy = "compact"
	// CleanupCompactDelete compacts and also applies time and size retention.
	CleanupCompactDelete CleanupPolicy = "compact,delete"
)

// TimestampType is Kafka's message.timestamp.type.
type TimestampType string

const (
	CreateTime    TimestampType = "CreateTime"
	LogAppendTime TimestampType = "LogAppendTime"
)

// TopicConfig is a topic's configuration. It is stored as JSON in meta.db,
// so field names are part of the metadata format.
type TopicConfig struct {
	Partitions int32 `json:"partitions"`

	Sync         SyncPolicy    `json:"sync"`
	SyncInterval time.Duration `json:"sync_interval"`

	// Retention is the age after which a sealed segment is deleted
	// (retention.ms); negative means forever.
	Retention time.Duration `json:"retention"`
	// RetentionBytes bounds each partition's size (retention.bytes);
	// negative means unbounded.
	RetentionBytes int64 `json:"retention_bytes"`

	SegmentBytes int64         `json:"segment_bytes"`
	SegmentAge   time.Duration `json:"segment_age"`

	// MaxMessageBytes bounds one appended batch (max.message.bytes).
	MaxMessageBytes int32 `json:"max_message_bytes"`

	OnFull        OnFull        `json:"on_full"`
	CleanupPolicy CleanupPolicy `json:"cleanup_policy"`
	// DeleteRetention is how long compaction keeps tombstones
	// (delete.retention.ms).
	DeleteRetention time.Duration `json:"delete_retention"`

	TimestampType TimestampType `json:"timestamp_type"`

	// IndexIntervalBytes is how many log bytes lie between two sparse
	// index entries (index.interval.bytes).
	IndexIntervalBytes int32 `json:"index_interval_bytes"`

	// Preallocate allocates the active segment ahead of the write
	// position: zero-filled for small writes, so a synced append
	// overwrites allocated blocks (an fdatasync then commits no metadata),
	// reserved with fallocate for large ones (less metadata than growing).
	Preallocate bool `json:"preallocate"`

	// Compression is the codec of the batches the log builds when it
	// merges Spool's own one-message batches (MQTT ingest, HTTP, sensors).
	// Batches from Kafka producers are stored as they came.
	Compression Codec `json:"compression"`
}

// DefaultTopicConfig returns the configuration a topic gets when nothing is
// said. The values suit an edge board: durable by default, a week of data,
// segments small enough that retention frees space in useful steps.
func DefaultTopicConfig() TopicConfig {
	return TopicConfig{
		Partitions:         1,
		Sync:               SyncAlways,
		SyncInterval:       time.Second,
		Retention:          7 * 24 * time.Hour,
		RetentionBytes:     -1,
		SegmentBytes:       64 << 20,
		SegmentAge:         7 * 24 * time.Hour,
		MaxMessageBytes:    1 << 20,
		OnFull:             OnFullReject,
		CleanupPolicy:      CleanupDelete,
		DeleteRetention:    24 * time.Hour,
		TimestampType:      CreateTime,
		IndexIntervalBytes: 4096,
		Preallocate:        true,
		Compression:        CodecZstd,
	}
}

// Validate reports the first invalid field, naming it.
func (c TopicConfig) Validate() error {
	switch {
	case c.Partitions < 1 || c.Partitions > maxPartitions:
		return fmt.Errorf("partitions: %d is not between 1 and %d", c.Partitions, maxPartitions)
	case c.Sync != SyncAlways && c.Sync != SyncInterval && c.Sync != SyncNever:
		return fmt.Errorf("sync: %q is not always, interval or never", c.Sync)
	case c.Sync == SyncInterval && c.SyncInterval <= 0:
		return fmt.Errorf("sync_interval: must be positive with sync: interval")
	case c.SegmentBytes < minSegmentBytes || c.SegmentBytes > maxSegmentBytes:
		return fmt.Errorf("segment_bytes: %d is not between %d and %d", c.SegmentBytes, minSegmentBytes, maxSegmentBytes)
	case c.SegmentAge <= 0:
		return fmt.Errorf("segment_age: must be positive")
	case c.MaxMessageBytes < batchHeaderSize || int64(c.MaxMessageBytes) > c.SegmentBytes:
		return fmt.Errorf("max_message_bytes: %d is not between %d and segment_bytes (%d)", c.MaxMessageBytes, batchHeaderSize, c.SegmentBytes)
	case c.OnFull != OnFullReject && c.OnFull != OnFullDropOldest:
		return fmt.Errorf("on_full: %q is not reject or drop_oldest", c.OnFull)
	case c.CleanupPolicy != CleanupDelete && c.CleanupPolicy != CleanupCompact && c.CleanupPolicy != CleanupCompactDelete:
		return fmt.Errorf("cleanup_policy: %q is not delete, compact or compact,delete", c.CleanupPolicy)
	case c.DeleteRetention < 0:
		return fmt.Errorf("delete_retention: must not be negative")
	case c.TimestampType != CreateTime && c.TimestampType != LogAppendTime:
		return fmt.Errorf("timestamp_type: %q is not CreateTime or LogAppendTime", c.TimestampType)
	case c.IndexIntervalBytes < 64:
		return fmt.Errorf("index_interval_bytes: %d is below 64", c.IndexIntervalBytes)
	case c.Compression < CodecNone || c.Compression > CodecZstd:
		return fmt.Errorf("compression: codec %d is not none, gzip, snappy, lz4 or zstd", c.Compression)
	}
	return nil
}

// deletes reports whether time and size retention apply.
func (c TopicConfig) deletes() bool { return c.CleanupPolicy != CleanupCompact }

// Compacts reports whether compaction applies: records may be removed
// from sealed segments.
func (c TopicConfig) Compacts() bool { return c.CleanupPolicy != CleanupDelete }

const (
	maxPartitions   = 10000
	minSegmentBytes = 1 << 10
	// Offset index positions are 32-bit relative file positions.
	maxSegmentBytes = 1<<31 - 1
)
