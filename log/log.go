package log

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	topicsDir = "topics"
	metaFile  = "meta.db"
	// deletedSuffix marks a topic directory being deleted. '~' cannot
	// appear in a topic name, so no topic is ever mistaken for one.
	deletedSuffix = "~deleted"
	cleanedSuffix = ".cleaned"
)

// Options configure a Log. The zero value is usable.
type Options struct {
	FS     FS           // OSFS when nil
	Logger *slog.Logger // discards when nil
	// Now is the clock, injectable for tests (time.Now when nil).
	Now func() time.Time
	// DiskBudget bounds the bytes of all segment files; 0 means no bound.
	DiskBudget int64
}

// Log is a data directory: topics, their partitions, and the metadata store.
type Log struct {
	dir    string
	fs     FS
	lg     *slog.Logger
	now    func() time.Time
	meta   *Meta
	budget int64

	used atomic.Int64 // bytes of all segment files
	// noSpaceAt is when a write last found the disk full (unix ns), so
	// that retention frees space rather than keeping spares (recycle.go).
	noSpaceAt atomic.Int64
	reserved  atomic.Int64 // bytes of appends accepted but not yet written
	stats     stats

	mu     sync.RWMutex // guards topics and closed
	topics map[string]*Topic
	closed bool

	roomMu       sync.Mutex // serialises making room under the budget
	lastRetained time.Time  // guarded by roomMu
}

