package bridge

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	spoollog "github.com/spoolmq/spool/log"
)

// checkComplete asserts that the upstream copy of a local partition is
// complete: every local offset is there at least once, with its content; the
// first occurrences come in local order (resends repeat a suffix, they never
// jump ahead); and it returns how many copies were resends.
func checkComplete(t *testing.T, site, topic string, p *spoollog.Partition, ups []*kgo.Record) (dups int) {
	t.Helper()
	local := localRecords(t, p)
	seen := make(map[int64]bool)
	next := p.LogStartOffset()
	for _, r := range ups {
		if header(r, HeaderTopic) != topic || header(r, HeaderPartition) != itoa(p.ID()) || header(r, HeaderEdge) != site {
			t.Fatalf("upstream record %d of %s/%d has origin %v", r.Offset, topic, p.ID(), r.Headers)
		}
		o := originOffset(t, r)
		if o > next {
			t.Fatalf("%s/%d: upstream jumps to origin offset %d before %d arrived (a gap)", topic, p.ID(), o, next)
		}
		if o == next {
			next++
		}
		if seen[o] {
			dups++
			continue
		}
		seen[o] = true
		checkMirrored(t, site, topic, p.ID(), local[o-p.LogStartOffset()], r)
	}
	if len(seen) != len(local) {
		t.Fatalf("%s/%d: %d distinct origin offsets upstream, %d records local", topic, p.ID(), len(seen), len(local))
	}
	return dups
}

func itoa(i int32) string { return string(rune('0' + i)) }

// TestOutage cuts the uplink (a proxy between the link and the cluster),
// produces locally meanwhile, and restores it: the link reports failing
// with the error while the cursors stay put, then drains everything;
// upstream has every local record (resends identifiable by origin headers),
// and the stored cursors end at the high watermarks. In the short outage
// kgo holds the records and retries them itself; in the long one they time
// out, the link replaces its client and resends.
func TestOutage(t *testing.T) {
	for _, tc := range []struct {
		name             string
		delivery, outage time.Duration
	}{
		{"short", 5 * time.Second, 200 * time.Millisecond},
		{"long", time.Second, 2500 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) { testOutage(t, tc.delivery, tc.outage) })
	}
}

