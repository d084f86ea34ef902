package kafka

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	spoollog "github.com/spoolmq/spool/log"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// partResult collects the appends of one partition of a produce request.
type partResult struct {
	resp    *kmsg.ProduceResponseTopicPartition
	part    *spoollog.Partition
	pending []*seqBatch // in batch order; the first one's base offset is the answer
	code    int16       // set before any append, when the request is refused
	err     error
}

// produce appends every batch of the request, then (unless acks=0)
// answers once each is durable as its topic's sync policy says, or failed.
// acks=1 and acks=-1 are the same on a single node: both wait for the
// durable append.
func (s *Server) produce(_ *connState, req *request) kmsg.Response {
	return s.startProduce(req).finish()
}

// pendingProduce is a produce request whose appends are queued: finish
// waits for them and builds the answer, ready says whether it would wait.
type pendingProduce struct {
	results []*partResult
	finish  func() kmsg.Response
	// closeConn, set by finish, closes the connection after an acks=0
	// request that failed.
	closeConn bool
}

// ready reports whether every append of the request has completed, so
// that its answer can join the answers written ahead of it in one write.
func (pp *pendingProduce) ready() bool {
	for _, pr := range pp.results {
		for _, b := range pr.pending {
			select {
			case <-b.done:
			default:
				return false
			}
		}
	}
	return true
}

// startProduce queues the request's appends and returns them pending.
// Between the two the connection reads its next produce request, so that
// a producer with several requests in flight gets them into one fsync
// (conn.go).
func (s *Server) startProduce(req *request) *pendingProduce {
	r := req.body.(*kmsg.ProduceRequest)
	resp := r.ResponseKind().(*kmsg.ProduceResponse)
	var results []*partResult
	for _, rt := range r.Topics {
		st := kmsg.NewProduceResponseTopic()
		st.Topic = rt.Topic
		st.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(rt.Partitions))
		t, terr := s.topic(rt.Topic, false)
		for i, rp := range rt.Partitions {
			sp := &st.Partitions[i]
			*sp = kmsg.NewProduceResponseTopicPartition()
			sp.Partition, sp.BaseOffset, sp.LogAppendTime, sp.LogStartOffset = rp.Partition, -1, -1, -1
			pr := &partResult{resp: sp}
			results = append(results, pr)
			switch {
			case r.Acks != 0 && r.Acks != 1 && r.Acks != -1:
				pr.code, pr.err = kerr.InvalidRequiredAcks.Code, fmt.Errorf("acks %d: only -1, 0 and 1 exist", r.Acks)
			case terr != nil:
				pr.code, pr.err = errorCode(terr), terr
			default:
				pr.part, pr.err = t.Partition(rp.Partition)
				if pr.err != nil {
					pr.code = errorCode(pr.err)
					break
				}
				if r.Version < 7 && zstdAt(rp.Records) >= 0 {
					// KIP-110: zstd needs Produce v7 (Kafka's
					// ProduceRequest.validateRecords). Checked before any
					// append, so that nothing of the partition is stored.
					pr.code = kerr.UnsupportedCompressionType.Code
					pr.err = fmt.Errorf("produce requests with version %d are not allowed to use ZStandard compression", r.Version)
					break
				}
				s.appendBatches(pr, rp.Records, r.TransactionID)
			}
		}
		resp.Topics = append(resp.Topics, st)
	}

	deadline := time.Now().Add(time.Duration(max(r.TimeoutMillis, 0)) * time.Millisecond)
	pp := &pendingProduce{results: results}
	pp.finish = func() kmsg.Response {
		timeout := time.NewTimer(time.Until(deadline))
		defer timeout.Stop()
		for _, pr := range results {
			s.finishPartition(pr, timeout.C)
		}
		if r.Acks == 0 {
			// No answer to carry an error: as Kafka does, the connection
			// closes instead, so that the producer notices (and refreshes
			// its metadata) rather than losing records unseen.
			for _, pr := range results {
				pp.closeConn = pp.closeConn || pr.resp.ErrorCode != 0
			}
			return nil
		}
		return resp
	}
	return pp
}

