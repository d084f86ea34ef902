package mqtt_test

// What sessions, wills and message expiry must do across disconnects and
// restarts, and ACLs on wills, against the MQTT spec.

import (
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/spoolmq/spool/edge/config"
)

// connectV5 connects a raw MQTT 5 client with mut applied and returns it
// with the CONNACK, which must be a success.
func connectV5(t *testing.T, tb *testBroker, id string, mut func(*packets.Packet)) (*rawClient, packets.Packet) {
	t.Helper()
	rc := dialRaw(t, tb.addr(), 5)
	ack := rc.connect(id, mut)
	if ack.ReasonCode != 0 {
		t.Fatalf("%s: CONNACK reason 0x%02x", id, ack.ReasonCode)
	}
	return rc, ack
}

// expectNoPublish fails if a PUBLISH arrives within d.
func expectNoPublish(t *testing.T, rc *rawClient, d time.Duration, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		pk, err := rc.tryRead(time.Until(deadline))
		if err != nil {
			return
		}
		if pk.FixedHeader.Type == packets.Publish {
			t.Fatalf("%s: got PUBLISH topic %q payload %q", what, pk.TopicName, pk.Payload)
		}
	}
}

func disconnectWith(rc *rawClient, mut func(*packets.Packet)) {
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}}
	if mut != nil {
		mut(&pk)
	}
	rc.send(pk)
	rc.conn.Close()
}

// A will is a publish: a user that may only write alice/# cannot publish
// to another topic through its will (the connection is refused).
func TestWillTopicBypassesACL(t *testing.T) {
	tb := startBroker(t, setup{
		denyAnon: true,
		auth: config.AuthConfig{Users: []config.User{
			{Name: "alice", PasswordHash: hashPassword(t, "a"), ACL: []config.ACLRule{{Filter: "alice/#", Access: "readwrite"}}},
			{Name: "bob", PasswordHash: hashPassword(t, "b")},
		}},
	})
	bob := dialRaw(t, tb.addr(), 4)
	if ack := bob.connect("bob", func(pk *packets.Packet) {
		pk.Connect.Username, pk.Connect.Password = []byte("bob"), []byte("b")
	}); ack.ReasonCode != 0 {
		t.Fatalf("bob CONNACK 0x%02x", ack.ReasonCode)
	}
	subscribeRaw(t, bob, 1, packets.Subscription{Filter: "cmd/#", Qos: 1})

	// Refusing the CONNECT (0x87 / 0x05) or dropping the will both pass.
	alice := dialRaw(t, tb.addr(), 4)
	alice.connect("alice", func(pk *packets.Packet) {
		pk.Connect.Username, pk.Connect.Password = []byte("alice"), []byte("a")
		pk.Connect.WillFlag, pk.Connect.WillTopic, pk.Connect.WillPayload = true, "cmd/unlock", []byte("open")
	})
	alice.conn.Close() // abnormal: the will goes out

	expectNoPublish(t, bob, time.Second, "alice's will on cmd/unlock, which her ACL does not let her write")
}

// Outbound QoS 2: once the subscriber sent PUBREC and the broker its
// PUBREL, a restart resends the PUBREL, not the PUBLISH [MQTT-4.4.0-1],
// [MQTT-4.3.3-6], which the subscriber would take as a new message.
func TestOutboundQoS2PubrelStateSurvivesRestart(t *testing.T) {
	tb := startBroker(t, setup{})
	sub, _ := connectV5(t, tb, "q2sub", persistentV5)
	subscribeRaw(t, sub, 1, packets.Subscription{Filter: "q2/#", Qos: 2})

	pub, _ := connectV5(t, tb, "q2pub", nil)
	pub.publish("q2/x", 2, 7, "once")
	pub.readAck(packets.Pubrec, 7)

	pk := sub.read()
	if pk.FixedHeader.Type != packets.Publish {
		t.Fatalf("expected PUBLISH, got %d", pk.FixedHeader.Type)
	}
	id := pk.PacketID
	sub.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrec}, PacketID: id})
	sub.readAck(packets.Pubrel, id)
	time.Sleep(200 * time.Millisecond) // session writes are gathered for 50 ms
	sub.conn.Close()
	waitFor(t, "subscriber gone", func() bool { return tb.B.Stats().Clients <= 1 })

	tb.restart()

	sub2, ack := connectV5(t, tb, "q2sub", persistentV5)
	if !ack.SessionPresent {
		t.Fatalf("session not present after restart")
	}
	got := sub2.read()
	if got.FixedHeader.Type != packets.Pubrel || got.PacketID != id {
		t.Fatalf("after restart got packet type %d id %d (topic %q dup %v), want PUBREL %d: the PUBLISH is delivered twice",
			got.FixedHeader.Type, got.PacketID, got.TopicName, got.FixedHeader.Dup, id)
	}
}

