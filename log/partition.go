package log

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
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

// AppendResult tells where an appended batch landed.
type AppendResult struct {
	BaseOffset int64
	LastOffset int64
	// LogAppendTime is the broker timestamp given to the batch, or -1
	// when the topic keeps the producer's CreateTime.
	LogAppendTime int64
}

// cycle is one flush: the batches queued together, written with one write
// and acknowledged by one fsync.
type cycle struct {
	done chan struct{} // closed when the cycle is durable or failed
	err  error         // set before done is closed
	// durableBelow: when err is set, batches ending below this offset
	// were made durable anyway (by a roll's seal before the failure) and
	// succeeded; the rest failed.
	durableBelow int64
	async        []asyncAck
}

// result is what the append that got res learns from its cycle.
func (c *cycle) result(res AppendResult) error {
	if c.err != nil && res.LastOffset >= c.durableBelow {
		return c.err
	}
	return nil
}

type asyncAck struct {
	res AppendResult
	fn  func(AppendResult, error)
}

func newCycle() *cycle { return &cycle{done: make(chan struct{})} }

// durableState is what readers may see: everything below hw, which ends at
// pos in seg. It is replaced, never mutated.
type durableState struct {
	hw  int64
	seg *segment
	pos int64
}

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
	err      error // sticky: set by a failed fsync or I/O error
	spareQ   []byte
	spareM   []batchMeta
	flushWG  sync.WaitGroup

	// Group commit state (see gatherLocked), guarded by mu.
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
	reserved atomic.Int64 // bytes queued, not yet written (see Log.reserve)

	notifyMu sync.Mutex
	notify   chan struct{}

	pinsMu sync.Mutex
	pins   map[string]int64

	// cleanMu serialises what deletes or replaces sealed segments:
	// retention, drop_oldest and compaction. It guards the fields below.
	cleanMu          sync.Mutex
	compactedThrough int64     // last sealed segment the last compaction saw
	compactAgain     time.Time // when a kept tombstone expires
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
	for _, e := range entries {
		name := e.Name()
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

	p.l.addUsed(total - p.bytes.Swap(total))
	p.mu.Lock()
	p.next = act.next
	p.err = nil
	p.mu.Unlock()
	// Readers see the old segments or the new ones, never a mix.
	p.segMu.Lock()
	old := p.segments
	p.segments = segs
	p.logStart.Store(segs[0].base)
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
	res, c, err := p.enqueue(b, nil)
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
	_, _, err := p.enqueue(b, done)
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
	return p.Append(b)
}

var batchBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func (p *Partition) enqueue(b []byte, done func(AppendResult, error)) (AppendResult, *cycle, error) {
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
		return res, nil, err
	}

	p.mu.Lock()
	for len(p.queue) >= maxQueueBytes && p.inflight != nil && p.err == nil && !p.closed {
		c := p.inflight
		p.mu.Unlock()
		<-c.done
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
	maxTs := h.MaxTimestamp
	if cfg.TimestampType == LogAppendTime {
		maxTs = p.l.now().UnixMilli()
		setLogAppendTime(qb, maxTs)
		res.LogAppendTime = maxTs
	}
	p.metas = append(p.metas, batchMeta{base: res.BaseOffset, last: res.LastOffset, maxTs: maxTs, size: len(b), records: h.NumRecords})
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
	return res, c, nil
}

// maxGather bounds how long the flusher of a sync: always partition waits
// for appenders it expects, so that they share the next fsync.
const maxGather = time.Millisecond

// overlapBytes is how much queued data makes the flusher write the next
// cycle while the previous fsync still runs: large appends then keep the
// disk busy, while small ones wait to share the next fsync.
const overlapBytes = 256 << 10

// syncJob is an fsync running beside the flusher for cycle c.
type syncJob struct {
	c       *cycle
	st      *durableState
	appends int
	// durableBelow: batches below it were sealed by a roll in this cycle
	// and stay acknowledged even if the job's fsync fails.
	durableBelow int64
	done         chan struct{} // closed once err is set
	err          error
}

