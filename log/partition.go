package log

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// maxQueueBytes bounds the bytes waiting for the flusher; appenders beyond
// it wait for the write in flight (back-pressure instead of unbounded memory).
const maxQueueBytes = 4 << 20

// Partition is one ordered, offset-addressed log of record batches.
type Partition struct {
	l     *Log
	topic *Topic
	id    int32
	dir   string
	lg    *slog.Logger

	// mu guards the append queue and everything appenders touch.
	mu       sync.Mutex
	next     int64 // next offset to assign
	queue    []byte
	metas    []batchMeta
	cur      *cycle // the cycle queued batches join
	inflight *cycle // the cycle being written, when flushing
	flushing bool
	closed   bool
	room     chan struct{} // closed when appenders waiting for queue room may go on (wakeRoomLocked)
	err      error         // sticky: set by a failed fsync or I/O error
	spareQ   []byte
	spareM   []batchMeta
	// The flusher's scratch space for merged cycles (merge.go).
	mergeBuf   []byte
	mergeMetas []batchMeta
	flushWG    sync.WaitGroup
	busy       busySince // when running disk work began (stall.go)

	// Group commit state (see waitLocked), guarded by mu.
	queued       int           // appends in queue
	gatherTarget int           // appends the flusher expects before a cycle
	gatherWake   chan struct{} // closed when queued reaches wakeCount, or the queue overlapBytes
	wakeCount    int
	lastFsync    atomic.Int64 // nanoseconds

	// ioMu serialises file I/O that changes segments: the flusher's
	// writes and rolls, timed syncs, close.
	ioMu     sync.Mutex
	lastSync time.Time
	dirty    bool // written since the last fsync
	timer    *time.Timer

	// segMu guards the segment list. Readers hold it shared while they
	// read; rolling, retention and compaction take it exclusively.
	segMu    sync.RWMutex
	segments []*segment // oldest first; the last one is active

	durable  atomic.Pointer[durableState]
	logStart atomic.Int64
	bytes    atomic.Int64 // bytes of all segment files
	// tail is the active segment's file past its data: preallocated
	// zeros, reserved blocks, a recycled file's old content. Size
	// retention counts data, not it (retainedBytes).
	tail     atomic.Int64
	reserved atomic.Int64 // bytes queued, not yet written (see Log.reserve)

	notifyMu sync.Mutex
	notify   chan struct{}
	// notifyDone: the partition is closed (deleted, or the log closed);
	// notify stays closed, so that every tailing reader wakes and finds out.
	notifyDone bool
	// gone is set, under segMu, before the segments' files are closed:
	// a Read after it gets ErrClosed rather than a closed file.
	gone atomic.Bool

	pinsMu sync.Mutex
	pins   map[string]int64

	// spare is a deleted segment's file kept to become the next segment
	// (recycle.go), nil when there is none.
	spareMu sync.Mutex
	spare   *spareFile

	txn txnState // transactions (txn.go)

	// cleanMu serialises what deletes or replaces sealed segments:
	// retention, drop_oldest and compaction. It guards the fields below.
	cleanMu          sync.Mutex
	compactedThrough int64     // last sealed segment the last compaction saw
	oldestTombstone  time.Time // the oldest tombstone the last compaction kept (zero: none)
	compactedAny     bool      // a compaction pass ran (compactedThrough is set)
}

// openPartition opens (or creates) a partition directory and recovers it.
func openPartition(l *Log, t *Topic, id int32) (*Partition, error) {
	p := &Partition{
		l: l, topic: t, id: id,
		dir:    filepath.Join(l.dir, topicsDir, t.name, strconv.Itoa(int(id))),
		lg:     l.lg.With("topic", t.name, "partition", id),
		cur:    newCycle(),
		notify: make(chan struct{}),
		pins:   map[string]int64{},
	}
	if err := p.load(); err != nil {
		return nil, p.corruption(err)
	}
	if err := p.loadTxns(); err != nil {
		return nil, err
	}
	return p, nil
}

