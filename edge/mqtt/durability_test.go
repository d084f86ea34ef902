package mqtt_test

// Acknowledgements come only after the durable append, and in the order
// the publishes arrived, whatever order the log completes them in.

import (
	"fmt"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	spoollog "github.com/spoolmq/spool/log"
)

// TestAckImpliesReadable: when a paho token completes (PUBACK for QoS 1,
// PUBCOMP for QoS 2), the record is already readable in the log.
func TestAckImpliesReadable(t *testing.T) {
	tb := startBroker(t, setup{})
	pub := pahoConnect(t, pahoOptions(tb.url(), "seq"))
	p := tb.partition("mqtt", 0)
	for i := range 20 {
		qos := byte(1 + i%2)
		payload := fmt.Sprintf("v%02d", i)
		if err := waitToken(t, pub.Publish("acks/seq", qos, false, payload)); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		if hw := p.HighWatermark(); hw != int64(i+1) {
			t.Fatalf("after the ack of publish %d (QoS %d) the high watermark is %d, want %d", i, qos, hw, i+1)
		}
		recs := readRecords(t, p)
		if got := string(recs[len(recs)-1].Value); got != payload {
			t.Fatalf("after the ack of %q the last record is %q", payload, got)
		}
	}
}

// TestNoAckBeforeFsync holds the log's fsync and checks that neither a
// PUBACK nor a PUBREC leaves before it completes.
func TestNoAckBeforeFsync(t *testing.T) {
	gate := newSyncGate()
	tb := startBroker(t, setup{logOpts: spoollog.Options{FS: gate.fs()}})
	t.Cleanup(gate.release) // runs before the broker closes
	p := tb.partition("mqtt", 0)

	rc := dialRaw(t, tb.addr(), 5)
	rc.mustConnect("held")

	for _, qos := range []byte{1, 2} {
		id := uint16(qos)
		hw := p.HighWatermark()
		gate.hold()
		rc.publish("acks/held", qos, id, fmt.Sprintf("qos%d", qos))
		waitFor(t, "the append to reach fsync", func() bool { return gate.waiting.Load() > 0 })
		if pk, err := rc.tryRead(200 * time.Millisecond); err == nil {
			t.Fatalf("QoS %d: packet type %d (reason 0x%02x) sent while the fsync was held", qos, pk.FixedHeader.Type, pk.ReasonCode)
		}
		if got := p.HighWatermark(); got != hw {
			t.Fatalf("QoS %d: high watermark moved to %d before the fsync", qos, got)
		}
		gate.release()
		typ := byte(packets.Puback)
		if qos == 2 {
			typ = packets.Pubrec
		}
		ack := rc.readAck(typ, id)
		if ack.ReasonCode != 0 {
			t.Fatalf("QoS %d: ack reason 0x%02x", qos, ack.ReasonCode)
		}
		if got := p.HighWatermark(); got != hw+1 {
			t.Fatalf("QoS %d: acknowledged, but high watermark is %d, want %d", qos, got, hw+1)
		}
		if qos == 2 {
			rc.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, PacketID: id})
			rc.readAck(packets.Pubcomp, id)
		}
	}
}

// TestAcksInArrivalOrder pipelines publishes that land in different
// partitions (each with its own flusher, completing in any order): the
// acknowledgements still come back in the order the publishes were sent,
// each one only for a record that is readable.
func TestAcksInArrivalOrder(t *testing.T) {
	tb := startBroker(t, routedSetup())
	rc := dialRaw(t, tb.addr(), 5)
	rc.mustConnect("order")

	const n = 300
	for i := range n {
		qos := byte(1 + i%2)
		rc.publish(fmt.Sprintf("devices/d%d/telemetry", i%7), qos, uint16(i+1), fmt.Sprintf("d%d-%03d", i%7, i))
	}
	for i := 0; i < n; {
		pk := rc.read()
		if pk.FixedHeader.Type == packets.Pubcomp {
			continue // completes a PUBREL sent below
		}
		wantType := byte(packets.Puback)
		if i%2 == 1 {
			wantType = packets.Pubrec
		}
		if pk.FixedHeader.Type != wantType || pk.PacketID != uint16(i+1) || pk.ReasonCode != 0 {
			t.Fatalf("ack %d: type %d id %d reason 0x%02x, want type %d id %d: acknowledgements out of order",
				i, pk.FixedHeader.Type, pk.PacketID, pk.ReasonCode, wantType, i+1)
		}
		if wantType == packets.Pubrec {
			rc.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, PacketID: pk.PacketID})
		}
		i++
	}
	// The acknowledged records are all readable (PUBCOMPs may still be on
	// the wire; they do not matter to the log).
	if got := tb.count("telemetry"); got != n {
		t.Fatalf("telemetry holds %d records after %d acknowledgements", got, n)
	}
}
