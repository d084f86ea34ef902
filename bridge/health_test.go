package bridge

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	spoollog "github.com/spoolmq/spool/log"
)

// TestHealthBacklog: while the uplink is cut, Health shows the backlog's
// size in records and bytes and the time of its oldest record; once it
// drained, both are zero and the recent throughput is positive.
func TestHealthBacklog(t *testing.T) {
	l := newTestLog(t, spoollog.Options{})
	tp := createTopic(t, l, "telemetry", 1, nil)
	p := partition(t, tp, 0)
	before := time.Now().Add(-time.Second)
	appendBatch(t, p, 100, spoollog.CodecNone)
	appendBatch(t, p, 100, spoollog.CodecNone)
	c := newCluster(t)
	px := newProxy(t, c.ListenAddrs()[0])
	px.Cut()
	k, err := NewKafkaLink(KafkaLinkOptions{Name: "up", Site: "s", Seeds: c.ListenAddrs(), Log: l, Topics: []string{"telemetry"},
		ClientOpts: []kgo.Opt{px.dialer()}, BackoffMax: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runLink(t, k)
	h := k.Health()
	// The bytes are the data's, not the segment files' (preallocation).
	if h.Lag != 200 || h.LagBytes < 200*20 || h.LagBytes > p.DataBytes() {
		t.Errorf("backlog: lag %d records, %d bytes (partition data %d bytes)", h.Lag, h.LagBytes, p.DataBytes())
	}
	if h.OldestUnmirrored.Before(before) || h.OldestUnmirrored.After(time.Now()) {
		t.Errorf("oldest unmirrored %v, want between %v and now", h.OldestUnmirrored, before)
	}
	px.Restore()
	waitFor(t, "caught up", func() bool { h = k.Health(); return h.State == StateCaughtUp && h.Lag == 0 })
	time.Sleep(time.Second) // a second sample for the rate
	h = k.Health()
	if h.LagBytes != 0 || !h.OldestUnmirrored.IsZero() {
		t.Errorf("caught up: lag bytes %d, oldest %v", h.LagBytes, h.OldestUnmirrored)
	}
	if h.RecordsPerSec <= 0 || h.BytesPerSec <= 0 {
		t.Errorf("throughput after draining 200 records: %.1f records/s, %.1f bytes/s", h.RecordsPerSec, h.BytesPerSec)
	}
}
