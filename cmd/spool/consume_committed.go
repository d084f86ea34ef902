package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	spoollog "github.com/spoolmq/spool/log"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A read_committed consumer is never given the batches of an aborted
// transaction, and their abort marker may lie past the last stable offset
// (another transaction began before the first one ended). A consume
// without --follow that counts the offsets it is given then never sees
// its end: committedRest looks, with a Fetch of its own, whether anything
// deliverable is left below it.

// committedLookEvery is how long a committed consume without --follow
// polls for records before it looks for aborted batches.
const committedLookEvery = time.Second

// committedRest reports whether the partition holds a record a
// read_committed consumer would be given in [from, end): a batch that is
// neither a marker nor of an aborted transaction. When it cannot tell (a
// leader moving, an empty answer) it says there may be: the consume goes
// on waiting, as it would without the look.
func committedRest(ctx context.Context, cl *kgo.Client, topic string, part int32, from, end int64) (bool, error) {
	// The leader and the topic's id are looked up each time: leadership
	// moves, and Kafka from 3.1 knows topics by id in Fetch v13+.
	td, err := describeTopic(ctx, kadm.NewClient(cl), topic)
	if err != nil {
		return false, err
	}
	pd, ok := td.Partitions[part]
	if !ok {
		return false, fmt.Errorf("topic %q has no partition %d", topic, part)
	}
	for off := from; off < end; {
		req := kmsg.NewPtrFetchRequest()
		req.ReplicaID, req.MaxWaitMillis, req.MaxBytes, req.IsolationLevel = -1, 0, 1<<20, 1
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = topic, [16]byte(td.ID)
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch, rp.LogStartOffset = part, off, 1<<20, -1, -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl.Broker(int(pd.Leader)))
		if err != nil {
			return false, err
		}
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			return false, errors.New("fetch: an answer without the partition asked for")
		}
		sp := resp.Topics[0].Partitions[0]
		if err := kerr.ErrorForCode(sp.ErrorCode); err != nil {
			if kerr.IsRetriable(err) {
				return true, nil // a leader moving: look again later
			}
			return false, err
		}
		next, deliverable := walkCommitted(sp.RecordBatches, sp.AbortedTransactions, off, end)
		if deliverable || next <= off {
			// A record to give, or nothing below end though there is
			// data there (a throttled answer): assume there is more.
			return true, nil
		}
		off = next
	}
	return false, nil
}

// walkCommitted walks fetched batches from off as a read_committed client
// does (Kafka's: an aborted transaction's batches are skipped from its
// first offset until its producer's abort marker). It reports whether one
// below end would be given to the consumer, and the offset after the
// batches walked.
func walkCommitted(data []byte, aborted []kmsg.FetchResponseTopicPartitionAbortedTransaction, off, end int64) (next int64, deliverable bool) {
	aborted = slices.Clone(aborted)
	slices.SortFunc(aborted, func(a, b kmsg.FetchResponseTopicPartitionAbortedTransaction) int {
		return int(min(max(a.FirstOffset-b.FirstOffset, -1), 1))
	})
	abortedPIDs := map[int64]bool{}
	next = off
	_ = spoollog.SplitBatches(data, func(h spoollog.BatchHeader, batch []byte) error {
		if h.LastOffset() < off {
			return nil
		}
		if h.BaseOffset >= end {
			return errStop
		}
		for len(aborted) > 0 && aborted[0].FirstOffset <= h.BaseOffset {
			abortedPIDs[aborted[0].ProducerID] = true
			aborted = aborted[1:]
		}
		next = h.LastOffset() + 1
		switch {
		case h.Control():
			if commit, err := spoollog.ControlMarker(batch); err == nil && !commit {
				delete(abortedPIDs, h.ProducerID)
			}
		case h.Transactional() && abortedPIDs[h.ProducerID]:
		default:
			deliverable = true
			return errStop
		}
		return nil
	})
	return next, deliverable
}

var errStop = errors.New("stop")