// load reads the segment list from disk and recovers the active segment's
// tail. It replaces all in-memory state; Recover reuses it.
func (p *Partition) load() error {
	fsys, cfg := p.l.fs, p.topic.Config()
	if err := fsys.MkdirAll(p.dir, 0o755); err != nil {
		return err
	}
	entries, err := fsys.ReadDir(p.dir)
	if err != nil {
		return err
	}
	var bases []int64
	var names []string
	for _, e := range entries {
		name := e.Name()
		names = append(names, name)
		if strings.HasSuffix(name, tmpSuffix) || strings.HasSuffix(name, cleanedSuffix) {
			// An interrupted atomic write or compaction: the original is intact.
			if err := fsys.Remove(filepath.Join(p.dir, name)); err != nil {
				return err
			}
			continue
		}
		if base, ok := parseSegmentName(name); ok {
			bases = append(bases, base)
		}
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	if err := p.loadSpares(names); err != nil {
		return err
	}

	var segs []*segment
	closeAll := func() {
		for _, s := range segs {
			s.close()
		}
	}
	now := p.l.now()
	for i, base := range bases {
		path := filepath.Join(p.dir, segmentName(base)+logSuffix)
		if i < len(bases)-1 {
			s, err := openSealedSegment(fsys, path, base, bases[i+1])
			if err == nil && i == len(bases)-2 {
				err = s.trimZeroTail()
			}
			if err != nil {
				if s != nil {
					s.close()
				}
				closeAll()
				return fmt.Errorf("open %s: %w", path, err)
			}
			segs = append(segs, s)
			continue
		}
		s, rep, err := openActiveSegment(fsys, path, base, cfg, now)
		if err != nil {
			closeAll()
			return fmt.Errorf("recover %s: %w", path, err)
		}
		if rep.restored > 0 {
			p.lg.Warn("restored damaged base offsets in the active segment", "segment", path, "batches", rep.restored)
		}
		if rep.dropped > 0 {
			p.lg.Warn("truncated torn tail of the active segment",
				"segment", path, "position", rep.size, "dropped_bytes", rep.dropped, "reason", rep.reason)
		}
		segs = append(segs, s)
	}
	if len(segs) == 0 {
		s, err := createSegment(fsys, p.dir, 0, cfg, now)
		if err != nil {
			return err
		}
		segs = append(segs, s)
	}
	var total int64
	for _, s := range segs {
		total += s.alloc
	}
	act := segs[len(segs)-1]
	// Records below the stored start were deleted, even when the data now
	// ends before it (a tail lost in a crash, or cut by Repair): the log
	// then starts empty at the stored start, and offsets go on from there,
	// never handing out again one that a deleted record had.
	start := max(segs[0].base, p.storedLogStart())
	act.next = max(act.next, start)

	p.l.addUsed(total - p.bytes.Swap(total))
	p.tail.Store(act.alloc - act.size)
	p.mu.Lock()
	p.next = act.next
	p.err = nil
	p.mu.Unlock()
	// Readers see the old segments or the new ones, never a mix.
	p.segMu.Lock()
	old := p.segments
	p.segments = segs
	p.logStart.Store(start)
	p.publish(&durableState{hw: act.next, seg: act, pos: act.size}, true)
	p.segMu.Unlock()
	for _, s := range old {
		s.close()
	}
	return nil
}

// Topic returns the partition's topic.
func (p *Partition) Topic() *Topic { return p.topic }

// ID returns the partition number.
func (p *Partition) ID() int32 { return p.id }

// Append appends one encoded RecordBatch v2 and returns once the topic's
// sync policy is satisfied: with sync "always", after the fsync. b is not
// modified or retained.
func (p *Partition) Append(b []byte) (AppendResult, error) {
	return p.appendWait(b, false)
}

func (p *Partition) appendWait(b []byte, own bool) (AppendResult, error) {
	res, c, err := p.enqueue(b, nil, own)
	if err != nil {
		return res, err
	}
	<-c.done
	return res, c.result(res)
}

// AppendAsync queues b like Append and calls done once it is durable (or
// failed). Calls to done happen in append order, from the flusher
// goroutine: done must not block. AppendAsync itself blocks only when the
// queue is full. An error found before queueing is returned and done is
// not called.
func (p *Partition) AppendAsync(b []byte, done func(AppendResult, error)) error {
	_, _, err := p.enqueue(b, done, false)
	return err
}

// AppendOwnAsync is AppendAsync for a batch Spool encoded itself from
// records (with AppendBatch): unlike a producer's batch, stored exactly as
// sent, it may be merged with its neighbours of the same cycle into one
// batch (merge.go). Offsets and acknowledgements are as for AppendAsync.
func (p *Partition) AppendOwnAsync(b []byte, done func(AppendResult, error)) error {
	_, _, err := p.enqueue(b, done, true)
	return err
}

// AppendRecords encodes records as one batch and appends it.
func (p *Partition) AppendRecords(recs []Record, opts BatchOptions) (AppendResult, error) {
	buf := batchBufPool.Get().(*[]byte)
	defer batchBufPool.Put(buf)
	b, err := AppendBatch((*buf)[:0], recs, opts)
	*buf = b
	if err != nil {
		return AppendResult{}, err
	}
	return p.appendWait(b, true)
}

// wakeRoomLocked lets appenders waiting for room in a full queue look
// again: the flusher took the queue, or it failed, or the partition closed.
func (p *Partition) wakeRoomLocked() {
	if p.room != nil {
		close(p.room)
		p.room = nil
	}
}

var batchBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// enqueue checks b and queues it; own says it is Spool's own encoding
// and may be merged (merge.go).
func (p *Partition) enqueue(b []byte, done func(AppendResult, error), own bool) (AppendResult, *cycle, error) {
	res := AppendResult{LogAppendTime: -1}
	h, err := ParseBatchHeader(b)
	if err == nil && h.Size() != len(b) {
		err = fmt.Errorf("%w: %d bytes after the batch", ErrBatchLength, len(b)-h.Size())
	}
	if err == nil && h.NumRecords == 0 {
		err = fmt.Errorf("%w: empty batch", ErrBatchRecords)
	}
	if err != nil {
		return res, nil, &BatchError{Err: err}
	}
	cfg := p.topic.Config()
	if len(b) > int(cfg.MaxMessageBytes) {
		return res, nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(b), cfg.MaxMessageBytes)
	}
	if err := p.l.reserve(p, cfg, len(b)); err != nil {
		if !h.Control() || !errors.Is(err, ErrFull) {
			return res, nil, err
		}
		// A transaction marker is stored even over the limit (by a few
		// dozen bytes): refused, it would leave its transaction pending,
		// the partition's committed readers and their retention pins
		// stuck before it, and so the partition full for good.
		p.l.reserved.Add(int64(len(b)))
		p.reserved.Add(int64(len(b)))
	}

	p.mu.Lock()
	for len(p.queue) >= maxQueueBytes && p.inflight != nil && p.err == nil && !p.closed {
		// Wait for the flusher to take the queue. (Not for the cycle in
		// flight: its done channel closes before the flusher takes the
		// next queue, and this loop would spin in between.)
		if p.room == nil {
			p.room = make(chan struct{})
		}
		room := p.room
		p.mu.Unlock()
		<-room
		p.mu.Lock()
	}
	if p.closed || p.err != nil {
		err := p.err
		if p.closed {
			err = ErrClosed
		}
		p.mu.Unlock()
		p.l.release(p, len(b))
		return res, nil, err
	}
	start := len(p.queue)
	p.queue = append(p.queue, b...)
	qb := p.queue[start:]
	res.BaseOffset = p.next
	res.LastOffset = p.next + int64(h.LastOffsetDelta)
	p.next = res.LastOffset + 1
	setBaseOffset(qb, res.BaseOffset)
	setLeaderEpoch(qb, 0)
	maxTs := h.MaxTimestamp
	if cfg.TimestampType == LogAppendTime {
		maxTs = p.l.now().UnixMilli()
		setLogAppendTime(qb, maxTs)
		res.LogAppendTime = maxTs
	}
	p.metas = append(p.metas, batchMeta{base: res.BaseOffset, last: res.LastOffset, maxTs: maxTs, size: len(b), records: h.NumRecords,
		mergeable: own && mergeable(h) && cfg.TimestampType != LogAppendTime})
	p.queued++
	if p.gatherWake != nil && (p.queued >= p.wakeCount || len(p.queue) >= overlapBytes) {
		close(p.gatherWake)
		p.gatherWake = nil
	}
	c := p.cur
	if done != nil {
		c.async = append(c.async, asyncAck{res: res, fn: done})
	}
	if !p.flushing {
		p.flushing = true
		p.flushWG.Add(1)
		go p.flushLoop()
	}
	p.mu.Unlock()
	p.l.stats.appendedRecords.Add(int64(h.NumRecords))
	p.l.stats.appendedBytes.Add(int64(len(b)))
	p.topic.appendedRecords.Add(int64(h.NumRecords))
	p.topic.appendedBytes.Add(int64(len(b)))
	return res, c, nil
}

