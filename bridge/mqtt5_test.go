package bridge

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	spoollog "github.com/spoolmq/spool/log"
)

// v5Message is a message a test MQTT 5 subscriber received.
type v5Message struct {
	topic       string
	payload     []byte
	user        map[string]string
	contentType string
}

type v5Received struct {
	mu   sync.Mutex
	msgs []v5Message
}

func (r *v5Received) snapshot() []v5Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]v5Message(nil), r.msgs...)
}

// subscribe5 subscribes to filter over MQTT 5 (paho.golang) and records
// every message with its properties.
func subscribe5(t *testing.T, broker, filter string) *v5Received {
	t.Helper()
	r := &v5Received{}
	nc, err := net.DialTimeout("tcp", broker[len("tcp://"):], 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: nc, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
		func(pr paho.PublishReceived) (bool, error) {
			m := v5Message{topic: pr.Packet.Topic, payload: pr.Packet.Payload, user: map[string]string{}}
			if p := pr.Packet.Properties; p != nil {
				m.contentType = p.ContentType
				for _, u := range p.User {
					m.user[u.Key] = u.Value
				}
			}
			r.mu.Lock()
			r.msgs = append(r.msgs, m)
			r.mu.Unlock()
			return true, nil
		}}})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: fmt.Sprintf("sub5-%d", time.Now().UnixNano()), CleanStart: true, KeepAlive: 30}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect(&paho.Disconnect{}) })
	return r
}

// TestMQTT5LinkUserProperties: over MQTT 5 every message carries the
// record's headers and its origin as user properties and a content-type
// header as its content type, in local order, and nothing is sent twice.
func TestMQTT5LinkUserProperties(t *testing.T) {
	mq := startMosquitto(t, false)
	l := newTestLog(t, spoollog.Options{})
	tp := createTopic(t, l, "sensors", 2, nil)
	sub := subscribe5(t, mq.url(), "edge-5/#")
	for i := range int32(2) {
		recs := make([]spoollog.Record, 300)
		for j := range recs {
			recs[j] = spoollog.Record{Timestamp: time.Now().UnixMilli(), Key: []byte("k"), Value: fmt.Appendf(nil, "%d-%d", i, j),
				Headers: []spoollog.Header{{Key: "content-type", Value: []byte("text/plain")}, {Key: "unit", Value: []byte("C")}}}
		}
		if _, err := partition(t, tp, i).AppendRecords(recs, spoollog.DefaultBatchOptions); err != nil {
			t.Fatal(err)
		}
	}
	link := newTestMQTTLink(t, MQTTLinkOptions{Name: "up", Site: "edge-5", Broker: mq.url(), Log: l, Version: 5,
		Topics: []string{"sensors"}, Topic: "{site}/{topic}/{partition}", InFlight: 32})
	runMQTTLink(t, link)
	h := waitMQTTState(t, link, StateCaughtUp)
	waitFor(t, "600 messages", func() bool { return len(sub.snapshot()) >= 600 })
	time.Sleep(100 * time.Millisecond) // a duplicate would arrive by now
	msgs := sub.snapshot()
	if len(msgs) != 600 || h.Records != 600 {
		t.Fatalf("%d messages, health %d records; want 600", len(msgs), h.Records)
	}
	next := map[string]int{}
	for _, m := range msgs {
		p := m.user[HeaderPartition]
		want := fmt.Sprintf("%s-%d", p, next[p])
		if !bytes.Equal(m.payload, []byte(want)) || m.topic != "edge-5/sensors/"+p ||
			m.user[HeaderEdge] != "edge-5" || m.user[HeaderTopic] != "sensors" || m.user[HeaderOffset] != strconv.Itoa(next[p]) ||
			m.user["unit"] != "C" || m.contentType != "text/plain" {
			t.Fatalf("message %+v, want payload %q", m, want)
		}
		next[p]++
	}
	checkCursorsAtEnd(t, l, "up", h)
}

// TestMQTT5LinkUpstreamRestart: the MQTT 5 link survives a restart of the
// broker: it reports failing, reconnects and resumes from its cursors.
func TestMQTT5LinkUpstreamRestart(t *testing.T) {
	mq := startMosquitto(t, true)
	l := newTestLog(t, spoollog.Options{})
	tp := createTopic(t, l, "events", 1, nil)
	p := partition(t, tp, 0)
	appendBatch(t, p, 100, spoollog.CodecNone)
	link := newTestMQTTLink(t, MQTTLinkOptions{Name: "up", Site: "edge-6", Broker: mq.url(), Log: l, Version: 5, Topics: []string{"events"}})
	runMQTTLink(t, link)
	waitMQTTState(t, link, StateCaughtUp)
	mq.stop()
	appendBatch(t, p, 50, spoollog.CodecNone)
	waitMQTTState(t, link, StateFailing)
	mq.start()
	sub := subscribe5(t, mq.url(), "edge-6/#")
	appendBatch(t, p, 25, spoollog.CodecNone)
	waitFor(t, "caught up after the restart", func() bool { h := link.Health(); return h.State == StateCaughtUp && h.Lag == 0 })
	if got := storedCursor(t, l, "up", "events", 0); got != 175 {
		t.Errorf("cursor %d, want 175", got)
	}
	// The subscriber connected after the restart: it gets the records
	// resent or produced since, the last one last, with its origin.
	waitFor(t, "the last record", func() bool {
		msgs := sub.snapshot()
		return len(msgs) > 0 && msgs[len(msgs)-1].user[HeaderOffset] == "174"
	})
}