// flushLoop writes queued batches until the queue is empty. It runs only
// while there is work: no goroutine sits on an idle partition. With sync:
// always it pipelines: cycle N+1 is written while cycle N's fsync runs, and
// N is acknowledged (in order, before N+1) when its fsync returns.
func (p *Partition) flushLoop() {
	defer p.flushWG.Done()
	var job *syncJob
	for {
		p.mu.Lock()
		take := p.waitLocked(job)
		if !take {
			if job == nil {
				p.flushing, p.inflight = false, nil
				p.mu.Unlock()
				return
			}
			p.mu.Unlock()
			p.finishJob(job, nil)
			job = nil
			continue
		}
		buf, metas, c := p.queue, p.metas, p.cur
		p.queue, p.metas = p.spareQ[:0], p.spareM[:0]
		p.cur, p.inflight = newCycle(), c
		appends := p.queued
		p.queued = 0
		p.mu.Unlock()

		st, syncSeg, durableBelow, err := p.writeCycle(buf, metas)
		p.l.release(p, len(buf))
		if job != nil {
			// Acknowledge the previous cycle first; if it failed, this
			// one, written after it, fails with it.
			if jerr := p.finishJob(job, c); jerr != nil && err == nil {
				// After a failed fsync nothing written since can be
				// trusted, not even a later seal's fsync of the same file.
				err, durableBelow = jerr, math.MinInt64
			}
			job = nil
		}

		p.mu.Lock()
		if cap(buf) <= 2*maxQueueBytes {
			p.spareQ, p.spareM = buf[:0], metas[:0]
		}
		p.mu.Unlock()
		switch {
		case err != nil:
			p.completeCycle(c, appends, nil, err, durableBelow)
		case syncSeg != nil:
			job = &syncJob{c: c, st: st, appends: appends, durableBelow: durableBelow, done: make(chan struct{})}
			p.flushWG.Add(1)
			go func(job *syncJob) {
				defer p.flushWG.Done()
				start := time.Now()
				job.err = p.syncSegment(syncSeg)
				p.lastFsync.Store(int64(time.Since(start)))
				close(job.done)
			}(job)
		default:
			p.completeCycle(c, appends, st, nil, 0)
		}
	}
}

// finishJob waits for a running fsync and completes its cycle. If the
// fsync failed and next (a cycle written after it) is given, the caller
// fails next with the returned error.
func (p *Partition) finishJob(job *syncJob, next *cycle) error {
	<-job.done
	p.completeCycle(job.c, job.appends, job.st, job.err, job.durableBelow)
	return job.err
}

// completeCycle publishes a successful cycle and acknowledges its appends,
// or fails it together with everything queued behind it.
func (p *Partition) completeCycle(c *cycle, appends int, st *durableState, err error, durableBelow int64) {
	p.mu.Lock()
	// Everyone acknowledged now, plus everyone already queued, is likely
	// to append again soon: the next cycle waits for them (gatherLocked).
	p.gatherTarget = appends + p.queued
	var failed *cycle
	if err != nil {
		failed = p.failLocked(err)
	} else {
		p.publish(st, false)
	}
	p.mu.Unlock()
	c.finish(err, durableBelow)
	if failed != nil {
		failed.finish(err, math.MinInt64)
	}
}

