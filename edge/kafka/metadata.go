package kafka

import (
	"errors"

	spoollog "github.com/spoolmq/spool/log"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// topic returns the named topic, creating it with the log's defaults
// when create is set and auto-creation is on.
func (s *Server) topic(name string, create bool) (*spoollog.Topic, error) {
	t, err := s.log.Topic(name)
	if !errors.Is(err, spoollog.ErrUnknownTopic) || !create || !s.opts.AutoCreateTopics {
		return t, err
	}
	if err := spoollog.ValidateTopicName(name); err != nil {
		return nil, err
	}
	t, err = s.log.CreateTopic(name, spoollog.DefaultTopicConfig())
	if errors.Is(err, spoollog.ErrTopicExists) {
		return s.log.Topic(name)
	}
	if err == nil {
		s.lg.Info("topic created by a Kafka client", "topic", name)
	}
	return t, err
}

func (s *Server) metadata(cs *connState, req *request) kmsg.Response {
	r := req.body.(*kmsg.MetadataRequest)
	resp := r.ResponseKind().(*kmsg.MetadataResponse)
	b := kmsg.NewMetadataResponseBroker()
	b.NodeID, b.Host, b.Port = NodeID, cs.lis.host, cs.lis.port
	resp.Brokers = []kmsg.MetadataResponseBroker{b}
	resp.ClusterID = &s.opts.ClusterID
	resp.ControllerID = NodeID

	var names []string
	switch {
	case r.Topics == nil || (req.version == 0 && len(r.Topics) == 0):
		names = s.log.Topics() // all topics (v0: an empty list means all)
	default:
		for _, t := range r.Topics {
			if t.Topic != nil {
				names = append(names, *t.Topic)
			}
		}
	}
	// Before v4 there is no flag and brokers created topics on metadata
	// requests when auto-creation was on.
	create := r.Topics != nil && (req.version < 4 || r.AllowAutoTopicCreation)
	for _, name := range names {
		mt := kmsg.NewMetadataResponseTopic()
		mt.Topic = &name
		if spoollog.ValidateTopicName(name) != nil {
			mt.ErrorCode = kerr.InvalidTopicException.Code
			resp.Topics = append(resp.Topics, mt)
			continue
		}
		t, err := s.topic(name, create)
		if err != nil {
			mt.ErrorCode = errorCode(err)
			resp.Topics = append(resp.Topics, mt)
			continue
		}
		for i := range t.NumPartitions() {
			p := kmsg.NewMetadataResponseTopicPartition()
			p.Partition, p.Leader, p.LeaderEpoch = i, NodeID, 0
			p.Replicas, p.ISR = []int32{NodeID}, []int32{NodeID}
			mt.Partitions = append(mt.Partitions, p)
		}
		resp.Topics = append(resp.Topics, mt)
	}
	return resp
}

func (s *Server) describeCluster(cs *connState, req *request) kmsg.Response {
	resp := req.body.ResponseKind().(*kmsg.DescribeClusterResponse)
	resp.ClusterID = s.opts.ClusterID
	resp.ControllerID = NodeID
	b := kmsg.NewDescribeClusterResponseBroker()
	b.NodeID, b.Host, b.Port = NodeID, cs.lis.host, cs.lis.port
	resp.Brokers = []kmsg.DescribeClusterResponseBroker{b}
	return resp
}

func (s *Server) findCoordinator(cs *connState, req *request) kmsg.Response {
	r := req.body.(*kmsg.FindCoordinatorRequest)
	resp := r.ResponseKind().(*kmsg.FindCoordinatorResponse)
	// Spool is every coordinator of its cluster, for groups and for
	// transactions alike; the requests that follow say what it serves.
	resp.NodeID, resp.Host, resp.Port = NodeID, cs.lis.host, cs.lis.port
	for _, k := range r.CoordinatorKeys {
		c := kmsg.NewFindCoordinatorResponseCoordinator()
		c.Key, c.NodeID, c.Host, c.Port = k, NodeID, cs.lis.host, cs.lis.port
		resp.Coordinators = append(resp.Coordinators, c)
	}
	return resp
}