// A QoS 1 message larger than the subscriber's Maximum Packet Size is
// discarded as if sent [MQTT-3.1.2-25]: it does not stay in its inflight
// holding a send quota slot, and with Receive Maximum 1 the next message
// still reaches the subscriber.
func TestOversizedMessageBlocksSubscriber(t *testing.T) {
	tb := startBroker(t, setup{})
	sub, _ := connectV5(t, tb, "small", func(pk *packets.Packet) {
		pk.Properties.MaximumPacketSize = 200
		pk.Properties.ReceiveMaximum = 1
	})
	subscribeRaw(t, sub, 1, packets.Subscription{Filter: "big/#", Qos: 1})

	pub, _ := connectV5(t, tb, "bigpub", nil)
	pub.publish("big/x", 1, 1, strings.Repeat("x", 1000))
	pub.readAck(packets.Puback, 1)
	pub.publish("big/x", 1, 2, "small")
	pub.readAck(packets.Puback, 2)

	pk, err := sub.tryRead(3 * time.Second)
	if err != nil {
		t.Fatalf("the small message never reached the subscriber (%v): the unsendable big one holds its only inflight slot", err)
	}
	if pk.FixedHeader.Type != packets.Publish || string(pk.Payload) != "small" {
		t.Fatalf("got type %d payload len %d", pk.FixedHeader.Type, len(pk.Payload))
	}
}

// Nor does the oversized message stay in the persistent session, where
// every reconnect would resend it, fail with "packet too large" and drop
// the connection right after CONNACK.
func TestOversizedMessageBreaksSessionResume(t *testing.T) {
	tb := startBroker(t, setup{})
	small := func(pk *packets.Packet) {
		persistentV5(pk)
		pk.Properties.MaximumPacketSize = 200
	}
	sub, _ := connectV5(t, tb, "small2", small)
	subscribeRaw(t, sub, 1, packets.Subscription{Filter: "big/#", Qos: 1})

	pub, _ := connectV5(t, tb, "bigpub2", nil)
	pub.publish("big/x", 1, 1, strings.Repeat("x", 1000))
	pub.readAck(packets.Puback, 1)
	time.Sleep(200 * time.Millisecond)
	disconnectWith(sub, nil)
	waitFor(t, "subscriber gone", func() bool { return tb.B.Stats().Clients <= 1 })

	sub2, _ := connectV5(t, tb, "small2", small)
	sub2.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	pk, err := sub2.tryRead(3 * time.Second)
	if err != nil || pk.FixedHeader.Type != packets.Pingresp {
		t.Fatalf("resumed session unusable: type %d err %v (the oversized inflight message fails the resend and the broker closes the connection)", pk.FixedHeader.Type, err)
	}
}

// A message expiry interval is honoured for messages queued for an
// offline session [MQTT-3.3.2-5] (Spool delivers through its inline
// client, and mochi expires only packets of version 5).
func TestExpiredQueuedMessageDelivered(t *testing.T) {
	tb := startBroker(t, setup{})
	sub, _ := connectV5(t, tb, "offline", persistentV5)
	subscribeRaw(t, sub, 1, packets.Subscription{Filter: "exp/#", Qos: 1})
	disconnectWith(sub, nil)
	waitFor(t, "subscriber gone", func() bool { return tb.B.Stats().Clients == 0 })

	pub, _ := connectV5(t, tb, "exppub", nil)
	pk := publishPacket("exp/x", 1, 1, "stale")
	pk.Properties.MessageExpiryInterval = 1
	pub.send(pk)
	pub.readAck(packets.Puback, 1)

	time.Sleep(3500 * time.Millisecond)
	sub2, _ := connectV5(t, tb, "offline", persistentV5)
	expectNoPublish(t, sub2, time.Second, "a message whose 1 s expiry passed 3.5 s ago")
}