// waitLocked decides, with p.mu held, whether the flusher takes the queue
// now (true) or, having nothing to take, finishes the running fsync or
// stops (false). It may release p.mu while it waits.
//
// This is group commit's other half. With one fsync at a time, appenders
// fall into two cohorts: those acknowledged by the last fsync come back
// while the next one already runs, and each fsync carries only half of
// them. So while an fsync runs, small appends wait for it to end; and
// before a new cycle, the flusher waits until as many appends are queued as
// were in flight at the end of the last cycle, for at most half the last
// fsync's duration (MySQL's binlog_group_commit_sync_delay, made adaptive).
// Large appends (overlapBytes queued) are written at once.
func (p *Partition) waitLocked(job *syncJob) bool {
	if job != nil {
		for len(p.queue) < overlapBytes {
			select {
			case <-job.done:
				return false // finish it, then gather anew
			default:
			}
			wake := make(chan struct{})
			p.gatherWake, p.wakeCount = wake, math.MaxInt
			p.mu.Unlock()
			select {
			case <-wake:
			case <-job.done:
			}
			p.mu.Lock()
			p.gatherWake = nil
		}
		return true
	}
	if len(p.queue) == 0 {
		return false
	}
	if p.queued >= p.gatherTarget || p.topic.Config().Sync != SyncAlways {
		return true
	}
	wait := min(time.Duration(p.lastFsync.Load())/2, maxGather)
	if wait <= 0 {
		return true
	}
	wake := make(chan struct{})
	p.gatherWake, p.wakeCount = wake, p.gatherTarget
	p.mu.Unlock()
	t := time.NewTimer(wait)
	select {
	case <-wake:
	case <-t.C:
	}
	t.Stop()
	p.mu.Lock()
	p.gatherWake = nil
	return true
}

// failLocked handles a failed cycle. Batches queued behind it were given
// offsets that follow the failed ones, so they fail too, and offsets are
// handed out again from what is really in the log. A write that ran out of
// space leaves the partition usable; anything else is sticky.
func (p *Partition) failLocked(err error) *cycle {
	if !recoverableWriteError(err) {
		p.err = err
	}
	failed := p.cur
	p.cur = newCycle()
	p.l.release(p, len(p.queue))
	p.queue, p.metas, p.queued = p.queue[:0], p.metas[:0], 0
	p.next = p.durable.Load().hw
	return failed
}

// recoverableWriteError reports whether err leaves the partition usable: a
// write that ran out of space wrote nothing past the data end that counts.
// Every fsync error is sticky, ENOSPC included: after a failed fsync the
// page cache cannot be trusted until the data is read back from disk.
func recoverableWriteError(err error) bool {
	var ioe *IOError
	return errors.As(err, &ioe) && ioe.Op == "write" && isNoSpace(ioe.Err)
}

func (c *cycle) finish(err error, durableBelow int64) {
	c.err, c.durableBelow = err, durableBelow
	close(c.done)
	for _, a := range c.async {
		a.fn(a.res, c.result(a.res))
	}
}

// writeCycle writes one cycle's batches, rolling segments as they fill. It
// returns the end the cycle reaches and, when the topic syncs always, the
// segment the caller must fsync before publishing it. A sync: interval
// topic is synced here when its interval has passed.
//
// durableBelow is the offset below which the cycle's batches were made
// durable by sealing a segment at a roll: they succeed even if what follows
// fails.
func (p *Partition) writeCycle(buf []byte, metas []batchMeta) (st *durableState, syncSeg *segment, durableBelow int64, err error) {
	p.ioMu.Lock()
	defer p.ioMu.Unlock()
	cfg := p.topic.Config()
	now := p.l.now()

	durableBelow = metas[0].base
	act := p.active()
	if act.size > 0 && now.Sub(act.created) >= cfg.SegmentAge {
		if err := p.roll(metas[0].base, cfg, now); err != nil {
			return nil, nil, durableBelow, err
		}
	}
	for i, off := 0, 0; i < len(metas); {
		act = p.active()
		j, n := i, 0
		for j < len(metas) && (act.size+int64(n+metas[j].size) <= cfg.SegmentBytes || (act.size == 0 && j == i)) &&
			metas[j].last-act.base <= 1<<32-1 {
			n += metas[j].size
			j++
		}
		if j == i {
			if err := p.roll(metas[i].base, cfg, now); err != nil {
				return nil, nil, durableBelow, err
			}
			durableBelow = metas[i].base // the seal synced everything before
			continue
		}
		grown, err := act.write(buf[off:off+n], metas[i:j], p.l.preallocAllowance())
		p.addBytes(grown)
		if err != nil {
			return nil, nil, durableBelow, p.ioError("write", err)
		}
		p.dirty = true
		off, i = off+n, j
	}
	act = p.active()
	st = &durableState{hw: act.next, seg: act, pos: act.size}
	switch {
	case cfg.Sync == SyncAlways:
		p.lastSync, p.dirty = now, false
		return st, act, durableBelow, nil
	case cfg.Sync == SyncInterval && now.Sub(p.lastSync) >= cfg.SyncInterval:
		if err := p.syncLocked(now); err != nil {
			return nil, nil, durableBelow, err
		}
	case cfg.Sync == SyncInterval && p.timer == nil:
		p.timer = time.AfterFunc(cfg.SyncInterval, p.timedSync)
	}
	return st, nil, 0, nil
}

