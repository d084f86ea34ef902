package bridge

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	spoollog "github.com/spoolmq/spool/log"
)

// TestMirrorKeep mirrors two multi-partition topics with partitioning keep:
// every local record appears upstream in the same partition number, in the
// same order, with its key, value, timestamp and headers plus the origin
// headers; the upstream topics are created with the local partition counts.
func TestMirrorKeep(t *testing.T) {
	l := newTestLog(t, spoollog.Options{})
	topics := map[string]int32{"sensors": 3, "events": 2}
	for name, n := range topics {
		tp := createTopic(t, l, name, n, nil)
		for i := range n {
			p := partition(t, tp, i)
			appendBatch(t, p, 5, spoollog.CodecNone)
			appendBatch(t, p, 7, spoollog.CodecZstd) // stored compressed: decoded and re-batched
			appendBatch(t, p, 1, spoollog.CodecNone)
		}
	}
	c := newCluster(t)
	k, err := NewKafkaLink(KafkaLinkOptions{
		Name: "up", Site: "site1", Seeds: c.ListenAddrs(), Log: l,
		Topics: []string{"sensors", "events"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if h := k.Health(); h.State != StateConnecting || h.Lag != 5*13 {
		t.Fatalf("before Run: state %s lag %d, want connecting, %d", h.State, h.Lag, 5*13)
	}
	runLink(t, k)
	h := waitState(t, k, StateCaughtUp)
	if h.Records != 5*13 || h.Lag != 0 || h.Gaps != 0 {
		t.Fatalf("caught up with records %d lag %d gaps %d, want %d, 0, 0", h.Records, h.Lag, h.Gaps, 5*13)
	}

	up := upstreamRecords(t, c.ListenAddrs(), "site1.sensors", "site1.events")
	for name, n := range topics {
		dest := "site1." + name
		if got := len(up[dest]); got != int(n) {
			t.Fatalf("%s: records in %d partitions, want %d", dest, got, n)
		}
		tp, _ := l.Topic(name)
		for i := range n {
			local := localRecords(t, partition(t, tp, i))
			ups := up[dest][i]
			if len(ups) != len(local) {
				t.Fatalf("%s/%d: %d records upstream, %d local", dest, i, len(ups), len(local))
			}
			for j := range local {
				checkMirrored(t, "site1", name, i, local[j], ups[j])
			}
			if c := storedCursor(t, l, "up", name, i); c != 13 {
				t.Fatalf("%s/%d: stored cursor %d, want 13", name, i, c)
			}
		}
	}
	checkUpstreamPartitions(t, c.ListenAddrs(), map[string]int{"site1.sensors": 3, "site1.events": 2})
}

func checkUpstreamPartitions(t *testing.T, seeds []string, want map[string]int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var names []string
	for n := range want {
		names = append(names, n)
	}
	td, err := kadm.NewClient(cl).ListTopics(ctx, names...)
	if err != nil {
		t.Fatal(err)
	}
	for n, w := range want {
		if got := len(td[n].Partitions); got != w {
			t.Fatalf("upstream %s has %d partitions, want %d", n, got, w)
		}
	}
}

// TestMirrorRehash mirrors a 2-partition local topic into an upstream topic
// with 5 partitions: each record lands where kgo's murmur2 key partitioner
// puts it, and the records of one key keep their local order.
func TestMirrorRehash(t *testing.T) {
	l := newTestLog(t, spoollog.Options{})
	tp := createTopic(t, l, "metrics", 2, nil)
	for i := range int32(2) {
		for range 4 {
			appendBatch(t, partition(t, tp, i), 10, spoollog.CodecNone)
		}
	}
	c := newCluster(t)
	createUpstream(t, c.ListenAddrs(), "edge-7.metrics.mirror", 5)
	k, err := NewKafkaLink(KafkaLinkOptions{
		Name: "rh", Site: "edge-7", Seeds: c.ListenAddrs(), Log: l,
		Topics: []string{"metrics"}, Destination: "{site}.{topic}.mirror",
		Partitioning: PartitionRehash, Compression: "lz4",
	})
	if err != nil {
		t.Fatal(err)
	}
	runLink(t, k)
	waitState(t, k, StateCaughtUp)

	up := upstreamRecords(t, c.ListenAddrs(), "edge-7.metrics.mirror")["edge-7.metrics.mirror"]
	part := kgo.StickyKeyPartitioner(nil).ForTopic("edge-7.metrics.mirror")
	byKey := make(map[string][]int64) // key -> origin offsets, in upstream order
	total := 0
	for p, recs := range up {
		for _, r := range recs {
			total++
			if want := int32(part.Partition(r, 5)); p != want {
				t.Fatalf("key %q in upstream partition %d, murmur2 says %d", r.Key, p, want)
			}
			k := header(r, HeaderPartition) + "/" + string(r.Key)
			byKey[k] = append(byKey[k], originOffset(t, r))
		}
	}
	if total != 80 {
		t.Fatalf("%d records upstream, want 80", total)
	}
	for k, offs := range byKey {
		for i := 1; i < len(offs); i++ {
			if offs[i] <= offs[i-1] {
				t.Fatalf("key %s out of order upstream: %v", k, offs)
			}
		}
	}
	for i := range int32(2) {
		local := localRecords(t, partition(t, tp, i))
		seen := 0
		for _, recs := range up {
			for _, r := range recs {
				if header(r, HeaderPartition) == string(rune('0'+i)) {
					checkMirrored(t, "edge-7", "metrics", i, local[originOffset(t, r)], r)
					seen++
				}
			}
		}
		if seen != len(local) {
			t.Fatalf("partition %d: %d records upstream, %d local", i, seen, len(local))
		}
	}
}

func createUpstream(t *testing.T, seeds []string, topic string, partitions int32) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestKeepRefusesFewerUpstreamPartitions: with keep, an upstream topic
// with fewer partitions than the local one is an error the link reports
// (failing, naming the topic), and it mirrors nothing.
func TestKeepRefusesFewerUpstreamPartitions(t *testing.T) {
	l := newTestLog(t, spoollog.Options{})
	tp := createTopic(t, l, "t", 3, nil)
	appendBatch(t, partition(t, tp, 2), 3, spoollog.CodecNone)
	c := newCluster(t)
	createUpstream(t, c.ListenAddrs(), "s.t", 1)
	k, err := NewKafkaLink(KafkaLinkOptions{Name: "x", Site: "s", Seeds: c.ListenAddrs(), Log: l, Topics: []string{"t"}})
	if err != nil {
		t.Fatal(err)
	}
	runLink(t, k)
	h := waitState(t, k, StateFailing)
	if !strings.Contains(h.LastError, "s.t has 1 partitions") || h.Records != 0 || h.Lag != 3 {
		t.Fatalf("health %+v, want the partition count error, 0 records, lag 3", h)
	}
}

// TestIdleIsNotStall: a link that sat caught up for longer than
// StallTimeout does not report failing when new records arrive: the stall
// clock starts with the new data, not at the last acknowledgement.
func TestIdleIsNotStall(t *testing.T) {
	l := newTestLog(t, spoollog.Options{})
	p := partition(t, createTopic(t, l, "t", 1, nil), 0)
	appendBatch(t, p, 3, spoollog.CodecNone)
	c := newCluster(t)
	k, err := NewKafkaLink(KafkaLinkOptions{
		Name: "i", Site: "s", Seeds: c.ListenAddrs(), Log: l, Topics: []string{"t"},
		StallTimeout: time.Second, // far above a round's time, even with a slow fsync
	})
	if err != nil {
		t.Fatal(err)
	}
	runLink(t, k)
	waitState(t, k, StateCaughtUp)
	time.Sleep(1500 * time.Millisecond) // idle for longer than the stall timeout
	for round := range 5 {
		appendBatch(t, p, 3, spoollog.CodecNone)
		// Right after the append, before the link has even woken up.
		if h := k.Health(); h.State == StateFailing {
			t.Fatalf("round %d: new data after idling reported as %+v", round, h)
		}
		waitState(t, k, StateCaughtUp)
	}
	if h := k.Health(); h.Records != 18 || h.LastError != "" {
		t.Fatalf("health %+v, want 18 records and no error", h)
	}
}

// TestOldBacklog mirrors records whose timestamps are an hour old with a
// one-second delivery timeout: the timeout runs on the wall clock from the
// produce, not from the record's own time (kgo's RecordDeliveryTimeout
// would fail such a backlog at once).
func TestOldBacklog(t *testing.T) {
	l := newTestLog(t, spoollog.Options{})
	p := partition(t, createTopic(t, l, "t", 1, nil), 0)
	old := time.Now().Add(-time.Hour).UnixMilli()
	recs := make([]spoollog.Record, 50)
	for i := range recs {
		recs[i] = spoollog.Record{Timestamp: old + int64(i), Value: []byte("reading")}
	}
	if _, err := p.AppendRecords(recs, spoollog.DefaultBatchOptions); err != nil {
		t.Fatal(err)
	}
	c := newCluster(t)
	k, err := NewKafkaLink(KafkaLinkOptions{
		Name: "old", Site: "s", Seeds: c.ListenAddrs(), Log: l, Topics: []string{"t"},
		DeliveryTimeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	runLink(t, k)
	if h := waitState(t, k, StateCaughtUp); h.Records != 50 || h.LastError != "" {
		t.Fatalf("health %+v, want 50 records and no error", h)
	}
	up := upstreamRecords(t, c.ListenAddrs(), "s.t")["s.t"][0]
	if len(up) != 50 || up[0].Timestamp.UnixMilli() != old {
		t.Fatalf("%d records upstream, first at %v; want 50 with the original timestamps", len(up), up[0].Timestamp)
	}
}

// TestAddTopicsWhileRunning: topics and partitions added to a running
// link are mirrored too, from their start; those already mirrored are
// left alone.
func TestAddTopicsWhileRunning(t *testing.T) {
	l := newTestLog(t, spoollog.Options{})
	first := createTopic(t, l, "first", 1, nil)
	appendBatch(t, partition(t, first, 0), 10, spoollog.CodecNone)
	c := newCluster(t)
	k, err := NewKafkaLink(KafkaLinkOptions{Name: "up", Site: "s", Seeds: c.ListenAddrs(), Log: l, Topics: []string{"first"}})
	if err != nil {
		t.Fatal(err)
	}
	runLink(t, k)
	waitState(t, k, StateCaughtUp)

	later := createTopic(t, l, "later", 2, nil)
	for i := range int32(2) {
		appendBatch(t, partition(t, later, i), 20, spoollog.CodecNone)
	}
	n, err := k.AddTopics("first", "later")
	if err != nil || n != 2 {
		t.Fatalf("AddTopics: %d partitions added, %v; want 2", n, err)
	}
	if n, err := k.AddTopics("first", "later"); err != nil || n != 0 {
		t.Fatalf("AddTopics again: %d, %v; want 0", n, err)
	}
	waitFor(t, "the new topic mirrored", func() bool { h := k.Health(); return h.Records == 50 && h.Lag == 0 })
	up := upstreamRecords(t, c.ListenAddrs(), "s.later")
	for i := range int32(2) {
		if d := checkComplete(t, "s", "later", partition(t, later, i), up["s.later"][i]); d != 0 {
			t.Errorf("later/%d: %d duplicates", i, d)
		}
	}
	if _, err := k.AddTopics("nope"); err == nil {
		t.Error("AddTopics of a topic that does not exist: no error")
	}
}
