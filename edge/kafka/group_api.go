package kafka

import (
	"net"
	"slices"

	spoollog "github.com/spoolmq/spool/log"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Request handlers of the classic group protocol (groups.go holds the
// state machine).

// remoteHost is a client's address as DescribeGroups shows it.
func remoteHost(c net.Conn) string {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return "/" + a.IP.String()
	}
	return c.RemoteAddr().String()
}

func (s *Server) joinGroup(cs *connState, req *request) kmsg.Response {
	r := req.body.(*kmsg.JoinGroupRequest)
	resp, wait := s.groups.join(r, req.version, req.clientID, remoteHost(cs.c))
	if wait != nil {
		select {
		case resp = <-wait:
		case <-s.ctx.Done():
			resp = r.ResponseKind().(*kmsg.JoinGroupResponse)
			resp.ErrorCode, resp.Generation = kerr.NotCoordinator.Code, -1
		}
	}
	if req.version < 7 {
		resp.ProtocolType = nil
	}
	return resp
}

func (s *Server) syncGroup(_ *connState, req *request) kmsg.Response {
	r := req.body.(*kmsg.SyncGroupRequest)
	resp := r.ResponseKind().(*kmsg.SyncGroupResponse)
	ans, wait := s.groups.sync(r)
	if wait != nil {
		select {
		case ans = <-wait:
		case <-s.ctx.Done():
			ans = syncAnswer{code: kerr.NotCoordinator.Code}
		}
	}
	resp.ErrorCode, resp.MemberAssignment = ans.code, ans.assignment
	if resp.MemberAssignment == nil {
		resp.MemberAssignment = []byte{}
	}
	resp.ProtocolType, resp.Protocol = r.ProtocolType, r.Protocol
	return resp
}

func (s *Server) heartbeat(_ *connState, req *request) kmsg.Response {
	r := req.body.(*kmsg.HeartbeatRequest)
	resp := r.ResponseKind().(*kmsg.HeartbeatResponse)
	resp.ErrorCode = s.groups.heartbeat(r)
	return resp
}

func (s *Server) leaveGroup(_ *connState, req *request) kmsg.Response {
	r := req.body.(*kmsg.LeaveGroupRequest)
	resp := r.ResponseKind().(*kmsg.LeaveGroupResponse)
	if req.version < 3 {
		_, resp.ErrorCode = s.groups.leave(r.Group, []string{r.MemberID}, []*string{nil})
		return resp
	}
	ids := make([]string, len(r.Members))
	insts := make([]*string, len(r.Members))
	for i, m := range r.Members {
		ids[i], insts[i] = m.MemberID, m.InstanceID
	}
	codes, _ := s.groups.leave(r.Group, ids, insts)
	for i, m := range r.Members {
		lm := kmsg.NewLeaveGroupResponseMember()
		lm.MemberID, lm.InstanceID, lm.ErrorCode = m.MemberID, m.InstanceID, codes[i]
		resp.Members = append(resp.Members, lm)
	}
	return resp
}

// describeGroups lists each group's state and members. A group Spool only
// knows from committed offsets is Empty; one it does not know at all is
// Dead, as Kafka answers. The protocol and the members' metadata and
// assignments are only shown for a Stable group (Kafka's
// GroupMetadata.summary): during a rebalance they are not settled, and
// tools read them as the group's current ones.
func (s *Server) describeGroups(_ *connState, req *request) kmsg.Response {
	r := req.body.(*kmsg.DescribeGroupsRequest)
	resp := r.ResponseKind().(*kmsg.DescribeGroupsResponse)
	committed := s.committedGroups()
	for _, id := range r.Groups {
		dg := kmsg.NewDescribeGroupsResponseGroup()
		dg.Group = id
		v, ok := s.groups.view(id)
		switch {
		case ok:
			stable := v.state == groupStable
			dg.State, dg.ProtocolType = v.state.String(), v.protocolType
			if stable {
				dg.Protocol = v.protocol
			}
			for _, m := range v.members {
				dm := kmsg.NewDescribeGroupsResponseGroupMember()
				dm.MemberID, dm.ClientID, dm.ClientHost = m.id, m.clientID, m.host
				if m.instanceID != "" {
					dm.InstanceID = &m.instanceID
				}
				dm.ProtocolMetadata, dm.MemberAssignment = []byte{}, []byte{}
				if stable {
					dm.ProtocolMetadata, dm.MemberAssignment = orEmpty(m.metadata), orEmpty(m.assignment)
				}
				dg.Members = append(dg.Members, dm)
			}
		case slices.Contains(committed, id):
			dg.State = groupEmpty.String()
		default:
			dg.State = "Dead"
			if req.version >= 6 {
				dg.ErrorCode = kerr.GroupIDNotFound.Code
			}
		}
		resp.Groups = append(resp.Groups, dg)
	}
	return resp
}

func orEmpty(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// committedGroups are the groups with committed offsets.
func (s *Server) committedGroups() []string {
	gs, err := s.log.Meta().Groups()
	if err != nil {
		s.lg.Error("listing committed groups failed", "error", err)
	}
	return gs
}

func (s *Server) listGroups(_ *connState, req *request) kmsg.Response {
	r := req.body.(*kmsg.ListGroupsRequest)
	resp := r.ResponseKind().(*kmsg.ListGroupsResponse)
	seen := map[string]bool{}
	add := func(id, protocolType string, state groupState) {
		if seen[id] {
			return
		}
		seen[id] = true
		if len(r.StatesFilter) > 0 && !slices.Contains(r.StatesFilter, state.String()) {
			return
		}
		lg := kmsg.NewListGroupsResponseGroup()
		lg.Group, lg.ProtocolType, lg.GroupState, lg.GroupType = id, protocolType, state.String(), "classic"
		resp.Groups = append(resp.Groups, lg)
	}
	for _, id := range s.groups.names() {
		if v, ok := s.groups.view(id); ok {
			pt := v.protocolType
			if pt == "" {
				pt = "consumer"
			}
			add(id, pt, v.state)
		}
	}
	for _, id := range s.committedGroups() {
		add(id, "consumer", groupEmpty)
	}
	return resp
}

func (s *Server) deleteGroups(_ *connState, req *request) kmsg.Response {
	r := req.body.(*kmsg.DeleteGroupsRequest)
	resp := r.ResponseKind().(*kmsg.DeleteGroupsResponse)
	committed := s.committedGroups()
	for _, id := range r.Groups {
		dg := kmsg.NewDeleteGroupsResponseGroup()
		dg.Group = id
		_, live := s.groups.view(id)
		switch {
		case !live && !slices.Contains(committed, id):
			dg.ErrorCode = kerr.GroupIDNotFound.Code
		case !s.groups.drop(id):
			dg.ErrorCode = kerr.NonEmptyGroup.Code
		default:
			if err := s.log.Meta().DeleteGroup(id); err != nil {
				dg.ErrorCode, dg.ErrorMessage = kerr.CoordinatorNotAvailable.Code, errMessage(err)
			}
		}
		resp.Groups = append(resp.Groups, dg)
	}
	return resp
}

// offsetDelete removes committed offsets of partitions the group does not
// consume now (Kafka refuses the others with GROUP_SUBSCRIBED_TO_TOPIC).
// What a group with members consumes is only known for the "consumer"
// protocol type: any other is refused whole with NON_EMPTY_GROUP, as Kafka
// does.
func (s *Server) offsetDelete(_ *connState, req *request) kmsg.Response {
	r := req.body.(*kmsg.OffsetDeleteRequest)
	resp := r.ResponseKind().(*kmsg.OffsetDeleteResponse)
	v, live := s.groups.view(r.Group)
	switch {
	case !live && !slices.Contains(s.committedGroups(), r.Group):
		resp.ErrorCode = kerr.GroupIDNotFound.Code
		return resp
	case len(v.members) > 0 && v.protocolType != "consumer":
		resp.ErrorCode = kerr.NonEmptyGroup.Code
		return resp
	}
	subscribed := v.subscribedTo()
	var tps []spoollog.TopicPartition
	for _, rt := range r.Topics {
		st := kmsg.NewOffsetDeleteResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetDeleteResponseTopicPartition()
			sp.Partition = rp.Partition
			if subscribed(rt.Topic) {
				sp.ErrorCode = kerr.GroupSubscribedToTopic.Code
			} else {
				tps = append(tps, spoollog.TopicPartition{Topic: rt.Topic, Partition: rp.Partition})
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	if len(tps) > 0 {
		if err := s.log.Meta().DeleteOffsets(r.Group, tps); err != nil {
			s.lg.Error("deleting committed offsets failed", "group", r.Group, "error", err)
			resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		}
	}
	return resp
}

// subscribedTo reports whether a consumer group's members subscribe to a
// topic. When their subscriptions cannot be known (no protocol chosen yet
// in the group's first rebalance, or metadata that does not parse), every
// topic counts as subscribed, as in Kafka: deleting the offsets a member
// is about to consume from would move it to its reset offset.
func (v groupView) subscribedTo() func(topic string) bool {
	topics := map[string]bool{}
	for _, m := range v.members {
		var md kmsg.ConsumerMemberMetadata
		if v.protocol == "" || md.ReadFrom(m.metadata) != nil {
			return func(string) bool { return true }
		}
		for _, t := range md.Topics {
			topics[t] = true
		}
	}
	return func(topic string) bool { return topics[topic] }
}
