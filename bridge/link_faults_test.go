package bridge

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	spoollog "github.com/spoolmq/spool/log"
)

// runStoppable starts k.Run and returns a function that cancels it and reports
// whether Run returned within d. Cleanup cancels it too (and waits as long
// as needed, after the test's own releases ran).
func runStoppable(t *testing.T, k *KafkaLink) (stop func(d time.Duration) bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { k.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			t.Errorf("Run did not return in cleanup")
		}
		k.Close()
	})
	return func(d time.Duration) bool {
		cancel()
		select {
		case <-done:
			return true
		case <-time.After(d):
			return false
		}
	}
}

// TestExactlyOnceStopsWhileUpstreamSilent: an exactly-once link whose
// upstream stops answering produce requests (a dead uplink that kgo keeps
// retrying) stops when asked: after FlushTimeout (1 s here) Run closes the
// transactional client, which ends the wait for results kgo would never
// give while their outcome is unknown; the open transaction is aborted.
func TestExactlyOnceStopsWhileUpstreamSilent(t *testing.T) {
	l := newTestLog(t, spoollog.Options{})
	tp := createTopic(t, l, "telemetry", 1, nil)
	p := partition(t, tp, 0)
	appendBatch(t, p, 10, spoollog.CodecNone)
	c := newCluster(t)
	var hold, held atomic.Bool
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if hold.Load() {
			held.Store(true)
			return nil, nil, true // swallowed: no response
		}
		return nil, nil, false
	})
	k, err := NewKafkaLink(KafkaLinkOptions{Name: "central", Site: "pi", Seeds: c.ListenAddrs(), Log: l,
		Topics: []string{"telemetry"}, ExactlyOnce: true, BackoffMax: 200 * time.Millisecond,
		DeliveryTimeout: 2 * time.Second, FlushTimeout: time.Second,
		// kgo gives up on a swallowed request after about a second and
		// resends it (swallowed again while held), so releasing the hold
		// in cleanup lets the link finish.
		ClientOpts: []kgo.Opt{kgo.ProduceRequestTimeout(500 * time.Millisecond), kgo.RequestTimeoutOverhead(500 * time.Millisecond)}})
	if err != nil {
		t.Fatal(err)
	}
	stop := runStoppable(t, k)
	t.Cleanup(func() { hold.Store(false) }) // before runStoppable's cleanup (LIFO)
	waitState(t, k, StateCaughtUp)
	hold.Store(true)
	appendBatch(t, p, 10, spoollog.CodecNone)
	waitFor(t, "a produce request swallowed", held.Load)
	start := time.Now()
	if !stop(10 * time.Second) {
		t.Fatalf("exactly-once Run did not return %v after its context ended while the upstream is silent (FlushTimeout 1s, DeliveryTimeout 2s)", time.Since(start).Round(time.Second))
	}
}

// TestPlainStopsWhileUpstreamSilent: the plain link, too, stops within
// FlushTimeout while the upstream is silent.
func TestPlainStopsWhileUpstreamSilent(t *testing.T) {
	l := newTestLog(t, spoollog.Options{})
	tp := createTopic(t, l, "telemetry", 1, nil)
	p := partition(t, tp, 0)
	appendBatch(t, p, 10, spoollog.CodecNone)
	c := newCluster(t)
	var hold, held atomic.Bool
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if hold.Load() {
			held.Store(true)
			return nil, nil, true
		}
		return nil, nil, false
	})
	k, err := NewKafkaLink(KafkaLinkOptions{Name: "central", Site: "pi", Seeds: c.ListenAddrs(), Log: l,
		Topics: []string{"telemetry"}, BackoffMax: 200 * time.Millisecond,
		DeliveryTimeout: 2 * time.Second, FlushTimeout: time.Second,
		ClientOpts: []kgo.Opt{kgo.ProduceRequestTimeout(500 * time.Millisecond), kgo.RequestTimeoutOverhead(500 * time.Millisecond)}})
	if err != nil {
		t.Fatal(err)
	}
	stop := runStoppable(t, k)
	t.Cleanup(func() { hold.Store(false) })
	waitState(t, k, StateCaughtUp)
	hold.Store(true)
	appendBatch(t, p, 10, spoollog.CodecNone)
	waitFor(t, "a produce request swallowed", held.Load)
	if !stop(15 * time.Second) {
		t.Fatalf("plain Run did not return after its context ended")
	}
}

