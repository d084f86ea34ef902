package log

import (
	"fmt"
	"sync"
	"sync/atomic"
)

// stickyBytes is how much keyless data goes to one partition before the
// sticky partitioner moves on, like Kafka's batch.size for KIP-794.
const stickyBytes = 16 << 10

// Topic is a named set of partitions sharing a configuration.
type Topic struct {
	l    *Log
	name string
	cfg  atomic.Pointer[TopicConfig]

	mu         sync.RWMutex // guards partitions (it only grows)
	partitions []*Partition

	stickyMu    sync.Mutex // guards the sticky partitioner
	stickyPart  int32
	stickyCount int

	dropped atomic.Int64 // records removed past a pin

	appendedRecords atomic.Int64 // records accepted into the queue
	appendedBytes   atomic.Int64
}

// Name returns the topic's name.
func (t *Topic) Name() string { return t.name }

// Config returns the topic's current configuration.
func (t *Topic) Config() TopicConfig { return *t.cfg.Load() }

// NumPartitions returns the partition count.
func (t *Topic) NumPartitions() int32 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return int32(len(t.partitions))
}

// Partition returns partition i.
func (t *Topic) Partition(i int32) (*Partition, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if i < 0 || int(i) >= len(t.partitions) {
		return nil, fmt.Errorf("%w: topic %q has no partition %d", ErrUnknownPartition, t.name, i)
	}
	return t.partitions[i], nil
}

// Partitions returns all partitions in order.
func (t *Topic) Partitions() []*Partition {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return append([]*Partition(nil), t.partitions...)
}

// PartitionFor picks the partition for a record: murmur2 of the key like
// Kafka's Java producer, or, for a nil key, the sticky partition that
// moves round robin after stickyBytes.
func (t *Topic) PartitionFor(key []byte, size int) int32 {
	n := t.NumPartitions()
	if key != nil {
		return KeyPartition(key, n)
	}
	t.stickyMu.Lock()
	defer t.stickyMu.Unlock()
	if t.stickyCount >= stickyBytes || t.stickyPart >= n {
		t.stickyPart = (t.stickyPart + 1) % n
		t.stickyCount = 0
	}
	t.stickyCount += size
	return t.stickyPart
}

// DroppedRecords counts records that on_full: drop_oldest removed before
// a pinned reader (the bridge) had read them.
func (t *Topic) DroppedRecords() int64 { return t.dropped.Load() }

// Appended returns how many records and batch bytes were accepted for
// append to this topic since it was opened (the ingest counters).
func (t *Topic) Appended() (records, bytes int64) {
	return t.appendedRecords.Load(), t.appendedBytes.Load()
}
