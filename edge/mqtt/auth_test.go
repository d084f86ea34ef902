package mqtt_test

// Authentication (user names, bcrypt password hashes, no anonymous access)
// and ACLs (read-only and write-only users) on CONNECT, PUBLISH and
// SUBSCRIBE, over MQTT 5 (exact reason codes) and 3.1.1 (paho).

import (
	"slices"
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/spoolmq/spool/edge/config"
	"golang.org/x/crypto/bcrypt"
)

func hashPassword(t *testing.T, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func authSetup(t *testing.T) setup {
	return setup{
		denyAnon: true,
		auth: config.AuthConfig{Users: []config.User{
			{Name: "alice", PasswordHash: hashPassword(t, "secret")},
			{Name: "reader", PasswordHash: hashPassword(t, "r-pass"), ACL: []config.ACLRule{{Filter: "#", Access: "read"}}},
			{Name: "writer", PasswordHash: hashPassword(t, "w-pass"), ACL: []config.ACLRule{{Filter: "sensors/#", Access: "write"}}},
		}},
	}
}

func withCredentials(user, pw string) func(*packets.Packet) {
	return func(pk *packets.Packet) {
		pk.Connect.Username = []byte(user)
		if pw != "" {
			pk.Connect.Password = []byte(pw)
		}
	}
}

func TestAuthentication(t *testing.T) {
	tb := startBroker(t, authSetup(t))

	refusals := 0
	for _, c := range []struct {
		name       string
		user, pass string
	}{
		{"anonymous", "", ""},
		{"wrong password", "alice", "guess"},
		{"unknown user", "mallory", "secret"},
		{"no password", "alice", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			// MQTT 5: CONNACK 0x86 (bad user name or password), then closed.
			rc := dialRaw(t, tb.addr(), 5)
			var mut func(*packets.Packet)
			if c.user != "" {
				mut = withCredentials(c.user, c.pass)
			}
			ack := rc.connect("v5-"+c.name, mut)
			if ack.ReasonCode != packets.ErrBadUsernameOrPassword.Code {
				t.Errorf("MQTT 5 CONNACK reason 0x%02x, want 0x86", ack.ReasonCode)
			}
			rc.expectClosed()
			refusals++

			// MQTT 3.1.1 (paho): the connect fails.
			o := pahoOptions(tb.url(), "v3-"+c.name)
			if c.user != "" {
				o.SetUsername(c.user).SetPassword(c.pass)
			}
			if _, err := pahoTry(t, o); err == nil {
				t.Errorf("paho connected")
			}
			refusals++
		})
	}
	if got := tb.B.Stats().AuthFailures; got != int64(refusals) {
		t.Errorf("Stats().AuthFailures = %d, want %d", got, refusals)
	}
	if got := tb.count("mqtt"); got != 0 {
		t.Errorf("log holds %d records after refused connections", got)
	}

	// The right password is accepted, over both versions, and a second
	// connection (the verified-password cache) too.
	for range 2 {
		c := pahoConnect(t, pahoOptions(tb.url(), "alice-paho").SetUsername("alice").SetPassword("secret"))
		if err := waitToken(t, c.Publish("sensors/a", 1, false, "from-alice")); err != nil {
			t.Fatalf("alice publish: %v", err)
		}
		c.Disconnect(50)
	}
	rc := dialRaw(t, tb.addr(), 5)
	if ack := rc.connect("alice-v5", withCredentials("alice", "secret")); ack.ReasonCode != 0 {
		t.Fatalf("alice MQTT 5 CONNACK reason 0x%02x", ack.ReasonCode)
	}
	if got := values(tb.records("mqtt", 0)); !slices.Equal(got, []string{"from-alice", "from-alice"}) {
		t.Errorf("log holds %q", got)
	}
	if got := tb.B.Stats().AuthFailures; got != int64(refusals) {
		t.Errorf("Stats().AuthFailures = %d after good logins, want %d", got, refusals)
	}
}