// syncSegment fsyncs a segment's data, timing it.
func (p *Partition) syncSegment(s *segment) error {
	start := time.Now()
	err := s.f.Sync()
	p.l.stats.observeFsync(time.Since(start))
	if err != nil {
		return p.ioError("fsync", err)
	}
	return nil
}

// syncLocked fsyncs the active segment. ioMu is held.
func (p *Partition) syncLocked(now time.Time) error {
	if err := p.syncSegment(p.active()); err != nil {
		return err
	}
	p.lastSync, p.dirty = now, false
	return nil
}

// timedSync is the sync: interval timer. Its error is sticky, and so is
// returned to the next append.
func (p *Partition) timedSync() {
	p.ioMu.Lock()
	defer p.ioMu.Unlock()
	p.timer = nil
	if !p.dirty || p.segmentsClosed() {
		return
	}
	if err := p.syncLocked(p.l.now()); err != nil {
		p.mu.Lock()
		if p.err == nil {
			p.err = err
		}
		p.mu.Unlock()
		p.lg.Error("interval fsync failed", "err", err)
	}
}

func (p *Partition) segmentsClosed() bool {
	p.segMu.RLock()
	defer p.segMu.RUnlock()
	return len(p.segments) == 0 || p.segments[len(p.segments)-1].f == nil
}

func (p *Partition) ioError(op string, err error) error {
	return &IOError{Topic: p.topic.name, Partition: p.id, Op: op, Err: err}
}

