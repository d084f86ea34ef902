package kafka

import (
	"errors"
	"fmt"

	spoollog "github.com/spoolmq/spool/log"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (s *Server) createTopics(_ *connState, req *request) kmsg.Response {
	r := req.body.(*kmsg.CreateTopicsRequest)
	resp := r.ResponseKind().(*kmsg.CreateTopicsResponse)
	for _, rt := range r.Topics {
		st := kmsg.NewCreateTopicsResponseTopic()
		st.Topic = rt.Topic
		st.NumPartitions, st.ReplicationFactor = -1, -1
		cfg, code, err := s.newTopicConfig(rt)
		if err == nil {
			if r.ValidateOnly {
				if _, terr := s.log.Topic(rt.Topic); terr == nil {
					code, err = kerr.TopicAlreadyExists.Code, fmt.Errorf("topic %q already exists", rt.Topic)
				}
			} else if _, err = s.log.CreateTopic(rt.Topic, cfg); err != nil {
				code = errorCode(err)
				if !errors.Is(err, spoollog.ErrTopicExists) {
					code = kerr.InvalidRequest.Code
				}
			} else {
				s.lg.Info("topic created by a Kafka client", "topic", rt.Topic, "partitions", cfg.Partitions)
			}
		}
		if err != nil {
			st.ErrorCode, st.ErrorMessage = code, errMessage(err)
		} else {
			st.NumPartitions, st.ReplicationFactor = cfg.Partitions, 1
			for _, e := range describeTopic(&cfg, nil) {
				c := kmsg.NewCreateTopicsResponseTopicConfig()
				c.Name, c.Value, c.Source, c.ReadOnly = e.Name, e.Value, int8(e.Source), e.ReadOnly
				st.Configs = append(st.Configs, c)
			}
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// newTopicConfig checks a topic to create and builds its configuration.
func (s *Server) newTopicConfig(rt kmsg.CreateTopicsRequestTopic) (spoollog.TopicConfig, int16, error) {
	cfg := spoollog.DefaultTopicConfig()
	if err := spoollog.ValidateTopicName(rt.Topic); err != nil {
		return cfg, kerr.InvalidTopicException.Code, err
	}
	switch {
	case rt.ReplicationFactor > 1:
		return cfg, kerr.InvalidReplicationFactor.Code, fmt.Errorf("replication factor %d: Spool is a single node", rt.ReplicationFactor)
	case len(rt.ReplicaAssignment) > 0:
		return cfg, kerr.InvalidReplicaAssignment.Code, errors.New("replica assignments are not supported: Spool is a single node")
	case rt.NumPartitions == 0 || rt.NumPartitions < -1:
		return cfg, kerr.InvalidPartitions.Code, fmt.Errorf("%d partitions", rt.NumPartitions)
	case rt.NumPartitions > 0:
		cfg.Partitions = rt.NumPartitions
	}
	for _, c := range rt.Configs {
		if c.Value == nil {
			continue // null: the default
		}
		if err := setTopicConfig(&cfg, c.Name, *c.Value); err != nil {
			return cfg, kerr.InvalidConfig.Code, err
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, kerr.InvalidConfig.Code, err
	}
	return cfg, 0, nil
}

func (s *Server) deleteTopics(_ *connState, req *request) kmsg.Response {
	r := req.body.(*kmsg.DeleteTopicsRequest)
	resp := r.ResponseKind().(*kmsg.DeleteTopicsResponse)
	names := r.TopicNames
	for _, t := range r.Topics { // v6+
		if t.Topic == nil {
			st := kmsg.NewDeleteTopicsResponseTopic()
			st.TopicID, st.ErrorCode = t.TopicID, kerr.UnknownTopicID.Code
			resp.Topics = append(resp.Topics, st)
			continue
		}
		names = append(names, *t.Topic)
	}
	for _, name := range names {
		st := kmsg.NewDeleteTopicsResponseTopic()
		st.Topic = &name
		t, err := s.log.Topic(name)
		if err == nil {
			err = s.log.DeleteTopic(name)
			s.producers.forget(t)
		}
		if err != nil {
			st.ErrorCode, st.ErrorMessage = errorCode(err), errMessage(err)
		} else {
			s.lg.Info("topic deleted by a Kafka client", "topic", name)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

func (s *Server) createPartitions(_ *connState, req *request) kmsg.Response {
	r := req.body.(*kmsg.CreatePartitionsRequest)
	resp := r.ResponseKind().(*kmsg.CreatePartitionsResponse)
	for _, rt := range r.Topics {
		st := kmsg.NewCreatePartitionsResponseTopic()
		st.Topic = rt.Topic
		t, err := s.log.Topic(rt.Topic)
		code := int16(0)
		if err != nil {
			code = errorCode(err)
		} else if have := t.NumPartitions(); rt.Count <= have {
			code, err = kerr.InvalidPartitions.Code, fmt.Errorf("topic %q has %d partitions: the count can only grow", rt.Topic, have)
		} else if !r.ValidateOnly {
			cfg := t.Config()
			cfg.Partitions = rt.Count
			if err = s.log.AlterTopic(rt.Topic, cfg); err != nil {
				code = kerr.InvalidPartitions.Code
			}
		}
		if err != nil {
			st.ErrorCode, st.ErrorMessage = code, errMessage(err)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// deleteRecords moves partitions' log start offsets (kafka-delete-records,
// kadm DeleteRecords): offset -1 means the high watermark.
func (s *Server) deleteRecords(_ *connState, req *request) kmsg.Response {
	r := req.body.(*kmsg.DeleteRecordsRequest)
	resp := r.ResponseKind().(*kmsg.DeleteRecordsResponse)
	for _, rt := range r.Topics {
		st := kmsg.NewDeleteRecordsResponseTopic()
		st.Topic = rt.Topic
		t, terr := s.log.Topic(rt.Topic)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewDeleteRecordsResponseTopicPartition()
			sp.Partition, sp.LowWatermark = rp.Partition, -1
			err := terr
			if err == nil {
				var p *spoollog.Partition
				if p, err = t.Partition(rp.Partition); err == nil {
					sp.LowWatermark, err = p.DeleteRecords(rp.Offset)
				}
			}
			if err != nil {
				sp.ErrorCode = errorCode(err)
				s.lg.Warn("delete records refused", "topic", rt.Topic, "partition", rp.Partition, "offset", rp.Offset, "error", err)
			} else {
				s.lg.Info("records deleted by a Kafka client", "topic", rt.Topic, "partition", rp.Partition, "log_start", sp.LowWatermark)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