func TestACL(t *testing.T) {
	tb := startBroker(t, authSetup(t))

	// The reader may subscribe and receives what the writer publishes.
	var live collector
	rd := pahoConnect(t, pahoOptions(tb.url(), "reader-sub").SetUsername("reader").SetPassword("r-pass"))
	if err := waitToken(t, rd.Subscribe("sensors/#", 1, live.handler)); err != nil {
		t.Fatalf("reader subscribe: %v", err)
	}

	// MQTT 5 reader publishing: PUBACK / PUBREC 0x87, nothing stored or
	// delivered, the connection stays.
	r5 := dialRaw(t, tb.addr(), 5)
	if ack := r5.connect("reader-v5", withCredentials("reader", "r-pass")); ack.ReasonCode != 0 {
		t.Fatalf("reader CONNACK 0x%02x", ack.ReasonCode)
	}
	r5.publish("sensors/t", 1, 1, "denied-qos1")
	if ack := r5.readAck(packets.Puback, 1); ack.ReasonCode != packets.ErrNotAuthorized.Code {
		t.Errorf("read-only QoS 1 publish: PUBACK reason 0x%02x, want 0x87", ack.ReasonCode)
	}
	r5.publish("sensors/t", 2, 2, "denied-qos2")
	if ack := r5.readAck(packets.Pubrec, 2); ack.ReasonCode != packets.ErrNotAuthorized.Code {
		t.Errorf("read-only QoS 2 publish: PUBREC reason 0x%02x, want 0x87", ack.ReasonCode)
	}
	r5.ping()

	// MQTT 3.1.1 reader publishing: disconnected, no PUBACK.
	r3 := dialRaw(t, tb.addr(), 4)
	if ack := r3.connect("reader-v3", withCredentials("reader", "r-pass")); ack.ReasonCode != 0 {
		t.Fatalf("reader 3.1.1 CONNACK 0x%02x", ack.ReasonCode)
	}
	r3.publish("sensors/t", 1, 1, "denied-v3")
	r3.expectClosed()

	// The writer's subscription is refused: SUBACK 0x87 (MQTT 5), 0x80
	// (3.1.1, paho).
	w5 := dialRaw(t, tb.addr(), 5)
	if ack := w5.connect("writer-v5", withCredentials("writer", "w-pass")); ack.ReasonCode != 0 {
		t.Fatalf("writer CONNACK 0x%02x", ack.ReasonCode)
	}
	w5.send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
		PacketID:    7,
		Filters:     packets.Subscriptions{{Filter: "sensors/#", Qos: 1}},
	})
	suback := w5.readAck(packets.Suback, 7)
	if !slices.Equal(suback.ReasonCodes, []byte{packets.ErrNotAuthorized.Code}) {
		t.Errorf("write-only subscribe: SUBACK codes % x, want 87", suback.ReasonCodes)
	}
	wp := pahoConnect(t, pahoOptions(tb.url(), "writer-paho").SetUsername("writer").SetPassword("w-pass"))
	tok := wp.Subscribe("sensors/#", 1, func(paho.Client, paho.Message) {})
	if err := waitToken(t, tok); err != nil {
		t.Fatalf("writer subscribe: %v", err)
	}
	if got := tok.(*paho.SubscribeToken).Result()["sensors/#"]; got != 0x80 {
		t.Errorf("write-only 3.1.1 subscribe: SUBACK 0x%02x, want 0x80", got)
	}

	// The writer may publish where its rule allows, and only there.
	w5.publish("sensors/t", 1, 8, "allowed")
	if ack := w5.readAck(packets.Puback, 8); ack.ReasonCode != 0 {
		t.Errorf("writer publish to sensors/t: PUBACK 0x%02x", ack.ReasonCode)
	}
	w5.publish("cmd/t", 1, 9, "denied-cmd")
	if ack := w5.readAck(packets.Puback, 9); ack.ReasonCode != packets.ErrNotAuthorized.Code {
		t.Errorf("writer publish to cmd/t: PUBACK 0x%02x, want 0x87", ack.ReasonCode)
	}

	if got := values(tb.records("mqtt", 0)); !slices.Equal(got, []string{"allowed"}) {
		t.Errorf("log holds %q, want only [allowed]", got)
	}
	msgs := live.wait(t, 1)
	if len(msgs) != 1 || msgs[0].payload != "allowed" {
		t.Errorf("reader received %v, want only the allowed publish", msgs)
	}
	// 2 (reader v5) + 1 (reader v3) + 2 (writer subscribes) + 1 (writer cmd/t).
	if got := tb.B.Stats().ACLDenied; got != 6 {
		t.Errorf("Stats().ACLDenied = %d, want 6", got)
	}
}

// TestACLDenialKeepsAckOrder: a refused publish is answered in its turn,
// after the acknowledgements of the publishes before it that are still
// waiting for the log (MQTT 5 section 4.6).
func TestACLDenialKeepsAckOrder(t *testing.T) {
	gate := newSyncGate()
	s := authSetup(t)
	s.logOpts.FS = gate.fs()
	tb := startBroker(t, s)
	t.Cleanup(gate.release)

	w := dialRaw(t, tb.addr(), 5)
	if ack := w.connect("writer-order", withCredentials("writer", "w-pass")); ack.ReasonCode != 0 {
		t.Fatalf("CONNACK 0x%02x", ack.ReasonCode)
	}
	gate.hold()
	w.publish("sensors/a", 1, 1, "allowed-1")
	w.publish("cmd/a", 1, 2, "denied")
	w.publish("sensors/a", 1, 3, "allowed-3")
	waitFor(t, "the first append to reach fsync", func() bool { return gate.waiting.Load() > 0 })
	waitFor(t, "all three publishes to be read", func() bool { return tb.B.Stats().ACLDenied == 1 })
	gate.release()
	for _, want := range []struct {
		id     uint16
		reason byte
	}{{1, 0}, {2, packets.ErrNotAuthorized.Code}, {3, 0}} {
		if ack := w.readAck(packets.Puback, want.id); ack.ReasonCode != want.reason {
			t.Fatalf("PUBACK %d reason 0x%02x, want 0x%02x", want.id, ack.ReasonCode, want.reason)
		}
	}
	if got := values(tb.records("mqtt", 0)); !slices.Equal(got, []string{"allowed-1", "allowed-3"}) {
		t.Errorf("log holds %q", got)
	}
	if r := tb.B.Stats().Rejected; r["error"]+r["full"]+r["too_large"] != 0 {
		t.Errorf("an ACL denial counted as a log rejection: %v", r)
	}
}