func (p *Partition) ioError(op string, err error) error {
	return &IOError{Topic: p.topic.name, Partition: p.id, Op: op, Err: err}
}

func (p *Partition) addBytes(n int64) {
	if n != 0 {
		p.bytes.Add(n)
		p.l.addUsed(n)
	}
}

// active returns the segment appends go to.
func (p *Partition) active() *segment {
	p.segMu.RLock()
	defer p.segMu.RUnlock()
	return p.segments[len(p.segments)-1]
}

// HighWatermark is the offset after the last acknowledged record: readers
// see everything below it.
func (p *Partition) HighWatermark() int64 { return p.durable.Load().hw }

// LogStartOffset is the first offset still stored.
func (p *Partition) LogStartOffset() int64 { return p.logStart.Load() }

// Size is the bytes of the partition's segment files.
func (p *Partition) Size() int64 { return p.bytes.Load() }

// retainedBytes is what size retention counts: the segment files without
// the active segment's tail past its data (which holds no records: a
// recycled file's whole size would otherwise count from its first write).
func (p *Partition) retainedBytes() int64 { return p.bytes.Load() - p.tail.Load() }

// DataBytes is the bytes of the partition's readable batches: Size
// without the active segment's zero-filled preallocation, or what is
// written but not yet durable.
func (p *Partition) DataBytes() int64 {
	p.segMu.RLock()
	defer p.segMu.RUnlock()
	st := p.durable.Load()
	var n int64
	for _, s := range p.segments {
		switch {
		case s == st.seg:
			n += st.pos
		case s.base < st.hw:
			n += s.size // sealed
		}
	}
	return n
}

