package bridge

import (
	"context"
	"strconv"
	"testing"
	"time"

	spoollog "github.com/spoolmq/spool/log"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func produceUpstream(t *testing.T, seeds []string, topic string, from, to int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.AllowAutoTopicCreation(), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for i := from; i < to; i++ {
		r := &kgo.Record{Key: []byte("dev-" + strconv.Itoa(i%3)), Value: []byte("cmd-" + strconv.Itoa(i)),
			Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("x")}}}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

func runDownstream(t *testing.T, d *KafkaDownstream) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(testTimeout):
			t.Error("Run did not return after cancel")
		}
	}
	t.Cleanup(stop)
	return stop
}

func allLocal(t *testing.T, tp *spoollog.Topic) []spoollog.Record {
	t.Helper()
	var out []spoollog.Record
	for _, p := range tp.Partitions() {
		out = append(out, localRecords(t, p)...)
	}
	return out
}

// TestDownstreamCopiesCommands: records of an upstream topic land in the
// local topic with their key, value and headers plus where they came from,
// keyed onto the partitions Spool's murmur2 picks; a restarted downstream
// resumes after what it committed: nothing twice, nothing lost.
func TestDownstreamCopiesCommands(t *testing.T) {
	up := newCluster(t, kfake.SeedTopics(2, "dc.commands"))
	seeds := up.ListenAddrs()
	l := newTestLog(t, spoollog.Options{})
	local := createTopic(t, l, "commands", 2, nil)
	produceUpstream(t, seeds, "dc.commands", 0, 6)

	opts := KafkaDownstreamOptions{Name: "down", Site: "pi-1", Seeds: seeds, Log: l, Topics: map[string]string{"dc.commands": "commands"},
		BackoffMin: 10 * time.Millisecond, ClientOpts: []kgo.Opt{kgo.FetchMaxWait(100 * time.Millisecond)}}
	d, err := NewKafkaDownstream(opts)
	if err != nil {
		t.Fatal(err)
	}
	stop := runDownstream(t, d)
	waitFor(t, "6 records copied and committed", func() bool { return d.Health().Committed == 6 })
	stop()

	seen := map[string]bool{}
	for _, tp := range local.Partitions() {
		for _, r := range localRecords(t, tp) {
			if want := local.PartitionFor(r.Key, len(r.Value)); tp.ID() != want {
				t.Errorf("key %s on partition %d, want %d", r.Key, tp.ID(), want)
			}
			hdr := map[string]string{}
			for _, h := range r.Headers {
				hdr[h.Key] = string(h.Value)
			}
			if hdr["h"] != "x" || hdr[HeaderUpstreamTopic] != "dc.commands" || hdr[HeaderUpstreamOffset] == "" {
				t.Errorf("record %s headers %v", r.Value, hdr)
			}
			seen[string(r.Value)] = true
		}
	}
	if len(seen) != 6 {
		t.Fatalf("copied %v", seen)
	}

	produceUpstream(t, seeds, "dc.commands", 6, 9)
	d2, err := NewKafkaDownstream(opts)
	if err != nil {
		t.Fatal(err)
	}
	runDownstream(t, d2)
	waitFor(t, "9 records", func() bool { return len(allLocal(t, local)) >= 9 })
	time.Sleep(200 * time.Millisecond)
	got := map[string]int{}
	for _, r := range allLocal(t, local) {
		got[string(r.Value)]++
	}
	for i := range 9 {
		if n := got["cmd-"+strconv.Itoa(i)]; n != 1 {
			t.Errorf("cmd-%d stored %d times", i, n)
		}
	}
	if h := d2.Health(); h.Copied != 3 || h.Dropped != 0 {
		t.Errorf("health after the restart %+v, want 3 copied", h)
	}
}

// TestDownstreamTooLarge: a record larger than the local topic allows is
// counted and logged as dropped, and the ones after it still arrive.
func TestDownstreamTooLarge(t *testing.T) {
	up := newCluster(t, kfake.SeedTopics(1, "big"))
	seeds := up.ListenAddrs()
	l := newTestLog(t, spoollog.Options{})
	local := createTopic(t, l, "big", 1, func(c *spoollog.TopicConfig) { c.MaxMessageBytes = 4096 })
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic("big"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for _, v := range []string{"small-1", string(make([]byte, 10000)), "small-2"} {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cl.Close()
	var logs testLogger
	d, err := NewKafkaDownstream(KafkaDownstreamOptions{Name: "down", Site: "s", Seeds: seeds, Log: l,
		Topics: map[string]string{"big": "big"}, Logger: logs.logger(), ClientOpts: []kgo.Opt{kgo.FetchMaxWait(100 * time.Millisecond)}})
	if err != nil {
		t.Fatal(err)
	}
	runDownstream(t, d)
	waitFor(t, "the small records", func() bool { return len(allLocal(t, local)) == 2 })
	if h := d.Health(); h.Dropped != 1 || h.LastError == "" {
		t.Errorf("health %+v, want 1 dropped with an error", h)
	}
}
