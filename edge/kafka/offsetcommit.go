package kafka

import (
	"time"

	spoollog "github.com/spoolmq/spool/log"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// maxOffsetMetadata bounds a committed offset's metadata string (Kafka's
// offset.metadata.max.bytes).
const maxOffsetMetadata = 4096

// offsetCommit stores a group's offsets in one metadata transaction, so
// that they survive restarts; the answer comes after that fsync. The
// member is checked and the offsets stored under the coordinator's lock,
// as Kafka does under the group's: a member fenced by a rebalance in
// between would otherwise overwrite the new generation's commits.
func (s *Server) offsetCommit(_ *connState, req *request) kmsg.Response {
	r := req.body.(*kmsg.OffsetCommitRequest)
	resp := r.ResponseKind().(*kmsg.OffsetCommitResponse)
	gen, member := r.Generation, r.MemberID
	if req.version == 0 {
		gen = -1
	}
	now := time.Now()
	offsets := map[spoollog.TopicPartition]spoollog.CommittedOffset{}
	for _, rt := range r.Topics {
		st := kmsg.NewOffsetCommitResponseTopic()
		st.Topic = rt.Topic
		t, terr := s.log.Topic(rt.Topic)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetCommitResponseTopicPartition()
			sp.Partition = rp.Partition
			switch {
			case terr != nil || rp.Partition < 0 || rp.Partition >= t.NumPartitions():
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case rp.Metadata != nil && len(*rp.Metadata) > maxOffsetMetadata:
				sp.ErrorCode = kerr.OffsetMetadataTooLarge.Code
			default:
				co := spoollog.CommittedOffset{Offset: rp.Offset, LeaderEpoch: -1, CommitTime: now}
				if req.version >= 6 {
					co.LeaderEpoch = rp.LeaderEpoch
				}
				if rp.Metadata != nil {
					co.Metadata = *rp.Metadata
				}
				offsets[spoollog.TopicPartition{Topic: rt.Topic, Partition: rp.Partition}] = co
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	// Every partition not refused above gets the group's answer.
	setCode := func(code int16) {
		for i := range resp.Topics {
			for j := range resp.Topics[i].Partitions {
				if p := &resp.Topics[i].Partitions[j]; p.ErrorCode == 0 {
					p.ErrorCode = code
				}
			}
		}
	}
	if r.Group == "" {
		setCode(kerr.InvalidGroupID.Code)
		return resp
	}
	setCode(s.groups.commit(r.Group, member, r.InstanceID, gen, req.version, false, func() error {
		if len(offsets) == 0 {
			return nil
		}
		err := s.log.Meta().CommitOffsets(r.Group, offsets)
		if err != nil {
			// Nothing was stored: every partition that was to be fails.
			s.lg.Error("committing offsets failed", "group", r.Group, "error", err)
		}
		return err
	}))
	return resp
}

// fetchedOffset is one partition's committed offset as OffsetFetch shows
// it: -1 when the group committed none.
type fetchedOffset struct {
	offset      int64
	leaderEpoch int32
	metadata    *string
}

// groupOffsets reads a group's committed offsets for the partitions asked
// (nil: all of them).
func (s *Server) groupOffsets(group string, topics map[string][]int32, all bool) (map[string]map[int32]fetchedOffset, int16) {
	stored, err := s.log.Meta().FetchOffsets(group)
	if err != nil {
		s.lg.Error("reading committed offsets failed", "group", group, "error", err)
		return nil, kerr.CoordinatorNotAvailable.Code
	}
	out := map[string]map[int32]fetchedOffset{}
	put := func(t string, p int32, f fetchedOffset) {
		if out[t] == nil {
			out[t] = map[int32]fetchedOffset{}
		}
		out[t][p] = f
	}
	if all {
		for tp, co := range stored {
			md := co.Metadata
			put(tp.Topic, tp.Partition, fetchedOffset{co.Offset, co.LeaderEpoch, &md})
		}
		return out, 0
	}
	for t, parts := range topics {
		for _, p := range parts {
			f := fetchedOffset{offset: -1, leaderEpoch: -1}
			if co, ok := stored[spoollog.TopicPartition{Topic: t, Partition: p}]; ok {
				md := co.Metadata
				f = fetchedOffset{co.Offset, co.LeaderEpoch, &md}
			}
			put(t, p, f)
		}
	}
	return out, 0
}

func (s *Server) offsetFetch(_ *connState, req *request) kmsg.Response {
	r := req.body.(*kmsg.OffsetFetchRequest)
	resp := r.ResponseKind().(*kmsg.OffsetFetchResponse)
	if req.version >= 8 {
		for _, rg := range r.Groups {
			asked := map[string][]int32{}
			for _, t := range rg.Topics {
				asked[t.Topic] = t.Partitions
			}
			got, code := s.groupOffsets(rg.Group, asked, rg.Topics == nil)
			g := kmsg.NewOffsetFetchResponseGroup()
			g.Group, g.ErrorCode = rg.Group, code
			for t, parts := range got {
				gt := kmsg.NewOffsetFetchResponseGroupTopic()
				gt.Topic = t
				for p, f := range parts {
					gp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
					gp.Partition, gp.Offset, gp.LeaderEpoch, gp.Metadata = p, f.offset, f.leaderEpoch, f.metadata
					if r.RequireStable && s.txns.pendingOffsets(rg.Group, spoollog.TopicPartition{Topic: t, Partition: p}) {
						// KIP-447: a transaction will commit this offset;
						// the consumer asks again once it has. As in Kafka,
						// no offset comes with the error, so that none is
						// taken for the group's position
						// (TestTxnE2EOffsetFetchRequireStable).
						gp.ErrorCode = kerr.UnstableOffsetCommit.Code
						gp.Offset, gp.LeaderEpoch, gp.Metadata = -1, -1, new("")
					}
					gt.Partitions = append(gt.Partitions, gp)
				}
				g.Topics = append(g.Topics, gt)
			}
			resp.Groups = append(resp.Groups, g)
		}
		return resp
	}
	asked := map[string][]int32{}
	for _, t := range r.Topics {
		asked[t.Topic] = t.Partitions
	}
	got, code := s.groupOffsets(r.Group, asked, r.Topics == nil && req.version >= 2)
	resp.ErrorCode = code
	for t, parts := range got {
		rt := kmsg.NewOffsetFetchResponseTopic()
		rt.Topic = t
		for p, f := range parts {
			rp := kmsg.NewOffsetFetchResponseTopicPartition()
			rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata = p, f.offset, f.leaderEpoch, f.metadata
			rp.ErrorCode = code
			if code == 0 && req.version >= 7 && r.RequireStable && s.txns.pendingOffsets(r.Group, spoollog.TopicPartition{Topic: t, Partition: p}) {
				rp.ErrorCode = kerr.UnstableOffsetCommit.Code
				rp.Offset, rp.LeaderEpoch, rp.Metadata = -1, -1, new("") // as above
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