func testOutage(t *testing.T, delivery, outage time.Duration) {
	l := newTestLog(t, spoollog.Options{})
	tp := createTopic(t, l, "t", 2, nil)
	for i := range int32(2) {
		for range 3 {
			appendBatch(t, partition(t, tp, i), 10, spoollog.CodecNone)
		}
	}
	c := newCluster(t)
	px := newProxy(t, c.ListenAddrs()[0])
	k, err := NewKafkaLink(KafkaLinkOptions{
		Name: "o", Site: "s", Seeds: []string{"upstream.invalid:9092"}, Log: l, Topics: []string{"t"},
		ClientOpts:      []kgo.Opt{px.dialer()},
		DeliveryTimeout: delivery,
		BackoffMin:      10 * time.Millisecond, BackoffMax: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	runLink(t, k)
	waitState(t, k, StateCaughtUp)

	px.Cut()
	for i := range int32(2) {
		for range 5 {
			appendBatch(t, partition(t, tp, i), 10, spoollog.CodecNone)
		}
	}
	h := waitState(t, k, StateFailing)
	if h.Lag != 100 || h.LastError == "" || h.LastErrorAt.IsZero() {
		t.Fatalf("during the outage: lag %d, last error %q at %v; want lag 100 and an error", h.Lag, h.LastError, h.LastErrorAt)
	}
	for i := range int32(2) {
		if c := storedCursor(t, l, "o", "t", i); c != 30 {
			t.Fatalf("partition %d: cursor moved to %d during the outage, want 30", i, c)
		}
	}
	time.Sleep(outage)
	px.Restore()

	h = waitState(t, k, StateCaughtUp)
	if h.Records < 160 || h.Lag != 0 || h.LastError == "" {
		t.Fatalf("after the outage: records %d, lag %d, last error %q; want >= 160, 0, the outage's error kept", h.Records, h.Lag, h.LastError)
	}
	up := upstreamRecords(t, c.ListenAddrs(), "s.t")["s.t"]
	for i := range int32(2) {
		p := partition(t, tp, i)
		dups := checkComplete(t, "s", "t", p, up[i])
		t.Logf("partition %d: %d records upstream, %d resends", i, len(up[i]), dups)
		if c := storedCursor(t, l, "o", "t", i); c != p.HighWatermark() {
			t.Fatalf("partition %d: cursor %d, high watermark %d", i, c, p.HighWatermark())
		}
	}
}

// TestRestartMidStream stops a link while a produce request is unanswered
// (the cluster swallows it): the cursor stays before the unacknowledged
// records. A new link with the same name starts from the stored cursor and
// completes the copy without a gap.
func TestRestartMidStream(t *testing.T) {
	l := newTestLog(t, spoollog.Options{})
	tp := createTopic(t, l, "t", 1, nil)
	p := partition(t, tp, 0)
	for range 20 {
		appendBatch(t, p, 5, spoollog.CodecNone)
	}
	c := newCluster(t)
	var produces atomic.Int32
	var release atomic.Bool
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		if release.Load() {
			c.DropControl()
			return nil, nil, false
		}
		if produces.Add(1) > 3 {
			c.KeepControl()
			return nil, nil, true // no response: the request hangs
		}
		return nil, nil, false
	})
	opts := KafkaLinkOptions{
		Name: "r", Site: "s", Seeds: c.ListenAddrs(), Log: l, Topics: []string{"t"},
		ReadBytes:    1, // one stored batch (5 records) per round
		FlushTimeout: 100 * time.Millisecond,
	}
	k1, err := NewKafkaLink(opts)
	if err != nil {
		t.Fatal(err)
	}
	stop := runLink(t, k1)
	waitFor(t, "the fourth produce request", func() bool { return produces.Load() >= 4 })
	stop()
	if err := k1.Close(); err != nil {
		t.Fatal(err)
	}
	if c := storedCursor(t, l, "r", "t", 0); c != 15 {
		t.Fatalf("cursor after stopping with a request unanswered: %d, want 15", c)
	}
	release.Store(true)

	k2, err := NewKafkaLink(opts)
	if err != nil {
		t.Fatal(err)
	}
	if h := k2.Health(); h.Partitions[0].Cursor != 15 || h.Lag != 85 {
		t.Fatalf("new link starts at cursor %d lag %d, want 15, 85", h.Partitions[0].Cursor, h.Lag)
	}
	runLink(t, k2)
	waitState(t, k2, StateCaughtUp)
	up := upstreamRecords(t, c.ListenAddrs(), "s.t")["s.t"][0]
	dups := checkComplete(t, "s", "t", p, up)
	t.Logf("%d records upstream, %d resends", len(up), dups)
	if c := storedCursor(t, l, "r", "t", 0); c != 100 {
		t.Fatalf("final cursor %d, want 100", c)
	}
}

