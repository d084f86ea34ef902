package bridge

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	spoollog "github.com/spoolmq/spool/log"
)

// partState is what every kind of link keeps for one mirrored partition:
// the cursor and its retention pin, the counters, and the failure and
// progress marks Health reads. The link's goroutine for the partition
// writes it; Health reads it under mu.
type partState struct {
	p           *spoollog.Partition
	meta        *spoollog.Meta
	ns, key     string // cursor namespace (also the pin's name) and key
	topic, dest string // local topic, upstream destination
	lg          *slog.Logger
	// fresh: the partition replaces a deleted one of the same name, whose
	// cursors (here and, exactly-once, upstream) are not this one's.
	fresh bool

	mu         sync.Mutex
	cursor     int64 // next offset to mirror; all below are acknowledged
	records    int64
	bytes      int64
	gaps       int64
	skipped    int64     // records the upstream refused as too large on their own
	progressAt time.Time // last ack, or when a wait for new data began or ended
	waiting    bool      // waits for new data (Notify): never stalled
	failing    bool      // an attempt failed and none succeeded since
	lastErr    error
	lastErrAt  time.Time
}

// init loads the stored cursor (a partition never mirrored starts at its
// log start) and pins retention at it. fresh says p replaces a partition of
// the same name deleted while the link ran: the stored cursor is the old
// one's, and p is mirrored from its start.
func (s *partState) init(meta *spoollog.Meta, ns string, p *spoollog.Partition, topic, dest string, lg *slog.Logger, fresh bool) error {
	*s = partState{p: p, meta: meta, ns: ns, key: cursorKey(topic, p.ID()), topic: topic, dest: dest,
		lg: lg.With("topic", topic, "partition", p.ID()), fresh: fresh}
	c, err := loadCursor(meta, ns, s.key)
	if err != nil {
		return err
	}
	// A replaced partition stays fresh across restarts until it made
	// progress: an exactly-once link would otherwise resume from the
	// deleted partition's cursor still committed upstream, and skip.
	if _, marked, err := meta.GetCursor(ns, freshKey(s.key)); err != nil {
		return err
	} else if marked {
		s.fresh = true
	} else if fresh {
		if err := meta.PutCursor(ns, freshKey(s.key), []byte{1}); err != nil {
			return fmt.Errorf("mark %s as a new partition: %w", s.key, err)
		}
	}
	stored := c >= 0 && !fresh
	if !stored {
		c = p.LogStartOffset()
	}
	if hw := p.HighWatermark(); c > hw {
		// A cursor past the end is another log's: the topic was deleted
		// and created again, or the data directory replaced. Resuming
		// there would skip records never mirrored.
		s.lg.Warn("stored cursor is past the partition's end; mirroring from its start", "cursor", c, "high_watermark", hw)
		c, stored = p.LogStartOffset(), false
	}
	if !stored {
		// Stored before pinning, even if it never advances: a link that
		// restarts without a cursor would start at the log start of
		// then, and records deleted meanwhile would be lost uncounted.
		if err := s.storeCursor(c); err != nil {
			return err
		}
	}
	s.cursor = c
	p.Pin(ns, c)
	return nil
}

// freshKey marks a partition that replaced a deleted one of the same name
// and has not made progress yet (":" is not in topic names, so it cannot
// be another partition's cursor key).
func freshKey(key string) string { return "fresh:" + key }

// storeCursor writes c as the partition's stored cursor.
func (s *partState) storeCursor(c int64) error {
	if err := s.meta.PutCursor(s.ns, s.key, encodeCursor(c)); err != nil {
		return fmt.Errorf("store cursor %d of %s: %w", c, s.key, err)
	}
	return nil
}

// advance stores the cursor, then moves the retention pin to it: in that
// order, retention never deletes a record a restarted link would resend.
// progressed says whether anything was acknowledged.
func (s *partState) advance(next, records, bytes int64, progressed bool) error {
	var err error
	if next != s.getCursor() {
		err = s.meta.PutCursor(s.ns, s.key, encodeCursor(next))
		// On a store error the in-memory cursor still advances: the
		// records were acknowledged, and a restart resends them.
		s.p.Pin(s.ns, next)
	}
	if s.fresh && progressed && err == nil {
		// Its own cursor is stored (upstream too, exactly-once).
		if derr := s.meta.DeleteCursor(s.ns, freshKey(s.key)); derr == nil {
			s.fresh = false
		}
	}
	now := time.Now()
	s.mu.Lock()
	s.cursor = next
	s.records += records
	s.bytes += bytes
	if progressed {
		s.progressAt = now
		if s.failing {
			s.lg.Info("mirroring recovered", "cursor", next)
		}
		s.failing = false
	}
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("store cursor %d: %w", next, err)
	}
	return nil
}

