package mqtt_test

import (
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

// A client's SUBSCRIBE and UNSUBSCRIBE ids are its own: one equal to the id
// of a message the server is still sending it (here a retained message the
// client has not acknowledged yet) is granted, and answered under that id,
// for MQTT 3.1.1 and 5 alike (mochi alone answers 0x91, packet identifier
// in use, which a 3.1.1 client cannot even read).
func TestSubscribeIDsAreTheClients(t *testing.T) {
	for _, version := range []byte{4, 5} {
		tb := startBroker(t, setup{})
		pub := dialRaw(t, tb.addr(), version)
		pub.mustConnect("pub")
		pub.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: true},
			TopicName: "r/a", PacketID: 1, Payload: []byte("kept")})
		pub.readAck(packets.Puback, 1)

		rc := dialRaw(t, tb.addr(), version)
		rc.mustConnect("sub")
		rc.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 7,
			Filters: packets.Subscriptions{{Filter: "r/#", Qos: 1}}})
		rc.readAck(packets.Suback, 7)
		retained := rc.read()
		if retained.FixedHeader.Type != packets.Publish || retained.PacketID == 0 {
			t.Fatalf("v%d: got packet type %d id %d, want the retained PUBLISH", version, retained.FixedHeader.Type, retained.PacketID)
		}
		// Not acknowledged: the server's id is still in use, on its side.
		id := retained.PacketID
		rc.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: id,
			Filters: packets.Subscriptions{{Filter: "x/#", Qos: 1}}})
		if ack := rc.readAck(packets.Suback, id); len(ack.ReasonCodes) != 1 || ack.ReasonCodes[0] != 1 {
			t.Errorf("v%d: SUBSCRIBE %d while the server sends message %d: SUBACK %v, want [1]", version, id, id, ack.ReasonCodes)
		}
		rc.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Unsubscribe, Qos: 1}, PacketID: id,
			Filters: packets.Subscriptions{{Filter: "x/#"}}})
		if ack := rc.readAck(packets.Unsuback, id); version == 5 && (len(ack.ReasonCodes) != 1 || ack.ReasonCodes[0] != 0) {
			t.Errorf("v%d: UNSUBSCRIBE %d: UNSUBACK %v, want [0]", version, id, ack.ReasonCodes)
		}
		if n := tb.B.Stats().Subscriptions; n != 1 {
			t.Errorf("v%d: %d subscriptions held, want 1 (r/#)", version, n)
		}
	}
}
