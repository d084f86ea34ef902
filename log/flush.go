package log

// The flusher: one goroutine per partition, alive only while there is
// work, writes queued batches, rolls segments, fsyncs and acknowledges.

import (
	"errors"
	"fmt"
	"math"
	"time"
)

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
// always, a small cycle is fsynced right here; a large one (overlapBytes)
// is fsynced beside the flusher while it writes the next cycle, and is
// acknowledged (in order, before the next) when its fsync returns.
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
			p.finishJob(job, false)
			job = nil
			continue
		}
		buf, metas, c := p.queue, p.metas, p.cur
		p.queue, p.metas = p.spareQ[:0], p.spareM[:0]
		p.wakeRoomLocked()
		p.cur, p.inflight = newCycle(), c
		appends := p.queued
		p.queued = 0
		p.mu.Unlock()

		// Acknowledge the previous cycle first; if it failed, this one,
		// written after it, fails with it, and then what is queued behind
		// (callbacks stay in append order). A roll in this cycle settles
		// it before sealing: the seal publishes, and must not make what the
		// running fsync covers visible before that fsync has returned.
		var jerr error
		settle := func() error {
			if job != nil {
				jerr = p.finishJob(job, true)
				job = nil
			}
			return jerr
		}
		endBusy := p.busy.begin(busyFlush)
		wbuf, wmetas := buf, metas
		cfg := p.topic.Config()
		if mb, mm, ok := mergeCycle(p.mergeBuf[:0], p.mergeMetas[:0], buf, metas, int(cfg.MaxMessageBytes), cfg.Compression); ok {
			wbuf, wmetas = mb, mm
			if cap(mb) <= 2*maxQueueBytes {
				p.mergeBuf, p.mergeMetas = mb, mm
			}
		}
		st, syncSeg, durableBelow, err := p.writeCycle(wbuf, wmetas, settle)
		p.l.release(p, len(buf))
		if settle() != nil && err == nil {
			// After a failed fsync nothing written since can be
			// trusted, not even a later seal's fsync of the same file.
			err, durableBelow = jerr, math.MinInt64
		}

		p.mu.Lock()
		if cap(buf) <= 2*maxQueueBytes {
			p.spareQ, p.spareM = buf[:0], metas[:0]
		}
		p.mu.Unlock()
		switch {
		case err != nil:
			endBusy()
			p.completeCycle(c, appends, nil, err, durableBelow)
		case syncSeg != nil && len(buf) < overlapBytes:
			// A small cycle: nothing to overlap its fsync with, as the
			// next cycle gathers after it anyway. Syncing here saves two
			// goroutine hand-offs between the fsync and the next cycle.
			start := time.Now()
			serr := p.syncSegment(syncSeg)
			p.lastFsync.Store(int64(time.Since(start)))
			endBusy()
			if serr != nil {
				p.completeCycle(c, appends, nil, serr, durableBelow)
			} else {
				p.completeCycle(c, appends, st, nil, durableBelow)
			}
		case syncSeg != nil:
			endBusy()
			job = &syncJob{c: c, st: st, appends: appends, durableBelow: durableBelow, done: make(chan struct{})}
			p.flushWG.Add(1)
			endJob := p.busy.begin(busyFsyncJob)
			go func(job *syncJob) {
				defer p.flushWG.Done()
				start := time.Now()
				job.err = p.syncSegment(syncSeg)
				p.lastFsync.Store(int64(time.Since(start)))
				endJob() // before done: the next job may start at once
				close(job.done)
			}(job)
		default:
			endBusy()
			p.completeCycle(c, appends, st, nil, 0)
		}
	}
}

// finishJob waits for a running fsync and completes its cycle. If the
// fsync failed and written says a later cycle is written, the caller fails
// that one, and with it the queue; otherwise the queue fails here.
func (p *Partition) finishJob(job *syncJob, written bool) error {
	<-job.done
	if job.err != nil && written {
		p.mu.Lock()
		p.gatherTarget = job.appends + p.queued
		p.mu.Unlock()
		job.c.finish(job.err, job.durableBelow)
		return job.err
	}
	p.completeCycle(job.c, job.appends, job.st, job.err, job.durableBelow)
	return job.err
}