// skipGap moves a cursor that fell below the log start (records deleted
// under drop_oldest or by DeleteRecords before they were mirrored) to the
// start, counting and logging the lost offsets: never silently.
func (s *partState) skipGap(cursor, start int64) error {
	s.lg.Warn("records deleted before they were mirrored", "from", cursor, "to", start, "lost", start-cursor)
	s.mu.Lock()
	s.gaps += start - cursor
	s.mu.Unlock()
	return s.advance(start, 0, 0, false)
}

// skipTooLarge moves the cursor past the record at offset, which the
// upstream refused on its own as too large (err): it can never go
// upstream, and retrying it would block every record after it. The record
// is counted in Skipped, logged, and named in LastError; it stays in the
// local log.
func (s *partState) skipTooLarge(offset int64, err error) error {
	err = fmt.Errorf("offset %d skipped, too large for the upstream on its own: %w", offset, err)
	s.lg.Error("record not mirrored: the upstream refuses it as too large", "offset", offset, "err", err)
	s.mu.Lock()
	s.skipped++
	s.lastErr, s.lastErrAt = err, time.Now()
	s.mu.Unlock()
	return s.advance(offset+1, 0, 0, true)
}

// setWaiting marks the wait for new data. Waiting is not a stall: the
// clock for StallTimeout starts when the wait ends, as new data arrived.
func (s *partState) setWaiting(w bool) {
	s.mu.Lock()
	s.waiting, s.progressAt = w, time.Now()
	s.mu.Unlock()
}

// markStart starts the stall clock when a run begins.
func (s *partState) markStart() {
	s.mu.Lock()
	s.progressAt = time.Now()
	s.mu.Unlock()
}

func (s *partState) fail(err error) {
	s.mu.Lock()
	s.failing, s.lastErr, s.lastErrAt = true, err, time.Now()
	s.mu.Unlock()
}

func (s *partState) getCursor() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cursor
}

// health snapshots the partition.
func (s *partState) health(now time.Time, stall time.Duration) PartitionHealth {
	// Lag runs to the last stable offset: records of a transaction still
	// pending cannot be mirrored yet, and are no backlog.
	hw, lso := s.p.HighWatermark(), s.p.LastStableOffset()
	cursor := s.getCursor()
	var lagBytes int64
	var oldest time.Time
	if lag := lso - cursor; lag > 0 {
		if n := hw - s.p.LogStartOffset(); n > 0 {
			lagBytes = lag * (s.p.DataBytes() / n)
		}
		// The batch holding the cursor: its first timestamp is the
		// oldest unmirrored record's (or older, within the batch).
		if data, err := s.p.Read(cursor, 1); err == nil && len(data) > 0 {
			if h, err := spoollog.ParseBatchHeader(data); err == nil {
				oldest = time.UnixMilli(h.BaseTimestamp)
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ph := PartitionHealth{
		Topic: s.topic, Partition: s.p.ID(), Destination: s.dest,
		Cursor: s.cursor, HighWatermark: hw, LastStableOffset: lso, Lag: max(lso-s.cursor, 0), LagBytes: lagBytes, OldestUnmirrored: oldest,
		Records: s.records, Bytes: s.bytes, Gaps: s.gaps, Skipped: s.skipped,
		Failing: s.failing, LastProgress: s.progressAt, LastErrorAt: s.lastErrAt,
	}
	if s.lastErr != nil {
		ph.LastError = s.lastErr.Error()
	}
	if ph.Lag > 0 && !s.waiting && !s.progressAt.IsZero() && now.Sub(s.progressAt) > stall {
		ph.Stalled = true
		if !ph.Failing {
			ph.LastError = fmt.Sprintf("no progress for %v with %d records waiting", now.Sub(s.progressAt).Round(time.Millisecond), ph.Lag)
			ph.LastErrorAt = now
		}
	}
	return ph
}

// sumPartitions adds the partitions up into a link's Health (state left
// for the link to decide) and reports whether any is failing or stalled,
// and whether any has lag.
func sumPartitions(name string, parts []*partState, now time.Time, stall time.Duration) (h Health, failing, draining bool) {
	h = Health{Link: name}
	for _, s := range parts {
		ph := s.health(now, stall)
		h.Partitions = append(h.Partitions, ph)
		h.Lag += ph.Lag
		h.LagBytes += ph.LagBytes
		if !ph.OldestUnmirrored.IsZero() && (h.OldestUnmirrored.IsZero() || ph.OldestUnmirrored.Before(h.OldestUnmirrored)) {
			h.OldestUnmirrored = ph.OldestUnmirrored
		}
		h.Records += ph.Records
		h.Bytes += ph.Bytes
		h.Gaps += ph.Gaps
		h.Skipped += ph.Skipped
		if ph.LastErrorAt.After(h.LastErrorAt) {
			h.LastError, h.LastErrorAt = ph.LastError, ph.LastErrorAt
		}
		failing = failing || ph.Failing || ph.Stalled
		draining = draining || ph.Lag > 0
	}
	return h, failing, draining
}
