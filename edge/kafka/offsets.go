package kafka

import (
	spoollog "github.com/spoolmq/spool/log"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Special timestamps of ListOffsets.
const (
	latestTimestamp   = -1
	earliestTimestamp = -2
	maxTimestamp      = -3 // v7+: the record with the largest timestamp
)

func (s *Server) listOffsets(_ *connState, req *request) kmsg.Response {
	r := req.body.(*kmsg.ListOffsetsRequest)
	resp := r.ResponseKind().(*kmsg.ListOffsetsResponse)
	for _, rt := range r.Topics {
		st := kmsg.NewListOffsetsResponseTopic()
		st.Topic = rt.Topic
		t, terr := s.log.Topic(rt.Topic)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewListOffsetsResponseTopicPartition()
			sp.Partition, sp.Timestamp, sp.Offset, sp.LeaderEpoch = rp.Partition, -1, -1, 0
			err := terr
			if err == nil {
				err = listOffset(t, &sp, rp.Timestamp, r.IsolationLevel == 1)
			}
			if err != nil {
				sp.ErrorCode = errorCode(err)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// listOffset looks up one partition's offset for a ListOffsets timestamp.
// committed (read_committed) makes the latest offset the last stable one,
// and keeps the timestamp lookups below it.
func listOffset(t *spoollog.Topic, sp *kmsg.ListOffsetsResponseTopicPartition, ts int64, committed bool) error {
	p, err := t.Partition(sp.Partition)
	if err != nil {
		return err
	}
	switch ts {
	case latestTimestamp:
		sp.Offset = p.HighWatermark()
		if committed {
			sp.Offset = p.LastStableOffset()
		}
	case earliestTimestamp:
		sp.Offset = p.LogStartOffset()
	case maxTimestamp:
		off, recTs, found, err := p.MaxTimestamp()
		if err != nil {
			return err
		}
		if found && (!committed || off < p.LastStableOffset()) { // as below
			sp.Offset, sp.Timestamp = off, recTs
		}
	default:
		off, recTs, found, err := p.RecordForTime(ts)
		if err != nil {
			return err
		}
		// As Kafka does, read_committed answers no record at or past the
		// LSO (one of a pending transaction, or after it): nothing matched
		// (TestTxnE2EListOffsetsByTimestamp).
		if found && (!committed || off < p.LastStableOffset()) {
			sp.Offset, sp.Timestamp = off, recTs
		}
	}
	return nil
}

// offsetForLeaderEpoch answers for Spool's only leader epoch, 0: it ends
// at the high watermark. Consumers use it after a leader change to find
// where their log diverged; on a single node it never did.
func (s *Server) offsetForLeaderEpoch(_ *connState, req *request) kmsg.Response {
	r := req.body.(*kmsg.OffsetForLeaderEpochRequest)
	resp := r.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	for _, rt := range r.Topics {
		st := kmsg.NewOffsetForLeaderEpochResponseTopic()
		st.Topic = rt.Topic
		t, terr := s.log.Topic(rt.Topic)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			sp.Partition, sp.LeaderEpoch, sp.EndOffset = rp.Partition, -1, -1
			err := terr
			if err == nil {
				p, perr := t.Partition(rp.Partition)
				switch {
				case perr != nil:
					err = perr
				case rp.CurrentLeaderEpoch > 0:
					sp.ErrorCode = kerr.UnknownLeaderEpoch.Code
				case rp.LeaderEpoch >= 0:
					sp.LeaderEpoch, sp.EndOffset = 0, p.HighWatermark()
				}
			}
			if err != nil {
				sp.ErrorCode = errorCode(err)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
