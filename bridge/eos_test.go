package bridge

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	spoollog "github.com/spoolmq/spool/log"
)

// committedRecords reads a topic read_committed until want records have
// arrived, then polls once more briefly to catch any extra: what a
// read_committed consumer upstream sees.
func committedRecords(t *testing.T, seeds []string, topic string, want int) map[int32][]*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	out := map[int32][]*kgo.Record{}
	got := 0
	poll := func(ctx context.Context) {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) { out[r.Partition] = append(out[r.Partition], r); got++ })
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for got < want && ctx.Err() == nil {
		poll(ctx)
	}
	if got < want {
		t.Fatalf("%s: %d of %d records visible read_committed", topic, got, want)
	}
	extra, cancel2 := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel2()
	poll(extra)
	return out
}

// checkExactlyOnce: the upstream partition holds each local record once,
// in local order, with its content.
func checkExactlyOnce(t *testing.T, site, topic string, p *spoollog.Partition, ups []*kgo.Record) {
	t.Helper()
	local := localRecords(t, p)
	if len(ups) != len(local) {
		t.Fatalf("%s/%d: %d records upstream (read_committed), %d local", topic, p.ID(), len(ups), len(local))
	}
	for i, r := range ups {
		if o := originOffset(t, r); o != local[i].Offset {
			t.Fatalf("%s/%d: upstream record %d has origin offset %d, want %d", topic, p.ID(), i, o, local[i].Offset)
		}
		checkMirrored(t, site, topic, p.ID(), local[i], r)
	}
}

