package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// TestCommittedRestKafkaTopicIDs: against a broker with Fetch v13 and
// later (Kafka 3.1+; kfake here), where a Fetch names its topics by topic
// id, committedRest finds the committed record.
func TestCommittedRestKafkaTopicIDs(t *testing.T) {
	_, addr := newKafka(t, kfake.SeedTopics(1, "cr-ids"))
	ctx := testCtx(t, 30*time.Second)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("cr-ids"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("committed")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	more, err := committedRest(ctx, cl, "cr-ids", 0, 0, 1)
	if err != nil || !more {
		t.Errorf("committedRest over a committed record: %v, %v; want true, nil", more, err)
	}
}

// TestConsumeAbortedBeforePendingOnKafka: the scenario of
// TestConsumeEndsAfterAbortedBatchesAtLSO against kfake (a Kafka broker
// with topic ids): the consume ends with nothing printed.
func TestConsumeAbortedBeforePendingOnKafka(t *testing.T) {
	_, addr := newKafka(t, kfake.SeedTopics(1, "cr-lso"))
	ctx := testCtx(t, time.Minute)
	second := abortBeforePending(t, ctx, addr, "cr-lso", [2]string{"cr-first", "cr-second"})
	code, out, stderr := kafkaCmd(t, ctx, addr, "consume", "cr-lso")
	if code != 0 || out != "" {
		t.Errorf("consume: exit %d, printed %q: %s", code, out, stderr)
	}
	_ = second.EndTransaction(ctx, kgo.TryAbort)
}

// TestCommittedRestLeaderMoved: on a cluster of several brokers the look
// goes to the partition's leader of the moment: after leadership moved (a
// rolling restart) it still finds the committed record. (Fetch is held at
// v12 here, without topic ids.)
func TestCommittedRestLeaderMoved(t *testing.T) {
	c, addr := newKafka(t, kfake.NumBrokers(3), kfake.SeedTopics(1, "cr-move"))
	ctx := testCtx(t, 30*time.Second)
	v := kversion.Stable()
	v.SetMaxKeyVersion(kmsg.Fetch.Int16(), 12)
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(addr, ",")...), kgo.DefaultProduceTopic("cr-move"), kgo.MaxVersions(v))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("committed")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	leader := partitionLeader(t, ctx, cl, "cr-move", 0)
	if more, err := committedRest(ctx, cl, "cr-move", 0, 0, 1); err != nil || !more {
		t.Fatalf("committedRest before the move: %v, %v", more, err)
	}
	if err := c.MoveTopicPartition("cr-move", 0, (leader+1)%3); err != nil {
		t.Fatal(err)
	}
	more, err := committedRest(ctx, cl, "cr-move", 0, 0, 1)
	if err != nil || !more {
		t.Errorf("committedRest after the leader moved: %v, %v; want true, nil", more, err)
	}
}

func partitionLeader(t *testing.T, ctx context.Context, cl *kgo.Client, topic string, part int32) int32 {
	t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range resp.Topics {
		for _, p := range tp.Partitions {
			if p.Partition == part {
				return p.Leader
			}
		}
	}
	t.Fatalf("no leader for %s/%d", topic, part)
	return -1
}

// TestConsumeEndsWhileOtherPartitionGrows: partition 0 holds only an
// aborted transaction's batch below its end (its abort marker past the
// last stable offset, as in TestConsumeEndsAfterAbortedBatchesAtLSO);
// partition 1 keeps getting records produced after the consume started,
// past its end. Those are no progress: a consume without --follow ends at
// once rather than for as long as anything is produced.
func TestConsumeEndsWhileOtherPartitionGrows(t *testing.T) {
	addr := startPlainSpoolKafka(t)
	ctx := testCtx(t, time.Minute)
	mustKafka(t, ctx, addr, "topic", "create", "cr-grow", "--partitions", "2")
	second := abortBeforePending(t, ctx, addr, "cr-grow", [2]string{"cr-g-first", "cr-g-second"})
	defer second.EndTransaction(context.Background(), kgo.TryAbort)

	// Another producer keeps writing to partition 1.
	pcl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("cr-grow"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer pcl.Close()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			_ = pcl.ProduceSync(ctx, &kgo.Record{Partition: 1, Value: []byte("later")}).FirstErr()
		}
	}()
	defer func() { close(stop); <-done }()

	cctx, cancel := context.WithTimeout(ctx, 12*time.Second)
	defer cancel()
	start := time.Now()
	code, out, stderr := kafkaCmd(t, cctx, addr, "consume", "cr-grow")
	took := time.Since(start)
	if strings.Contains(out, "aborted") || strings.Contains(out, "pending") {
		t.Errorf("consume printed %q", out)
	}
	if took > 6*time.Second || code != 0 {
		t.Errorf("consume without --follow: exit %d after %v (stderr %q); want it to end at once with only aborted batches left below partition 0's end", code, took.Round(time.Millisecond), stderr)
	}
}
