// meta.db is a bbolt database laid out as:
//
//	meta     "schema_version" -> uint32, big-endian
//	topics   topic name -> TopicConfig as JSON
//	offsets  group -> topic + 0x00 + partition (uint32, big-endian) -> committed offset (metaEncodeOffset)
//	cursors  namespace -> key -> opaque value
//	txns     topic -> partition (uint32, big-endian) -> the partition's transactions as JSON (txn.go)
//
// The txns bucket came after schema version 1 without a bump: older code
// ignores it, and opening creates it.
// This layout is part of Spool's on-disk format: changing it means bumping
// metaSchemaVersion and migrating old databases in OpenMeta.

package log

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// metaSchemaVersion is the layout version this code writes. A database with
// a newer version is refused: its layout may mean something this code would
// misread or overwrite.
const metaSchemaVersion = 1

// metaLockTimeout bounds the wait for bbolt's file lock. bbolt waits forever
// by default, so a second broker started on the same data directory would
// hang silently instead of saying why it cannot start.
const metaLockTimeout = 2 * time.Second

var (
	metaBucketMeta       = []byte("meta")
	metaBucketTopics     = []byte("topics")
	metaBucketOffsets    = []byte("offsets")
	metaBucketCursors    = []byte("cursors")
	metaBucketTxns       = []byte("txns")
	metaKeySchemaVersion = []byte("schema_version")
)

// Meta is the metadata store: topic configurations, committed consumer
// group offsets, and cursors other components keep. It is safe for
// concurrent use; each method is one bbolt transaction.
type Meta struct {
	db *bbolt.DB
}

// TopicPartition names one partition of a topic.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// CommittedOffset is what a consumer group committed for a partition, as in
// Kafka's OffsetCommit request.
type CommittedOffset struct {
	// Offset is the next offset the group will consume.
	Offset int64
	// LeaderEpoch is the epoch of the committed record, -1 if unknown.
	LeaderEpoch int32
	Metadata    string
	// CommitTime is stored in milliseconds, as Kafka does, and read back
	// in UTC.
	CommitTime time.Time
}

// OpenMeta opens or creates the metadata database at path (DATA/meta.db).
func OpenMeta(path string) (*Meta, error) {
	opts := &bbolt.Options{
		Timeout: metaLockTimeout,
		// The database is small, so rebuilding the freelist on open is
		// cheap, and not writing it saves a page write per commit.
		NoFreelistSync: true,
		FreelistType:   bbolt.FreelistMapType,
	}
	if strconv.IntSize == 32 {
		// bbolt maps the whole file into memory. A 32-bit process on a
		// 512 MB ARM board has little address space to spare, so cap the
		// file well below it and start with a small mapping.
		opts.MaxSize = 256 << 20
		opts.InitialMmapSize = 4 << 20
	}
	db, err := bbolt.Open(path, 0o600, opts)
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("meta: open %s: data directory %s is in use by another process (its lock was not released within %v): %w",
			path, filepath.Dir(path), metaLockTimeout, err)
	}
	if err != nil {
		return nil, fmt.Errorf("meta: open %s: %w", path, err)
	}
	if err := db.Update(metaInit); err != nil {
		db.Close()
		return nil, fmt.Errorf("meta: open %s: %w", path, err)
	}
	return &Meta{db: db}, nil
}