// A retained message does not outlive its message expiry interval.
func TestExpiredRetainedDelivered(t *testing.T) {
	tb := startBroker(t, setup{})
	pub, _ := connectV5(t, tb, "retpub", nil)
	pk := publishPacket("ret/x", 1, 1, "stale")
	pk.FixedHeader.Retain = true
	pk.Properties.MessageExpiryInterval = 1
	pub.send(pk)
	pub.readAck(packets.Puback, 1)

	time.Sleep(3500 * time.Millisecond)
	sub, _ := connectV5(t, tb, "late", nil)
	subscribeRaw(t, sub, 1, packets.Subscription{Filter: "ret/#", Qos: 1})
	expectNoPublish(t, sub, time.Second, "a retained message whose 1 s expiry passed 3.5 s ago")
}

// Restored retained messages keep their expiry across a restart (mochi's
// stored form has none).
func TestRetainedExpiryLostOnRestart(t *testing.T) {
	tb := startBroker(t, setup{})
	pub, _ := connectV5(t, tb, "retpub", nil)
	pk := publishPacket("ret/y", 1, 1, "stale")
	pk.FixedHeader.Retain = true
	pk.Properties.MessageExpiryInterval = 2
	pub.send(pk)
	pub.readAck(packets.Puback, 1)
	disconnectWith(pub, nil)

	tb.restart()
	time.Sleep(4 * time.Second)
	sub, _ := connectV5(t, tb, "late", nil)
	subscribeRaw(t, sub, 1, packets.Subscription{Filter: "ret/#", Qos: 1})
	expectNoPublish(t, sub, time.Second, "a retained message whose 2 s expiry passed 2 s ago, across a restart")
}

// An MQTT 5 client may change its session expiry in DISCONNECT: the new
// value holds after a restart too.
func TestDisconnectSessionExpiryNotPersisted(t *testing.T) {
	tb := startBroker(t, setup{})
	rc, _ := connectV5(t, tb, "shrink", persistentV5) // 300 s
	subscribeRaw(t, rc, 1, packets.Subscription{Filter: "s/#", Qos: 1})
	disconnectWith(rc, func(pk *packets.Packet) {
		pk.Properties.SessionExpiryInterval, pk.Properties.SessionExpiryIntervalFlag = 1, true
	})
	waitFor(t, "client gone", func() bool { return tb.B.Stats().Clients == 0 })
	tb.restart()
	time.Sleep(3500 * time.Millisecond)
	_, ack := connectV5(t, tb, "shrink", persistentV5)
	if ack.SessionPresent {
		t.Fatalf("session present 3.5 s after a DISCONNECT set its expiry to 1 s (restart restored the CONNECT's 300 s)")
	}
}

// mqtt.session_expiry caps the session expiry given in DISCONNECT as in
// CONNECT.
func TestDisconnectRaisesSessionExpiryPastCap(t *testing.T) {
	tb := startBroker(t, setup{mqtt: func(c *config.MQTTConfig) { c.SessionExpiry = config.Duration(time.Second) }})
	rc, ack := connectV5(t, tb, "raise", persistentV5)
	if ack.Properties.SessionExpiryInterval != 1 {
		t.Fatalf("CONNACK session expiry %d, want the cap 1", ack.Properties.SessionExpiryInterval)
	}
	disconnectWith(rc, func(pk *packets.Packet) {
		pk.Properties.SessionExpiryInterval, pk.Properties.SessionExpiryIntervalFlag = 100000, true
	})
	waitFor(t, "client gone", func() bool { return tb.B.Stats().Clients == 0 })
	time.Sleep(3500 * time.Millisecond)
	_, ack = connectV5(t, tb, "raise", persistentV5)
	if ack.SessionPresent {
		t.Fatalf("session present 3.5 s after disconnect although mqtt.session_expiry is 1 s")
	}
}

