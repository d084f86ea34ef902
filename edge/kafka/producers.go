package kafka

import (
	"encoding/binary"
	"math"
	"sync"

	spoollog "github.com/spoolmq/spool/log"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Idempotent producing: each (producer id, partition) has an epoch and the
// sequence of the last batch accepted. A batch must continue the sequence;
// a retry of one of the last batches (a client that did not see our
// answer) is answered with the original offsets and not written again.

// recentBatches is how many batches per producer and partition are kept
// for duplicate detection: Kafka's limit on in-flight requests of an
// idempotent producer (max.in.flight.requests.per.connection <= 5).
const recentBatches = 5

// pidBlock is how many producer ids are handed out per metadata write.
const pidBlock = 1024

const (
	nsKafka      = "kafka"
	keyPIDBlock  = "producer_id_block" // the end of the last block of ids handed out
	keyClusterID = "cluster_id"
)

type producers struct {
	meta *spoollog.Meta

	mu     sync.Mutex
	next   int64 // next producer id
	limit  int64 // ids below limit are reserved in the metadata store
	epochs map[int64]int16
	// fromLog: the epoch in epochs was read back from the log after a
	// crash (producer_rebuild.go), and is a floor, not the last one.
	fromLog map[int64]bool
	parts   map[pidPartition]*seqState
}

type pidPartition struct {
	pid  int64
	part *spoollog.Partition
}

type seqState struct {
	epoch   int16
	lastSeq int32
	recent  []*seqBatch // oldest first
	// gapOK: rebuilt from a compacted log, where the producer's last
	// batches may be gone; its next batch is taken whatever its sequence
	// (duplicates of the batches found are still answered as such).
	gapOK bool
}

// seqBatch is one accepted batch; done is closed when its append finished.
type seqBatch struct {
	first, last int32
	done        chan struct{}
	res         spoollog.AppendResult
	err         error
}

func newProducers(meta *spoollog.Meta) (*producers, error) {
	ps := &producers{meta: meta, epochs: map[int64]int16{}, fromLog: map[int64]bool{}, parts: map[pidPartition]*seqState{}}
	b, ok, err := meta.GetCursor(nsKafka, keyPIDBlock)
	if err != nil {
		return nil, err
	}
	if ok && len(b) == 8 {
		// Ids of the last block may have been handed out before a crash:
		// start after it.
		ps.next = int64(binary.BigEndian.Uint64(b))
		ps.limit = ps.next
	}
	return ps, nil
}

// newID hands out a producer id that was never handed out before.
func (ps *producers) newID() (int64, error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.next >= ps.limit {
		limit := ps.next + pidBlock
		if err := ps.meta.PutCursor(nsKafka, keyPIDBlock, binary.BigEndian.AppendUint64(nil, uint64(limit))); err != nil {
			return 0, err
		}
		ps.limit = limit
	}
	id := ps.next
	ps.next++
	ps.epochs[id] = 0
	return id, nil
}

// bump gives a known producer a new epoch (KIP-360), fencing the old one.
func (ps *producers) bump(pid int64, epoch int16) (int16, int16) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	cur, ok := ps.epochs[pid]
	if !ok && pid >= ps.next {
		return 0, kerr.InvalidProducerIDMapping.Code
	}
	if ok && epoch > cur && ps.fromLog[pid] {
		// Its epoch was read back from its batches after a crash: it may
		// have bumped since without writing (the bump was not stored).
		cur = epoch
	}
	if ok && epoch != cur {
		return 0, kerr.InvalidProducerEpoch.Code
	}
	delete(ps.fromLog, pid)
	if cur == math.MaxInt16 {
		return 0, kerr.InvalidProducerEpoch.Code
	}
	ps.epochs[pid] = cur + 1
	return cur + 1, 0
}

// accept checks a batch's sequence. It returns the batch to fill in once
// appended, or a duplicate (already accepted: wait on it and answer with
// its result), or an error code.
func (ps *producers) accept(part *spoollog.Partition, h spoollog.BatchHeader) (b *seqBatch, dup bool, code int16) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	first, last := h.BaseSequence, lastSequence(h)
	if first < 0 {
		return nil, false, kerr.InvalidRecord.Code
	}
	// Epochs are checked per partition, as Kafka does: a producer that
	// bumped its epoch for one partition (KIP-360) still has batches of
	// the old one in flight for others.
	k := pidPartition{h.ProducerID, part}
	st := ps.parts[k]
	switch {
	case st == nil:
		// No state for this producer here (a new partition, a topic
		// deleted and created again, a restart): Kafka takes the batch
		// as it comes, whatever its sequence.
		st = &seqState{epoch: h.ProducerEpoch}
		ps.parts[k] = st
	case h.ProducerEpoch < st.epoch:
		return nil, false, kerr.InvalidProducerEpoch.Code
	case h.ProducerEpoch > st.epoch:
		if first != 0 {
			return nil, false, kerr.OutOfOrderSequenceNumber.Code
		}
		*st = seqState{epoch: h.ProducerEpoch}
	default:
		for _, r := range st.recent {
			if r.first == first && r.last == last {
				return r, true, 0
			}
		}
		if first != nextSeq(st.lastSeq) && !st.gapOK {
			return nil, false, kerr.OutOfOrderSequenceNumber.Code
		}
	}
	if cur := ps.epochs[h.ProducerID]; h.ProducerEpoch > cur {
		ps.epochs[h.ProducerID] = h.ProducerEpoch
	}
	b = &seqBatch{first: first, last: last, done: make(chan struct{})}
	st.lastSeq, st.gapOK = last, false
	st.recent = append(st.recent, b)
	if len(st.recent) > recentBatches {
		st.recent = append(st.recent[:0], st.recent[1:]...)
	}
	return b, false, 0
}