// metaInit creates the buckets of a new database and checks the schema
// version of an existing one. On error the transaction rolls back, so a
// refused database is left exactly as it was.
func metaInit(tx *bbolt.Tx) error {
	b, err := tx.CreateBucketIfNotExists(metaBucketMeta)
	if err != nil {
		return err
	}
	if v := b.Get(metaKeySchemaVersion); v == nil {
		err := b.Put(metaKeySchemaVersion, binary.BigEndian.AppendUint32(nil, metaSchemaVersion))
		if err != nil {
			return err
		}
	} else {
		if len(v) != 4 {
			return fmt.Errorf("schema version is %d bytes long, want 4: the database is damaged", len(v))
		}
		switch ver := binary.BigEndian.Uint32(v); {
		case ver > metaSchemaVersion:
			return fmt.Errorf("schema version %d is newer than this Spool supports (version %d); run a newer Spool", ver, metaSchemaVersion)
		case ver < 1:
			return fmt.Errorf("schema version %d is not valid: the database is damaged", ver)
		}
		// Migrations from older versions go here once there is one.
	}
	for _, name := range [][]byte{metaBucketTopics, metaBucketOffsets, metaBucketCursors, metaBucketTxns} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	return nil
}

// Close closes the database. Closing twice is harmless.
func (m *Meta) Close() error {
	if err := m.db.Close(); err != nil {
		return fmt.Errorf("meta: close: %w", err)
	}
	return nil
}

// PutTopic stores a topic's configuration, replacing any earlier one.
func (m *Meta) PutTopic(name string, cfg TopicConfig) error {
	if err := ValidateTopicName(name); err != nil {
		return fmt.Errorf("meta: put topic: %w", err)
	}
	v, err := json.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("meta: put topic %q: %w", name, err)
	}
	err = m.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(metaBucketTopics).Put([]byte(name), v)
	})
	if err != nil {
		return fmt.Errorf("meta: put topic %q: %w", name, err)
	}
	return nil
}