// appendBatches queues each batch of a partition's records; txnID is the
// request's transactional id.
func (s *Server) appendBatches(pr *partResult, records []byte, txnID *string) {
	if len(records) == 0 {
		pr.code, pr.err = kerr.InvalidRecord.Code, errors.New("no record batch")
		return
	}
	for len(records) > 0 {
		h, err := spoollog.ParseBatchHeader(records)
		if err != nil {
			pr.code, pr.err = kerr.CorruptMessage.Code, err
			if len(records) >= 17 && records[16] != 2 {
				pr.code = kerr.UnsupportedForMessageFormat.Code // magic 0 and 1 (before Kafka 0.11)
				pr.err = fmt.Errorf("record batch magic %d: only RecordBatch v2 is stored", records[16])
			}
			return
		}
		batch := records[:h.Size()]
		records = records[h.Size():]
		if h.Control() {
			pr.code, pr.err = kerr.InvalidRecord.Code, errors.New("control batches are written by the transaction coordinator, not by producers")
			return
		}
		if h.LogAppendTime() {
			// Kafka: "Producer should not set timestamp type to LogAppendTime".
			pr.code, pr.err = kerr.InvalidTimestamp.Code, errors.New("a producer's batch cannot have the LogAppendTime timestamp type")
			return
		}
		if !s.appendBatch(pr, batch, h, txnID) {
			return
		}
	}
}

// zstdAt returns the position in records of the first RecordBatch v2
// with the zstd codec, or -1. It reads only the length, magic and
// attributes of each header, and stops at one it cannot read (whoever
// parses the batches reports that).
func zstdAt(records []byte) int {
	const lengthPos, magicPos, attrPos, headerSize = 8, 16, 21, 61 // log/doc.go
	for pos := 0; len(records)-pos >= headerSize && records[pos+magicPos] == 2; {
		b := records[pos:]
		if spoollog.Codec(binary.BigEndian.Uint16(b[attrPos:])&7) == spoollog.CodecZstd {
			return pos
		}
		size := 12 + int64(int32(binary.BigEndian.Uint32(b[lengthPos:])))
		if size < headerSize || size > int64(len(b)) {
			break
		}
		pos += int(size)
	}
	return -1
}

// appendBatch queues one batch; false when it was refused (pr says why).
func (s *Server) appendBatch(pr *partResult, batch []byte, h spoollog.BatchHeader, txnID *string) bool {
	if h.Transactional() {
		e, code, err := s.txnBatch(txnID, pr.part, h)
		if code != 0 {
			pr.code, pr.err = code, err
			return false
		}
		defer e.mu.Unlock() // once queued: no marker goes ahead of it
	}
	b := &seqBatch{done: make(chan struct{})}
	if h.ProducerID >= 0 {
		var dup bool
		var code int16
		b, dup, code = s.producers.accept(pr.part, h)
		if code != 0 {
			pr.code, pr.err = code, fmt.Errorf("producer %d epoch %d sequence %d refused", h.ProducerID, h.ProducerEpoch, h.BaseSequence)
			return false
		}
		if dup {
			pr.pending = append(pr.pending, b)
			return true
		}
	}
	pid, txn := h.ProducerID, h.Transactional()
	err := pr.part.AppendAsync(batch, func(res spoollog.AppendResult, err error) {
		if txn && err == nil {
			pr.part.TxnAppended(pid, res.BaseOffset)
		}
		if pid >= 0 {
			s.producers.finish(pr.part, pid, b, res, err)
			return
		}
		b.res, b.err = res, err
		close(b.done)
	})
	if err != nil {
		if pid >= 0 {
			s.producers.finish(pr.part, pid, b, spoollog.AppendResult{}, err)
		}
		pr.code, pr.err = errorCode(err), err
		return false
	}
	s.stats.ProducedBatch.Add(1)
	pr.pending = append(pr.pending, b)
	return true
}

// finishPartition waits for a partition's appends and fills in its answer.
func (s *Server) finishPartition(pr *partResult, timeout <-chan time.Time) {
	sp := pr.resp
	for _, b := range pr.pending {
		select {
		case <-b.done:
		case <-timeout:
			// Still being written: the client retries, and an idempotent
			// retry is answered from the original append.
			sp.ErrorCode = kerr.RequestTimedOut.Code
			return
		}
		if b.err != nil && pr.err == nil {
			pr.code, pr.err = errorCode(b.err), b.err
		}
		if sp.BaseOffset < 0 && b.err == nil {
			sp.BaseOffset, sp.LogAppendTime = b.res.BaseOffset, b.res.LogAppendTime
		}
	}
	if pr.err != nil {
		s.stats.ProduceErrors.Add(1)
		sp.ErrorCode, sp.ErrorMessage = pr.code, errMessage(pr.err)
		sp.BaseOffset = -1
		s.lg.Warn("produce refused", "partition", sp.Partition, "code", pr.code, "error", pr.err)
	}
	if pr.part != nil {
		sp.LogStartOffset = pr.part.LogStartOffset()
	}
}
