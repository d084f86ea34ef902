package kafka

// The transaction coordinator. Spool is every coordinator of its cluster,
// so it is also the broker whose partitions a transaction writes: ending a
// transaction writes its markers directly (there is no WriteTxnMarkers
// round trip). One transactional id's requests run one at a time under
// its lock, as Kafka runs them on its coordinator's state.
//
// Each transactional id's state is stored in meta.db (namespace
// kafka_txn) before the request that changed it is answered: which
// producer id and epoch it has, which partitions and groups its pending
// transaction touches, and the offsets it will commit. Partitions keep
// their own pending state (log.Partition.BeginTxn), so that the last
// stable offset is right from the moment the log opens. Pending
// transactions survive a restart, as in Kafka, and are aborted when their
// timeout runs out; an end a crash interrupted is finished at start.

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	spoollog "github.com/spoolmq/spool/log"
	"github.com/twmb/franz-go/pkg/kerr"
)

const nsTxn = "kafka_txn" // transactional id -> txnRecord, in meta.db

const (
	// maxTxnTimeout is Kafka's transaction.max.timeout.ms default.
	maxTxnTimeout = 15 * time.Minute
	// txnIDExpiry is Kafka's transactional.id.expiration.ms default: the
	// state of an id unused this long is forgotten.
	txnIDExpiry = 7 * 24 * time.Hour
	// txnTick is how often timed-out transactions are looked for.
	txnTick = time.Second
)

type txnStatus string

const (
	txnEmpty          txnStatus = "empty"
	txnOngoing        txnStatus = "ongoing"
	txnPrepareCommit  txnStatus = "prepare_commit"
	txnPrepareAbort   txnStatus = "prepare_abort"
	txnCompleteCommit txnStatus = "complete_commit"
	txnCompleteAbort  txnStatus = "complete_abort"
)

// txnRecord is a transactional id's state, as stored.
type txnRecord struct {
	PID        int64                     `json:"pid"`
	Epoch      int16                     `json:"epoch"`
	TimeoutMs  int32                     `json:"timeout_ms"`
	Status     txnStatus                 `json:"status"`
	Partitions []spoollog.TopicPartition `json:"partitions,omitempty"`
	Groups     []string                  `json:"groups,omitempty"`
	Offsets    []txnOffset               `json:"offsets,omitempty"`
	StartedMs  int64                     `json:"started_ms,omitempty"` // when the pending transaction began
	UpdatedMs  int64                     `json:"updated_ms"`
	// LastPID and LastEpoch are what a KIP-360 InitProducerId moved from
	// (the producer id too: the bump may have rotated it): that request
	// retried (its answer lost) gets the current id and epoch again, as in
	// Kafka, instead of being fenced. Any other bump clears them
	// (TestTxnE2EInitProducerIDBump).
	LastPID   int64  `json:"last_pid,omitempty"`
	LastEpoch *int16 `json:"last_epoch,omitempty"`
}

// txnOffset is an offset a transaction commits for a group when it commits.
type txnOffset struct {
	Group       string `json:"group"`
	Topic       string `json:"topic"`
	Partition   int32  `json:"partition"`
	Offset      int64  `json:"offset"`
	LeaderEpoch int32  `json:"leader_epoch"`
	Metadata    string `json:"metadata,omitempty"`
}

type txnEntry struct {
	mu   sync.Mutex // one request of this id at a time
	id   string
	rec  txnRecord
	gone bool // forgotten (expired): look the id up again
}

type txnCoordinator struct {
	s *Server

	mu  sync.Mutex
	ids map[string]*txnEntry

	stop chan struct{}
	done chan struct{}
}

func newTxnCoordinator(s *Server) (*txnCoordinator, error) {
	tc := &txnCoordinator{s: s, ids: map[string]*txnEntry{}, stop: make(chan struct{}), done: make(chan struct{})}
	stored, err := s.log.Meta().Cursors(nsTxn)
	if err != nil {
		return nil, fmt.Errorf("reading transaction state: %w", err)
	}
	for id, b := range stored {
		e := &txnEntry{id: id}
		if err := json.Unmarshal(b, &e.rec); err != nil {
			return nil, fmt.Errorf("transactional id %q: unreadable state: %w", id, err)
		}
		tc.ids[id] = e
		s.producers.known(e.rec.PID, e.rec.Epoch, false)
		if e.rec.Status == txnOngoing {
			tc.rebuildSequences(e)
		}
		// An end a crash interrupted is finished now, before any client
		// comes: its markers may be missing from some partitions.
		switch e.rec.Status {
		case txnPrepareCommit, txnPrepareAbort:
			if err := tc.complete(e, e.rec.Status == txnPrepareCommit); err != nil {
				s.lg.Error("finishing a transaction interrupted by a restart failed; retried when its producer ends it or it times out", "transactional_id", id, "error", err)
			}
		}
	}
	go tc.run()
	return tc, nil
}

