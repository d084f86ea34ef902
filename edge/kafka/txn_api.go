package kafka

import (
	"fmt"
	"slices"
	"time"

	spoollog "github.com/spoolmq/spool/log"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// initTxnProducer answers InitProducerId for a transactional id: a new
// producer id the first time, else the id's producer under a new epoch,
// which fences the previous instance. A transaction it left pending is
// aborted first.
func (s *Server) initTxnProducer(r *kmsg.InitProducerIDRequest, version int16, resp *kmsg.InitProducerIDResponse) {
	id := *r.TransactionalID
	timeout := time.Duration(r.TransactionTimeoutMillis) * time.Millisecond
	switch {
	case id == "":
		resp.ErrorCode = kerr.InvalidRequest.Code
		return
	case timeout <= 0 || timeout > maxTxnTimeout:
		resp.ErrorCode = kerr.InvalidTransactionTimeout.Code
		return
	}
	tc := s.txns
	e := tc.lock(id)
	if e == nil {
		pid, err := s.producers.newID()
		if err != nil {
			s.lg.Error("handing out a producer id failed", "error", err)
			resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
			return
		}
		tc.mu.Lock()
		if tc.ids[id] == nil { // two first InitProducerIds at once: one wins
			tc.ids[id] = &txnEntry{id: id, rec: txnRecord{PID: pid, Epoch: -1, Status: txnEmpty}}
		}
		tc.mu.Unlock()
		if e = tc.lock(id); e == nil {
			resp.ErrorCode = kerr.ConcurrentTransactions.Code
			return
		}
	}
	defer e.mu.Unlock()
	// KIP-360: a producer that knows its id asks for its next epoch. An
	// id whose state is new (never stored, or expired) takes any: Kafka
	// hands out the new producer id then.
	kip360 := version >= 3 && r.ProducerID >= 0 && e.rec.Epoch >= 0
	if kip360 {
		switch {
		case e.rec.LastEpoch != nil && r.ProducerID == e.rec.LastPID && r.ProducerEpoch == *e.rec.LastEpoch:
			// A retry of the request that moved it to the current id
			// and epoch: the same answer (Kafka's lastProducerEpoch).
			resp.ProducerID, resp.ProducerEpoch = e.rec.PID, e.rec.Epoch
			return
		case r.ProducerID != e.rec.PID:
			resp.ErrorCode = kerr.InvalidProducerIDMapping.Code
			return
		case r.ProducerEpoch != e.rec.Epoch:
			resp.ErrorCode = fencedCode(version, 4)
			return
		}
	}
	var err error
	if e.rec.Epoch < 0 {
		e.rec.Epoch = 0 // a new id: its first epoch
		s.producers.known(e.rec.PID, 0, false)
	} else {
		err = tc.abortAndBump(e)
	}
	if err != nil {
		s.lg.Error("ending the previous transaction failed", "transactional_id", id, "error", err)
		resp.ErrorCode = kerr.ConcurrentTransactions.Code // retried by the client
		return
	}
	if kip360 {
		last := r.ProducerEpoch // for a retry of this request
		e.rec.LastPID, e.rec.LastEpoch = r.ProducerID, &last
	}
	e.rec.Status, e.rec.TimeoutMs = txnEmpty, r.TransactionTimeoutMillis
	if err := tc.save(e); err != nil {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return
	}
	resp.ProducerID, resp.ProducerEpoch = e.rec.PID, e.rec.Epoch
}

// checkTxn is the check every transactional request of producer pid at
// epoch makes of its id's state e (locked, or nil): 0 when the request
// may go on. fencedSince is the request version from which a stale epoch
// is PRODUCER_FENCED.
func checkTxn(e *txnEntry, pid int64, epoch int16, version, fencedSince int16) int16 {
	switch {
	case e == nil || pid != e.rec.PID:
		return kerr.InvalidProducerIDMapping.Code
	case epoch != e.rec.Epoch:
		return fencedCode(version, fencedSince)
	case e.rec.Status == txnPrepareCommit || e.rec.Status == txnPrepareAbort:
		return kerr.ConcurrentTransactions.Code
	}
	return 0
}

// begin makes e's transaction pending (ongoing) if it is not yet.
func begin(e *txnEntry) {
	if e.rec.Status != txnOngoing {
		e.rec.Status, e.rec.StartedMs = txnOngoing, time.Now().UnixMilli()
	}
}

func (s *Server) addPartitionsToTxn(_ *connState, req *request) kmsg.Response {
	r := req.body.(*kmsg.AddPartitionsToTxnRequest)
	resp := r.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	e := s.txns.lock(r.TransactionalID)
	if e != nil {
		defer e.mu.Unlock()
	}
	code := checkTxn(e, r.ProducerID, r.ProducerEpoch, req.version, 2)
	var parts []*spoollog.Partition
	var tps []spoollog.TopicPartition
	unknown := false
	for _, rt := range r.Topics {
		t, err := s.log.Topic(rt.Topic)
		for _, id := range rt.Partitions {
			var p *spoollog.Partition
			if err == nil {
				p, _ = t.Partition(id)
			}
			if p == nil {
				unknown = true
			}
			parts = append(parts, p)
			tps = append(tps, spoollog.TopicPartition{Topic: rt.Topic, Partition: id})
		}
	}
	if code == 0 && !unknown {
		begin(e)
		for _, tp := range tps {
			if !slices.Contains(e.rec.Partitions, tp) {
				e.rec.Partitions = append(e.rec.Partitions, tp)
			}
		}
		// Stored before the partitions begin: a restart then ends the
		// transaction on each of them (one not begun is skipped).
		if s.txns.save(e) != nil {
			code = kerr.CoordinatorNotAvailable.Code
		}
	}
	// Each partition's answer, in request order.
	i := 0
	for _, rt := range r.Topics {
		st := kmsg.NewAddPartitionsToTxnResponseTopic()
		st.Topic = rt.Topic
		for _, id := range rt.Partitions {
			sp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
			sp.Partition = id
			p := parts[i]
			i++
			switch {
			case code != 0:
				sp.ErrorCode = code
			case unknown && p == nil:
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case unknown:
				sp.ErrorCode = kerr.OperationNotAttempted.Code
			default:
				if err := p.BeginTxn(r.ProducerID); err != nil {
					s.lg.Error("beginning a transaction failed", "transactional_id", r.TransactionalID, "error", err)
					sp.ErrorCode = kerr.CoordinatorNotAvailable.Code
				}
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

func (s *Server) addOffsetsToTxn(_ *connState, req *request) kmsg.Response {
	r := req.body.(*kmsg.AddOffsetsToTxnRequest)
	resp := r.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
	e := s.txns.lock(r.TransactionalID)
	if e != nil {
		defer e.mu.Unlock()
	}
	if resp.ErrorCode = checkTxn(e, r.ProducerID, r.ProducerEpoch, req.version, 2); resp.ErrorCode != 0 {
		return resp
	}
	if r.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp
	}
	begin(e)
	if !slices.Contains(e.rec.Groups, r.Group) {
		e.rec.Groups = append(e.rec.Groups, r.Group)
	}
	if s.txns.save(e) != nil {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
	}
	return resp
}

// txnOffsetCommit keeps a transaction's offsets for its group: they are
// stored as the group's committed offsets when the transaction commits,
// and dropped when it aborts. From v3 the member is checked as for
// OffsetCommit (KIP-447), so that a consumer fenced by a rebalance cannot
// commit.
func (s *Server) txnOffsetCommit(_ *connState, req *request) kmsg.Response {
	r := req.body.(*kmsg.TxnOffsetCommitRequest)
	resp := r.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
	e := s.txns.lock(r.TransactionalID)
	if e != nil {
		defer e.mu.Unlock()
	}
	code := checkTxn(e, r.ProducerID, r.ProducerEpoch, req.version, 3)
	if code == 0 && (e.rec.Status != txnOngoing || !slices.Contains(e.rec.Groups, r.Group)) {
		code = kerr.InvalidTxnState.Code // AddOffsetsToTxn comes first
	}
	var offsets []txnOffset
	for _, rt := range r.Topics {
		st := kmsg.NewTxnOffsetCommitResponseTopic()
		st.Topic = rt.Topic
		t, terr := s.log.Topic(rt.Topic)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
			sp.Partition = rp.Partition
			switch {
			case code != 0:
				sp.ErrorCode = code
			case terr != nil || rp.Partition < 0 || rp.Partition >= t.NumPartitions():
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case rp.Metadata != nil && len(*rp.Metadata) > maxOffsetMetadata:
				sp.ErrorCode = kerr.OffsetMetadataTooLarge.Code
			default:
				o := txnOffset{Group: r.Group, Topic: rt.Topic, Partition: rp.Partition, Offset: rp.Offset, LeaderEpoch: -1}
				if req.version >= 2 {
					o.LeaderEpoch = rp.LeaderEpoch
				}
				if rp.Metadata != nil {
					o.Metadata = *rp.Metadata
				}
				offsets = append(offsets, o)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	if code != 0 || len(offsets) == 0 {
		return resp
	}
	store := func() error {
		for _, o := range offsets {
			i := slices.IndexFunc(e.rec.Offsets, func(x txnOffset) bool {
				return x.Group == o.Group && x.Topic == o.Topic && x.Partition == o.Partition
			})
			if i >= 0 {
				e.rec.Offsets[i] = o
			} else {
				e.rec.Offsets = append(e.rec.Offsets, o)
			}
		}
		return s.txns.save(e)
	}
	var gcode int16
	// Kafka checks the member only when the request names one: a producer
	// that knows just the group id (generation -1, no member: Java's
	// sendOffsetsToTransaction(offsets, groupId)) commits whether or not
	// the group has members (validateOffsetCommit, isTransactional;
	// TestTxnE2ERawErrors/TxnOffsetCommitMember).
	if req.version >= 3 && (r.Generation >= 0 || r.MemberID != "" || r.InstanceID != nil) {
		gcode = s.groups.commit(r.Group, r.MemberID, r.InstanceID, r.Generation, 0, true, store)
	} else if store() != nil {
		gcode = kerr.CoordinatorNotAvailable.Code
	}
	for i := range resp.Topics {
		for j := range resp.Topics[i].Partitions {
			if p := &resp.Topics[i].Partitions[j]; p.ErrorCode == 0 {
				p.ErrorCode = gcode
			}
		}
	}
	return resp
}

func (s *Server) endTxn(_ *connState, req *request) kmsg.Response {
	r := req.body.(*kmsg.EndTxnRequest)
	resp := r.ResponseKind().(*kmsg.EndTxnResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	e := s.txns.lock(r.TransactionalID)
	if e != nil {
		defer e.mu.Unlock()
	}
	code := checkTxn(e, r.ProducerID, r.ProducerEpoch, req.version, 2)
	if code == kerr.ConcurrentTransactions.Code {
		code = 0 // an end that failed before: the same decision finishes it below
	}
	if code != 0 {
		resp.ErrorCode = code
		return resp
	}
	switch st := e.rec.Status; {
	case st == txnOngoing,
		st == txnPrepareCommit && r.Commit, st == txnPrepareAbort && !r.Commit:
		if err := s.txns.complete(e, r.Commit); err != nil {
			s.lg.Error("ending a transaction failed", "transactional_id", r.TransactionalID, "commit", r.Commit, "error", err)
			resp.ErrorCode = kerr.CoordinatorNotAvailable.Code // the client retries; so does the coordinator
		}
	case st == txnCompleteCommit && r.Commit, st == txnCompleteAbort && !r.Commit:
		// A retry of an end already done.
	default:
		resp.ErrorCode = kerr.InvalidTxnState.Code
	}
	return resp
}

// txnBatch checks a transactional batch of a produce request: its
// transactional id must have a pending transaction, of the batch's
// producer and epoch, that added this partition. On success it returns
// the id's entry locked: the batch is queued before it is unlocked, so
// that no marker of this transaction goes ahead of it.
func (s *Server) txnBatch(txnID *string, p *spoollog.Partition, h spoollog.BatchHeader) (*txnEntry, int16, error) {
	if txnID == nil {
		return nil, kerr.InvalidTxnState.Code, fmt.Errorf("transactional batch of producer %d without a transactional id", h.ProducerID)
	}
	e := s.txns.lock(*txnID)
	code := checkTxn(e, h.ProducerID, h.ProducerEpoch, 0, 1)
	if code == kerr.ConcurrentTransactions.Code || (code == 0 && (e.rec.Status != txnOngoing || !p.TxnPending(h.ProducerID))) {
		code = kerr.InvalidTxnState.Code
	}
	if code != 0 {
		if e != nil {
			e.mu.Unlock()
		}
		return nil, code, fmt.Errorf("transactional id %q producer %d epoch %d: no pending transaction with this partition", *txnID, h.ProducerID, h.ProducerEpoch)
	}
	return e, 0, nil
}
