package bridge

import (
	"context"
	"fmt"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	spoollog "github.com/spoolmq/spool/log"
)

func TestMatchFilter(t *testing.T) {
	for _, tc := range []struct {
		filter, topic string
		want          bool
	}{
		{"a/b", "a/b", true}, {"a/b", "a/c", false}, {"a/+", "a/b", true}, {"a/+", "a/b/c", false},
		{"a/#", "a", true}, {"a/#", "a/b/c", true}, {"#", "x/y", true}, {"+/b", "a/b", true},
		{"+", "a/b", false}, {"a/b", "a", false}, {"a", "a/b", false},
	} {
		if got := matchFilter(tc.filter, tc.topic); got != tc.want {
			t.Errorf("matchFilter(%q, %q) = %v, want %v", tc.filter, tc.topic, got, tc.want)
		}
	}
}

// TestMQTTDownstream: messages published upstream reach the local topic
// in order, keyed by their MQTT topic; those published while the edge was
// away are kept by the broker (persistent session) and arrive after it
// reconnects.
func TestMQTTDownstream(t *testing.T) {
	mq := startMosquitto(t, true)
	l := newTestLog(t, spoollog.Options{})
	cmds := createTopic(t, l, "commands", 1, nil)
	p := partition(t, cmds, 0)
	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(mq.url()).SetClientID("datacenter").SetAutoReconnect(false))
	if tok := pub.Connect(); !tok.WaitTimeout(testTimeout) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer pub.Disconnect(50)
	send := func(from, to int) {
		for i := from; i < to; i++ {
			if tok := pub.Publish(fmt.Sprintf("cmd/edge-1/pump%d", i%2), 1, false, fmt.Sprintf("command %d", i)); !tok.WaitTimeout(testTimeout) || tok.Error() != nil {
				t.Fatal(tok.Error())
			}
		}
	}
	start := func() (stop func()) {
		d, err := NewMQTTDownstream(MQTTDownstreamOptions{Name: "down", Site: "edge-1", Broker: mq.url(), Log: l,
			Filters: map[string]string{"cmd/edge-1/#": "commands"}, BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- d.Run(ctx) }()
		return func() { cancel(); <-done }
	}
	stop := start()
	// The very first subscription must be in place before the first
	// publish (MQTT keeps nothing for a session that does not exist yet).
	time.Sleep(300 * time.Millisecond)
	send(0, 5)
	waitFor(t, "5 commands stored", func() bool { return p.HighWatermark() == 5 })
	stop()
	send(5, 8) // while the edge is away
	stop = start()
	defer stop()
	waitFor(t, "8 commands stored", func() bool { return p.HighWatermark() >= 8 })
	recs := localRecords(t, p)
	if len(recs) != 8 {
		t.Fatalf("%d local records, want 8", len(recs))
	}
	for i, r := range recs {
		topic := fmt.Sprintf("cmd/edge-1/pump%d", i%2)
		if string(r.Value) != fmt.Sprintf("command %d", i) || string(r.Key) != topic ||
			len(r.Headers) != 1 || r.Headers[0].Key != HeaderUpstreamTopic || string(r.Headers[0].Value) != topic {
			t.Fatalf("record %d: key %q value %q headers %v", i, r.Key, r.Value, r.Headers)
		}
	}
}