// rebuildSequences restores the sequence state of a pending transaction's
// producer from its batches in the log, after a crash left no snapshot of
// it: its retry of a batch stored just before the crash is then answered
// with the original offsets rather than stored twice, which would commit
// it twice. Its batches all lie between the partition's last stable
// offset and its end.
func (tc *txnCoordinator) rebuildSequences(e *txnEntry) {
	for _, tp := range e.rec.Partitions {
		p := tc.partition(tp)
		if p == nil || !p.TxnPending(e.rec.PID) {
			continue
		}
		var batches []spoollog.BatchHeader
		err := eachBatchFrom(p, p.LastStableOffset(), func(h spoollog.BatchHeader) {
			if h.ProducerID == e.rec.PID && h.ProducerEpoch == e.rec.Epoch && h.Transactional() && !h.Control() {
				batches = append(batches, h)
			}
		})
		if err != nil {
			tc.s.lg.Warn("rebuilding a pending transaction's sequences stopped early", "transactional_id", e.id, "topic", tp.Topic, "partition", tp.Partition, "error", err)
		}
		tc.s.producers.rebuild(e.rec.PID, p, batches)
	}
}

func (tc *txnCoordinator) close() {
	close(tc.stop)
	<-tc.done
}

// entry returns the state of id, nil when unknown.
func (tc *txnCoordinator) entry(id string) *txnEntry {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	return tc.ids[id]
}

// lock returns id's entry locked, nil when unknown.
func (tc *txnCoordinator) lock(id string) *txnEntry {
	for {
		e := tc.entry(id)
		if e == nil {
			return nil
		}
		e.mu.Lock()
		if !e.gone {
			return e
		}
		e.mu.Unlock()
	}
}

// save stores e's state; call it with e locked.
func (tc *txnCoordinator) save(e *txnEntry) error {
	e.rec.UpdatedMs = time.Now().UnixMilli()
	b, err := json.Marshal(e.rec)
	if err == nil {
		err = tc.s.log.Meta().PutCursor(nsTxn, e.id, b)
	}
	if err != nil {
		tc.s.lg.Error("storing transaction state failed", "transactional_id", e.id, "error", err)
	}
	return err
}

// partition resolves a partition of a transaction; nil when its topic was
// deleted or shrank since (it cannot shrink, but a new topic of the same
// name may have fewer partitions).
func (tc *txnCoordinator) partition(tp spoollog.TopicPartition) *spoollog.Partition {
	t, err := tc.s.log.Topic(tp.Topic)
	if err != nil {
		return nil
	}
	p, err := t.Partition(tp.Partition)
	if err != nil {
		return nil
	}
	return p
}

