package log

import (
	"errors"
	"fmt"
	"syscall"
)

// Errors callers map to protocol codes (MQTT reason codes, Kafka error
// codes, HTTP statuses). Test them with errors.Is.
var (
	// ErrFull: a limit was reached and the topic's on_full policy is
	// reject, or the disk itself is full. Nothing of the append was stored.
	ErrFull = errors.New("log full")
	// ErrTooLarge: the batch exceeds the topic's max_message_bytes.
	ErrTooLarge = errors.New("batch larger than max_message_bytes")
	// ErrOffsetOutOfRange: the offset is below the log start or above the
	// high watermark.
	ErrOffsetOutOfRange = errors.New("offset out of range")
	// ErrUnknownTopic and ErrUnknownPartition: no such topic or partition.
	ErrUnknownTopic     = errors.New("unknown topic")
	ErrUnknownPartition = errors.New("unknown partition")
	// ErrTopicExists: CreateTopic of an existing topic.
	ErrTopicExists = errors.New("topic already exists")
	// ErrClosed: the log or partition was closed.
	ErrClosed = errors.New("log closed")
	// ErrPolicy: the topic's configuration forbids the operation
	// (DeleteRecords on a compacted topic that does not delete).
	ErrPolicy = errors.New("not allowed by the topic's configuration")
)

// CorruptionError reports damage in stored data at a precise place. It is
// returned by reads, Verify and Open; Repair consumes it.
type CorruptionError struct {
	Topic     string
	Partition int32
	Segment   string // file path
	Position  int64  // byte position in the segment file
	Err       error
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("corrupt log: topic %q partition %d segment %s at byte %d: %v (run 'spool log repair')",
		e.Topic, e.Partition, e.Segment, e.Position, e.Err)
}

func (e *CorruptionError) Unwrap() error { return e.Err }

// IOError is a failed write or fsync. After an fsync failure the partition
// keeps returning it (sticky) until recovered from disk.
type IOError struct {
	Topic     string
	Partition int32
	Op        string
	Err       error
}

func (e *IOError) Error() string {
	return fmt.Sprintf("log %s failed on topic %q partition %d: %v", e.Op, e.Topic, e.Partition, e.Err)
}

func (e *IOError) Unwrap() error { return e.Err }

// Is makes an out-of-space write match ErrFull, so callers handle a full
// disk the same way as a reached budget.
func (e *IOError) Is(target error) bool {
	return target == ErrFull && isNoSpace(e.Err)
}

func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
