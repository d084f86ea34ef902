package mqtt_test

// When the log refuses a publish (on_full: reject, a record too large),
// MQTT 5 clients get a negative acknowledgement with the reason code,
// MQTT 3.1.1 clients are disconnected without an acknowledgement, nothing
// acknowledged is missing, and ingest resumes once there is room.

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/spoolmq/spool/edge/config"
	spoollog "github.com/spoolmq/spool/log"
)

// boundedSetup routes full/# to a topic of about 2 KiB (retention_bytes
// + one segment) that refuses appends when a pinned reader (as the bridge
// would be) holds back what retention would delete; everything else goes
// to an unbounded topic.
func boundedSetup() setup {
	bounded := spoollog.DefaultTopicConfig()
	bounded.SegmentBytes = 1024
	bounded.RetentionBytes = 1024
	bounded.MaxMessageBytes = 512
	bounded.Preallocate = false
	bounded.OnFull = spoollog.OnFullReject
	return setup{
		topics: map[string]spoollog.TopicConfig{"bounded": bounded, "other": spoollog.DefaultTopicConfig()},
		routes: []config.RouteSpec{
			{Match: "full/#", Topic: "bounded", Key: "none"},
			{Match: "#", Topic: "other"},
		},
	}
}

func TestRejectWhenFull(t *testing.T) {
	tb := startBroker(t, boundedSetup())
	p := tb.partition("bounded", 0)
	p.Pin("bridge", 0) // nothing may be deleted: the topic fills up

	var live collector
	sub := pahoConnect(t, pahoOptions(tb.url(), "watcher"))
	if err := waitToken(t, sub.Subscribe("full/#", 1, live.handler)); err != nil {
		t.Fatalf("subscribe: %v", err)
	}

	// MQTT 5: publish QoS 1 until the log is full; the refusal is a PUBACK
	// with reason 0x97 (quota exceeded), and the connection stays up.
	v5 := dialRaw(t, tb.addr(), 5)
	v5.mustConnect("v5")
	var acked, refused []string
	id := uint16(0)
	for len(refused) == 0 {
		if len(acked) > 100 {
			t.Fatalf("%d publishes of 100 bytes accepted into a topic bounded to about 2 KiB", len(acked))
		}
		id++
		payload := fmt.Sprintf("fill-%03d-%s", id, strings.Repeat("x", 90))
		v5.publish("full/a", 1, id, payload)
		ack := v5.readAck(packets.Puback, id)
		switch ack.ReasonCode {
		case 0:
			acked = append(acked, payload)
		case packets.ErrQuotaExceeded.Code:
			refused = append(refused, payload)
			if !strings.Contains(ack.Properties.ReasonString, "full") {
				t.Errorf("PUBACK 0x97 reason string %q does not say the log is full", ack.Properties.ReasonString)
			}
		default:
			t.Fatalf("PUBACK reason 0x%02x, want 0x00 or 0x97", ack.ReasonCode)
		}
	}
	if len(acked) == 0 {
		t.Fatalf("the first publish was already refused")
	}

	// QoS 2 is refused with a PUBREC carrying 0x97, which ends the flow.
	id++
	v5.publish("full/a", 2, id, "refused-qos2")
	if ack := v5.readAck(packets.Pubrec, id); ack.ReasonCode != packets.ErrQuotaExceeded.Code {
		t.Fatalf("QoS 2 PUBREC reason 0x%02x, want 0x97", ack.ReasonCode)
	}
	refused = append(refused, "refused-qos2")

	// QoS 0 has nothing to answer with: dropped and counted.
	v5.publish("full/a", 0, 0, "refused-qos0")
	refused = append(refused, "refused-qos0")
	waitFor(t, "the QoS 0 drop to be counted", func() bool { return tb.B.Stats().DroppedQoS0 == 1 })
	v5.ping() // still connected

	// Other topics are not affected.
	id++
	v5.publish("elsewhere", 1, id, "unaffected")
	if ack := v5.readAck(packets.Puback, id); ack.ReasonCode != 0 {
		t.Fatalf("publish to another topic while one is full: PUBACK reason 0x%02x", ack.ReasonCode)
	}

	// MQTT 3.1.1 has no negative acknowledgement: the connection is closed
	// and no PUBACK is sent, so the client keeps the message.
	v3 := dialRaw(t, tb.addr(), 4)
	v3.mustConnect("v3-raw")
	v3.publish("full/b", 1, 1, "refused-v3")
	refused = append(refused, "refused-v3")
	v3.expectClosed()

	// paho (3.1.1): the publish token does not succeed and the client is
	// disconnected.
	pc := pahoConnect(t, pahoOptions(tb.url(), "v3-paho"))
	if err := waitToken(t, pc.Publish("full/c", 1, false, "refused-paho")); err == nil {
		t.Fatalf("paho QoS 1 publish into a full log succeeded")
	}
	refused = append(refused, "refused-paho")
	waitFor(t, "paho to be disconnected", func() bool { return !pc.IsConnectionOpen() })

	if got := tb.B.Stats().Rejected["full"]; got != int64(len(refused)) {
		t.Errorf(`Stats().Rejected["full"] = %d, want %d`, got, len(refused))
	}
	// The 3.1.1 disconnects were the broker's refusals, counted above, not
	// client errors.
	if d := tb.B.Stats().Disconnects; d["io"]+d["malformed"]+d["protocol"]+d["too_large"] != 0 {
		t.Errorf("refused publishes counted as disconnect errors: %v", d)
	}

	// Nothing acknowledged is missing, and nothing refused is stored.
	if got := values(readRecords(t, p)); !slices.Equal(got, acked) {
		t.Fatalf("log holds %d records, %d were acknowledged:\n got %q\nwant %q", len(got), len(acked), got, acked)
	}

	// The reader catches up: retention deletes what it has read, and the
	// same MQTT 5 connection is accepted again.
	p.Unpin("bridge")
	id++
	v5.publish("full/a", 1, id, "after")
	if ack := v5.readAck(packets.Puback, id); ack.ReasonCode != 0 {
		t.Fatalf("after space returned: PUBACK reason 0x%02x", ack.ReasonCode)
	}
	recs := readRecords(t, p)
	if last := recs[len(recs)-1]; string(last.Value) != "after" {
		t.Fatalf("last record %q, want after", last.Value)
	}
	if p.LogStartOffset() == 0 {
		t.Errorf("no segment was deleted to make room")
	}

	// Subscribers saw what was stored, never what was refused.
	got := live.all()
	waitFor(t, "delivery of the publish after space returned", func() bool {
		got = live.all()
		return len(got) > 0 && got[len(got)-1].payload == "after"
	})
	var delivered []string
	for _, m := range got {
		delivered = append(delivered, m.payload)
	}
	if want := append(slices.Clone(acked), "after"); !slices.Equal(delivered, want) {
		t.Errorf("subscriber got %q,\nwant %q", delivered, want)
	}
}

// TestRejectTooLarge: a publish within the MQTT packet limit but above the
// topic's max_message_bytes is refused with 0x95 (MQTT 5).
func TestRejectTooLarge(t *testing.T) {
	tb := startBroker(t, boundedSetup()) // max_message_bytes 512
	rc := dialRaw(t, tb.addr(), 5)
	rc.mustConnect("big")
	rc.publish("full/big", 1, 1, strings.Repeat("b", 1000))
	if ack := rc.readAck(packets.Puback, 1); ack.ReasonCode != packets.ErrPacketTooLarge.Code {
		t.Fatalf("PUBACK reason 0x%02x, want 0x95", ack.ReasonCode)
	}
	rc.publish("full/big", 1, 2, "small")
	if ack := rc.readAck(packets.Puback, 2); ack.ReasonCode != 0 {
		t.Fatalf("PUBACK reason 0x%02x for a small publish after a large one", ack.ReasonCode)
	}
	if got := values(tb.records("bounded", 0)); !slices.Equal(got, []string{"small"}) {
		t.Fatalf("log holds %q, want [small]", got)
	}
	if got := tb.B.Stats().Rejected["too_large"]; got != 1 {
		t.Errorf(`Stats().Rejected["too_large"] = %d, want 1`, got)
	}
}