// A session's expiry runs from when its client left, across restarts:
// restarting more often than the expiry must not keep it for ever.
func TestRestartResetsSessionExpiryClock(t *testing.T) {
	tb := startBroker(t, setup{})
	withExpiry := func(pk *packets.Packet) {
		persistentV5(pk)
		pk.Properties.SessionExpiryInterval = 4
	}
	rc, _ := connectV5(t, tb, "clock", withExpiry)
	subscribeRaw(t, rc, 1, packets.Subscription{Filter: "c/#", Qos: 1})
	disconnectWith(rc, nil)
	left := time.Now()
	waitFor(t, "client gone", func() bool { return tb.B.Stats().Clients == 0 })

	time.Sleep(time.Until(left.Add(3500 * time.Millisecond)))
	tb.restart()
	time.Sleep(time.Until(left.Add(6800 * time.Millisecond)))
	_, ack := connectV5(t, tb, "clock", withExpiry)
	if ack.SessionPresent {
		t.Fatalf("session with a 4 s expiry present %v after its client left (a restart in between restarted the clock)", time.Since(left).Round(100*time.Millisecond))
	}
}

// A delayed will pending at shutdown is published once its delay passes
// after the restart, unless the client reconnects [MQTT-3.1.3-9].
func TestDelayedWillLostOnRestart(t *testing.T) {
	tb := startBroker(t, setup{})
	dev, _ := connectV5(t, tb, "willdev", func(pk *packets.Packet) {
		persistentV5(pk)
		pk.Connect.WillFlag, pk.Connect.WillTopic, pk.Connect.WillPayload = true, "will/dev", []byte("offline")
		pk.Connect.WillQos = 1
		pk.Connect.WillProperties.WillDelayInterval = 2
	})
	time.Sleep(200 * time.Millisecond)
	dev.conn.Close() // abnormal
	waitFor(t, "device gone", func() bool { return tb.B.Stats().Clients == 0 })

	tb.restart()
	sub, _ := connectV5(t, tb, "watcher", nil)
	subscribeRaw(t, sub, 1, packets.Subscription{Filter: "will/#", Qos: 1})
	pk, err := sub.tryRead(5 * time.Second)
	if err != nil || pk.FixedHeader.Type != packets.Publish {
		t.Fatalf("delayed will not published after a restart within its 2 s delay: type %d err %v", pk.FixedHeader.Type, err)
	}
}

// A message resent on a new connection carries its topic, not an alias
// of the old connection [MQTT-3.3.2-12].
func TestTopicAliasInInflightResend(t *testing.T) {
	tb := startBroker(t, setup{})
	aliases := func(pk *packets.Packet) {
		persistentV5(pk)
		pk.Properties.TopicAliasMaximum = 10
	}
	sub, _ := connectV5(t, tb, "alias", aliases)
	subscribeRaw(t, sub, 1, packets.Subscription{Filter: "ta/#", Qos: 1})

	pub, _ := connectV5(t, tb, "aliaspub", nil)
	for i := uint16(1); i <= 2; i++ {
		pub.publish("ta/x", 1, i, "m")
		pub.readAck(packets.Puback, i)
	}
	for i := 0; i < 2; i++ {
		if pk := sub.read(); pk.FixedHeader.Type != packets.Publish {
			t.Fatalf("expected PUBLISH, got %d", pk.FixedHeader.Type)
		}
	}
	sub.conn.Close() // no PUBACKs: both stay inflight
	waitFor(t, "subscriber gone", func() bool { return tb.B.Stats().Clients <= 1 })

	sub2, ack := connectV5(t, tb, "alias", aliases)
	if !ack.SessionPresent {
		t.Fatalf("session not present")
	}
	for i := 0; i < 2; i++ {
		pk := sub2.read()
		if pk.FixedHeader.Type != packets.Publish {
			t.Fatalf("expected resent PUBLISH, got %d", pk.FixedHeader.Type)
		}
		if pk.TopicName == "" {
			t.Fatalf("resent PUBLISH %d on a new connection has no topic name (alias %d, flag %v): the alias belongs to the old connection",
				pk.PacketID, pk.Properties.TopicAlias, pk.Properties.TopicAliasFlag)
		}
	}
}