// Err returns the sticky error that stops appends, if any.
func (p *Partition) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Recover reopens a partition whose appends fail with a sticky error,
// rebuilding its state from what is on disk.
func (p *Partition) Recover() error {
	p.mu.Lock()
	if p.err == nil || p.closed {
		p.mu.Unlock()
		return nil
	}
	p.mu.Unlock()
	p.flushWG.Wait()
	// Retention, compaction and DeleteRecords stay out while the segments
	// are reopened: they would delete files load has just listed.
	p.cleanMu.Lock()
	defer p.cleanMu.Unlock()
	p.ioMu.Lock()
	defer p.ioMu.Unlock()
	if err := p.load(); err != nil {
		return fmt.Errorf("recover topic %q partition %d: %w", p.topic.name, p.id, err)
	}
	p.lg.Info("partition recovered", "high_watermark", p.HighWatermark())
	return nil
}

// close stops appends, waits for queued batches to be written, fsyncs and
// closes the files. It returns the first error met, including a sticky one.
func (p *Partition) close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.wakeRoomLocked()
	sticky := p.err
	p.mu.Unlock()
	p.flushWG.Wait()

	p.ioMu.Lock()
	defer p.ioMu.Unlock()
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
	var err error
	if sticky == nil && p.dirty {
		err = p.syncLocked(p.l.now())
	}
	p.segMu.Lock()
	p.gone.Store(true)
	for _, s := range p.segments {
		if cerr := s.close(); err == nil && cerr != nil {
			err = cerr
		}
	}
	p.segMu.Unlock()
	p.notifyMu.Lock()
	if !p.notifyDone {
		p.notifyDone = true
		close(p.notify)
	}
	p.notifyMu.Unlock()
	if err == nil {
		err = sticky
	}
	return err
}
