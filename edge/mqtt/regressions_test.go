package mqtt_test

// Regression tests for egress, shared subscriptions, QoS 2 resends and
// session expiry.

import (
	"log/slog"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/spoolmq/spool/edge/config"
	"github.com/spoolmq/spool/edge/mqtt"
	spoollog "github.com/spoolmq/spool/log"
)

// startEgressBroker starts a broker over a fresh log with topic
// "commands" (route ops/+/cmd → commands, key level 1) and an egress
// commands → devices/{key}/cmd.
func startEgressBroker(t *testing.T) (*mqtt.Broker, *spoollog.Log) {
	t.Helper()
	l, err := spoollog.Open(t.TempDir(), spoollog.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.CreateTopic("commands", spoollog.DefaultTopicConfig()); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default().MQTT
	cfg.Addr = "127.0.0.1:0"
	b, err := mqtt.New(mqtt.Options{
		MQTT:           cfg,
		AllowAnonymous: true,
		Routes:         []config.RouteSpec{{Match: "ops/+/cmd", Topic: "commands", Key: "level:1"}},
		Egress:         []config.EgressSpec{{Topic: "commands", MQTTTopic: "devices/{key}/cmd"}},
		Log:            l,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(); l.Close() })
	return b, l
}

func subscribeRawClient(t *testing.T, addr, id, filter string) *rawClient {
	t.Helper()
	rc := dialRaw(t, addr, 5)
	rc.mustConnect(id)
	rc.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: filter, Qos: 1}}})
	if ack := rc.readAck(packets.Suback, 1); len(ack.ReasonCodes) != 1 || ack.ReasonCodes[0] >= 0x80 {
		t.Fatalf("SUBACK %v", ack.ReasonCodes)
	}
	return rc
}

// A command mirrored down from the data center whose record carries the
// headers an MQTT ingest adds (another edge's device published it; the
// bridge copies headers up and down) was appended here by the downstream
// link, not by this broker's MQTT: egress delivers it.
func TestEgressDeliversDownstreamRecordWithMQTTHeaders(t *testing.T) {
	b, l := startEgressBroker(t)
	dev := subscribeRawClient(t, b.Addr("tcp").String(), "pump4", "devices/pump4/cmd")

	top, _ := l.Topic("commands")
	p, _ := top.Partition(top.PartitionFor([]byte("pump4"), 0))
	// The record exactly as bridge.KafkaDownstream.store writes it for an
	// upstream record that edge A mirrored from an MQTT publish.
	rec := spoollog.Record{Timestamp: time.Now().UnixMilli(), Key: []byte("pump4"), Value: []byte(`{"rpm":1200}`),
		Headers: []spoollog.Header{
			{Key: mqtt.HeaderTopic, Value: []byte("ops/pump4/cmd")},
			{Key: mqtt.HeaderQoS, Value: []byte("1")},
			{Key: "spool.edge", Value: []byte("edge-a")},
			{Key: "spool.upstream.topic", Value: []byte("edge-a.commands")},
			{Key: "spool.upstream.partition", Value: []byte("0")},
			{Key: "spool.upstream.offset", Value: []byte("0")},
		}}
	if _, err := p.AppendRecords([]spoollog.Record{rec}, spoollog.DefaultBatchOptions); err != nil {
		t.Fatal(err)
	}
	pk, err := dev.tryRead(3 * time.Second)
	if err != nil || pk.FixedHeader.Type != packets.Publish {
		t.Fatalf("device never got the downstream command (read: %v); stats %+v", err, b.Stats())
	}
}

// An operator publishes a command over MQTT to ops/pump4/cmd; the route
// stores it in "commands" and the egress maps that topic to
// devices/pump4/cmd. The live delivery went to ops/pump4/cmd subscribers
// only, so egress delivers it to the device on devices/pump4/cmd.
func TestEgressDeliversMQTTRecordToAnotherTopic(t *testing.T) {
	b, _ := startEgressBroker(t)
	addr := b.Addr("tcp").String()
	dev := subscribeRawClient(t, addr, "pump4", "devices/pump4/cmd")
	op := dialRaw(t, addr, 5)
	op.mustConnect("ops")
	op.publish("ops/pump4/cmd", 1, 3, "start")
	op.readAck(packets.Puback, 3)
	pk, err := dev.tryRead(3 * time.Second)
	if err != nil || pk.FixedHeader.Type != packets.Publish {
		t.Fatalf("device never got the command published on ops/pump4/cmd (read: %v); stats %+v", err, b.Stats())
	}
}