// finish records a batch's append. A failed append was not stored: the
// sequence goes back to before it, so the client's retry is taken.
func (ps *producers) finish(part *spoollog.Partition, pid int64, b *seqBatch, res spoollog.AppendResult, err error) {
	ps.mu.Lock()
	b.res, b.err = res, err
	if err != nil {
		if st := ps.parts[pidPartition{pid, part}]; st != nil {
			for i, r := range st.recent {
				if r == b {
					st.recent = st.recent[:i] // later batches fail too: the log's errors are sticky
					st.lastSeq = b.first - 1
					break
				}
			}
		}
	}
	ps.mu.Unlock()
	close(b.done)
}

// known records a producer's epoch: one the transaction coordinator
// handed out, or (fromLog) the last found in its batches after a crash,
// a floor for its next bump.
func (ps *producers) known(pid int64, epoch int16, fromLog bool) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if cur, ok := ps.epochs[pid]; !ok || epoch > cur {
		ps.epochs[pid] = epoch
	}
	if fromLog {
		ps.fromLog[pid] = true
	}
}

// forget drops the state of a deleted partition.
func (ps *producers) forget(t *spoollog.Topic) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for k := range ps.parts {
		if k.part.Topic() == t {
			delete(ps.parts, k)
		}
	}
}

// lastSequence is the sequence of a batch's last record; sequences wrap
// to 0 after MaxInt32.
func lastSequence(h spoollog.BatchHeader) int32 {
	return int32((int64(h.BaseSequence) + int64(h.LastOffsetDelta)) % (math.MaxInt32 + 1))
}

// rebuild sets a producer's sequence state in a partition from its
// batches found in the log, oldest first, unless the partition has state
// for it already (the snapshot of a clean shutdown).
func (ps *producers) rebuild(pid int64, part *spoollog.Partition, batches []spoollog.BatchHeader) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	k := pidPartition{pid, part}
	if ps.parts[k] != nil || len(batches) == 0 {
		return
	}
	// Compaction removes batches whose records were all superseded,
	// maybe the producer's last ones (Kafka keeps them, emptied; Spool's
	// compaction does not).
	st := &seqState{gapOK: part.Topic().Config().Compacts()}
	for _, h := range batches {
		if len(st.recent) > 0 && h.ProducerEpoch != st.epoch {
			// A new epoch starts the sequences again: the batches of the
			// one before are no duplicates of the new one's.
			st.recent = nil
		}
		b := &seqBatch{first: h.BaseSequence, last: lastSequence(h), done: make(chan struct{}),
			res: spoollog.AppendResult{BaseOffset: h.BaseOffset, LastOffset: h.LastOffset(), LogAppendTime: -1}}
		if h.LogAppendTime() {
			b.res.LogAppendTime = h.MaxTimestamp
		}
		close(b.done)
		st.epoch, st.lastSeq = h.ProducerEpoch, b.last
		st.recent = append(st.recent, b)
		if len(st.recent) > recentBatches {
			st.recent = st.recent[1:]
		}
	}
	ps.parts[k] = st
}

func nextSeq(s int32) int32 {
	if s == math.MaxInt32 {
		return 0
	}
	return s + 1
}

func (s *Server) initProducerID(_ *connState, req *request) kmsg.Response {
	r := req.body.(*kmsg.InitProducerIDRequest)
	resp := r.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if r.TransactionalID != nil {
		s.initTxnProducer(r, req.version, resp)
		return resp
	}
	if req.version >= 3 && r.ProducerID >= 0 {
		epoch, code := s.producers.bump(r.ProducerID, r.ProducerEpoch)
		resp.ErrorCode = code
		if code == 0 {
			resp.ProducerID, resp.ProducerEpoch = r.ProducerID, epoch
		}
		return resp
	}
	id, err := s.producers.newID()
	if err != nil {
		s.lg.Error("handing out a producer id failed", "error", err)
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return resp
}
