package mqtt_test

// The broker's count of subscriptions decides whether a stored publish
// goes through mochi's delivery at all: it must follow every way a
// subscription comes and goes, or a subscriber misses messages.

import (
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"
)

func TestSubscriptionsFollowSessions(t *testing.T) {
	tb := startBroker(t, setup{})
	noop := func(paho.Client, paho.Message) {}
	subs := func() int64 { return tb.B.Stats().Subscriptions }
	wantSubs := func(what string, n int64) {
		t.Helper()
		waitFor(t, what, func() bool { return subs() == n })
	}
	if n := subs(); n != 0 {
		t.Fatalf("a fresh broker holds %d subscriptions", n)
	}

	// A clean session: subscribing twice to a filter holds it once, an
	// invalid filter is refused and not held, UNSUBSCRIBE drops one.
	clean := pahoConnect(t, pahoOptions(tb.url(), "clean-1"))
	if err := waitToken(t, clean.SubscribeMultiple(map[string]byte{"a/#": 1, "b/+": 0}, noop)); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	if err := waitToken(t, clean.Subscribe("a/#", 1, noop)); err != nil {
		t.Fatalf("subscribe again: %v", err)
	}
	wantSubs("two filters held", 2)
	// paho checks filters itself: an invalid one goes out raw.
	rc := dialRaw(t, tb.addr(), 4)
	rc.mustConnect("raw-1")
	rc.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 7,
		Filters: packets.Subscriptions{{Filter: "bad/#/filter", Qos: 1}}})
	if ack := rc.readAck(packets.Suback, 7); len(ack.ReasonCodes) != 1 || ack.ReasonCodes[0] < 0x80 {
		t.Fatalf("SUBACK for an invalid filter: %v", ack.ReasonCodes)
	}
	wantSubs("an invalid filter not held", 2)
	if err := waitToken(t, clean.Unsubscribe("b/+")); err != nil {
		t.Fatalf("unsubscribe: %v", err)
	}
	wantSubs("one filter left after UNSUBSCRIBE", 1)
	rc.conn.Close()

	// A persistent session keeps its filter while away, and gets what
	// was published meanwhile.
	dev, _ := connectSession(t, pahoOptions(tb.url(), "dev-1").SetCleanSession(false))
	if err := waitToken(t, dev.Subscribe("cmd/dev-1", 1, noop)); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	dev.Disconnect(50)
	clean.Disconnect(50)
	waitFor(t, "both clients to leave", func() bool { return tb.B.Stats().Clients == 0 })
	wantSubs("the persistent session's filter only", 1)

	pub := pahoConnect(t, pahoOptions(tb.url(), "ops"))
	if err := waitToken(t, pub.Publish("cmd/dev-1", 1, false, "while-away")); err != nil {
		t.Fatalf("publish: %v", err)
	}

	// Taken over by a second connection with the same id: still held.
	var got collector
	dev2, present := connectSession(t, pahoOptions(tb.url(), "dev-1").SetCleanSession(false).SetDefaultPublishHandler(got.handler))
	if !present {
		t.Fatalf("the persistent session is gone")
	}
	if m := got.wait(t, 1); m[0].payload != "while-away" {
		t.Errorf("dev-1 got %+v", m)
	}
	var got3 collector
	dev3, _ := connectSession(t, pahoOptions(tb.url(), "dev-1").SetCleanSession(false).SetDefaultPublishHandler(got3.handler))
	waitFor(t, "the first connection to be taken over", func() bool { return !dev2.IsConnectionOpen() })
	wantSubs("the filter after a takeover", 1)
	if err := waitToken(t, pub.Publish("cmd/dev-1", 1, false, "after-takeover")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	if m := got3.wait(t, 1); m[0].payload != "after-takeover" {
		t.Errorf("dev-1 after the takeover got %+v", m)
	}
	dev3.Disconnect(50)
	waitFor(t, "dev-1 to leave", func() bool { return tb.B.Stats().Clients == 1 })

	// Restored from the store after a restart.
	pub.Disconnect(50)
	tb.restart()
	wantSubs("the stored session's filter after a restart", 1)
	pub = pahoConnect(t, pahoOptions(tb.url(), "ops"))
	if err := waitToken(t, pub.Publish("cmd/dev-1", 1, false, "after-restart")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	var got4 collector
	dev4, _ := connectSession(t, pahoOptions(tb.url(), "dev-1").SetCleanSession(false).SetDefaultPublishHandler(got4.handler))
	if m := got4.wait(t, 1); m[0].payload != "after-restart" {
		t.Errorf("dev-1 after the restart got %+v", m)
	}
	dev4.Disconnect(50)
	waitFor(t, "dev-1 to leave", func() bool { return tb.B.Stats().Clients == 1 })

	// Coming back with a clean session ends the stored one.
	cleanDev := pahoConnect(t, pahoOptions(tb.url(), "dev-1").SetCleanSession(true))
	wantSubs("nothing once dev-1 starts clean", 0)
	cleanDev.Disconnect(50)

	// Nobody subscribes now: publishes are still stored.
	if err := waitToken(t, pub.Publish("cmd/dev-1", 1, false, "nobody")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	stays(t, 100*time.Millisecond, "no subscription to appear", func() bool { return subs() == 0 })
	if v := values(tb.records("mqtt", 0)); len(v) == 0 || v[len(v)-1] != "nobody" {
		t.Errorf("the log holds %q, want the last publish stored", v)
	}
}