// Open opens or creates the data directory dir and recovers every
// partition. A topic directory unknown to meta.db (a lost or replaced
// meta.db) is adopted with the default configuration rather than deleted.
func Open(dir string, opts Options) (*Log, error) {
	l := &Log{dir: dir, fs: opts.FS, lg: opts.Logger, now: opts.Now, budget: opts.DiskBudget, topics: map[string]*Topic{}}
	if l.fs == nil {
		l.fs = OSFS{}
	}
	if l.lg == nil {
		l.lg = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if l.now == nil {
		l.now = time.Now
	}
	if err := l.fs.MkdirAll(filepath.Join(dir, topicsDir), 0o755); err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	meta, err := OpenMeta(filepath.Join(dir, metaFile))
	if err != nil {
		return nil, err
	}
	l.meta = meta
	if err := l.load(); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

func (l *Log) load() error {
	cfgs, err := l.meta.LoadTopics()
	if err != nil {
		return err
	}
	entries, err := l.fs.ReadDir(filepath.Join(l.dir, topicsDir))
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		if strings.Contains(name, deletedSuffix) {
			// A deletion interrupted after the rename: finish it.
			if err := l.fs.RemoveAll(filepath.Join(l.dir, topicsDir, name)); err != nil {
				return err
			}
			continue
		}
		if _, ok := cfgs[name]; ok || !e.IsDir() || ValidateTopicName(name) != nil {
			continue
		}
		cfg := DefaultTopicConfig()
		cfg.Partitions = l.countPartitionDirs(name)
		l.lg.Warn("adopting topic directory missing from meta.db with default config", "topic", name, "partitions", cfg.Partitions)
		if err := l.meta.PutTopic(name, cfg); err != nil {
			return err
		}
		cfgs[name] = cfg
	}
	for name, cfg := range cfgs {
		t, err := l.openTopic(name, cfg)
		if err != nil {
			return err
		}
		l.topics[name] = t
	}
	return nil
}

func (l *Log) countPartitionDirs(topic string) int32 {
	entries, _ := l.fs.ReadDir(filepath.Join(l.dir, topicsDir, topic))
	n := int32(0)
	for _, e := range entries {
		if i, err := strconv.Atoi(e.Name()); err == nil && e.IsDir() && int32(i+1) > n {
			n = int32(i + 1)
		}
	}
	return max(n, 1)
}

func (l *Log) openTopic(name string, cfg TopicConfig) (*Topic, error) {
	t := &Topic{l: l, name: name}
	t.cfg.Store(&cfg)
	for i := range cfg.Partitions {
		p, err := openPartition(l, t, i)
		if err != nil {
			t.close()
			return nil, fmt.Errorf("open topic %q partition %d: %w", name, i, err)
		}
		t.partitions = append(t.partitions, p)
	}
	return t, nil
}

func (t *Topic) close() error {
	var err error
	for _, p := range t.Partitions() {
		if cerr := p.close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	return err
}

// Dir returns the data directory.
func (l *Log) Dir() string { return l.dir }

// Meta returns the metadata store (committed offsets, cursors).
func (l *Log) Meta() *Meta { return l.meta }

// UsedBytes is the size of all segment files, as the disk budget counts it.
func (l *Log) UsedBytes() int64 { return l.used.Load() }

func (l *Log) addUsed(n int64) { l.used.Add(n) }

// CreateTopic creates a topic with cfg, checking the name with Kafka's rules.
func (l *Log) CreateTopic(name string, cfg TopicConfig) (*Topic, error) {
	if err := ValidateTopicName(name); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("topic %q: %w", name, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	if _, ok := l.topics[name]; ok {
		return nil, fmt.Errorf("%w: %q", ErrTopicExists, name)
	}
	for other := range l.topics {
		if topicNamesCollide(name, other) {
			return nil, fmt.Errorf("topic %q collides with existing topic %q ('.' and '_' are the same in metric names)", name, other)
		}
	}
	// Metadata first: a crash before the directories exist leaves a topic
	// whose partitions are created on the next open.
	if err := l.meta.PutTopic(name, cfg); err != nil {
		return nil, err
	}
	t, err := l.openTopic(name, cfg)
	if err != nil {
		l.meta.DeleteTopic(name)
		return nil, err
	}
	if err := l.fs.SyncDir(filepath.Join(l.dir, topicsDir)); err != nil {
		return nil, err
	}
	l.topics[name] = t
	l.lg.Info("topic created", "topic", name, "partitions", cfg.Partitions)
	return t, nil
}

// Topic returns the named topic.
func (l *Log) Topic(name string) (*Topic, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	t, ok := l.topics[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownTopic, name)
	}
	return t, nil
}

// Topics returns the topic names, sorted.
func (l *Log) Topics() []string {
	l.mu.RLock()
	defer l.mu.RUnlock()
	names := make([]string, 0, len(l.topics))
	for n := range l.topics {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (l *Log) allTopics() []*Topic {
	l.mu.RLock()
	defer l.mu.RUnlock()
	ts := make([]*Topic, 0, len(l.topics))
	for _, t := range l.topics {
		ts = append(ts, t)
	}
	return ts
}

// DeleteTopic deletes a topic, its data and its committed offsets.
func (l *Log) DeleteTopic(name string) error {
	l.mu.Lock()
	t, ok := l.topics[name]
	if !ok {
		l.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrUnknownTopic, name)
	}
	delete(l.topics, name)
	l.mu.Unlock()

	t.close()
	for _, p := range t.Partitions() {
		// A transaction's state being stored now would land after the
		// delete; later saves see the partition gone.
		p.txn.saveMu.Lock()
		p.txn.saveMu.Unlock()
	}
	if err := l.meta.DeleteTopic(name); err != nil {
		return err
	}
	// Rename first so that a crash mid-removal is finished on the next
	// open rather than adopted back as a topic.
	dir := filepath.Join(l.dir, topicsDir, name)
	gone := fmt.Sprintf("%s%s-%d", dir, deletedSuffix, l.now().UnixNano())
	if err := l.fs.Rename(dir, gone); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, p := range t.Partitions() {
		p.addBytes(-p.bytes.Load())
		p.dropSpare()
	}
	if err := l.fs.RemoveAll(gone); err != nil {
		return err
	}
	l.lg.Info("topic deleted", "topic", name)
	return l.fs.SyncDir(filepath.Join(l.dir, topicsDir))
}

// AlterTopic replaces a topic's configuration. Partitions can grow, never
// shrink; other changes apply to the next append, roll or retention pass.
func (l *Log) AlterTopic(name string, cfg TopicConfig) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("topic %q: %w", name, err)
	}
	t, err := l.Topic(name)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	have := int32(len(t.partitions))
	if cfg.Partitions < have {
		return fmt.Errorf("topic %q: partitions can only grow (has %d, asked for %d)", name, have, cfg.Partitions)
	}
	if err := l.meta.PutTopic(name, cfg); err != nil {
		return err
	}
	t.cfg.Store(&cfg)
	for i := have; i < cfg.Partitions; i++ {
		p, err := openPartition(l, t, i)
		if err != nil {
			return fmt.Errorf("topic %q: add partition %d: %w", name, i, err)
		}
		t.partitions = append(t.partitions, p)
	}
	return nil
}

// Close waits for queued appends, fsyncs and closes every partition and
// the metadata store. It returns the first error, fsync errors included.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	topics := make([]*Topic, 0, len(l.topics))
	for _, t := range l.topics {
		topics = append(topics, t)
	}
	l.mu.Unlock()
	var err error
	for _, t := range topics {
		if cerr := t.close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	if l.meta != nil {
		if cerr := l.meta.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	return err
}
