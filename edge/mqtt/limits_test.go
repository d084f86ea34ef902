package mqtt_test

// Limits and bad input: oversized packets, malformed bytes, too many
// clients, a publisher faster than the log, and connections that never
// send CONNECT. Each ends only the offending connection, is counted, and
// loses nothing that was acknowledged.

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/spoolmq/spool/edge/config"
	spoollog "github.com/spoolmq/spool/log"
)

// bystander is a client that must keep working while others misbehave.
func bystander(t *testing.T, tb *testBroker) func(payload string) {
	t.Helper()
	c := pahoConnect(t, pahoOptions(tb.url(), "bystander"))
	return func(payload string) {
		t.Helper()
		if !c.IsConnectionOpen() {
			t.Fatalf("the bystander was disconnected")
		}
		if err := waitToken(t, c.Publish("ok/bystander", 1, false, payload)); err != nil {
			t.Fatalf("bystander publish: %v", err)
		}
	}
}

func disconnects(tb *testBroker) map[string]int64 { return tb.B.Stats().Disconnects }

func waitDisconnects(t *testing.T, tb *testBroker, want map[string]int64) {
	t.Helper()
	waitFor(t, fmt.Sprintf("Disconnects = %v", want), func() bool {
		got := disconnects(tb)
		for _, k := range []string{"malformed", "too_large", "protocol", "io"} {
			if got[k] != want[k] {
				return false
			}
		}
		return true
	})
}

func TestPacketTooLarge(t *testing.T) {
	tb := startBroker(t, setup{mqtt: func(m *config.MQTTConfig) { m.MaxPacketSize = 1024 }})
	ok := bystander(t, tb)
	ok("before")

	for i, version := range []byte{5, 4} {
		rc := dialRaw(t, tb.addr(), version)
		rc.mustConnect(fmt.Sprintf("big-%d", version))
		rc.publish("big/x", 1, 1, strings.Repeat("x", 2000))
		rc.expectClosed()
		waitDisconnects(t, tb, map[string]int64{"too_large": int64(i + 1)})
	}
	// A CONNECT above the limit, before any session exists.
	rc := dialRaw(t, tb.addr(), 5)
	pk := rc.connectPacket("big-connect")
	pk.Connect.Username, pk.Connect.UsernameFlag = []byte(strings.Repeat("u", 2000)), true
	rc.send(pk)
	rc.expectClosed()
	waitDisconnects(t, tb, map[string]int64{"too_large": 3})

	ok("after")
	if got := values(tb.records("mqtt", 0)); !slices.Equal(got, []string{"before", "after"}) {
		t.Errorf("log holds %q", got)
	}
}

func TestMalformedInput(t *testing.T) {
	tb := startBroker(t, setup{})
	ok := bystander(t, tb)

	connect := func(rc *rawClient) []byte { return rc.encode(rc.connectPacket("bad")) }
	cases := []struct {
		name  string
		bytes func(rc *rawClient) []byte
		cause string
	}{
		{"connect_bad_protocol_name", func(rc *rawClient) []byte {
			pk := rc.connectPacket("bad")
			pk.Connect.ProtocolName = []byte("MQTX")
			return rc.encode(pk)
		}, "protocol"},
		{"connect_bad_protocol_version", func(rc *rawClient) []byte {
			b := connect(rc)
			b[8] = 9 // after the fixed header (2) and the protocol name (6)
			return b
		}, "protocol"},
		{"first_packet_not_connect", func(*rawClient) []byte { return []byte{0xC0, 0x00} }, "protocol"}, // PINGREQ
		{"connect_truncated_body", func(*rawClient) []byte {
			return []byte{0x10, 0x04, 0x00, 0x04, 'M', 'Q'}
		}, "malformed"},
		{"connect_invalid_remaining_length", func(*rawClient) []byte {
			return []byte{0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F}
		}, "malformed"},
		{"garbage_after_connect", func(rc *rawClient) []byte {
			return append(connect(rc), 0xF7, 0x00) // AUTH with reserved flags set
		}, "malformed"},
		{"publish_invalid_remaining_length", func(rc *rawClient) []byte {
			return append(connect(rc), 0x32, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F)
		}, "malformed"},
		{"publish_qos_3", func(rc *rawClient) []byte {
			return append(connect(rc), 0x36, 0x00)
		}, "protocol"},
		{"second_connect", func(rc *rawClient) []byte {
			return append(connect(rc), connect(rc)...)
		}, "protocol"},
	}
	want := map[string]int64{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, version := range []byte{4, 5} {
				rc := dialRaw(t, tb.addr(), version)
				rc.write(c.bytes(rc))
				rc.expectClosed()
				want[c.cause]++
				waitDisconnects(t, tb, want)
			}
			ok(c.name)
		})
	}
	if got := tb.count("mqtt"); got != int64(len(cases)) {
		t.Errorf("log holds %d records, want the %d bystander publishes", got, len(cases))
	}
}