// roll seals the active segment and starts a new one at base.
//
// The new segment is created first: if that fails (a full disk), nothing
// has changed and the append can be retried. A crash after the create but
// before the seal leaves an untrimmed segment that open trims.
func (p *Partition) roll(base int64, cfg TopicConfig, now time.Time) error {
	act := p.active()
	s, err := createSegment(p.l.fs, p.dir, base, cfg, now)
	if err != nil {
		return p.ioError("write", fmt.Errorf("create segment: %w", err))
	}
	freed, err := act.seal()
	p.addBytes(-freed)
	if err != nil {
		s.remove()
		return p.ioError("seal segment", err)
	}
	p.lastSync, p.dirty = now, false
	p.segMu.Lock()
	p.segments = append(p.segments, s)
	p.segMu.Unlock()
	// Everything before the new segment is sealed and synced.
	p.publish(&durableState{hw: base, seg: s, pos: 0}, false)
	return nil
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

// publish makes data up to st visible to readers and wakes tailing
// readers. The high watermark only moves forward, unless reset (a reload
// from disk) says otherwise: a roll publishes the start of the new segment
// while cycles before it may still be completing.
func (p *Partition) publish(st *durableState, reset bool) {
	p.notifyMu.Lock()
	defer p.notifyMu.Unlock()
	if cur := p.durable.Load(); !reset && cur != nil && st.hw < cur.hw {
		return
	}
	p.durable.Store(st)
	close(p.notify)
	p.notify = make(chan struct{})
}

// Notify returns a channel closed when new data becomes readable. Take it
// before the Read that found nothing, then wait on it.
func (p *Partition) Notify() <-chan struct{} {
	p.notifyMu.Lock()
	defer p.notifyMu.Unlock()
	return p.notify
}

// HighWatermark is the offset after the last acknowledged record: readers
// see everything below it.
func (p *Partition) HighWatermark() int64 { return p.durable.Load().hw }

// LogStartOffset is the first offset still stored.
func (p *Partition) LogStartOffset() int64 { return p.logStart.Load() }

// Size is the bytes of the partition's segment files.
func (p *Partition) Size() int64 { return p.bytes.Load() }

// Err returns the sticky error that stops appends, if any.
func (p *Partition) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Read returns whole batches starting with the one that holds offset, at
// most maxBytes of them but always at least one, from a single segment. At
// the high watermark it returns nothing. Batches below offset in the first
// batch are included, as Kafka does; callers skip them.
func (p *Partition) Read(offset int64, maxBytes int) ([]byte, error) {
	p.segMu.RLock()
	defer p.segMu.RUnlock()
	st := p.durable.Load()
	if offset < p.LogStartOffset() || offset > st.hw {
		return nil, fmt.Errorf("%w: %d not in [%d, %d]", ErrOffsetOutOfRange, offset, p.LogStartOffset(), st.hw)
	}
	if offset == st.hw {
		return nil, nil
	}
	segs := p.segments
	i := sort.Search(len(segs), func(i int) bool { return segs[i].base > offset }) - 1
	for i = max(i, 0); i < len(segs); i++ {
		s := segs[i]
		if s.base >= st.hw {
			break
		}
		limit := st.pos
		if s != st.seg {
			limit = s.size // sealed before st was published
		}
		pos, err := s.lookup(offset, limit)
		if err != nil {
			return nil, p.corruption(err)
		}
		if pos < limit {
			data, err := s.read(pos, limit, maxBytes)
			if err != nil {
				return nil, p.corruption(err)
			}
			if len(data) > 0 {
				return data, nil
			}
		}
	}
	return nil, nil
}

// corruption fills in the topic and partition of a segment's error.
func (p *Partition) corruption(err error) error {
	var ce *CorruptionError
	if errors.As(err, &ce) {
		ce.Topic, ce.Partition = p.topic.name, p.id
	}
	return err
}

// OffsetForTime returns the first offset whose record timestamp is at or
// after ts (milliseconds), and false when every record is older.
func (p *Partition) OffsetForTime(ts int64) (int64, bool, error) {
	p.segMu.RLock()
	defer p.segMu.RUnlock()
	st := p.durable.Load()
	for _, s := range p.segments {
		if s.base >= st.hw {
			break
		}
		limit := st.pos
		if s != st.seg {
			if s.maxTs < ts {
				continue
			}
			limit = s.size
		}
		pos, err := s.lookupTime(ts, limit)
		if err != nil {
			return 0, false, p.corruption(err)
		}
		for pos < limit {
			data, err := s.read(pos, limit, 1)
			if err != nil {
				return 0, false, p.corruption(err)
			}
			_, recs, err := DecodeRecords(data)
			if err != nil {
				return 0, false, p.corruption(&CorruptionError{Segment: s.path, Position: pos, Err: err})
			}
			for _, r := range recs {
				if r.Timestamp >= ts && r.Offset >= p.LogStartOffset() {
					return r.Offset, true, nil
				}
			}
			pos += int64(len(data))
		}
	}
	return 0, false, nil
}

// Pin holds retention below offset for the named reader (a bridge link's
// cursor): records at or after the lowest pin are only deleted by an
// on_full: drop_oldest policy, and then counted.
func (p *Partition) Pin(name string, offset int64) {
	p.pinsMu.Lock()
	p.pins[name] = offset
	p.pinsMu.Unlock()
}

// Unpin removes a pin.
func (p *Partition) Unpin(name string) {
	p.pinsMu.Lock()
	delete(p.pins, name)
	p.pinsMu.Unlock()
}

// minPin returns the lowest pinned offset, or -1 when there is no pin.
func (p *Partition) minPin() int64 {
	p.pinsMu.Lock()
	defer p.pinsMu.Unlock()
	low := int64(-1)
	for _, o := range p.pins {
		if low < 0 || o < low {
			low = o
		}
	}
	return low
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
	for _, s := range p.segments {
		if cerr := s.close(); err == nil && cerr != nil {
			err = cerr
		}
	}
	p.segMu.Unlock()
	if err == nil {
		err = sticky
	}
	return err
}