// A user allowed to read sensors/# may subscribe to $share/g/sensors/#:
// the ACL judges a shared subscription by its filter.
func TestSharedSubscriptionAllowedByACL(t *testing.T) {
	tb := startBroker(t, setup{denyAnon: true, auth: config.AuthConfig{Users: []config.User{
		{Name: "r", PasswordHash: hashPassword(t, "p"), ACL: []config.ACLRule{{Filter: "sensors/#", Access: "read"}}},
	}}})
	rc := dialRaw(t, tb.addr(), 5)
	if ack := rc.connect("r1", withCredentials("r", "p")); ack.ReasonCode != 0 {
		t.Fatalf("CONNACK 0x%02x", ack.ReasonCode)
	}
	rc.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: "sensors/#", Qos: 1}, {Filter: "$share/g/sensors/#", Qos: 1}}})
	ack := rc.readAck(packets.Suback, 1)
	if len(ack.ReasonCodes) != 2 || ack.ReasonCodes[0] != 1 || ack.ReasonCodes[1] != 1 {
		t.Fatalf("SUBACK codes %#v: want [0x01 0x01] (sensors/# and $share/g/sensors/# both readable)", ack.ReasonCodes)
	}
}

// A user allowed to read only +/+/status (site/room/status) is refused
// $share/g/status, whose filter "status" it may not read (granted, mochi's
// delivery check would drop every message picked for that member).
func TestSharedSubscriptionForbiddenByACL(t *testing.T) {
	tb := startBroker(t, setup{denyAnon: true, auth: config.AuthConfig{Users: []config.User{
		{Name: "r", PasswordHash: hashPassword(t, "p"), ACL: []config.ACLRule{{Filter: "+/+/status", Access: "read"}}},
	}}})
	rc := dialRaw(t, tb.addr(), 5)
	if ack := rc.connect("r1", withCredentials("r", "p")); ack.ReasonCode != 0 {
		t.Fatalf("CONNACK 0x%02x", ack.ReasonCode)
	}
	rc.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: "status", Qos: 1}, {Filter: "$share/g/status", Qos: 1}}})
	ack := rc.readAck(packets.Suback, 1)
	if len(ack.ReasonCodes) != 2 || ack.ReasonCodes[0] != 0x87 || ack.ReasonCodes[1] != 0x87 {
		t.Fatalf("SUBACK codes %#v: want [0x87 0x87] (status is not readable, shared or not)", ack.ReasonCodes)
	}
}

// An MQTT 5 device publishes QoS 2; the broker stores it and writes the
// PUBREC, which the link loses. The device reconnects to its session and
// resends the PUBLISH with DUP [MQTT-4.4.0-1]. It gets a PUBREC 0x00
// [MQTT-4.3.3-10], not mochi's own 0x91 (packet identifier in use), a
// failure code that would make the device believe the message refused;
// and the message is stored once.
func TestQoS2DupAfterSettledGetsSuccessPubrec(t *testing.T) {
	tb := startBroker(t, setup{})
	a := dialRaw(t, tb.addr(), 5)
	a.connect("q2dup", persistentV5)
	a.publish("q2/dup", 2, 9, "once")
	tb.waitCount("mqtt", 1)
	time.Sleep(100 * time.Millisecond) // the PUBREC is written (settled); the client never reads it
	a.conn.Close()

	b := dialRaw(t, tb.addr(), 5)
	if ack := b.connect("q2dup", persistentV5); ack.ReasonCode != 0 || !ack.SessionPresent {
		t.Fatalf("reconnect: reason 0x%02x session present %v", ack.ReasonCode, ack.SessionPresent)
	}
	dup := publishPacket("q2/dup", 2, 9, "once")
	dup.FixedHeader.Dup = true
	b.send(dup)
	// mochi resends the session's inflight PUBREC on resume; the answer to
	// the DUP PUBLISH is another PUBREC. Every PUBREC for id 9 must be 0x00.
	for {
		pk, err := b.tryRead(time.Second)
		if err != nil {
			break
		}
		if pk.FixedHeader.Type == packets.Pubrec && pk.PacketID == 9 && pk.ReasonCode != 0 {
			t.Fatalf("PUBREC for the DUP resend of a stored QoS 2 publish has reason 0x%02x, want 0x00", pk.ReasonCode)
		}
	}
	if n := tb.count("mqtt"); n != 1 {
		t.Fatalf("stored %d times", n)
	}
	// The flow ends, and a new publish reusing the id is a new message.
	b.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, PacketID: 9})
	b.readAck(packets.Pubcomp, 9)
	b.publish("q2/dup", 2, 9, "twice")
	b.readAck(packets.Pubrec, 9)
	if n := tb.count("mqtt"); n != 2 {
		t.Fatalf("after a new publish with the same id: stored %d, want 2", n)
	}
}