// TestTopicRecreatedWhileRunning: a local topic deleted and created again
// while the link runs (and offered again through AddTopics, as edge's
// discovery does) is a new topic: the mirror of the deleted partition
// retires, and AddTopics mirrors the new one from its log start, pinned.
func TestTopicRecreatedWhileRunning(t *testing.T) {
	l := newTestLog(t, spoollog.Options{})
	tp := createTopic(t, l, "t", 1, nil)
	appendBatch(t, partition(t, tp, 0), 10, spoollog.CodecNone)
	c := newCluster(t)
	k, err := NewKafkaLink(KafkaLinkOptions{Name: "up", Site: "s", Seeds: c.ListenAddrs(), Log: l, Topics: []string{"t"},
		BackoffMin: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runStoppable(t, k)
	waitState(t, k, StateCaughtUp)

	if err := l.DeleteTopic("t"); err != nil {
		t.Fatal(err)
	}
	tp = createTopic(t, l, "t", 1, nil)
	p := partition(t, tp, 0)
	appendBatch(t, p, 5, spoollog.CodecNone)
	n, err := k.AddTopics("t")
	t.Logf("AddTopics after re-creation: %d partitions, %v", n, err)
	if !waitUntil(5*time.Second, func() bool {
		up := upstreamRecords(t, c.ListenAddrs(), "s.t")["s.t"][0]
		return len(up) >= 15
	}) {
		up := upstreamRecords(t, c.ListenAddrs(), "s.t")["s.t"][0]
		t.Fatalf("records of the re-created topic never mirrored: %d upstream, want 15 (10 old + 5 new); health %+v", len(up), k.Health())
	}
}

// TestExactlyOnceDeletedTopicDoesNotStopOthers: on an exactly-once link,
// a mirrored local topic deleted while running leaves the transactions
// (its mirror retires); the other topics go on being mirrored.
func TestExactlyOnceDeletedTopicDoesNotStopOthers(t *testing.T) {
	l := newTestLog(t, spoollog.Options{})
	createTopic(t, l, "gone", 1, nil)
	keep := createTopic(t, l, "keep", 1, nil)
	appendBatch(t, partition(t, keep, 0), 5, spoollog.CodecNone)
	c := newCluster(t)
	k := eosLink(t, c.ListenAddrs(), l, []string{"gone", "keep"})
	runStoppable(t, k)
	waitFor(t, "keep mirrored", func() bool { return partRecords(k.Health(), "keep") == 5 })
	if err := l.DeleteTopic("gone"); err != nil {
		t.Fatal(err)
	}
	appendBatch(t, partition(t, keep, 0), 5, spoollog.CodecNone)
	if !waitUntil(5*time.Second, func() bool { return partRecords(k.Health(), "keep") == 10 }) {
		t.Fatalf("topic keep no longer mirrored after topic gone was deleted: %d of 10; last error %q",
			partRecords(k.Health(), "keep"), k.Health().LastError)
	}
}

// TestPlainDeletedTopicDoesNotStopOthers: the plain link goes on with the
// other topic when one mirrored local topic is deleted.
func TestPlainDeletedTopicDoesNotStopOthers(t *testing.T) {
	l := newTestLog(t, spoollog.Options{})
	createTopic(t, l, "gone", 1, nil)
	keep := createTopic(t, l, "keep", 1, nil)
	appendBatch(t, partition(t, keep, 0), 5, spoollog.CodecNone)
	c := newCluster(t)
	k, err := NewKafkaLink(KafkaLinkOptions{Name: "up", Site: "s", Seeds: c.ListenAddrs(), Log: l, Topics: []string{"gone", "keep"},
		BackoffMin: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runStoppable(t, k)
	waitFor(t, "keep mirrored", func() bool { return partRecords(k.Health(), "keep") == 5 })
	if err := l.DeleteTopic("gone"); err != nil {
		t.Fatal(err)
	}
	appendBatch(t, partition(t, keep, 0), 5, spoollog.CodecNone)
	if !waitUntil(5*time.Second, func() bool { return partRecords(k.Health(), "keep") == 10 }) {
		t.Fatalf("plain: keep not mirrored after gone was deleted")
	}
}

// TestKeepGrowsUpstreamForPartitionsAddedLocally: with partitioning keep,
// a partition added to a mirrored local topic (AlterTopic, then AddTopics
// as edge's discovery does) reaches upstream: the link grows the upstream
// topic it created itself to the new count (one someone else created is
// refused instead, TestKeepRefusesFewerUpstreamPartitions).
func TestKeepGrowsUpstreamForPartitionsAddedLocally(t *testing.T) {
	l := newTestLog(t, spoollog.Options{})
	tp := createTopic(t, l, "t", 1, nil)
	appendBatch(t, partition(t, tp, 0), 5, spoollog.CodecNone)
	c := newCluster(t)
	k, err := NewKafkaLink(KafkaLinkOptions{Name: "up", Site: "s", Seeds: c.ListenAddrs(), Log: l, Topics: []string{"t"},
		BackoffMin: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runStoppable(t, k)
	waitState(t, k, StateCaughtUp)
	cfg := tp.Config()
	cfg.Partitions = 2
	if err := l.AlterTopic("t", cfg); err != nil {
		t.Fatal(err)
	}
	appendBatch(t, partition(t, tp, 1), 7, spoollog.CodecNone)
	if n, err := k.AddTopics("t"); err != nil || n != 1 {
		t.Fatalf("AddTopics: %d, %v", n, err)
	}
	if !waitUntil(5*time.Second, func() bool { return partRecords(k.Health(), "t") == 12 }) {
		t.Fatalf("the added partition never mirrored: %d of 12 records; last error %q", partRecords(k.Health(), "t"), k.Health().LastError)
	}
}

// TestUpstreamTopicDeletedIsCreatedAgain: the upstream topic deleted while
// the link runs (an operator, or a cleanup job in the data center). Produce
// fails with UNKNOWN_TOPIC_OR_PARTITION; the link checks its upstream
// topic again, creates it again, and mirrors on.
func TestUpstreamTopicDeletedIsCreatedAgain(t *testing.T) {
	l := newTestLog(t, spoollog.Options{})
	tp := createTopic(t, l, "t", 1, nil)
	p := partition(t, tp, 0)
	appendBatch(t, p, 5, spoollog.CodecNone)
	c := newCluster(t)
	k, err := NewKafkaLink(KafkaLinkOptions{Name: "up", Site: "s", Seeds: c.ListenAddrs(), Log: l, Topics: []string{"t"},
		BackoffMin: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond,
		ClientOpts: []kgo.Opt{kgo.UnknownTopicRetries(2), kgo.MetadataMinAge(100 * time.Millisecond)}})
	if err != nil {
		t.Fatal(err)
	}
	runStoppable(t, k)
	waitState(t, k, StateCaughtUp)
	adm, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if _, err := kadm.NewClient(adm).DeleteTopics(ctx, "s.t"); err != nil {
		t.Fatal(err)
	}
	appendBatch(t, p, 5, spoollog.CodecNone)
	if !waitUntil(8*time.Second, func() bool { return k.Health().Lag == 0 }) {
		t.Fatalf("nothing mirrored after the upstream topic was deleted: health lag %d, last error %q", k.Health().Lag, k.Health().LastError)
	}
}

// TestUpstreamBatchTooLargeSentSmaller: the upstream topic accepts batches
// of at most 20 000 bytes (max.message.bytes; Kafka's default is about
// 1 MB, but a central cluster may be configured lower). Every local record
// (1 000 bytes) fits on its own, and one local batch holds 100 of them: the
// link sends rounds that fit (it reads the limit from the topic's config,
// and halves a round the broker refuses as MESSAGE_TOO_LARGE), and
// mirrors every record.
func TestUpstreamBatchTooLargeSentSmaller(t *testing.T) {
	l := newTestLog(t, spoollog.Options{})
	tp := createTopic(t, l, "t", 1, nil)
	p := partition(t, tp, 0)
	recs := make([]spoollog.Record, 100)
	for i := range recs {
		v := make([]byte, 1000)
		for j := range v {
			v[j] = byte((i*7919 + j*104729) >> 3) // not very compressible
		}
		recs[i] = spoollog.Record{Timestamp: time.Now().UnixMilli(), Value: v}
	}
	if _, err := p.AppendRecords(recs, spoollog.DefaultBatchOptions); err != nil {
		t.Fatal(err)
	}
	c := newCluster(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	limit := "20000"
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if resp, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, map[string]*string{"max.message.bytes": &limit}, "s.t"); err != nil || resp.Err != nil {
		t.Fatal(err, resp.Err)
	}
	k, err := NewKafkaLink(KafkaLinkOptions{Name: "up", Site: "s", Seeds: c.ListenAddrs(), Log: l, Topics: []string{"t"},
		Compression: "none", BackoffMin: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runStoppable(t, k)
	if !waitUntil(5*time.Second, func() bool { return k.Health().Lag == 0 }) {
		h := k.Health()
		t.Fatalf("records that each fit upstream never mirrored: cursor %d of %d, last error %q", h.Partitions[0].Cursor, p.HighWatermark(), h.LastError)
	}
}

// TestNeverAdvancedCursorStored: a link is built (pinning retention at the
// log start) but never gets to mirror (the uplink was down all the time),
// and spool restarts. Meanwhile 5 unmirrored records are deleted. The link
// stored its cursor when it was built, so the second link finds it below
// the new log start and counts the 5 lost records as gaps.
func TestNeverAdvancedCursorStored(t *testing.T) {
	l := newTestLog(t, spoollog.Options{})
	tp := createTopic(t, l, "t", 1, nil)
	p := partition(t, tp, 0)
	appendBatch(t, p, 5, spoollog.CodecNone)
	appendBatch(t, p, 5, spoollog.CodecNone)
	c := newCluster(t)
	opts := KafkaLinkOptions{Name: "up", Site: "s", Seeds: c.ListenAddrs(), Log: l, Topics: []string{"t"},
		BackoffMin: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond}
	k1, err := NewKafkaLink(opts)
	if err != nil {
		t.Fatal(err)
	}
	k1.Close() // never ran: the uplink was down until the restart
	if _, err := p.DeleteRecords(5); err != nil {
		t.Fatal(err)
	}
	k2, err := NewKafkaLink(opts)
	if err != nil {
		t.Fatal(err)
	}
	runStoppable(t, k2)
	h := waitState(t, k2, StateCaughtUp)
	if h.Gaps != 5 {
		t.Fatalf("5 records the link owed were deleted before it mirrored them; Gaps = %d, want 5 (records %d)", h.Gaps, h.Records)
	}
}

// TestTopicRecreatedPastOldCursor: a topic deleted and created again gets
// more records than the deleted one had before the link sees it. The old
// cursor (10) lies inside the new log, yet the new topic is mirrored from
// its start: resuming at 10 would skip 10 records never mirrored.
func TestTopicRecreatedPastOldCursor(t *testing.T) {
	l := newTestLog(t, spoollog.Options{})
	tp := createTopic(t, l, "t", 1, nil)
	appendBatch(t, partition(t, tp, 0), 10, spoollog.CodecNone)
	c := newCluster(t)
	k, err := NewKafkaLink(KafkaLinkOptions{Name: "up", Site: "s", Seeds: c.ListenAddrs(), Log: l, Topics: []string{"t"},
		BackoffMin: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runStoppable(t, k)
	waitState(t, k, StateCaughtUp)
	if err := l.DeleteTopic("t"); err != nil {
		t.Fatal(err)
	}
	tp = createTopic(t, l, "t", 1, nil)
	appendBatch(t, partition(t, tp, 0), 15, spoollog.CodecNone)
	if n, err := k.AddTopics("t"); err != nil || n != 1 {
		t.Fatalf("AddTopics after re-creation: %d, %v; want 1", n, err)
	}
	if !waitUntil(5*time.Second, func() bool { return len(upstreamRecords(t, c.ListenAddrs(), "s.t")["s.t"][0]) >= 25 }) {
		t.Fatalf("%d records upstream, want 25 (10 old + 15 new); health %+v", len(upstreamRecords(t, c.ListenAddrs(), "s.t")["s.t"][0]), k.Health())
	}
	h := k.Health()
	if len(h.Partitions) != 1 || h.Partitions[0].Cursor != 15 || h.Gaps != 0 {
		t.Fatalf("health %+v, want one partition at cursor 15 and no gap", h)
	}
	if c := storedCursor(t, l, "up", "t", 0); c != 15 {
		t.Fatalf("stored cursor %d, want 15", c)
	}
}

// TestExactlyOnceTopicRecreatedWhileRunning: the same on an exactly-once
// link: the re-created topic is mirrored from its start in the link's
// transactions.
func TestExactlyOnceTopicRecreatedWhileRunning(t *testing.T) {
	l := newTestLog(t, spoollog.Options{})
	tp := createTopic(t, l, "t", 1, nil)
	appendBatch(t, partition(t, tp, 0), 10, spoollog.CodecNone)
	c := newCluster(t)
	k := eosLink(t, c.ListenAddrs(), l, []string{"t"})
	runStoppable(t, k)
	waitFor(t, "t mirrored", func() bool { return partRecords(k.Health(), "t") == 10 })
	if err := l.DeleteTopic("t"); err != nil {
		t.Fatal(err)
	}
	tp = createTopic(t, l, "t", 1, nil)
	appendBatch(t, partition(t, tp, 0), 15, spoollog.CodecNone)
	if n, err := k.AddTopics("t"); err != nil || n != 1 {
		t.Fatalf("AddTopics after re-creation: %d, %v; want 1", n, err)
	}
	if !waitUntil(5*time.Second, func() bool { h := k.Health(); return h.Lag == 0 && partRecords(h, "t") == 15 }) {
		t.Fatalf("the re-created topic not mirrored from its start; health %+v", k.Health())
	}
}

// TestMQTTLinkDeletedTopic: on an MQTT link, a mirrored local topic deleted
// while running retires its mirror without dropping the connection the
// other topics use, and the topic created again is mirrored from its start.
func TestMQTTLinkDeletedTopic(t *testing.T) {
	mq := startMosquitto(t, false)
	l := newTestLog(t, spoollog.Options{})
	createTopic(t, l, "gone", 1, nil)
	keep := createTopic(t, l, "keep", 1, nil)
	appendBatch(t, partition(t, keep, 0), 5, spoollog.CodecNone)
	sub := subscribe(t, mq.url(), "edge-3/#", false)
	link := newTestMQTTLink(t, MQTTLinkOptions{Name: "up", Site: "edge-3", Broker: mq.url(), Log: l, Topics: []string{"gone", "keep"}})
	runMQTTLink(t, link)
	waitMQTTState(t, link, StateCaughtUp)
	if err := l.DeleteTopic("gone"); err != nil {
		t.Fatal(err)
	}
	appendBatch(t, partition(t, keep, 0), 5, spoollog.CodecNone)
	waitFor(t, "keep mirrored after gone was deleted", func() bool { return len(byTopic(sub.snapshot())["edge-3/keep"]) == 10 })
	again := createTopic(t, l, "gone", 1, nil)
	appendBatch(t, partition(t, again, 0), 3, spoollog.CodecNone)
	if n, err := link.AddTopics("gone", "keep"); err != nil || n != 1 {
		t.Fatalf("AddTopics after re-creation: %d, %v; want 1", n, err)
	}
	waitFor(t, "the re-created topic mirrored", func() bool { return len(byTopic(sub.snapshot())["edge-3/gone"]) == 3 })
	if h := waitMQTTState(t, link, StateCaughtUp); h.Records != 13 || len(h.Partitions) != 2 {
		t.Fatalf("health %+v, want 13 records over 2 partitions", h)
	}
}

// createLimitedUpstream creates upstream topic name accepting batches of at
// most 20 000 bytes.
func createLimitedUpstream(t *testing.T, seeds []string, name string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	limit := "20000"
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if resp, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, map[string]*string{"max.message.bytes": &limit}, name); err != nil || resp.Err != nil {
		t.Fatal(err, resp.Err)
	}
}

// hideTopicConfigs makes the cluster refuse DescribeConfigs, so a link
// cannot read max.message.bytes and learns the limit only from
// MESSAGE_TOO_LARGE.
func hideTopicConfigs(c *kfake.Cluster) {
	c.ControlKey(int16(kmsg.DescribeConfigs), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		dreq := req.(*kmsg.DescribeConfigsRequest)
		resp := dreq.ResponseKind().(*kmsg.DescribeConfigsResponse)
		for _, r := range dreq.Resources {
			rr := kmsg.NewDescribeConfigsResponseResource()
			rr.ResourceType, rr.ResourceName = r.ResourceType, r.ResourceName
			rr.ErrorCode = kerr.TopicAuthorizationFailed.Code
			resp.Resources = append(resp.Resources, rr)
		}
		return resp, nil, true
	})
}

// appendSized appends one local batch of records with values of the given
// sizes (not very compressible).
func appendSized(t *testing.T, p *spoollog.Partition, sizes ...int) {
	t.Helper()
	recs := make([]spoollog.Record, len(sizes))
	for i, n := range sizes {
		v := make([]byte, n)
		for j := range v {
			v[j] = byte((i*7919 + j*104729) >> 3)
		}
		recs[i] = spoollog.Record{Timestamp: time.Now().UnixMilli(), Value: v}
	}
	if _, err := p.AppendRecords(recs, spoollog.DefaultBatchOptions); err != nil {
		t.Fatal(err)
	}
}

func repeat(n, size int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = size
	}
	return s
}

// TestUpstreamBatchTooLargeHalved: as TestUpstreamBatchTooLargeSentSmaller,
// but the link cannot read the topic's max.message.bytes: it halves each
// round the broker refuses as MESSAGE_TOO_LARGE until the rounds fit, and
// mirrors every record, none skipped.
func TestUpstreamBatchTooLargeHalved(t *testing.T) {
	l := newTestLog(t, spoollog.Options{})
	p := partition(t, createTopic(t, l, "t", 1, nil), 0)
	appendSized(t, p, repeat(100, 1000)...)
	c := newCluster(t)
	createLimitedUpstream(t, c.ListenAddrs(), "s.t")
	hideTopicConfigs(c)
	k, err := NewKafkaLink(KafkaLinkOptions{Name: "up", Site: "s", Seeds: c.ListenAddrs(), Log: l, Topics: []string{"t"},
		Compression: "none", BackoffMin: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runStoppable(t, k)
	if !waitUntil(5*time.Second, func() bool { return k.Health().Lag == 0 }) {
		t.Fatalf("records that each fit upstream never mirrored; health %+v", k.Health())
	}
	if h := k.Health(); h.Records != 100 || h.Skipped != 0 {
		t.Fatalf("%d records mirrored, %d skipped; want 100 and 0", h.Records, h.Skipped)
	}
}

// TestUpstreamRecordTooLargeSkipped: a record the upstream refuses on its
// own as too large (30 000 bytes, the topic takes 20 000) can never go
// upstream. It does not block its partition: it is skipped, counted in
// Skipped, named in LastError and logged; the records around it are
// mirrored, and the link is caught up.
func TestUpstreamRecordTooLargeSkipped(t *testing.T) {
	for _, hidden := range []bool{false, true} {
		t.Run(fmt.Sprintf("configs_hidden=%v", hidden), func(t *testing.T) {
			l := newTestLog(t, spoollog.Options{})
			p := partition(t, createTopic(t, l, "t", 1, nil), 0)
			appendSized(t, p, append(append(repeat(5, 1000), 30000), repeat(5, 1000)...)...)
			c := newCluster(t)
			createLimitedUpstream(t, c.ListenAddrs(), "s.t")
			if hidden {
				hideTopicConfigs(c)
			}
			var logs testLogger
			k, err := NewKafkaLink(KafkaLinkOptions{Name: "up", Site: "s", Seeds: c.ListenAddrs(), Log: l, Topics: []string{"t"},
				Compression: "none", BackoffMin: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond, Logger: logs.logger()})
			if err != nil {
				t.Fatal(err)
			}
			runStoppable(t, k)
			h := waitState(t, k, StateCaughtUp)
			if h.Records != 10 || h.Skipped != 1 || h.Gaps != 0 || !strings.Contains(h.LastError, "offset 5 skipped") {
				t.Fatalf("health %+v, want 10 records, 1 skipped, no gap, and offset 5 named", h)
			}
			var offs []int64
			for _, r := range upstreamRecords(t, c.ListenAddrs(), "s.t")["s.t"][0] {
				offs = append(offs, originOffset(t, r))
			}
			if want := []int64{0, 1, 2, 3, 4, 6, 7, 8, 9, 10}; !slices.Equal(offs, want) {
				t.Fatalf("upstream offsets %v, want %v", offs, want)
			}
			if !strings.Contains(logs.String(), "too large") {
				t.Fatalf("the skipped record was not logged:\n%s", logs.String())
			}
		})
	}
}

// TestExactlyOnceUpstreamTooLarge: an exactly-once link to a topic taking
// batches of at most 20 000 bytes, with its configs hidden: refused
// transactions are aborted and retried in smaller rounds, and the one
// record too large on its own is skipped (counted), in a transaction that
// commits the cursor past it; every other record is mirrored.
func TestExactlyOnceUpstreamTooLarge(t *testing.T) {
	l := newTestLog(t, spoollog.Options{})
	p := partition(t, createTopic(t, l, "t", 1, nil), 0)
	appendSized(t, p, repeat(60, 1000)...)
	appendSized(t, p, 30000)
	appendSized(t, p, repeat(5, 1000)...)
	c := newCluster(t)
	createLimitedUpstream(t, c.ListenAddrs(), "pi.t")
	hideTopicConfigs(c)
	k := eosLink(t, c.ListenAddrs(), l, []string{"t"}, kgo.ProducerBatchCompression(kgo.NoCompression()))
	runStoppable(t, k)
	if !waitUntil(10*time.Second, func() bool { return k.Health().Lag == 0 }) {
		t.Fatalf("not mirrored; health %+v", k.Health())
	}
	if h := k.Health(); h.Records != 65 || h.Skipped != 1 {
		t.Fatalf("%d records mirrored, %d skipped; want 65 and 1; health %+v", h.Records, h.Skipped, h)
	}
}

// A mirrored topic deleted while an exactly-once link runs, and created
// again while the link is stopped (a restart): the new link must not resume
// from the deleted partition's cursor, still committed upstream, which
// would skip the new partition's first records.
func TestExactlyOnceTopicRecreatedAcrossRestart(t *testing.T) {
	l := newTestLog(t, spoollog.Options{})
	tp := createTopic(t, l, "t", 1, nil)
	appendBatch(t, partition(t, tp, 0), 10, spoollog.CodecNone)
	c := newCluster(t)
	k := eosLink(t, c.ListenAddrs(), l, []string{"t"})
	stop := runStoppable(t, k)
	waitFor(t, "t mirrored", func() bool { return partRecords(k.Health(), "t") == 10 })
	if err := l.DeleteTopic("t"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the deleted topic's mirror retired", func() bool { return len(k.Health().Partitions) == 0 })
	if !stop(30 * time.Second) {
		t.Fatal("the link did not stop")
	}
	tp = createTopic(t, l, "t", 1, nil)
	appendBatch(t, partition(t, tp, 0), 15, spoollog.CodecNone)
	k2 := eosLink(t, c.ListenAddrs(), l, []string{"t"})
	runStoppable(t, k2)
	if !waitUntil(15*time.Second, func() bool { h := k2.Health(); return h.Lag == 0 && partRecords(h, "t") == 15 }) {
		t.Fatalf("the re-created topic not mirrored from its start after a restart; health %+v", k2.Health())
	}
}
