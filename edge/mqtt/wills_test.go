package mqtt_test

import (
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/spoolmq/spool/edge/mqtt"
)

// A will is stored in the log like a publish of its client, routed by its
// topic with the same headers, when it goes out: the device's "offline"
// stays with the data it sent.
func TestWillIsStored(t *testing.T) {
	tb := startBroker(t, setup{})
	dev := dialRaw(t, tb.addr(), 5)
	dev.connect("pump4", func(pk *packets.Packet) {
		pk.Connect.WillFlag, pk.Connect.WillTopic, pk.Connect.WillPayload = true, "devices/pump4/status", []byte("offline")
		pk.Connect.WillQos = 1
	})
	dev.publish("devices/pump4/status", 1, 1, "online")
	dev.readAck(packets.Puback, 1)
	dev.conn.Close() // abnormal: the will goes out

	tb.waitCount(mqtt.DefaultTopic, 2)
	recs := tb.records(mqtt.DefaultTopic, 0)
	if got := values(recs); len(got) != 2 || got[0] != "online" || got[1] != "offline" {
		t.Fatalf("stored %q, want [online offline]", got)
	}
	if topic, _ := header(recs[1], mqtt.HeaderTopic); topic != "devices/pump4/status" || string(recs[1].Key) != "devices/pump4/status" {
		t.Errorf("the will's record: key %q, mqtt.topic %q", recs[1].Key, topic)
	}
}