func TestMaxClients(t *testing.T) {
	tb := startBroker(t, setup{mqtt: func(m *config.MQTTConfig) { m.MaxClients = 2 }})
	a := dialRaw(t, tb.addr(), 5)
	a.mustConnect("a")
	b := dialRaw(t, tb.addr(), 4)
	b.mustConnect("b")

	// MQTT 5: CONNACK 0x89 (server busy); 3.1.1: 0x03 (server unavailable).
	c5 := dialRaw(t, tb.addr(), 5)
	if ack := c5.connect("c5", nil); ack.ReasonCode != packets.ErrServerBusy.Code {
		t.Errorf("third MQTT 5 client: CONNACK 0x%02x, want 0x89", ack.ReasonCode)
	}
	c5.expectClosed()
	c3 := dialRaw(t, tb.addr(), 4)
	if ack := c3.connect("c3", nil); ack.ReasonCode != packets.Err3ServerUnavailable.Code {
		t.Errorf("third 3.1.1 client: CONNACK 0x%02x, want 0x03", ack.ReasonCode)
	}
	c3.expectClosed()
	if _, err := pahoTry(t, pahoOptions(tb.url(), "c-paho")); err == nil {
		t.Errorf("paho connected as a third client")
	}

	// The connected clients are unaffected; when one leaves, there is room.
	a.ping()
	b.ping()
	a.conn.Close()
	waitFor(t, "a to be gone", func() bool { return tb.B.Stats().Clients == 1 })
	d := dialRaw(t, tb.addr(), 5)
	d.mustConnect("d")
	d.publish("room/d", 1, 1, "d")
	d.readAck(packets.Puback, 1)
	if got := values(tb.records("mqtt", 0)); !slices.Equal(got, []string{"d"}) {
		t.Errorf("log holds %q", got)
	}
	if got := disconnects(tb); got["io"]+got["protocol"]+got["malformed"] != 0 {
		t.Errorf("refusing clients for capacity counted as errors: %v", got)
	}
}

// TestBackPressure: a 3.1.1 client pipelining QoS 1 publishes faster than
// the log completes them is slowed down (the broker stops reading its
// socket after max_inflight waiting publishes), not disconnected, and
// nothing is dropped.
func TestBackPressure(t *testing.T) {
	const inflight, n = 4, 40
	gate := newSyncGate()
	tb := startBroker(t, setup{
		logOpts: spoollog.Options{FS: gate.fs()},
		mqtt:    func(m *config.MQTTConfig) { m.MaxInflight = inflight },
	})
	t.Cleanup(gate.release)

	rc := dialRaw(t, tb.addr(), 4)
	rc.mustConnect("flood")
	gate.hold()
	var burst []byte
	for i := range n {
		burst = append(burst, rc.encode(publishPacket("flood/x", 1, uint16(i+1), fmt.Sprintf("f%02d", i)))...)
	}
	rc.write(burst) // all of it, without reading a single PUBACK

	// max_inflight publishes wait for the log; the next one is read and
	// waits for a slot; nothing after it is read.
	waitFor(t, "the broker to take max_inflight+1 publishes", func() bool { return tb.B.Stats().Received == inflight+1 })
	stays(t, 200*time.Millisecond, "the broker reading no further", func() bool { return tb.B.Stats().Received == inflight+1 })
	if got := tb.count("mqtt"); got != 0 {
		t.Fatalf("%d records readable while the fsync is held", got)
	}

	gate.release()
	for i := range n {
		if ack := rc.readAck(packets.Puback, uint16(i+1)); ack.ReasonCode != 0 {
			t.Fatalf("PUBACK %d reason 0x%02x", i+1, ack.ReasonCode)
		}
	}
	rc.ping()
	recs := tb.records("mqtt", 0)
	if len(recs) != n {
		t.Fatalf("log holds %d records, want %d", len(recs), n)
	}
	for i, r := range recs {
		if want := fmt.Sprintf("f%02d", i); string(r.Value) != want {
			t.Fatalf("record %d = %q, want %q", i, r.Value, want)
		}
	}
	s := tb.B.Stats()
	if s.Received != n || s.Clients != 1 {
		t.Errorf("Stats: received %d (want %d), clients %d (want 1)", s.Received, n, s.Clients)
	}
}

