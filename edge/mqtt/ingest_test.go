package mqtt_test

// End-to-end ingest with an MQTT 3.1.1 client (paho): routing to log
// topics, record keys and partitions, headers, per-partition order, live
// delivery to subscribers, and group commit for a pipelining publisher.

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/spoolmq/spool/edge/config"
	spoollog "github.com/spoolmq/spool/log"
)

func topicConfig(partitions int32) spoollog.TopicConfig {
	c := spoollog.DefaultTopicConfig()
	c.Partitions = partitions
	return c
}

// routedSetup routes telemetry by device (topic level 1) over 3
// partitions, alarms by a JSON field over 2, and everything else by the
// publishing client's id.
func routedSetup() setup {
	return setup{
		topics: map[string]spoollog.TopicConfig{
			"telemetry": topicConfig(3),
			"alarms":    topicConfig(2),
			"events":    topicConfig(1),
		},
		routes: []config.RouteSpec{
			{Match: "devices/+/telemetry", Topic: "telemetry", Key: "level:1"},
			{Match: "devices/+/alarm", Topic: "alarms", Key: "json:device.id"},
			{Match: "#", Topic: "events", Key: "client_id"},
		},
	}
}

func TestIngestRoutesKeysHeadersAndOrder(t *testing.T) {
	tb := startBroker(t, routedSetup())

	var live collector
	sub := pahoConnect(t, pahoOptions(tb.url(), "sub"))
	if err := waitToken(t, sub.SubscribeMultiple(map[string]byte{"devices/#": 2, "other/#": 2}, live.handler)); err != nil {
		t.Fatalf("subscribe: %v", err)
	}

	pub := pahoConnect(t, pahoOptions(tb.url(), "pub-1"))
	before := time.Now().UnixMilli()

	type sent struct {
		topic, payload string
		qos            byte
		retain         bool
	}
	var all []sent
	publish := func(topic, payload string, qos byte, retain bool) paho.Token {
		all = append(all, sent{topic, payload, qos, retain})
		return pub.Publish(topic, qos, retain, payload)
	}

	// Telemetry from 6 devices, 10 readings each, QoS 0, 1 and 2 mixed,
	// published without waiting so that the broker sees them pipelined.
	var toks []paho.Token
	const devices, readings = 6, 10
	for seq := range readings {
		for d := range devices {
			qos := byte((seq + d) % 3)
			toks = append(toks, publish(fmt.Sprintf("devices/d%d/telemetry", d), fmt.Sprintf("d%d-%02d", d, seq), qos, false))
		}
	}
	// Alarms keyed by a JSON field; one retained; one without the field.
	for i, id := range []string{"a1", "a2", "a3", "a1"} {
		payload := fmt.Sprintf(`{"device":{"id":%q},"n":%d}`, id, i)
		toks = append(toks, publish("devices/"+id+"/alarm", payload, 1, i == 1))
	}
	toks = append(toks, publish("devices/x/alarm", `{"other":true}`, 2, false))
	// Anything else goes to events keyed by client id.
	toks = append(toks, publish("other/thing", "hello", 1, false))
	for _, tok := range toks {
		if err := waitToken(t, tok); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	// QoS 0 publishes have no acknowledgement: wait for the log to have them.
	tb.waitCount("telemetry", devices*readings)
	tb.waitCount("alarms", 5)
	tb.waitCount("events", 1)
	after := time.Now().UnixMilli()

	qosOf := map[string]byte{}
	retainOf := map[string]bool{}
	for _, s := range all {
		qosOf[s.payload], retainOf[s.payload] = s.qos, s.retain
	}
	checkRecord := func(topic string, part, parts int32, r spoollog.Record, wantKey, wantTopic string) {
		t.Helper()
		if string(r.Key) != wantKey {
			t.Errorf("%s/%d offset %d: key %q, want %q", topic, part, r.Offset, r.Key, wantKey)
		}
		if wantKey != "" {
			if want := spoollog.KeyPartition([]byte(wantKey), parts); part != want {
				t.Errorf("%s: key %q stored in partition %d, murmur2 says %d", topic, wantKey, part, want)
			}
		}
		if got, _ := header(r, "mqtt.topic"); got != wantTopic {
			t.Errorf("%s/%d offset %d: mqtt.topic %q, want %q", topic, part, r.Offset, got, wantTopic)
		}
		if got, _ := header(r, "mqtt.qos"); got != fmt.Sprint(qosOf[string(r.Value)]) {
			t.Errorf("%s/%d offset %d (%s): mqtt.qos %q, want %d", topic, part, r.Offset, r.Value, got, qosOf[string(r.Value)])
		}
		got, ok := header(r, "mqtt.retain")
		if retainOf[string(r.Value)] != ok || (ok && got != "1") {
			t.Errorf("%s/%d offset %d (%s): mqtt.retain %q present=%v, want present=%v",
				topic, part, r.Offset, r.Value, got, ok, retainOf[string(r.Value)])
		}
		if r.Timestamp < before || r.Timestamp > after {
			t.Errorf("%s/%d offset %d: timestamp %d not in the publish window [%d, %d]", topic, part, r.Offset, r.Timestamp, before, after)
		}
	}

	// Telemetry: key = device, partition = murmur2(device) % 3, and each
	// device's readings in publish order.
	seen := 0
	for part, recs := range tb.allRecords("telemetry") {
		next := map[string]int{}
		for _, r := range recs {
			dev, seq, _ := strings.Cut(string(r.Value), "-")
			checkRecord("telemetry", part, 3, r, dev, "devices/"+dev+"/telemetry")
			if want := fmt.Sprintf("%02d", next[dev]); seq != want {
				t.Errorf("telemetry/%d: device %s reading %s where %s was due: order not preserved", part, dev, seq, want)
			}
			next[dev]++
			seen++
		}
	}
	if seen != devices*readings {
		t.Errorf("telemetry holds %d records, want %d", seen, devices*readings)
	}

	// Alarms: key from the JSON payload; the one without the field is
	// stored without a key and counted.
	var alarmKeys []string
	for part, recs := range tb.allRecords("alarms") {
		for _, r := range recs {
			var v struct {
				Device struct{ ID string } `json:"device"`
			}
			if err := json.Unmarshal(r.Value, &v); err != nil {
				t.Fatalf("alarm value %q: %v", r.Value, err)
			}
			dev := v.Device.ID
			topicDev := dev
			if dev == "" {
				topicDev = "x"
				if r.Key != nil {
					t.Errorf("alarm without device.id stored with key %q", r.Key)
				}
			}
			checkRecord("alarms", part, 2, r, dev, "devices/"+topicDev+"/alarm")
			alarmKeys = append(alarmKeys, dev)
		}
	}
	slices.Sort(alarmKeys)
	if want := []string{"", "a1", "a1", "a2", "a3"}; !slices.Equal(alarmKeys, want) {
		t.Errorf("alarm keys %q, want %q", alarmKeys, want)
	}
	if got := tb.B.Stats().KeyMissing; got != 1 {
		t.Errorf("Stats().KeyMissing = %d, want 1", got)
	}

	// Events: key = client id.
	ev := tb.records("events", 0)
	if len(ev) != 1 {
		t.Fatalf("events holds %d records, want 1", len(ev))
	}
	checkRecord("events", 0, 1, ev[0], "pub-1", "other/thing")
	if string(ev[0].Value) != "hello" {
		t.Errorf("events value %q", ev[0].Value)
	}

	// The subscriber got every publish live, with its QoS, in order per topic.
	got := live.wait(t, len(all))
	if len(got) != len(all) {
		t.Errorf("subscriber got %d messages, want %d", len(got), len(all))
	}
	byTopic := map[string][]string{}
	for _, m := range got {
		byTopic[m.topic] = append(byTopic[m.topic], m.payload)
		if m.qos != qosOf[m.payload] {
			t.Errorf("delivered %q with QoS %d, published with %d", m.payload, m.qos, qosOf[m.payload])
		}
	}
	want := map[string][]string{}
	for _, s := range all {
		want[s.topic] = append(want[s.topic], s.payload)
	}
	for topic, w := range want {
		if !slices.Equal(byTopic[topic], w) {
			t.Errorf("delivered on %s: %q, want %q", topic, byTopic[topic], w)
		}
	}
	if s := tb.B.Stats(); s.Received != int64(len(all)) || s.Rejected["full"]+s.Rejected["error"]+s.Rejected["too_large"] != 0 {
		t.Errorf("Stats: received %d (want %d), rejected %v", s.Received, len(all), s.Rejected)
	}
}

// TestPipelinedPublishesShareFsyncs: one connection publishing QoS 1
// without waiting for each acknowledgement must not pay one fsync per
// message (mochi acknowledges after OnPublish returns, which would
// serialise the connection on the log's fsync).
func TestPipelinedPublishesShareFsyncs(t *testing.T) {
	tb := startBroker(t, setup{}) // topic "mqtt", sync: always
	if got := tb.partition("mqtt", 0).Topic().Config().Sync; got != spoollog.SyncAlways {
		t.Fatalf("topic sync = %q, want always", got)
	}
	pub := pahoConnect(t, pahoOptions(tb.url(), "fast"))

	const n = 2000
	base := tb.Log.Stats().Fsyncs
	start := time.Now()
	toks := make([]paho.Token, n)
	for i := range toks {
		toks[i] = pub.Publish("sensors/fast", 1, false, fmt.Sprintf("m%04d", i))
	}
	for i, tok := range toks {
		if err := waitToken(t, tok); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	elapsed := time.Since(start)
	fsyncs := tb.Log.Stats().Fsyncs - base
	t.Logf("%d QoS 1 publishes acknowledged in %v with %d fsyncs", n, elapsed, fsyncs)
	if fsyncs >= n/4 {
		t.Errorf("%d fsyncs for %d pipelined publishes: acknowledgements are serialised on fsync", fsyncs, n)
	}
	recs := tb.records("mqtt", 0)
	if len(recs) != n {
		t.Fatalf("log holds %d records, want %d", len(recs), n)
	}
	for i, r := range recs {
		if want := fmt.Sprintf("m%04d", i); string(r.Value) != want {
			t.Fatalf("record %d is %q, want %q: publish order not kept", i, r.Value, want)
		}
	}
}
