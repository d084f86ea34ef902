package kafka

import (
	"fmt"
	"slices"

	spoollog "github.com/spoolmq/spool/log"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// describeTopic lists a topic's settings (all, or those in names).
func describeTopic(c *spoollog.TopicConfig, names []string) []kmsg.DescribeConfigsResponseResourceConfig {
	def := spoollog.DefaultTopicConfig()
	var out []kmsg.DescribeConfigsResponseResourceConfig
	add := func(name, value, defValue, doc string, readOnly bool) {
		if names != nil && !slices.Contains(names, name) {
			return
		}
		e := kmsg.NewDescribeConfigsResponseResourceConfig()
		e.Name, e.Value, e.ReadOnly = name, &value, readOnly
		e.IsDefault = value == defValue
		e.Source = kmsg.ConfigSourceDynamicTopicConfig
		if e.IsDefault {
			e.Source = kmsg.ConfigSourceDefaultConfig
		}
		e.ConfigType = kmsg.ConfigTypeString
		e.Documentation = &doc
		out = append(out, e)
	}
	for _, s := range topicSettings {
		add(s.name, s.get(c), s.get(&def), s.doc, false)
	}
	for name, v := range fixedSettings {
		add(name, v, v, "fixed on a single node", true)
	}
	slices.SortFunc(out, func(a, b kmsg.DescribeConfigsResponseResourceConfig) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out
}

func (s *Server) describeConfigs(_ *connState, req *request) kmsg.Response {
	r := req.body.(*kmsg.DescribeConfigsRequest)
	resp := r.ResponseKind().(*kmsg.DescribeConfigsResponse)
	for _, rr := range r.Resources {
		sr := kmsg.NewDescribeConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		switch rr.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			t, err := s.log.Topic(rr.ResourceName)
			if err != nil {
				sr.ErrorCode, sr.ErrorMessage = errorCode(err), errMessage(err)
				break
			}
			cfg := t.Config()
			sr.Configs = describeTopic(&cfg, rr.ConfigNames)
			if !r.IncludeDocumentation {
				for i := range sr.Configs {
					sr.Configs[i].Documentation = nil
				}
			}
		case kmsg.ConfigResourceTypeBroker:
			// The broker's settings live in Spool's own config file; none
			// are exposed here.
		default:
			sr.ErrorCode = kerr.InvalidRequest.Code
			sr.ErrorMessage = errMessage(fmt.Errorf("resource type %v is not served", rr.ResourceType))
		}
		resp.Resources = append(resp.Resources, sr)
	}
	return resp
}

// alterTopic applies change to a copy of the topic's config and stores it.
// A change of partitions is refused: that is CreatePartitions' job.
func (s *Server) alterTopic(name string, validateOnly bool, change func(*spoollog.TopicConfig) error) (int16, error) {
	t, err := s.log.Topic(name)
	if err != nil {
		return errorCode(err), err
	}
	cfg := t.Config()
	if err := change(&cfg); err != nil {
		return kerr.InvalidConfig.Code, err
	}
	if err := cfg.Validate(); err != nil {
		return kerr.InvalidConfig.Code, err
	}
	if validateOnly {
		return 0, nil
	}
	if err := s.log.AlterTopic(name, cfg); err != nil {
		return kerr.InvalidConfig.Code, err
	}
	s.lg.Info("topic settings changed by a Kafka client", "topic", name)
	return 0, nil
}

// alterConfigs replaces a topic's settings: those not named go back to
// their defaults, as Kafka's (non-incremental) AlterConfigs does.
func (s *Server) alterConfigs(_ *connState, req *request) kmsg.Response {
	r := req.body.(*kmsg.AlterConfigsRequest)
	resp := r.ResponseKind().(*kmsg.AlterConfigsResponse)
	for _, rr := range r.Resources {
		sr := kmsg.NewAlterConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		if rr.ResourceType != kmsg.ConfigResourceTypeTopic {
			sr.ErrorCode, sr.ErrorMessage = kerr.InvalidRequest.Code, errMessage(fmt.Errorf("only topic settings can be changed"))
			resp.Resources = append(resp.Resources, sr)
			continue
		}
		code, err := s.alterTopic(rr.ResourceName, r.ValidateOnly, func(c *spoollog.TopicConfig) error {
			parts := c.Partitions
			*c = spoollog.DefaultTopicConfig()
			c.Partitions = parts
			for _, e := range rr.Configs {
				if e.Value == nil {
					continue
				}
				if err := setTopicConfig(c, e.Name, *e.Value); err != nil {
					return err
				}
			}
			return nil
		})
		sr.ErrorCode, sr.ErrorMessage = code, errMessage(err)
		resp.Resources = append(resp.Resources, sr)
	}
	return resp
}

func (s *Server) incrementalAlterConfigs(_ *connState, req *request) kmsg.Response {
	r := req.body.(*kmsg.IncrementalAlterConfigsRequest)
	resp := r.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
	for _, rr := range r.Resources {
		sr := kmsg.NewIncrementalAlterConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		if rr.ResourceType != kmsg.ConfigResourceTypeTopic {
			sr.ErrorCode, sr.ErrorMessage = kerr.InvalidRequest.Code, errMessage(fmt.Errorf("only topic settings can be changed"))
			resp.Resources = append(resp.Resources, sr)
			continue
		}
		code, err := s.alterTopic(rr.ResourceName, r.ValidateOnly, func(c *spoollog.TopicConfig) error {
			for _, e := range rr.Configs {
				switch e.Op {
				case kmsg.IncrementalAlterConfigOpSet:
					if e.Value == nil {
						return fmt.Errorf("%s: no value to set", e.Name)
					}
					if err := setTopicConfig(c, e.Name, *e.Value); err != nil {
						return err
					}
				case kmsg.IncrementalAlterConfigOpDelete:
					if err := resetTopicConfig(c, e.Name); err != nil {
						return err
					}
				default:
					return fmt.Errorf("%s: %v applies to list settings; Spool's topic settings are single values", e.Name, e.Op)
				}
			}
			return nil
		})
		sr.ErrorCode, sr.ErrorMessage = code, errMessage(err)
		resp.Resources = append(resp.Resources, sr)
	}
	return resp
}