func eosLink(t *testing.T, c []string, l *spoollog.Log, topics []string, extra ...kgo.Opt) *KafkaLink {
	t.Helper()
	k, err := NewKafkaLink(KafkaLinkOptions{Name: "central", Site: "pi", Seeds: c, Log: l, Topics: topics,
		ExactlyOnce: true, ReadBytes: 16 << 10, ClientOpts: extra, BackoffMax: 500 * time.Millisecond, DeliveryTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestExactlyOnceMirrors: an exactly-once link mirrors several topics; a
// read_committed consumer sees each record once, in order, and the
// cursors are committed upstream.
func TestExactlyOnceMirrors(t *testing.T) {
	l := newTestLog(t, spoollog.Options{})
	a := createTopic(t, l, "telemetry", 2, nil)
	b := createTopic(t, l, "alarms", 1, nil)
	for i := range int32(2) {
		appendBatch(t, partition(t, a, i), 300, spoollog.CodecNone)
	}
	appendBatch(t, partition(t, b, 0), 40, spoollog.CodecZstd)
	c := newCluster(t)
	k := eosLink(t, c.ListenAddrs(), l, []string{"telemetry", "alarms"})
	runLink(t, k)
	waitState(t, k, StateCaughtUp)
	// Live records after catching up go the same way.
	appendBatch(t, partition(t, b, 0), 5, spoollog.CodecNone)
	waitFor(t, "the live alarms mirrored", func() bool { return k.Health().Lag == 0 && k.Health().Records == 645 })

	up := committedRecords(t, c.ListenAddrs(), "pi.telemetry", 600)
	for i := range int32(2) {
		checkExactlyOnce(t, "pi", "telemetry", partition(t, a, i), up[i])
	}
	checkExactlyOnce(t, "pi", "alarms", partition(t, b, 0), committedRecords(t, c.ListenAddrs(), "pi.alarms", 45)[0])

	cursors := map[string]string{}
	for _, r := range committedRecords(t, c.ListenAddrs(), DefaultOffsetsTopic, 1)[0] {
		cursors[string(r.Key)] = string(r.Value)
	}
	for key, want := range map[string]string{"pi/central/telemetry/0": "300", "pi/central/telemetry/1": "300", "pi/central/alarms/0": "45"} {
		if cursors[key] != want {
			t.Errorf("committed cursor %s = %q, want %q (all: %v)", key, cursors[key], want, cursors)
		}
	}
}

// TestExactlyOnceResumesFromUpstream: a crash after a commit upstream but
// before the local cursor was stored (played by rewinding the local
// cursor) sends nothing twice: the next run resumes from the cursors
// committed upstream.
func TestExactlyOnceResumesFromUpstream(t *testing.T) {
	l := newTestLog(t, spoollog.Options{})
	tp := createTopic(t, l, "telemetry", 1, nil)
	p := partition(t, tp, 0)
	appendBatch(t, p, 200, spoollog.CodecNone)
	c := newCluster(t)
	k := eosLink(t, c.ListenAddrs(), l, []string{"telemetry"})
	stop := runLink(t, k)
	waitState(t, k, StateCaughtUp)
	stop()
	k.Close()
	if err := l.Meta().PutCursor(cursorNamespace("central"), cursorKey("telemetry", 0), encodeCursor(50)); err != nil {
		t.Fatal(err)
	}
	appendBatch(t, p, 100, spoollog.CodecNone)

	k2 := eosLink(t, c.ListenAddrs(), l, []string{"telemetry"})
	runLink(t, k2)
	waitFor(t, "the second run caught up", func() bool { h := k2.Health(); return h.State == StateCaughtUp && h.Lag == 0 })
	checkExactlyOnce(t, "pi", "telemetry", p, committedRecords(t, c.ListenAddrs(), "pi.telemetry", 300)[0])
	if got := storedCursor(t, l, "central", "telemetry", 0); got != 300 {
		t.Errorf("local cursor %d after the run, want 300", got)
	}
}

// TestExactlyOnceFencesZombie: a producer of an earlier run, still alive
// with the link's transactional id and a transaction open (records
// written, not committed), is fenced when the link starts: its records
// never become visible to read_committed consumers and it cannot commit.
func TestExactlyOnceFencesZombie(t *testing.T) {
	l := newTestLog(t, spoollog.Options{})
	tp := createTopic(t, l, "telemetry", 1, nil)
	p := partition(t, tp, 0)
	appendBatch(t, p, 100, spoollog.CodecNone)
	c := newCluster(t)
	k := eosLink(t, c.ListenAddrs(), l, []string{"telemetry"})

	zombie, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.TransactionalID(k.transactionalID()),
		kgo.DefaultProduceTopic("pi.telemetry"), kgo.AllowAutoTopicCreation(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer zombie.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if _, err := kadm.NewClient(zombie).CreateTopic(ctx, 1, -1, nil, "pi.telemetry"); err != nil {
		t.Fatal(err)
	}
	if err := zombie.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := zombie.ProduceSync(ctx, &kgo.Record{Value: []byte("zombie " + strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	runLink(t, k)
	waitState(t, k, StateCaughtUp)
	if err := zombie.EndTransaction(ctx, kgo.TryCommit); err == nil {
		t.Error("the fenced producer committed its transaction")
	}
	checkExactlyOnce(t, "pi", "telemetry", p, committedRecords(t, c.ListenAddrs(), "pi.telemetry", 100)[0])
}

// TestExactlyOnceOutages cuts the uplink again and again while records are
// produced locally and the link is restarted: afterwards read_committed
// consumers see every record exactly once, in order.
func TestExactlyOnceOutages(t *testing.T) {
	l := newTestLog(t, spoollog.Options{})
	tp := createTopic(t, l, "telemetry", 2, nil)
	c := newCluster(t)
	px := newProxy(t, c.ListenAddrs()[0])
	k := eosLink(t, c.ListenAddrs(), l, []string{"telemetry"}, px.dialer())
	stop := runLink(t, k)
	for round := range 6 {
		for i := range int32(2) {
			appendBatch(t, partition(t, tp, i), 40, spoollog.CodecNone)
		}
		time.Sleep(20 * time.Millisecond) // let some of it go upstream before the cut
		px.Cut()
		for i := range int32(2) {
			appendBatch(t, partition(t, tp, i), 20, spoollog.CodecNone)
		}
		time.Sleep(100 * time.Millisecond)
		px.Restore()
		if round%2 == 1 { // and a restart, with transactions possibly open
			stop()
			k.Close()
			k = eosLink(t, c.ListenAddrs(), l, []string{"telemetry"}, px.dialer())
			stop = runLink(t, k)
		}
	}
	waitFor(t, "the link caught up after the outages", func() bool { h := k.Health(); return h.State == StateCaughtUp && h.Lag == 0 })
	up := committedRecords(t, c.ListenAddrs(), "pi.telemetry", 2*6*60)
	for i := range int32(2) {
		checkExactlyOnce(t, "pi", "telemetry", partition(t, tp, i), up[i])
	}
}

// TestExactlyOnceNewLogIgnoresStaleCursors: a topic deleted and created
// again (as after a replaced data directory) starts at offset 0 while the
// cursors stored locally and committed upstream say 200: both are past
// the new log's end, so they are ignored and every new record goes up.
func TestExactlyOnceNewLogIgnoresStaleCursors(t *testing.T) {
	l := newTestLog(t, spoollog.Options{})
	tp := createTopic(t, l, "telemetry", 1, nil)
	appendBatch(t, partition(t, tp, 0), 200, spoollog.CodecNone)
	c := newCluster(t)
	k := eosLink(t, c.ListenAddrs(), l, []string{"telemetry"})
	stop := runLink(t, k)
	waitState(t, k, StateCaughtUp)
	stop()
	k.Close()

	if err := l.DeleteTopic("telemetry"); err != nil {
		t.Fatal(err)
	}
	tp = createTopic(t, l, "telemetry", 1, nil)
	p := partition(t, tp, 0)
	appendBatch(t, p, 30, spoollog.CodecNone)
	k2 := eosLink(t, c.ListenAddrs(), l, []string{"telemetry"})
	runLink(t, k2)
	waitFor(t, "the new records mirrored", func() bool { h := k2.Health(); return h.State == StateCaughtUp && h.Records == 30 })
	if got := len(committedRecords(t, c.ListenAddrs(), "pi.telemetry", 230)[0]); got != 230 {
		t.Errorf("%d records upstream, want 200 old and 30 new", got)
	}
}

// TestExactlyOnceTopicNotReadyHoldsOnlyItself: a topic added while running
// whose upstream topic has too few partitions for keep is held back, with
// the reason in Health, while the other topics go on.
func TestExactlyOnceTopicNotReadyHoldsOnlyItself(t *testing.T) {
	l := newTestLog(t, spoollog.Options{})
	a := createTopic(t, l, "a", 1, nil)
	b := createTopic(t, l, "b", 2, nil)
	c := newCluster(t)
	adm, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	if _, err := kadm.NewClient(adm).CreateTopic(context.Background(), 1, -1, nil, "pi.b"); err != nil {
		t.Fatal(err)
	}
	k := eosLink(t, c.ListenAddrs(), l, []string{"a"})
	runLink(t, k)
	appendBatch(t, partition(t, a, 0), 10, spoollog.CodecNone)
	waitFor(t, "a mirrored", func() bool { return k.Health().Records == 10 })
	appendBatch(t, partition(t, b, 1), 5, spoollog.CodecNone)
	if _, err := k.AddTopics("b"); err != nil {
		t.Fatal(err)
	}
	appendBatch(t, partition(t, a, 0), 10, spoollog.CodecNone)
	waitFor(t, "a still mirrored", func() bool { return k.Health().Records == 20 })
	waitFor(t, "the reason reported", func() bool {
		return strings.Contains(k.Health().LastError, "partitioning keep needs 2")
	})
}