// shortSession is an MQTT 5 persistent session that expires 1 s after
// its connection ends.
func shortSession(pk *packets.Packet) {
	pk.Connect.Clean = false
	pk.Properties.SessionExpiryInterval = 1
	pk.Properties.SessionExpiryIntervalFlag = true
}

// mochi expires a persistent session on its own timer
// (clearExpiredClients) without removing its subscriptions: the broker
// does, and Stats.Subscriptions drops the expired filter.
func TestSubscriptionCountDropsOnSessionExpiry(t *testing.T) {
	tb := startBroker(t, setup{})
	rc := dialRaw(t, tb.addr(), 5)
	rc.connect("exp1", shortSession)
	rc.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: "exp/topic", Qos: 1}}})
	rc.readAck(packets.Suback, 1)
	if n := tb.B.Stats().Subscriptions; n != 1 {
		t.Fatalf("subscriptions %d, want 1", n)
	}
	rc.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
	rc.expectClosed()
	// Expired within ~2-3 s (1 s expiry, 1 s expiry ticker).
	deadline := time.Now().Add(8 * time.Second)
	for tb.B.Stats().Subscriptions != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("Stats.Subscriptions = %d 8s after a 1s session expired, want 0", tb.B.Stats().Subscriptions)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// An expired session's subscription must not stay in mochi's topic index
// under its client id: a later, unrelated clean-start client reusing that
// id would receive messages for a filter it never subscribed to.
func TestExpiredSessionSubscriptionNotInherited(t *testing.T) {
	tb := startBroker(t, setup{})
	rc := dialRaw(t, tb.addr(), 5)
	rc.connect("exp2", shortSession)
	rc.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: "old/topic", Qos: 1}}})
	rc.readAck(packets.Suback, 1)
	rc.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
	rc.expectClosed()
	time.Sleep(3500 * time.Millisecond) // the session expires (1 s + the 1 s ticker)

	fresh := dialRaw(t, tb.addr(), 5)
	if ack := fresh.connect("exp2", nil); ack.SessionPresent {
		t.Fatalf("session still present after its expiry")
	}
	pub := dialRaw(t, tb.addr(), 5)
	pub.mustConnect("pub")
	pub.publish("old/topic", 1, 2, "not for you")
	pub.readAck(packets.Puback, 2)
	if pk, err := fresh.tryRead(time.Second); err == nil && pk.FixedHeader.Type == packets.Publish {
		t.Fatalf("a clean session that subscribed to nothing got %q on %s (the expired session's subscription)", pk.Payload, pk.TopicName)
	}
}

// Kafka header values are arbitrary bytes, and an MQTT 5 user property is
// a UTF-8 string pair with no NUL [MQTT-1.5.4-1/2]. A command produced
// over Kafka with a binary header (a trace id, say) still reaches an MQTT
// 5 device as a well-formed PUBLISH, without that header (a conforming
// client would close the connection, and a persistent session would get
// the same packet again on every reconnect).
func TestEgressBinaryHeaderIsWellFormedMQTT5(t *testing.T) {
	b, l := startEgressBroker(t)
	dev := subscribeRawClient(t, b.Addr("tcp").String(), "pump4", "devices/pump4/cmd")
	top, _ := l.Topic("commands")
	p, _ := top.Partition(top.PartitionFor([]byte("pump4"), 0))
	rec := spoollog.Record{Timestamp: time.Now().UnixMilli(), Key: []byte("pump4"), Value: []byte("on"),
		Headers: []spoollog.Header{{Key: "trace-bin", Value: []byte{0xff, 0x00, 0x01}}}}
	if _, err := p.AppendRecords([]spoollog.Record{rec}, spoollog.DefaultBatchOptions); err != nil {
		t.Fatal(err)
	}
	pk, err := dev.tryRead(3 * time.Second)
	if err != nil {
		t.Fatalf("the device could not decode the delivered command: %v", err)
	}
	if pk.FixedHeader.Type != packets.Publish || string(pk.Payload) != "on" {
		t.Fatalf("got packet type %d payload %q", pk.FixedHeader.Type, pk.Payload)
	}
}