// completeCycle publishes a successful cycle and acknowledges its appends,
// or fails it together with everything queued behind it.
func (p *Partition) completeCycle(c *cycle, appends int, st *durableState, err error, durableBelow int64) {
	p.mu.Lock()
	// Everyone acknowledged now, plus everyone already queued, is likely
	// to append again soon: the next cycle waits for them (waitLocked).
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
	if p.queued >= p.gatherTarget || len(p.queue) >= overlapBytes || p.topic.Config().Sync != SyncAlways {
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
	p.wakeRoomLocked()
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

// writeCycle writes one cycle's batches, rolling segments as they fill. It
// returns the end the cycle reaches and, when the topic syncs always, the
// segment the caller must fsync before publishing it. A sync: interval
// topic is synced here when its interval has passed.
//
// durableBelow is the offset below which the cycle's batches were made
// durable by sealing a segment at a roll: they succeed even if what follows
// fails.
func (p *Partition) writeCycle(buf []byte, metas []batchMeta, settle func() error) (st *durableState, syncSeg *segment, durableBelow int64, err error) {
	p.ioMu.Lock()
	defer p.ioMu.Unlock()
	cfg := p.topic.Config()
	now := p.l.now()

	durableBelow = metas[0].base
	act := p.active()
	if (act.size > 0 && now.Sub(act.created) >= cfg.SegmentAge) || act.sealed {
		// (Sealed: a roll sealed it, then could not create the next one.)
		if err := settle(); err != nil {
			return nil, nil, durableBelow, err
		}
		if _, err := p.roll(metas[0].base, cfg, now); err != nil {
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
			if err := settle(); err != nil {
				return nil, nil, durableBelow, err
			}
			sealed, err := p.roll(metas[i].base, cfg, now)
			if sealed {
				durableBelow = metas[i].base // the seal synced everything before
			}
			if err != nil {
				return nil, nil, durableBelow, err
			}
			continue
		}
		grown, err := act.write(buf[off:off+n], metas[i:j], p.l.preallocAllowance())
		if err != nil && isNoSpace(err) && p.l.noSpace() > 0 {
			// Spares held the space: the write goes again into it.
			p.addBytes(grown)
			grown, err = act.write(buf[off:off+n], metas[i:j], p.l.preallocAllowance())
		}
		p.addBytes(grown)
		p.tail.Store(act.alloc - act.size)
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
	endBusy := p.busy.begin(busyTimed)
	err := p.syncLocked(p.l.now())
	endBusy()
	if err != nil {
		p.mu.Lock()
		if p.err == nil {
			p.err = err
		}
		p.wakeRoomLocked()
		p.mu.Unlock()
		p.lg.Error("interval fsync failed", "err", err)
	}
}

func (p *Partition) segmentsClosed() bool {
	p.segMu.RLock()
	defer p.segMu.RUnlock()
	return len(p.segments) == 0 || p.segments[len(p.segments)-1].f == nil
}

// roll seals the active segment and starts a new one at base. It reports
// whether the seal was done, which makes the batches before base durable
// even when creating the next segment fails.
//
// The seal comes first: a crash before the next segment exists leaves act
// the last segment, recovered as the active one. In the other order a
// crash could leave act sealed by name only, its tail and its indexes
// never synced (a time index short of its newest entries makes retention
// delete recent records). If the create fails (a full disk), act stays
// last and sealed, and the next cycle rolls again first.
func (p *Partition) roll(base int64, cfg TopicConfig, now time.Time) (sealed bool, err error) {
	act := p.active()
	freed, err := act.seal()
	p.addBytes(-freed)
	p.tail.Store(act.alloc - act.size)
	if err != nil {
		return false, p.ioError("seal segment", err)
	}
	p.lastSync, p.dirty = now, false
	p.publish(&durableState{hw: base, seg: act, pos: act.size}, false)
	s, err := p.newSegment(base, cfg, now)
	if err != nil {
		return true, p.ioError("write", fmt.Errorf("create segment: %w", err))
	}
	s.avgWrite = act.avgWrite // the writes go on as they were
	s.noReserve = act.noReserve
	p.tail.Store(s.alloc - s.size)
	p.segMu.Lock()
	p.segments = append(p.segments, s)
	p.segMu.Unlock()
	p.publish(&durableState{hw: base, seg: s, pos: 0}, false)
	return true, nil
}