// TestSlowConnectDoesNotBlockClose: a connection that never sends CONNECT
// (a port scan, a stuck device) does not keep Close waiting.
func TestSlowConnectDoesNotBlockClose(t *testing.T) {
	tb := startBroker(t, setup{})
	idle, err := net.DialTimeout("tcp", tb.addr(), waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	// Half a CONNECT: the broker is inside mochi's read of the first packet.
	half, err := net.DialTimeout("tcp", tb.addr(), waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer half.Close()
	if _, err := half.Write([]byte{0x10, 0x20, 0x00}); err != nil {
		t.Fatal(err)
	}
	// And a client with a session, which gets DISCONNECT 0x8B (MQTT 5).
	rc := dialRaw(t, tb.addr(), 5)
	rc.mustConnect("live")
	rc.ping() // its session is established (the CONNACK leaves just before)

	start := time.Now()
	tb.close() // fails the test if Close does not return
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v", d)
	}
	pk, err := rc.tryRead(waitTimeout)
	if err != nil || pk.FixedHeader.Type != packets.Disconnect || pk.ReasonCode != packets.ErrServerShuttingDown.Code {
		t.Errorf("client with a session got type %d reason 0x%02x (err %v), want DISCONNECT 0x8b", pk.FixedHeader.Type, pk.ReasonCode, err)
	}
	for _, c := range []net.Conn{idle, half} {
		c.SetReadDeadline(time.Now().Add(waitTimeout))
		if n, err := c.Read(make([]byte, 1)); err == nil {
			t.Errorf("a connection without CONNECT is still open after Close (read %d bytes)", n)
		}
	}
	// Shutting down is nobody's error.
	if got := tb.B.Stats().Disconnects; got["io"]+got["protocol"]+got["malformed"]+got["too_large"] != 0 {
		t.Errorf("Close counted disconnects: %v", got)
	}
}

// TestClientGoneWithoutDisconnect: a device dropping its connection
// without DISCONNECT is normal, affects no one else and is not an error.
func TestClientGoneWithoutDisconnect(t *testing.T) {
	tb := startBroker(t, setup{})
	var got collector
	sub := pahoConnect(t, pahoOptions(tb.url(), "watch"))
	if err := waitToken(t, sub.Subscribe("#", 1, got.handler)); err != nil {
		t.Fatal(err)
	}
	pubs := make([]paho.Client, 3)
	for i := range pubs {
		pubs[i] = pahoConnect(t, pahoOptions(tb.url(), fmt.Sprintf("p%d", i)))
	}
	// A client drops its TCP connection without DISCONNECT mid-stream.
	rude := dialRaw(t, tb.addr(), 4)
	rude.mustConnect("rude")
	rude.publish("x/rude", 1, 1, "rude")
	rude.readAck(packets.Puback, 1)
	rude.conn.Close()
	for i, p := range pubs {
		if err := waitToken(t, p.Publish(fmt.Sprintf("x/%d", i), 1, false, fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	got.wait(t, 4)
	if s := tb.B.Stats(); s.Disconnects["io"]+s.Disconnects["malformed"]+s.Disconnects["protocol"] != 0 {
		t.Errorf("a client going away without DISCONNECT counted as an error: %v", s.Disconnects)
	}
}
