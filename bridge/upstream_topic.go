package bridge

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ensureTopic creates or checks one destination topic, and learns the
// largest batch it accepts.
func (k *KafkaLink) ensureTopic(ctx context.Context, cl *kgo.Client, adm *kadm.Client, d string, partitions int32, details kadm.TopicDetails) error {
	td, ok := details[d]
	created := false
	if !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition) {
		var err error
		if created, err = k.createTopic(ctx, cl, adm, d, partitions); err != nil {
			return err
		}
		if !created {
			// Created meanwhile by someone else: check it as it is.
			if td, err = k.listTopic(ctx, adm, d); err != nil {
				return err
			}
		}
	}
	if !created {
		if td.Err != nil {
			return fmt.Errorf("upstream topic %s: %w", d, td.Err)
		}
		if n := int32(len(td.Partitions)); k.opts.Partitioning == PartitionKeep && n < partitions {
			if err := k.growTopic(ctx, cl, adm, d, n, partitions); err != nil {
				return err
			}
		}
	}
	k.adoptRecreated(cl, d)
	k.learnMessageLimit(ctx, adm, d)
	return nil
}

// adoptRecreated makes the producer forget d when producing found it gone
// (recheck): a client that produced to a topic deleted upstream keeps
// failing one created again under its name (UNKNOWN_TOPIC_ID) until it
// forgets the old one. Records still in flight to d fail and are resent.
func (k *KafkaLink) adoptRecreated(cl *kgo.Client, d string) {
	k.mu.Lock()
	gone := k.gone[d]
	delete(k.gone, d)
	k.mu.Unlock()
	if gone {
		cl.PurgeTopicsFromClient(d)
		cl.ForceMetadataRefresh()
	}
}

// createTopic creates d with the local partition count; false (and no
// error) when it exists already. The link remembers, in its cursor
// namespace, that it created d: only such a topic is grown when partitions
// are added locally.
func (k *KafkaLink) createTopic(ctx context.Context, cl *kgo.Client, adm *kadm.Client, d string, partitions int32) (bool, error) {
	resp, err := adm.CreateTopic(ctx, partitions, -1, nil, d)
	if err == nil {
		err = resp.Err
	}
	switch {
	case errors.Is(err, kerr.TopicAlreadyExists):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("create upstream topic %s: %w", d, err)
	}
	k.lg.Info("created upstream topic", "topic", d, "partitions", partitions)
	if err := k.opts.Log.Meta().PutCursor(k.ns, createdKey(d), []byte{1}); err != nil {
		k.lg.Warn("remembering the created upstream topic failed; it will not be grown", "topic", d, "err", err)
	}
	// The producer learns of the topic now rather than at its next
	// periodic metadata refresh.
	cl.ForceMetadataRefresh()
	return true, nil
}

// createdKey is the key, in the link's cursor namespace, of the mark that
// the link created upstream topic d. Cursor keys (topic/partition) never
// contain ':', which no topic name may.
func createdKey(d string) string { return "created:" + d }

// growTopic gives d, which has n partitions, the local topic's count for
// keep, when the link created d itself; a topic someone else created is
// theirs to change, and is refused.
func (k *KafkaLink) growTopic(ctx context.Context, cl *kgo.Client, adm *kadm.Client, d string, n, partitions int32) error {
	short := fmt.Errorf("upstream topic %s has %d partitions, partitioning keep needs %d", d, n, partitions)
	_, mine, err := k.opts.Log.Meta().GetCursor(k.ns, createdKey(d))
	if err != nil || !mine {
		return short
	}
	resp, err := adm.UpdatePartitions(ctx, int(partitions), d)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return fmt.Errorf("%w; growing it failed: %w", short, err)
	}
	// Checked again: a response is no proof that the count took.
	td, err := k.listTopic(ctx, adm, d)
	if err == nil && int32(len(td.Partitions)) < partitions {
		err = fmt.Errorf("%d partitions after growing", len(td.Partitions))
	}
	if err != nil {
		return fmt.Errorf("%w; growing it failed: %w", short, err)
	}
	k.lg.Info("grew upstream topic for partitions added locally", "topic", d, "from", n, "to", partitions)
	cl.ForceMetadataRefresh()
	return nil
}

func (k *KafkaLink) listTopic(ctx context.Context, adm *kadm.Client, d string) (kadm.TopicDetail, error) {
	details, err := adm.ListTopics(ctx, d)
	if err != nil {
		return kadm.TopicDetail{}, fmt.Errorf("list upstream topics: %w", err)
	}
	td, ok := details[d]
	if !ok {
		return kadm.TopicDetail{}, fmt.Errorf("upstream topic %s: exists but is not listed", d)
	}
	return td, nil
}

// learnMessageLimit reads d's max.message.bytes, the largest record batch
// it accepts, so that rounds to d stay below it. Without an answer the link
// goes on without a limit, and learns one from MESSAGE_TOO_LARGE.
func (k *KafkaLink) learnMessageLimit(ctx context.Context, adm *kadm.Client, d string) {
	rcs, err := adm.DescribeTopicConfigs(ctx, d)
	var rc kadm.ResourceConfig
	if err == nil {
		rc, err = rcs.On(d, nil)
	}
	if err == nil {
		err = rc.Err
	}
	if err != nil {
		k.lg.Debug("reading the upstream topic's max.message.bytes failed", "topic", d, "err", err)
		return
	}
	for _, c := range rc.Configs {
		if c.Key != "max.message.bytes" {
			continue
		}
		if v, err := strconv.ParseInt(c.MaybeValue(), 10, 32); err == nil && v > 0 {
			k.mu.Lock()
			if k.msgLimits == nil {
				k.msgLimits = map[string]int64{}
			}
			k.msgLimits[d] = v
			k.mu.Unlock()
		}
	}
}

// messageLimit is the largest batch d accepts, as far as known; 0 when not.
func (k *KafkaLink) messageLimit(d string) int64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.msgLimits[d]
}
