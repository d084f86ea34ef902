package bridge

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	mqttpackets "github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/eclipse/paho.golang/paho"

	spoollog "github.com/spoolmq/spool/log"
)

// startLimitedMosquitto is startMosquitto with extra lines in its config
// (message_size_limit, max_packet_size).
func startLimitedMosquitto(t *testing.T, extra string) *mosquitto {
	t.Helper()
	mq := startMosquitto(t, false)
	if extra == "" {
		return mq
	}
	mq.stop()
	path := filepath.Join(mq.dir, "mosquitto.conf")
	conf, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(conf, extra+"\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	mq.start()
	return mq
}

// TestMQTTLinkTooLargeSkipped: a partition holds a small record, one too
// large for the upstream broker and another small one. Whether the broker
// says so (MQTT 5: PUBACK 0x95 over message_size_limit, or its CONNACK's
// Maximum Packet Size) or only the link's MaxMessageBytes knows the limit
// (MQTT 3.1.1, where mosquitto would drop the connection), the large one
// is skipped, counted and logged with its offset; both small ones arrive
// once, in order; the cursor passes the partition's end and the link is
// caught up without reconnecting (unless mosquitto closes the connection).
func TestMQTTLinkTooLargeSkipped(t *testing.T) {
	for _, c := range []struct {
		name      string
		version   int
		conf      string // mosquitto's limit
		maxBytes  int    // MaxMessageBytes
		reconnect bool   // mosquitto drops the connection after its PUBACK
	}{
		{"3.1.1/max_packet_size", 4, "max_packet_size 1024", 1024, false},
		{"5/max_packet_size", 5, "max_packet_size 1024", 0, false},
		{"5/message_size_limit", 5, "message_size_limit 1024\nmax_queued_messages 1000", 0, false},
		// With max_queued_messages 0 mosquitto 2.0 also disconnects after
		// the 0x95 PUBACK; small-2, sent after it, is resent.
		{"5/message_size_limit/disconnect", 5, "message_size_limit 1024", 0, true},
		{"5/max_message_bytes", 5, "", 1024, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			mq := startLimitedMosquitto(t, c.conf)
			l := newTestLog(t, spoollog.Options{})
			p := partition(t, createTopic(t, l, "t", 1, nil), 0)
			now := time.Now().UnixMilli()
			if _, err := p.AppendRecords([]spoollog.Record{
				{Timestamp: now, Value: []byte("small-0")},
				{Timestamp: now, Value: bytes.Repeat([]byte("x"), 4000)},
				{Timestamp: now, Value: []byte("small-2")},
			}, spoollog.DefaultBatchOptions); err != nil {
				t.Fatal(err)
			}
			sub := subscribe(t, mq.url(), "edge-1/#", false)
			var logs testLogger
			link := newTestMQTTLink(t, MQTTLinkOptions{Name: "up", Site: "edge-1", Broker: mq.url(), Log: l,
				Topics: []string{"t"}, Version: c.version, MaxMessageBytes: c.maxBytes, Logger: logs.logger()})
			runMQTTLink(t, link)
			h := waitMQTTState(t, link, StateCaughtUp)
			// The partition's last error names the skip, unless mosquitto's
			// disconnect after it failed a later publish (the log names it
			// then, checked below).
			named := c.reconnect || strings.Contains(h.Partitions[0].LastError, "offset 1 skipped")
			if h.Records != 2 || h.Skipped != 1 || h.Gaps != 0 || !named {
				t.Fatalf("health %+v, want 2 records, 1 skipped, no gap, and offset 1 named\n%s", h, logs.String())
			}
			checkCursorsAtEnd(t, l, "up", h)
			waitFor(t, "2 messages", func() bool { return len(sub.snapshot()) >= 2 })
			time.Sleep(200 * time.Millisecond) // a resend or the large one would arrive by now
			var got []string
			for _, m := range sub.snapshot() {
				v := string(m.Payload())
				if c.reconnect && slices.Contains(got, v) {
					// mosquitto's close can reset the connection before
					// its PUBACKs are read: at least once, then.
					continue
				}
				got = append(got, v)
			}
			if strings.Join(got, ",") != "small-0,small-2" {
				t.Fatalf("upstream got %d messages %.40q, want small-0 and small-2", len(got), got)
			}
			out := logs.String()
			if !strings.Contains(out, "too large") || !strings.Contains(out, "offset=1") {
				t.Fatalf("the skipped record was not logged with its offset:\n%s", out)
			}
			if !c.reconnect && strings.Contains(out, "upstream connection failed") {
				t.Fatalf("the link reconnected:\n%s", out)
			}
		})
	}
}

// TestMQTTPacketSize: the sizes the links check against a limit are
// those paho writes on the wire, across the remaining-length steps.
func TestMQTTPacketSize(t *testing.T) {
	var sizes []int
	for _, step := range []int{128, 16384, 2097152} { // remaining length grows a byte
		for n := step - 60; n < step+2; n++ {
			sizes = append(sizes, n)
		}
	}
	for _, n := range append(sizes, 0, 1) {
		payload := bytes.Repeat([]byte("p"), n)
		pk := mqttpackets.NewControlPacket(mqttpackets.Publish).(*mqttpackets.PublishPacket)
		pk.Qos, pk.TopicName, pk.MessageID, pk.Payload = 1, "s/t", 7, payload
		var b3 bytes.Buffer
		if err := pk.Write(&b3); err != nil {
			t.Fatal(err)
		}
		if got := publish3Size("s/t", payload); got != b3.Len() {
			t.Errorf("MQTT 3.1.1, payload %d: size %d, paho writes %d", n, got, b3.Len())
		}
		props := &paho.PublishProperties{ContentType: "text/plain"}
		props.User.Add(HeaderEdge, "edge-1").Add(HeaderOffset, "12345")
		pub := &paho.Publish{QoS: 1, Topic: "s/t", Payload: payload, Properties: props}
		var b5 bytes.Buffer
		if _, err := pub.Packet().WriteTo(&b5); err != nil {
			t.Fatal(err)
		}
		if got := publish5Size(pub); got != b5.Len() {
			t.Errorf("MQTT 5, payload %d: size %d, paho writes %d", n, got, b5.Len())
		}
	}
}

// TestMQTTLinkMaxMessageBytesOption: a negative MaxMessageBytes is refused,
// and the link's limit is the smallest of its own, the broker's and the
// protocol's.
func TestMQTTLinkMaxMessageBytesOption(t *testing.T) {
	l := newTestLog(t, spoollog.Options{})
	createTopic(t, l, "sensors", 1, nil)
	o := MQTTLinkOptions{Name: "up", Site: "edge-1", Broker: "tcp://127.0.0.1:1", Log: l, Topics: []string{"sensors"}, MaxMessageBytes: -1}
	if _, err := NewMQTTLink(o); err == nil {
		t.Fatal("negative MaxMessageBytes accepted")
	}
	for _, c := range []struct {
		own    int
		broker uint32
		want   int
	}{{0, 0, mqttMaxPacket}, {1000, 0, 1000}, {0, 500, 500}, {1000, 500, 500}, {400, 500, 400}} {
		o.MaxMessageBytes = c.own
		link, err := NewMQTTLink(o)
		if err != nil {
			t.Fatal(err)
		}
		if got := link.packetLimit(c.broker); got != c.want {
			t.Errorf("MaxMessageBytes %d, broker %d: limit %d, want %d", c.own, c.broker, got, c.want)
		}
		link.Close()
	}
}
