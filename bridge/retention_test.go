package bridge

import (
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	spoollog "github.com/spoolmq/spool/log"
)

// smallSegments rolls a segment every few records and keeps everything
// until the test turns size retention on.
func smallSegments(cfg *spoollog.TopicConfig) {
	cfg.SegmentBytes = 1024
	cfg.MaxMessageBytes = 1024
	cfg.Retention = -1
	cfg.RetentionBytes = -1
}

func retainNothing(t *testing.T, l *spoollog.Log, topic string) {
	t.Helper()
	tp, err := l.Topic(topic)
	if err != nil {
		t.Fatal(err)
	}
	cfg := tp.Config()
	cfg.RetentionBytes = 0
	if err := l.AlterTopic(topic, cfg); err != nil {
		t.Fatal(err)
	}
	if err := l.Maintain(); err != nil {
		t.Fatal(err)
	}
}

// TestPinHoldsRetention: a link's cursor pins retention from the moment the
// link is built. Size retention that empties an unmirrored topic keeps
// every record of the mirrored one until the link has acknowledged them,
// and releases them once it has.
func TestPinHoldsRetention(t *testing.T) {
	l := newTestLog(t, spoollog.Options{})
	held := partition(t, createTopic(t, l, "held", 1, smallSegments), 0)
	free := partition(t, createTopic(t, l, "free", 1, smallSegments), 0)
	for range 30 {
		appendBatch(t, held, 1, spoollog.CodecNone)
		appendBatch(t, free, 1, spoollog.CodecNone)
	}
	c := newCluster(t)
	k, err := NewKafkaLink(KafkaLinkOptions{Name: "p", Site: "s", Seeds: c.ListenAddrs(), Log: l, Topics: []string{"held"}})
	if err != nil {
		t.Fatal(err)
	}
	retainNothing(t, l, "held")
	retainNothing(t, l, "free")
	if free.LogStartOffset() == 0 {
		t.Fatal("retention deleted nothing from the unpinned topic: the test proves nothing")
	}
	if s := held.LogStartOffset(); s != 0 {
		t.Fatalf("retention deleted up to %d below the link's cursor 0", s)
	}

	stop := runLink(t, k)
	waitState(t, k, StateCaughtUp)
	up := upstreamRecords(t, c.ListenAddrs(), "s.held")["s.held"][0]
	if dups := checkComplete(t, "s", "held", held, up); dups != 0 || len(up) != 30 {
		t.Fatalf("%d records upstream, %d resends; want 30, 0", len(up), dups)
	}
	stop()
	if err := l.Maintain(); err != nil {
		t.Fatal(err)
	}
	if s := held.LogStartOffset(); s == 0 || s > 30 {
		t.Fatalf("after mirroring, retention left the log start at %d; want it past 0", s)
	}
	if h := k.Health(); h.Gaps != 0 {
		t.Fatalf("retention behind the cursor counted %d gap offsets", h.Gaps)
	}
}

// TestGapCounted: records deleted before the link mirrored them
// (DeleteRecords here, drop_oldest in the field) are skipped, counted in
// Health as a gap and logged as a warning; everything after them arrives.
func TestGapCounted(t *testing.T) {
	l := newTestLog(t, spoollog.Options{})
	p := partition(t, createTopic(t, l, "t", 1, nil), 0)
	for range 10 {
		appendBatch(t, p, 10, spoollog.CodecNone)
	}
	c := newCluster(t)
	var logs testLogger
	k, err := NewKafkaLink(KafkaLinkOptions{Name: "g", Site: "s", Seeds: c.ListenAddrs(), Log: l, Topics: []string{"t"}, Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DeleteRecords(40); err != nil {
		t.Fatal(err)
	}
	runLink(t, k)
	h := waitState(t, k, StateCaughtUp)
	if h.Gaps != 40 || h.Records != 60 {
		t.Fatalf("gaps %d records %d, want 40, 60", h.Gaps, h.Records)
	}
	if out := logs.String(); !strings.Contains(out, "records deleted before they were mirrored") || !strings.Contains(out, "lost=40") {
		t.Fatalf("no gap warning in the log:\n%s", out)
	}
	up := upstreamRecords(t, c.ListenAddrs(), "s.t")["s.t"][0]
	if dups := checkComplete(t, "s", "t", p, up); dups != 0 || len(up) != 60 || originOffset(t, up[0]) != 40 {
		t.Fatalf("%d records upstream from %d, %d resends; want 60 from 40, 0", len(up), originOffset(t, up[0]), dups)
	}
	if c := storedCursor(t, l, "g", "t", 0); c != 100 {
		t.Fatalf("cursor %d, want 100", c)
	}
}

// TestGapDuringOutage: records deleted while the uplink is down. Whatever
// the link had already read goes out after the outage; the rest below the
// new log start is a gap. Every local offset is either upstream or counted.
func TestGapDuringOutage(t *testing.T) {
	l := newTestLog(t, spoollog.Options{})
	p := partition(t, createTopic(t, l, "t", 1, nil), 0)
	appendBatch(t, p, 20, spoollog.CodecNone)
	c := newCluster(t)
	px := newProxy(t, c.ListenAddrs()[0])
	k, err := NewKafkaLink(KafkaLinkOptions{
		Name: "g", Site: "s", Seeds: []string{"upstream.invalid:9092"}, Log: l, Topics: []string{"t"},
		ClientOpts: []kgo.Opt{px.dialer()}, ReadBytes: 1,
		BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	runLink(t, k)
	waitState(t, k, StateCaughtUp)
	px.Cut()
	for range 6 {
		appendBatch(t, p, 5, spoollog.CodecNone)
	}
	waitState(t, k, StateFailing)
	if _, err := p.DeleteRecords(40); err != nil {
		t.Fatal(err)
	}
	px.Restore()
	h := waitState(t, k, StateCaughtUp)
	if h.Gaps == 0 {
		t.Fatal("records deleted past the cursor were not counted as a gap")
	}
	up := upstreamRecords(t, c.ListenAddrs(), "s.t")["s.t"][0]
	distinct := make(map[int64]bool)
	for _, r := range up {
		distinct[originOffset(t, r)] = true
	}
	if int64(len(distinct))+h.Gaps != 50 {
		t.Fatalf("%d offsets upstream + %d counted as gap != 50 local offsets", len(distinct), h.Gaps)
	}
	for o := int64(40); o < 50; o++ {
		if !distinct[o] {
			t.Fatalf("offset %d (after the deletion) missing upstream", o)
		}
	}
	t.Logf("%d offsets mirrored, %d in the gap", len(distinct), h.Gaps)
}
