package main

import (
	"context"
	"errors"
	"slices"
	"time"

	spoollog "github.com/spoolmq/spool/log"
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
// neither a marker nor of an aborted transaction.
func committedRest(ctx context.Context, cl *kgo.Client, leader int32, topic string, part int32, from, end int64) (bool, error) {
	for off := from; off < end; {
		req := kmsg.NewPtrFetchRequest()
		req.ReplicaID, req.MaxWaitMillis, req.MaxBytes, req.IsolationLevel = -1, 0, 1<<20, 1
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch, rp.LogStartOffset = part, off, 1<<20, -1, -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl.Broker(int(leader)))
		if err != nil {
			return false, err
		}
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			return false, errors.New("fetch: an answer without the partition asked for")
		}
		sp := resp.Topics[0].Partitions[0]
		if err := kerr.ErrorForCode(sp.ErrorCode); err != nil {
			return false, err
		}
		next, deliverable := walkCommitted(sp.RecordBatches, sp.AbortedTransactions, off, end)
		if deliverable {
			return true, nil
		}
		if next <= off {
			return false, nil // nothing readable below the last stable offset
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
