package mqtt_test

// Interoperability with the Mosquitto command-line clients over MQTT 5:
// user properties and content type become record headers, and a
// subscriber gets the message with its properties.

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	spoollog "github.com/spoolmq/spool/log"
)

func TestMosquittoV5PropertiesBecomeHeaders(t *testing.T) {
	pubBin := requirePeer(t, "mosquitto_pub")
	subBin := requirePeer(t, "mosquitto_sub")
	tb := startBroker(t, routedSetup())
	host, port, _ := net.SplitHostPort(tb.addr())

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()

	// The subscriber prints one message with its properties and exits.
	sub := exec.CommandContext(ctx, subBin, "-h", host, "-p", port, "-V", "mqttv5", "-q", "1",
		"-i", "mosq-sub", "-t", "devices/#", "-C", "1", "-W", fmt.Sprint(int(waitTimeout.Seconds())),
		"-F", "%t|%q|%C|%P|%p")
	var subOut bytes.Buffer
	sub.Stdout, sub.Stderr = &subOut, &subOut
	if err := sub.Start(); err != nil {
		t.Fatalf("start mosquitto_sub: %v", err)
	}
	subDone := make(chan error, 1)
	go func() { subDone <- sub.Wait() }()
	waitFor(t, "mosquitto_sub to subscribe", func() bool { return tb.B.Stats().Subscriptions >= 1 })

	payload := `{"device":{"id":"m7"},"temp":21.5}`
	out, err := runPeer(t, ctx, pubBin, "-h", host, "-p", port, "-V", "mqttv5", "-q", "1",
		"-i", "mosq-pub", "-t", "devices/m7/alarm", "-m", payload,
		"-D", "publish", "user-property", "k", "v",
		"-D", "publish", "user-property", "site", "lab 1",
		"-D", "publish", "content-type", "application/json")
	if err != nil {
		t.Fatalf("mosquitto_pub: %v\n%s", err, out)
	}

	// mosquitto_pub exits after the PUBACK: the record is durable now.
	recs := tb.records("alarms", spoollog.KeyPartition([]byte("m7"), 2))
	if len(recs) != 1 {
		t.Fatalf("alarms partition for m7 holds %d records, want 1", len(recs))
	}
	r := recs[0]
	if string(r.Value) != payload || string(r.Key) != "m7" {
		t.Errorf("record key %q value %q", r.Key, r.Value)
	}
	for k, want := range map[string]string{
		"mqtt.topic":   "devices/m7/alarm",
		"mqtt.qos":     "1",
		"content-type": "application/json",
		"k":            "v",
		"site":         "lab 1",
	} {
		if got, ok := header(r, k); !ok || got != want {
			t.Errorf("header %q = %q (present %v), want %q", k, got, ok, want)
		}
	}
	if _, ok := header(r, "mqtt.retain"); ok {
		t.Errorf("mqtt.retain header on a publish that was not retained")
	}

	select {
	case err := <-subDone:
		if err != nil {
			t.Fatalf("mosquitto_sub: %v\n%s", err, subOut.String())
		}
	case <-time.After(waitTimeout):
		t.Fatalf("mosquitto_sub got nothing within %v", waitTimeout)
	}
	line := strings.TrimSpace(subOut.String())
	for _, want := range []string{"devices/m7/alarm|1|application/json|", "k:v", "site:lab 1", "|" + payload} {
		if !strings.Contains(line, want) {
			t.Errorf("mosquitto_sub printed %q, missing %q", line, want)
		}
	}
}

// TestMosquittoV5QoS2 publishes with QoS 2 and retain: the PUBREC/PUBREL/
// PUBCOMP flow completes, the record carries the retain flag, and a later
// subscriber gets the retained message.
func TestMosquittoV5QoS2Retained(t *testing.T) {
	pubBin := requirePeer(t, "mosquitto_pub")
	subBin := requirePeer(t, "mosquitto_sub")
	tb := startBroker(t, setup{})
	host, port, _ := net.SplitHostPort(tb.addr())
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()

	out, err := runPeer(t, ctx, pubBin, "-h", host, "-p", port, "-V", "mqttv5", "-q", "2", "-r",
		"-t", "status/gw", "-m", "online")
	if err != nil {
		t.Fatalf("mosquitto_pub: %v\n%s", err, out)
	}
	recs := tb.records("mqtt", 0)
	if len(recs) != 1 || string(recs[0].Value) != "online" {
		t.Fatalf("log holds %q, want [online]", values(recs))
	}
	if got, _ := header(recs[0], "mqtt.qos"); got != "2" {
		t.Errorf("mqtt.qos = %q, want 2", got)
	}
	if got, _ := header(recs[0], "mqtt.retain"); got != "1" {
		t.Errorf("mqtt.retain = %q, want 1", got)
	}
	// The retained message is handed to mochi after the acknowledgement.
	waitFor(t, "the retained message", func() bool { return tb.B.Stats().Retained >= 1 })
	out, err = runPeer(t, ctx, subBin, "-h", host, "-p", port, "-V", "mqttv5", "-t", "status/#",
		"-C", "1", "-W", fmt.Sprint(int(waitTimeout.Seconds())), "-F", "%t|%r|%p")
	if err != nil {
		t.Fatalf("mosquitto_sub: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(out); got != "status/gw|1|online" {
		t.Errorf("mosquitto_sub printed %q, want status/gw|1|online", got)
	}
}