// TestRestartResumes stops a caught-up link cleanly, appends more and
// starts a new link on the same log: it mirrors only the new records.
func TestRestartResumes(t *testing.T) {
	l := newTestLog(t, spoollog.Options{})
	tp := createTopic(t, l, "t", 2, nil)
	for i := range int32(2) {
		appendBatch(t, partition(t, tp, i), 10, spoollog.CodecNone)
	}
	c := newCluster(t)
	opts := KafkaLinkOptions{Name: "r", Site: "s", Seeds: c.ListenAddrs(), Log: l, Topics: []string{"t"}}
	k1, err := NewKafkaLink(opts)
	if err != nil {
		t.Fatal(err)
	}
	stop := runLink(t, k1)
	waitState(t, k1, StateCaughtUp)
	stop()
	k1.Close()
	for i := range int32(2) {
		appendBatch(t, partition(t, tp, i), 7, spoollog.CodecZstd)
	}
	k2, err := NewKafkaLink(opts)
	if err != nil {
		t.Fatal(err)
	}
	runLink(t, k2)
	h := waitState(t, k2, StateCaughtUp)
	if h.Records != 14 {
		t.Fatalf("second link mirrored %d records, want 14", h.Records)
	}
	up := upstreamRecords(t, c.ListenAddrs(), "s.t")["s.t"]
	for i := range int32(2) {
		if dups := checkComplete(t, "s", "t", partition(t, tp, i), up[i]); dups != 0 || len(up[i]) != 17 {
			t.Fatalf("partition %d: %d records, %d resends; want 17, 0", i, len(up[i]), dups)
		}
	}
}

// TestStallReportsFailing: the cluster accepts connections but never
// answers produce requests. No record fails (the delivery timeout is long),
// yet Health reports failing once the lag has not moved for StallTimeout.
// When the cluster answers again, the link drains.
func TestStallReportsFailing(t *testing.T) {
	l := newTestLog(t, spoollog.Options{})
	tp := createTopic(t, l, "t", 1, nil)
	p := partition(t, tp, 0)
	appendBatch(t, p, 10, spoollog.CodecNone)
	c := newCluster(t)
	var hold atomic.Bool
	hold.Store(true)
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		if !hold.Load() {
			c.DropControl()
			return nil, nil, false
		}
		c.KeepControl()
		return nil, nil, true
	})
	k, err := NewKafkaLink(KafkaLinkOptions{
		Name: "st", Site: "s", Seeds: c.ListenAddrs(), Log: l, Topics: []string{"t"},
		StallTimeout: 200 * time.Millisecond,
		ClientOpts:   []kgo.Opt{kgo.ProduceRequestTimeout(200 * time.Millisecond), kgo.RequestTimeoutOverhead(200 * time.Millisecond)},
	})
	if err != nil {
		t.Fatal(err)
	}
	runLink(t, k)
	h := waitState(t, k, StateFailing)
	ph := h.Partitions[0]
	if !ph.Stalled || ph.Failing || !strings.Contains(h.LastError, "no progress") || h.Lag != 10 {
		t.Fatalf("stalled health %+v", h)
	}
	hold.Store(false)
	waitState(t, k, StateCaughtUp)
	up := upstreamRecords(t, c.ListenAddrs(), "s.t")["s.t"][0]
	checkComplete(t, "s", "t", p, up)
}

// TestConnectingUntilReachable: while the upstream refuses connections the
// link is failing with the setup error and has mirrored nothing; once it is
// reachable the link drains.
func TestConnectingUntilReachable(t *testing.T) {
	l := newTestLog(t, spoollog.Options{})
	tp := createTopic(t, l, "t", 1, nil)
	appendBatch(t, partition(t, tp, 0), 4, spoollog.CodecNone)
	c := newCluster(t)
	px := newProxy(t, c.ListenAddrs()[0])
	px.Cut()
	k, err := NewKafkaLink(KafkaLinkOptions{
		Name: "c", Site: "s", Seeds: []string{"upstream.invalid:9092"}, Log: l, Topics: []string{"t"},
		ClientOpts: []kgo.Opt{px.dialer(), kgo.RetryTimeout(200 * time.Millisecond)},
		BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	runLink(t, k)
	h := waitState(t, k, StateFailing)
	if h.Records != 0 || h.Lag != 4 || h.LastError == "" {
		t.Fatalf("unreachable upstream: %+v", h)
	}
	px.Restore()
	h = waitState(t, k, StateCaughtUp)
	if h.Records != 4 {
		t.Fatalf("mirrored %d, want 4", h.Records)
	}
}
