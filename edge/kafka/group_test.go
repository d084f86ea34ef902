package kafka_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/spoolmq/spool/edge/kafka"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// groupConsumer is one kgo group member that records what it consumed
// and commits after each poll.
type groupConsumer struct {
	c      *kgo.Client
	mu     sync.Mutex
	values []string
	stop   context.CancelFunc
	done   chan struct{}
}

func startMember(t *testing.T, tb *testBroker, group, topic, instance string) *groupConsumer {
	t.Helper()
	opts := []kgo.Opt{
		kgo.SeedBrokers(tb.addr()), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(),
		kgo.SessionTimeout(6 * time.Second), kgo.HeartbeatInterval(200 * time.Millisecond),
		kgo.RebalanceTimeout(5 * time.Second), kgo.MetadataMinAge(100 * time.Millisecond),
		kgo.FetchMaxWait(200 * time.Millisecond),
		// Offsets are committed before partitions move, so that the next
		// owner starts after them: nothing is read twice.
		kgo.OnPartitionsRevoked(func(ctx context.Context, c *kgo.Client, _ map[string][]int32) {
			if err := c.CommitUncommittedOffsets(ctx); err != nil {
				t.Errorf("commit on revoke: %v", err)
			}
		}),
		kgo.BlockRebalanceOnPoll(),
	}
	if instance != "" {
		opts = append(opts, kgo.InstanceID(instance))
	}
	c, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	cx, cancel := context.WithCancel(context.Background())
	gc := &groupConsumer{c: c, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(gc.done)
		for cx.Err() == nil {
			fs := c.PollFetches(cx)
			fs.EachError(func(topic string, p int32, err error) {
				if cx.Err() == nil {
					t.Errorf("fetch %s/%d: %v", topic, p, err)
				}
			})
			gc.mu.Lock()
			for _, r := range fs.Records() {
				gc.values = append(gc.values, string(r.Value))
			}
			gc.mu.Unlock()
			if err := c.CommitUncommittedOffsets(context.Background()); err != nil && cx.Err() == nil {
				t.Errorf("commit: %v", err)
			}
			c.AllowRebalance()
		}
	}()
	t.Cleanup(gc.close)
	return gc
}

func (gc *groupConsumer) close() {
	gc.stop()
	<-gc.done
	gc.c.Close() // leaves the group
}

func (gc *groupConsumer) consumed() []string {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	return append([]string(nil), gc.values...)
}

func produceValues(t *testing.T, tb *testBroker, topic string, from, to int) {
	t.Helper()
	p := tb.client(kgo.DefaultProduceTopic(topic))
	var recs []*kgo.Record
	for i := from; i < to; i++ {
		recs = append(recs, &kgo.Record{Key: []byte(strconv.Itoa(i % 17)), Value: []byte(strconv.Itoa(i))})
	}
	if err := p.ProduceSync(ctx(t), recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// waitConsumed waits until the members together consumed exactly the
// values [from, to), each once.
func waitConsumed(t *testing.T, from, to int, members ...*groupConsumer) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		seen := map[string]int{}
		for _, m := range members {
			for _, v := range m.consumed() {
				seen[v]++
			}
		}
		missing := 0
		for i := from; i < to; i++ {
			switch seen[strconv.Itoa(i)] {
			case 0:
				missing++
			case 1:
			default:
				t.Fatalf("value %d consumed %d times", i, seen[strconv.Itoa(i)])
			}
		}
		if missing == 0 && len(seen) == to-from {
			return
		}
		if len(seen) > to-from+missing {
			t.Fatalf("consumed values outside [%d, %d): %d distinct", from, to, len(seen))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d values not consumed", missing, to-from)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitMembers waits until the group is Stable with n members whose
// assignments cover every partition once.
func waitMembers(t *testing.T, adm *kadm.Client, group string, n, partitions int) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		dg, err := adm.DescribeGroups(ctx(t), group)
		var state string
		covered := map[int32]int{}
		members := 0
		if err == nil {
			g := dg[group]
			state, members = g.State, len(g.Members)
			for _, m := range g.Members {
				if ca, ok := m.Assigned.AsConsumer(); ok {
					for _, tp := range ca.Topics {
						for _, p := range tp.Partitions {
							covered[p]++
						}
					}
				}
			}
		}
		ok := state == "Stable" && members == n && len(covered) == partitions
		for _, c := range covered {
			ok = ok && c == 1
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s: state %q, %d members, partitions covered %v (err %v); want Stable, %d members", group, state, members, covered, err, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestConsumerGroupRebalance: three kgo members share six partitions;
// when one leaves the other two take its partitions over from the
// committed offsets; after everyone left, and after a broker restart, a
// new member resumes where the group stopped: nothing is lost or read
// twice.
func TestConsumerGroupRebalance(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	const topic, group = "grp", "readers"
	tb.createTopic(topic, 6)
	produceValues(t, tb, topic, 0, 600)
	adm := tb.admin()

	a := startMember(t, tb, group, topic, "")
	b := startMember(t, tb, group, topic, "")
	c := startMember(t, tb, group, topic, "")
	waitMembers(t, adm, group, 3, 6)
	waitConsumed(t, 0, 600, a, b, c)

	c.close()
	waitMembers(t, adm, group, 2, 6)
	produceValues(t, tb, topic, 600, 900)
	waitConsumed(t, 0, 900, a, b, c)
	a.close()
	b.close()

	lags, err := adm.Lag(ctx(t), group)
	if err != nil {
		t.Fatal(err)
	}
	if l := lags[group]; l.Lag.Total() != 0 || l.State != "Empty" {
		t.Errorf("after everyone left: state %s, lag %d, want Empty and 0", l.State, l.Lag.Total())
	}

	tb.restart()
	produceValues(t, tb, topic, 900, 1000)
	d := startMember(t, tb, group, topic, "")
	waitConsumed(t, 900, 1000, d)
}

// TestStaticMembership: a member with a group.instance.id that restarts
// within its session timeout gets its place back under the same instance;
// its old member id is fenced.
func TestStaticMembership(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	const topic, group = "static", "fixed"
	tb.createTopic(topic, 2)
	produceValues(t, tb, topic, 0, 100)
	adm := tb.admin()
	a := startMember(t, tb, group, topic, "pi-1")
	b := startMember(t, tb, group, topic, "pi-2")
	waitMembers(t, adm, group, 2, 2)
	waitConsumed(t, 0, 100, a, b)

	dg, err := adm.DescribeGroups(ctx(t), group)
	if err != nil {
		t.Fatal(err)
	}
	instances := map[string]bool{}
	for _, m := range dg[group].Members {
		if m.InstanceID != nil {
			instances[*m.InstanceID] = true
		}
	}
	if !instances["pi-1"] || !instances["pi-2"] {
		t.Fatalf("instances %v, want pi-1 and pi-2", instances)
	}
	// kgo does not leave the group on close for a static member, as Kafka
	// clients do: the instance keeps its place until its session ends.
	a.close()
	a2 := startMember(t, tb, group, topic, "pi-1")
	waitMembers(t, adm, group, 2, 2)
	produceValues(t, tb, topic, 100, 200)
	waitConsumed(t, 0, 200, a, a2, b)
}
