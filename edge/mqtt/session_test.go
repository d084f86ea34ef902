package mqtt_test

// Persistent sessions and retained messages survive a restart of the
// broker and the log; clean sessions do not.

import (
	"slices"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// connectSession connects a paho client and reports whether the broker
// had a session for it.
func connectSession(t *testing.T, o *paho.ClientOptions) (paho.Client, bool) {
	t.Helper()
	c := paho.NewClient(o)
	tok := c.Connect()
	if err := waitToken(t, tok); err != nil {
		t.Fatalf("connect %s: %v", o.ClientID, err)
	}
	t.Cleanup(func() {
		if c.IsConnectionOpen() {
			c.Disconnect(50)
		}
	})
	return c, tok.(*paho.ConnectToken).SessionPresent()
}

func TestSessionsSurviveRestart(t *testing.T) {
	tb := startBroker(t, setup{})
	noop := func(paho.Client, paho.Message) {}

	// A persistent and a clean session subscribe to commands, then leave.
	dev, _ := connectSession(t, pahoOptions(tb.url(), "dev-1").SetCleanSession(false))
	if err := waitToken(t, dev.Subscribe("cmd/#", 1, noop)); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	dev.Disconnect(50)
	clean, _ := connectSession(t, pahoOptions(tb.url(), "dev-clean").SetCleanSession(true))
	if err := waitToken(t, clean.Subscribe("cmd/#", 1, noop)); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	clean.Disconnect(50)
	waitFor(t, "both clients to leave", func() bool { return tb.B.Stats().Clients == 0 })

	// A command while dev-1 is away, and a retained status.
	pub := pahoConnect(t, pahoOptions(tb.url(), "ops-1"))
	if err := waitToken(t, pub.Publish("cmd/dev-1", 1, false, "before-restart")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	if err := waitToken(t, pub.Publish("status/gw", 1, true, "online")); err != nil {
		t.Fatalf("publish retained: %v", err)
	}
	pub.Disconnect(50)

	tb.restart()

	// Another command while dev-1 is still away, after the restart.
	pub2 := pahoConnect(t, pahoOptions(tb.url(), "ops-2"))
	if err := waitToken(t, pub2.Publish("cmd/dev-1", 1, false, "after-restart")); err != nil {
		t.Fatalf("publish after restart: %v", err)
	}
	// The log kept all three publishes across the restart.
	if got := values(tb.records("mqtt", 0)); !slices.Equal(got, []string{"before-restart", "online", "after-restart"}) {
		t.Fatalf("log holds %q", got)
	}

	// dev-1 comes back: its session is there, and both commands arrive.
	var got collector
	dev2, present := connectSession(t, pahoOptions(tb.url(), "dev-1").SetCleanSession(false).SetDefaultPublishHandler(got.handler))
	if !present {
		t.Errorf("persistent session of dev-1 not present after the restart")
	}
	msgs := got.wait(t, 2)
	var payloads []string
	for _, m := range msgs {
		payloads = append(payloads, m.payload)
		if m.topic != "cmd/dev-1" || m.qos != 1 {
			t.Errorf("dev-1 got %+v", m)
		}
	}
	// mochi resends a session's queued messages sorted by their creation
	// second only (Inflight.GetAll), so two from the same second may come
	// in either order: compare them as a set.
	slices.Sort(payloads)
	if !slices.Equal(payloads, []string{"after-restart", "before-restart"}) {
		t.Errorf("dev-1 got %q, want after-restart and before-restart", payloads)
	}
	dev2.Disconnect(50)

	// The clean session left nothing behind.
	var cleanGot collector
	_, present = connectSession(t, pahoOptions(tb.url(), "dev-clean").SetCleanSession(false).SetDefaultPublishHandler(cleanGot.handler))
	if present {
		t.Errorf("the clean session of dev-clean survived")
	}
	stays(t, 200*time.Millisecond, "dev-clean receiving nothing", func() bool { return len(cleanGot.all()) == 0 })

	// The retained status survived too.
	var retained collector
	s := pahoConnect(t, pahoOptions(tb.url(), "late"))
	if err := waitToken(t, s.Subscribe("status/#", 1, retained.handler)); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	if r := retained.wait(t, 1); r[0] != (message{"status/gw", "online", 1, true}) {
		t.Errorf("retained message after restart: %+v", r[0])
	}
}

// TestRetainedClearedSurvivesRestart: an empty retained publish clears the
// retained message, and the clearing is what survives a restart.
func TestRetainedClearedSurvivesRestart(t *testing.T) {
	tb := startBroker(t, setup{})
	pub := pahoConnect(t, pahoOptions(tb.url(), "ops"))
	for _, p := range []struct {
		topic, payload string
	}{{"status/a", "up"}, {"status/b", "up"}, {"status/a", ""}} {
		if err := waitToken(t, pub.Publish(p.topic, 1, true, p.payload)); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	pub.Disconnect(50)
	tb.restart()

	var retained collector
	s := pahoConnect(t, pahoOptions(tb.url(), "late"))
	if err := waitToken(t, s.Subscribe("status/#", 1, retained.handler)); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	r := retained.wait(t, 1)
	stays(t, 100*time.Millisecond, "only one retained message", func() bool { return len(retained.all()) == 1 })
	if r[0].topic != "status/b" {
		t.Errorf("retained after restart: %+v, want only status/b", r)
	}
	// The log keeps all three, including the empty one.
	if got := tb.count("mqtt"); got != 3 {
		t.Errorf("log holds %d records, want 3", got)
	}
}
