package mqtt_test

// QoS 2 is exactly once across a dropped link: a publish resent after a
// reconnect is stored once, and a session a clean start discarded gets no
// PUBREC of a publish from before.

import (
	"slices"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	spoollog "github.com/spoolmq/spool/log"
)

// TestQoS2ResendAfterReconnectStoredOnce: a device publishes QoS 2, its
// link drops while the append waits for fsync (no PUBREC yet), and it
// resends the PUBLISH with DUP set on its persistent session's new
// connection. The message is stored once and the new connection gets the
// PUBREC.
func TestQoS2ResendAfterReconnectStoredOnce(t *testing.T) {
	gate := newSyncGate()
	tb := startBroker(t, setup{logOpts: spoollog.Options{FS: gate.fs()}})
	t.Cleanup(gate.release)

	a := dialRaw(t, tb.addr(), 5)
	a.connect("q2dev", persistentV5)
	gate.hold()
	a.publish("q2/once", 2, 7, "exactly-once")
	waitFor(t, "the append to reach fsync", func() bool { return gate.waiting.Load() > 0 })
	a.conn.Close() // the link drops before the PUBREC

	b := dialRaw(t, tb.addr(), 5)
	if ack := b.connect("q2dev", persistentV5); ack.ReasonCode != 0 || !ack.SessionPresent {
		t.Fatalf("reconnect: reason 0x%02x session present %v", ack.ReasonCode, ack.SessionPresent)
	}
	dup := publishPacket("q2/once", 2, 7, "exactly-once")
	dup.FixedHeader.Dup = true
	b.send(dup)
	time.Sleep(100 * time.Millisecond) // let the resend reach the log queue
	gate.release()

	// The new connection gets its PUBREC (whatever its reason code) and
	// completes the flow.
	for {
		pk := b.read()
		if pk.FixedHeader.Type == packets.Pubrec && pk.PacketID == 7 {
			break
		}
	}
	b.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, PacketID: 7})
	b.readAck(packets.Pubcomp, 7)

	time.Sleep(200 * time.Millisecond)
	if n := tb.count("mqtt"); n != 1 {
		t.Fatalf("one QoS 2 message stored %d times: %q", n, values(tb.records("mqtt", 0)))
	}
}

// TestCleanStartDiscardsPendingQoS2: a device publishes QoS 2 (id 5), its
// link drops while the append waits for fsync, and it comes back with a
// clean session. The late PUBREC of the first publish belongs to no
// session: after a new persistent session and a restart, the device's next
// QoS 2 publish with id 5 is a new message, stored.
func TestCleanStartDiscardsPendingQoS2(t *testing.T) {
	gate := newSyncGate()
	tb := startBroker(t, setup{logOpts: spoollog.Options{FS: gate.fs()}})
	t.Cleanup(gate.release)
	persistent := func(pk *packets.Packet) { pk.Connect.Clean = false }

	a := dialRaw(t, tb.addr(), 4)
	a.connect("x", persistent)
	gate.hold()
	a.publish("q2/clean", 2, 5, "first")
	waitFor(t, "the append to reach fsync", func() bool { return gate.waiting.Load() > 0 })
	a.conn.Close() // the link drops before the PUBREC

	b := dialRaw(t, tb.addr(), 4)
	b.mustConnect("x") // clean session: the old one is discarded
	gate.release()
	tb.waitCount("mqtt", 1)
	time.Sleep(200 * time.Millisecond) // session writes
	b.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
	b.expectClosed()

	// The device starts a new persistent session, and the broker restarts.
	c := dialRaw(t, tb.addr(), 4)
	c.connect("x", persistent)
	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
	c.expectClosed()
	time.Sleep(200 * time.Millisecond)
	tb.restart()

	d := dialRaw(t, tb.addr(), 4)
	d.connect("x", persistent)
	for {
		pk, err := d.tryRead(300 * time.Millisecond)
		if err != nil {
			break
		}
		t.Logf("after the restart the new session was sent packet type %d id %d from the discarded one", pk.FixedHeader.Type, pk.PacketID)
	}
	d.publish("q2/clean", 2, 5, "second")
	d.readAck(packets.Pubrec, 5)
	d.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, PacketID: 5})
	d.readAck(packets.Pubcomp, 5)
	if got := values(tb.records("mqtt", 0)); !slices.Equal(got, []string{"first", "second"}) {
		t.Fatalf("acknowledged QoS 2 publish lost: the log holds %q, want [first second]", got)
	}
}