// DeleteTopic removes a topic and, in the same transaction, every offset any
// group committed for it, so a topic created later under the same name does
// not inherit stale positions. Deleting an unknown topic is not an error.
func (m *Meta) DeleteTopic(name string) error {
	err := m.db.Update(func(tx *bbolt.Tx) error {
		if err := tx.Bucket(metaBucketTopics).Delete([]byte(name)); err != nil {
			return err
		}
		if err := tx.Bucket(metaBucketTxns).DeleteBucket([]byte(name)); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
			return err
		}
		offsets := tx.Bucket(metaBucketOffsets)
		groups, err := metaSubBuckets(offsets)
		if err != nil {
			return err
		}
		// Committed topic names are validated and so hold no 0x00: this
		// prefix matches the keys of this topic and of no other.
		prefix := append([]byte(name), 0)
		for _, g := range groups {
			if err := metaDeletePrefix(offsets.Bucket(g), prefix); err != nil {
				return err
			}
			if err := metaDropIfEmpty(offsets, g); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("meta: delete topic %q: %w", name, err)
	}
	return nil
}

// LoadTopics returns every stored topic configuration.
func (m *Meta) LoadTopics() (map[string]TopicConfig, error) {
	topics := make(map[string]TopicConfig)
	err := m.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(metaBucketTopics).ForEach(func(k, v []byte) error {
			// Start from the defaults so that a field added after the
			// topic was stored gets its default rather than a zero value.
			cfg := DefaultTopicConfig()
			if err := json.Unmarshal(v, &cfg); err != nil {
				return fmt.Errorf("topic %q: %w", k, err)
			}
			topics[string(k)] = cfg
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("meta: load topics: %w", err)
	}
	return topics, nil
}

// CommitOffsets stores a group's offsets in one transaction: either all of
// them are stored or, on error, none.
func (m *Meta) CommitOffsets(group string, offsets map[TopicPartition]CommittedOffset) error {
	if err := m.commitOffsets(group, offsets); err != nil {
		return fmt.Errorf("meta: commit offsets for group %q: %w", group, err)
	}
	return nil
}

func (m *Meta) commitOffsets(group string, offsets map[TopicPartition]CommittedOffset) error {
	if group == "" {
		return errMetaEmptyGroup
	}
	if len(offsets) == 0 {
		return nil // and create no empty group
	}
	// Encode before the transaction: bbolt has one writer at a time, so
	// it should hold the lock only to write.
	keys := make([][]byte, 0, len(offsets))
	values := make([][]byte, 0, len(offsets))
	for tp, o := range offsets {
		if err := ValidateTopicName(tp.Topic); err != nil {
			return err
		}
		if tp.Partition < 0 {
			return fmt.Errorf("topic %q: partition %d is negative", tp.Topic, tp.Partition)
		}
		keys = append(keys, metaOffsetKey(tp))
		values = append(values, metaEncodeOffset(o))
	}
	return m.db.Update(func(tx *bbolt.Tx) error {
		g, err := tx.Bucket(metaBucketOffsets).CreateBucketIfNotExists([]byte(group))
		if err != nil {
			return err
		}
		for i := range keys {
			if err := g.Put(keys[i], values[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// FetchOffset returns the offset a group committed for a partition, and
// false if it committed none.
func (m *Meta) FetchOffset(group string, tp TopicPartition) (CommittedOffset, bool, error) {
	if group == "" {
		return CommittedOffset{}, false, fmt.Errorf("meta: fetch offset: %w", errMetaEmptyGroup)
	}
	var o CommittedOffset
	var found bool
	err := m.db.View(func(tx *bbolt.Tx) error {
		g := tx.Bucket(metaBucketOffsets).Bucket([]byte(group))
		if g == nil {
			return nil
		}
		v := g.Get(metaOffsetKey(tp))
		if v == nil {
			return nil
		}
		var err error
		o, err = metaDecodeOffset(v)
		found = err == nil
		return err
	})
	if err != nil {
		return CommittedOffset{}, false, fmt.Errorf("meta: fetch offset of group %q for %s/%d: %w", group, tp.Topic, tp.Partition, err)
	}
	return o, found, nil
}

// FetchOffsets returns every offset a group committed; an unknown group has
// none.
func (m *Meta) FetchOffsets(group string) (map[TopicPartition]CommittedOffset, error) {
	if group == "" {
		return nil, fmt.Errorf("meta: fetch offsets: %w", errMetaEmptyGroup)
	}
	offsets := make(map[TopicPartition]CommittedOffset)
	err := m.db.View(func(tx *bbolt.Tx) error {
		g := tx.Bucket(metaBucketOffsets).Bucket([]byte(group))
		if g == nil {
			return nil
		}
		return g.ForEach(func(k, v []byte) error {
			tp, err := metaDecodeOffsetKey(k)
			if err != nil {
				return err
			}
			o, err := metaDecodeOffset(v)
			if err != nil {
				return fmt.Errorf("%s/%d: %w", tp.Topic, tp.Partition, err)
			}
			offsets[tp] = o
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("meta: fetch offsets of group %q: %w", group, err)
	}
	return offsets, nil
}

// DeleteOffsets removes a group's offsets for the given partitions. A group
// left with no offsets is removed, as Kafka eventually removes an empty
// group.
func (m *Meta) DeleteOffsets(group string, tps []TopicPartition) error {
	if group == "" {
		return fmt.Errorf("meta: delete offsets: %w", errMetaEmptyGroup)
	}
	err := m.db.Update(func(tx *bbolt.Tx) error {
		offsets := tx.Bucket(metaBucketOffsets)
		g := offsets.Bucket([]byte(group))
		if g == nil {
			return nil
		}
		for _, tp := range tps {
			if err := g.Delete(metaOffsetKey(tp)); err != nil {
				return err
			}
		}
		return metaDropIfEmpty(offsets, []byte(group))
	})
	if err != nil {
		return fmt.Errorf("meta: delete offsets of group %q: %w", group, err)
	}
	return nil
}

// DeleteGroup removes every offset of a group. Deleting an unknown group is
// not an error.
func (m *Meta) DeleteGroup(group string) error {
	if group == "" {
		return fmt.Errorf("meta: delete group: %w", errMetaEmptyGroup)
	}
	err := m.db.Update(func(tx *bbolt.Tx) error {
		err := tx.Bucket(metaBucketOffsets).DeleteBucket([]byte(group))
		if errors.Is(err, berrors.ErrBucketNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("meta: delete group %q: %w", group, err)
	}
	return nil
}

// Groups returns the groups that have committed offsets, sorted.
func (m *Meta) Groups() ([]string, error) {
	var groups []string
	err := m.db.View(func(tx *bbolt.Tx) error {
		// bbolt iterates keys in byte order, which is Go's string order.
		return tx.Bucket(metaBucketOffsets).ForEachBucket(func(k []byte) error {
			groups = append(groups, string(k))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("meta: list groups: %w", err)
	}
	return groups, nil
}

var errMetaEmptyGroup = errors.New("group name is empty")

// metaOffsetKey is topic + 0x00 + partition, big-endian so that a group's
// keys sort by topic, then by partition number.
func metaOffsetKey(tp TopicPartition) []byte {
	k := make([]byte, 0, len(tp.Topic)+5)
	k = append(k, tp.Topic...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint32(k, uint32(tp.Partition))
}

func metaDecodeOffsetKey(k []byte) (TopicPartition, error) {
	n := len(k) - 5
	if n < 1 || k[n] != 0 {
		return TopicPartition{}, fmt.Errorf("malformed offset key %q", k)
	}
	p := binary.BigEndian.Uint32(k[n+1:])
	if p > math.MaxInt32 {
		return TopicPartition{}, fmt.Errorf("malformed offset key %q: partition %d out of range", k, p)
	}
	return TopicPartition{Topic: string(k[:n]), Partition: int32(p)}, nil
}

// Committed offsets are encoded, big-endian, as
//
//	version (1) | offset (8) | leader epoch (4) | commit time, Unix ms (8) | metadata length (4) | metadata
//
// The leading version lets the encoding change without a schema bump.
const (
	metaOffsetVersion    = 1
	metaOffsetHeaderSize = 1 + 8 + 4 + 8 + 4
)

func metaEncodeOffset(o CommittedOffset) []byte {
	b := make([]byte, 0, metaOffsetHeaderSize+len(o.Metadata))
	b = append(b, metaOffsetVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(o.Offset))
	b = binary.BigEndian.AppendUint32(b, uint32(o.LeaderEpoch))
	b = binary.BigEndian.AppendUint64(b, uint64(o.CommitTime.UnixMilli()))
	b = binary.BigEndian.AppendUint32(b, uint32(len(o.Metadata)))
	return append(b, o.Metadata...)
}

// metaDecodeOffset checks every length before reading, so damaged bytes give
// an error rather than a panic or a silently wrong offset.
func metaDecodeOffset(b []byte) (CommittedOffset, error) {
	if len(b) == 0 {
		return CommittedOffset{}, errors.New("committed offset is empty")
	}
	if b[0] != metaOffsetVersion {
		return CommittedOffset{}, fmt.Errorf("committed offset has unknown encoding version %d", b[0])
	}
	if len(b) < metaOffsetHeaderSize {
		return CommittedOffset{}, fmt.Errorf("committed offset is truncated: %d bytes, want at least %d", len(b), metaOffsetHeaderSize)
	}
	mdLen := binary.BigEndian.Uint32(b[21:25])
	if uint64(mdLen) != uint64(len(b)-metaOffsetHeaderSize) {
		return CommittedOffset{}, fmt.Errorf("committed offset metadata length is %d, but %d bytes follow", mdLen, len(b)-metaOffsetHeaderSize)
	}
	return CommittedOffset{
		Offset:      int64(binary.BigEndian.Uint64(b[1:9])),
		LeaderEpoch: int32(binary.BigEndian.Uint32(b[9:13])),
		// UTC also turns the zero time's milliseconds back into exactly
		// time.Time{}, so IsZero and == keep working.
		CommitTime: time.UnixMilli(int64(binary.BigEndian.Uint64(b[13:21]))).UTC(),
		Metadata:   string(b[metaOffsetHeaderSize:]),
	}, nil
}

// PutCursor stores value under key in namespace ns.
func (m *Meta) PutCursor(ns, key string, value []byte) error {
	if err := m.putCursors(ns, map[string][]byte{key: value}); err != nil {
		return fmt.Errorf("meta: put cursor %q in namespace %q: %w", key, ns, err)
	}
	return nil
}

// PutCursors stores several cursors of namespace ns in one transaction:
// either all of them are stored or, on error, none.
func (m *Meta) PutCursors(ns string, kv map[string][]byte) error {
	err := m.putCursors(ns, kv)
	if err != nil {
		return fmt.Errorf("meta: put cursors in namespace %q: %w", ns, err)
	}
	return nil
}

func (m *Meta) putCursors(ns string, kv map[string][]byte) error {
	if ns == "" {
		return errors.New("namespace is empty")
	}
	for k := range kv {
		if err := metaCheckCursor(ns, k); err != nil {
			return err
		}
	}
	if len(kv) == 0 {
		return nil // and create no empty namespace
	}
	return m.db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.Bucket(metaBucketCursors).CreateBucketIfNotExists([]byte(ns))
		if err != nil {
			return err
		}
		for k, v := range kv {
			if err := b.Put([]byte(k), v); err != nil {
				return fmt.Errorf("key %q: %w", k, err)
			}
		}
		return nil
	})
}

// GetCursor returns a copy of the value under key in namespace ns, and false
// if there is none.
func (m *Meta) GetCursor(ns, key string) ([]byte, bool, error) {
	var value []byte
	var found bool
	err := metaCheckCursor(ns, key)
	if err == nil {
		err = m.db.View(func(tx *bbolt.Tx) error {
			b := tx.Bucket(metaBucketCursors).Bucket([]byte(ns))
			if b == nil {
				return nil
			}
			// Seek rather than Get: Get cannot tell an empty value from a
			// missing key.
			k, v := b.Cursor().Seek([]byte(key))
			if found = bytes.Equal(k, []byte(key)); found {
				value = metaClone(v)
			}
			return nil
		})
	}
	if err != nil {
		return nil, false, fmt.Errorf("meta: get cursor %q in namespace %q: %w", key, ns, err)
	}
	return value, found, nil
}

// DeleteCursor removes the cursor under key in namespace ns. Deleting a
// missing cursor is not an error.
func (m *Meta) DeleteCursor(ns, key string) error {
	err := metaCheckCursor(ns, key)
	if err == nil {
		err = m.db.Update(func(tx *bbolt.Tx) error {
			cursors := tx.Bucket(metaBucketCursors)
			b := cursors.Bucket([]byte(ns))
			if b == nil {
				return nil
			}
			if err := b.Delete([]byte(key)); err != nil {
				return err
			}
			return metaDropIfEmpty(cursors, []byte(ns))
		})
	}
	if err != nil {
		return fmt.Errorf("meta: delete cursor %q in namespace %q: %w", key, ns, err)
	}
	return nil
}

// Cursors returns copies of every cursor in namespace ns; an unknown
// namespace has none.
func (m *Meta) Cursors(ns string) (map[string][]byte, error) {
	if ns == "" {
		return nil, errors.New("meta: list cursors: namespace is empty")
	}
	cursors := make(map[string][]byte)
	err := m.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(metaBucketCursors).Bucket([]byte(ns))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			cursors[string(k)] = metaClone(v)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("meta: list cursors in namespace %q: %w", ns, err)
	}
	return cursors, nil
}

func metaCheckCursor(ns, key string) error {
	switch {
	case ns == "":
		return errors.New("namespace is empty")
	case key == "":
		return errors.New("key is empty")
	}
	return nil
}

// metaClone copies a value out of a transaction. bbolt's slices point into
// its memory map and are only valid until the transaction ends; the copy is
// never nil, so a found empty value reads as empty, not missing.
func metaClone(v []byte) []byte {
	return append(make([]byte, 0, len(v)), v...)
}

// metaSubBuckets returns copies of the names of b's sub-buckets, so that the
// caller can change them without modifying b while iterating over it.
func metaSubBuckets(b *bbolt.Bucket) ([][]byte, error) {
	var names [][]byte
	err := b.ForEachBucket(func(k []byte) error {
		names = append(names, metaClone(k))
		return nil
	})
	return names, err
}

// metaDeletePrefix deletes b's keys that start with prefix. The keys are
// collected first because deleting under a live cursor can skip keys.
func metaDeletePrefix(b *bbolt.Bucket, prefix []byte) error {
	var keys [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, metaClone(k))
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// metaDropIfEmpty deletes parent's sub-bucket name once it holds nothing, so
// that Groups lists only groups that still have offsets.
func metaDropIfEmpty(parent *bbolt.Bucket, name []byte) error {
	b := parent.Bucket(name)
	if b == nil {
		return nil
	}
	if k, _ := b.Cursor().First(); k != nil {
		return nil
	}
	return parent.DeleteBucket(name)
}

// CursorChange is one put or delete for ApplyCursors.
type CursorChange struct {
	NS, Key string
	Value   []byte // ignored when Delete
	Delete  bool
}

// ApplyCursors applies puts and deletes across namespaces in one
// transaction (one fsync): either all of them happen or, on error, none.
// Write-behind stores (MQTT sessions) batch their changes through it.
func (m *Meta) ApplyCursors(changes []CursorChange) error {
	for _, c := range changes {
		if err := metaCheckCursor(c.NS, c.Key); err != nil {
			return fmt.Errorf("meta: apply cursors: %w", err)
		}
	}
	if len(changes) == 0 {
		return nil
	}
	err := m.db.Update(func(tx *bbolt.Tx) error {
		cursors := tx.Bucket(metaBucketCursors)
		touched := map[string]bool{}
		for _, c := range changes {
			if c.Delete {
				if b := cursors.Bucket([]byte(c.NS)); b != nil {
					if err := b.Delete([]byte(c.Key)); err != nil {
						return fmt.Errorf("namespace %q key %q: %w", c.NS, c.Key, err)
					}
					touched[c.NS] = true
				}
				continue
			}
			b, err := cursors.CreateBucketIfNotExists([]byte(c.NS))
			if err != nil {
				return err
			}
			if err := b.Put([]byte(c.Key), c.Value); err != nil {
				return fmt.Errorf("namespace %q key %q: %w", c.NS, c.Key, err)
			}
		}
		for ns := range touched {
			if err := metaDropIfEmpty(cursors, []byte(ns)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("meta: apply cursors: %w", err)
	}
	return nil
}

// putTxns stores a partition's transactions; nil deletes them.
func (m *Meta) putTxns(topic string, partition int32, v []byte) error {
	return m.db.Update(func(tx *bbolt.Tx) error {
		key := binary.BigEndian.AppendUint32(nil, uint32(partition))
		if v == nil {
			b := tx.Bucket(metaBucketTxns).Bucket([]byte(topic))
			if b == nil {
				return nil
			}
			if err := b.Delete(key); err != nil {
				return err
			}
			return metaDropIfEmpty(tx.Bucket(metaBucketTxns), []byte(topic))
		}
		b, err := tx.Bucket(metaBucketTxns).CreateBucketIfNotExists([]byte(topic))
		if err != nil {
			return err
		}
		return b.Put(key, v)
	})
}

// getTxns returns a partition's stored transactions, nil if none.
func (m *Meta) getTxns(topic string, partition int32) ([]byte, error) {
	var v []byte
	err := m.db.View(func(tx *bbolt.Tx) error {
		if b := tx.Bucket(metaBucketTxns).Bucket([]byte(topic)); b != nil {
			if got := b.Get(binary.BigEndian.AppendUint32(nil, uint32(partition))); got != nil {
				v = metaClone(got)
			}
		}
		return nil
	})
	return v, err
}