// complete ends e's pending transaction: it is marked prepared (stored),
// every partition gets its marker, committed offsets are stored, and it
// is marked complete. A failure leaves it prepared: calling complete
// again finishes it (a partition already marked is skipped). Call it with
// e locked.
func (tc *txnCoordinator) complete(e *txnEntry, commit bool) error {
	prepared, final := txnPrepareAbort, txnCompleteAbort
	if commit {
		prepared, final = txnPrepareCommit, txnCompleteCommit
	}
	if e.rec.Status != prepared {
		e.rec.Status = prepared
		if err := tc.save(e); err != nil {
			return err
		}
	}
	var errs []error
	for _, tp := range e.rec.Partitions {
		p := tc.partition(tp)
		if p == nil {
			continue
		}
		if _, err := p.EndTxn(e.rec.PID, e.rec.Epoch, commit, 0); err != nil && !errors.Is(err, spoollog.ErrClosed) {
			errs = append(errs, fmt.Errorf("marker on %s/%d: %w", tp.Topic, tp.Partition, err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if commit && len(e.rec.Offsets) > 0 {
		byGroup := map[string]map[spoollog.TopicPartition]spoollog.CommittedOffset{}
		now := time.Now()
		for _, o := range e.rec.Offsets {
			if byGroup[o.Group] == nil {
				byGroup[o.Group] = map[spoollog.TopicPartition]spoollog.CommittedOffset{}
			}
			byGroup[o.Group][spoollog.TopicPartition{Topic: o.Topic, Partition: o.Partition}] = spoollog.CommittedOffset{
				Offset: o.Offset, LeaderEpoch: o.LeaderEpoch, Metadata: o.Metadata, CommitTime: now}
		}
		for g, offs := range byGroup {
			if err := tc.s.log.Meta().CommitOffsets(g, offs); err != nil {
				return fmt.Errorf("committing the offsets of group %q: %w", g, err)
			}
		}
	}
	e.rec.Status = final
	e.rec.Partitions, e.rec.Groups, e.rec.Offsets, e.rec.StartedMs = nil, nil, nil, 0
	return tc.save(e)
}

// abortAndBump aborts e's pending transaction, if any, under a new epoch
// (or a new producer id when the epoch is used up), fencing the producer
// that had it: its later requests, and batches still in flight, carry the
// old epoch and are refused. The markers carry the new epoch. Call it
// with e locked.
func (tc *txnCoordinator) abortAndBump(e *txnEntry) error {
	pid, epoch := e.rec.PID, e.rec.Epoch
	if err := tc.bump(e); err != nil {
		return err
	}
	var err error
	switch e.rec.Status {
	case txnOngoing, txnPrepareAbort:
		err = tc.complete(e, false)
	case txnPrepareCommit:
		// Committing already: it finishes as it was decided.
		err = tc.complete(e, true)
	}
	if err == nil && e.rec.PID == pid && e.rec.Epoch == epoch {
		// The epoch was used up while a transaction was pending: the new
		// producer id comes now that it has ended.
		err = tc.bump(e)
	}
	if err != nil {
		return err
	}
	return tc.save(e)
}

// bump moves e to its producer's next epoch, or to a new producer id once
// the epoch would reach its end. Pending markers then carry it.
func (tc *txnCoordinator) bump(e *txnEntry) error {
	e.rec.LastPID, e.rec.LastEpoch = 0, nil // no retry of an earlier bump gets this epoch
	if e.rec.Epoch >= math.MaxInt16-1 {
		if e.rec.Status == txnOngoing || e.rec.Status == txnPrepareAbort || e.rec.Status == txnPrepareCommit {
			// The markers of the pending transaction need the id its
			// batches carry: the new id comes at the next bump.
			return nil
		}
		pid, err := tc.s.producers.newID()
		if err != nil {
			return err
		}
		e.rec.PID, e.rec.Epoch = pid, 0
		return nil
	}
	e.rec.Epoch++
	tc.s.producers.known(e.rec.PID, e.rec.Epoch, false)
	return nil
}

// run aborts transactions whose timeout ran out and forgets ids unused
// for txnIDExpiry, until close.
func (tc *txnCoordinator) run() {
	defer close(tc.done)
	t := time.NewTicker(txnTick)
	defer t.Stop()
	for {
		select {
		case <-tc.stop:
			return
		case now := <-t.C:
			tc.expire(now)
		}
	}
}

// entries lists the transactional ids' entries, unlocked.
func (tc *txnCoordinator) entries() []*txnEntry {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	out := make([]*txnEntry, 0, len(tc.ids))
	for _, e := range tc.ids {
		out = append(out, e)
	}
	return out
}

func (tc *txnCoordinator) expire(now time.Time) {
	for _, e := range tc.entries() {
		e.mu.Lock()
		switch st := e.rec.Status; {
		case e.gone:
		case st == txnOngoing && now.UnixMilli()-e.rec.StartedMs > int64(e.rec.TimeoutMs):
			tc.s.lg.Warn("transaction timed out: aborted, and its producer fenced", "transactional_id", e.id, "producer_id", e.rec.PID, "timeout_ms", e.rec.TimeoutMs)
			if err := tc.abortAndBump(e); err != nil {
				tc.s.lg.Error("aborting a timed-out transaction failed; retried", "transactional_id", e.id, "error", err)
			}
		case st == txnPrepareCommit || st == txnPrepareAbort:
			// An end that failed (a full disk): try again.
			if err := tc.complete(e, st == txnPrepareCommit); err != nil {
				tc.s.lg.Error("ending a transaction failed; retried", "transactional_id", e.id, "error", err)
			}
		case (st == txnEmpty || st == txnCompleteCommit || st == txnCompleteAbort) && now.UnixMilli()-e.rec.UpdatedMs > txnIDExpiry.Milliseconds():
			if err := tc.s.log.Meta().DeleteCursor(nsTxn, e.id); err == nil {
				tc.mu.Lock()
				delete(tc.ids, e.id)
				tc.mu.Unlock()
				e.gone = true
			}
		}
		e.mu.Unlock()
	}
}

// pendingOffsets reports whether a pending transaction will commit an
// offset for one of the group's partitions asked (nil: any): OffsetFetch
// with require_stable answers UNSTABLE_OFFSET_COMMIT for them.
func (tc *txnCoordinator) pendingOffsets(group string, tp spoollog.TopicPartition) bool {
	for _, e := range tc.entries() {
		e.mu.Lock()
		found := (e.rec.Status == txnOngoing || e.rec.Status == txnPrepareCommit) && slices.ContainsFunc(e.rec.Offsets, func(o txnOffset) bool {
			return o.Group == group && o.Topic == tp.Topic && o.Partition == tp.Partition
		})
		e.mu.Unlock()
		if found {
			return true
		}
	}
	return false
}

// fencedCode is the error for a stale epoch: PRODUCER_FENCED for clients
// that know it (KIP-588), INVALID_PRODUCER_EPOCH before.
func fencedCode(version, since int16) int16 {
	if version >= since {
		return kerr.ProducerFenced.Code
	}
	return kerr.InvalidProducerEpoch.Code
}
