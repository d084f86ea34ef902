package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	spoollog "github.com/spoolmq/spool/log"
)

// TestServeConfigErrors runs serve in-process with broken config files:
// each exits 1 before touching the data directory, and the message names
// the file, the key's full path and its line.
func TestServeConfigErrors(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown_key", "mqtt:\n  adr: 127.0.0.1:1883\n", []string{"mqtt.adr: unknown key (line 2)"}},
		{"unknown_top_level_key", "data: x\ndta: y\n", []string{"dta: unknown key (line 2)"}},
		{"wrong_type_sequence", "topics:\n  - name: t\n    sync: [always]\n", []string{"topics[0].sync: expected a string, got a list (line 3)"}},
		{"wrong_type_int", "mqtt:\n  max_clients: lots\n", []string{`mqtt.max_clients: "lots" is not an integer (line 2)`}},
		{"wrong_type_size", "topics:\n  - name: t\n    segment_bytes: huge\n", []string{`topics[0].segment_bytes: "huge" is not a size`, "(line 3)"}},
		{"number_for_word", "topics:\n  - name: t\n    sync: 5\n", []string{"invalid configuration", `topics[0].sync: "5"`}},
		{"invalid_value", "topics: [{name: t, sync: sometimes}]\n", []string{"invalid configuration", `topics[0].sync: "sometimes" is not always, interval or never`}},
		{"two_invalid_values", "topics:\n  - {name: t, partitions: 0}\nroutes:\n  - {match: 'a/#/b', topic: t}\n",
			[]string{"topics[0].partitions", "routes[0].match"}},
		{"two_documents", "data: x\n---\ndata: y\n", []string{"more than one YAML document"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			cfg := writeFile(t, tmp, "spool.yaml", tc.yaml)
			data := filepath.Join(tmp, "data")
			// A config that is wrongly accepted serves with a context that
			// is already over, so it exits 0 at once instead of hanging.
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			code, _, stderr := spool(t, ctx, "serve", "--config", cfg, "--data", data, "--mqtt-addr", "127.0.0.1:0", "--kafka-addr", "off", "--http-addr", "off")
			if code != 1 {
				t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr)
			}
			for _, want := range append(tc.want, "spool: ") {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr)
				}
			}
			if !strings.Contains(stderr, cfg) && !strings.Contains(stderr, "invalid configuration") {
				t.Errorf("a parse error does not name the file %s:\n%s", cfg, stderr)
			}
			if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the data directory was touched by a refused config: %v", err)
			}
		})
	}

	code, _, stderr := spool(t, context.Background(), "serve", "--config", filepath.Join(t.TempDir(), "missing.yaml"))
	if code != 1 || !strings.Contains(stderr, "missing.yaml") {
		t.Errorf("missing config file: exit %d, stderr %q", code, stderr)
	}
}

// TestServeOverrides checks the precedence flags > SPOOL_ environment >
// config file, and that "off" disables the MQTT listener, on the binary.
func TestServeOverrides(t *testing.T) {
	bin := buildSpool(t)
	tmp := t.TempDir()
	fromConfig, fromEnv, fromFlag := filepath.Join(tmp, "config-data"), filepath.Join(tmp, "env-data"), filepath.Join(tmp, "flag-data")
	mqttAddr := freeAddr(t)
	cfg := writeFile(t, tmp, "spool.yaml", fmt.Sprintf("data: %s\nmqtt:\n  addr: %s\nhttp:\n  addr: \"\"\nlog:\n  format: text\n", fromConfig, mqttAddr))

	t.Run("flags", func(t *testing.T) {
		p := startServe(t, bin, []string{"SPOOL_DATA=" + fromEnv}, "--config", cfg, "--data", fromFlag, "--mqtt-addr", "off", "--log-format", "json")
		// The line is JSON, so --log-format won over log.format too.
		ready := p.waitLog("spool serving", 15*time.Second)
		if ready["data"] != fromFlag {
			t.Errorf("serving data %v, want the flag's %s", ready["data"], fromFlag)
		}
		// Listeners start before the ready line, so by now MQTT would listen.
		if line := p.findLog("mqtt listening"); line != nil {
			t.Errorf("--mqtt-addr off, yet: %v", line)
		}
		if c, err := net.DialTimeout("tcp", mqttAddr, time.Second); err == nil {
			c.Close()
			t.Errorf("something listens on the config's mqtt.addr %s despite --mqtt-addr off", mqttAddr)
		}
		if code := p.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
			t.Fatalf("exit %d after SIGTERM:\n%s", code, p.output())
		}
		if _, err := os.Stat(filepath.Join(fromFlag, "meta.db")); err != nil {
			t.Errorf("the flag's data directory was not used: %v", err)
		}
		for _, dir := range []string{fromConfig, fromEnv} {
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s was created: %v", dir, err)
			}
		}
		// Without MQTT no topic is created for it.
		l, err := spoollog.Open(fromFlag, spoollog.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if topics := l.Topics(); len(topics) != 0 {
			t.Errorf("topics %v created with MQTT off", topics)
		}
	})

	t.Run("env", func(t *testing.T) {
		p := startServe(t, bin, []string{"SPOOL_DATA=" + fromEnv, "SPOOL_MQTT_ADDR=off", "SPOOL_LOG_FORMAT=json"}, "--config", cfg)
		ready := p.waitLog("spool serving", 15*time.Second)
		if ready["data"] != fromEnv {
			t.Errorf("serving data %v, want SPOOL_DATA's %s", ready["data"], fromEnv)
		}
		if line := p.findLog("mqtt listening"); line != nil {
			t.Errorf("SPOOL_MQTT_ADDR=off, yet: %v", line)
		}
		if code := p.stop(syscall.SIGINT, 15*time.Second); code != 0 {
			t.Fatalf("exit %d after SIGINT:\n%s", code, p.output())
		}
		if _, err := os.Stat(fromConfig); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the config's data directory %s was created: %v", fromConfig, err)
		}
	})
}

// TestServeRoutes serves a config with a 3-partition topic and routes,
// publishes over MQTT, stops with SIGTERM and reads the log: every publish
// is in its route's topic, in the partition Kafka's partitioner picks for
// the route's key, in the order it was sent.
func TestServeRoutes(t *testing.T) {
	bin := buildSpool(t)
	tmp := t.TempDir()
	data := filepath.Join(tmp, "data")
	addr := freeAddr(t)
	cfg := writeFile(t, tmp, "spool.yaml", fmt.Sprintf(`data: %s
mqtt:
  addr: %s
http:
  addr: ""
log:
  format: json
topics:
  - name: sensors
    partitions: 3
routes:
  - match: sensors/+/temp
    topic: sensors
    key: level:1
  - match: events/#
    topic: events
`, data, addr))

	const devices, perDevice = 8, 5
	parts := map[int32]bool{}
	for d := range devices {
		parts[spoollog.KeyPartition([]byte(fmt.Sprintf("dev-%d", d)), 3)] = true
	}
	if len(parts) < 2 {
		t.Fatalf("the device keys all hash to one partition %v: pick other keys", parts)
	}

	p := startServe(t, bin, nil, "--config", cfg)
	p.waitTCP(addr, 15*time.Second)
	if line := p.findLog("topic created"); line == nil || line["topic"] != "sensors" || line["partitions"] != 3.0 {
		t.Errorf("topic creation log line: %v", line)
	}
	cl := mqttConnect(t, addr, "routes-test")
	var toks []paho.Token
	var sent []string
	for n := range perDevice {
		for d := range devices {
			payload := fmt.Sprintf("dev-%d/%d", d, n)
			toks = append(toks, cl.Publish(fmt.Sprintf("sensors/dev-%d/temp", d), 1, false, payload))
			sent = append(sent, payload)
		}
		toks = append(toks, cl.Publish("events/door/"+strconv.Itoa(n), 1, false, "open"))
		sent = append(sent, "event "+strconv.Itoa(n))
		// Matches no route: acknowledged, and stored nowhere.
		toks = append(toks, cl.Publish("sensors/dev-0/humidity", 1, false, "unrouted"))
		sent = append(sent, "unrouted")
	}
	for i, tok := range toks {
		if !tok.WaitTimeout(10 * time.Second) {
			t.Fatalf("no PUBACK for %s within 10s", sent[i])
		}
		if err := tok.Error(); err != nil {
			t.Fatalf("publish %s: %v", sent[i], err)
		}
	}
	cl.Disconnect(250)
	if code := p.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM:\n%s", code, p.output())
	}

	recs, n := readTopic(t, data, "sensors")
	if n != 3 {
		t.Fatalf("topic sensors has %d partitions, want 3", n)
	}
	if len(recs) != devices*perDevice {
		t.Errorf("topic sensors holds %d records, want %d", len(recs), devices*perDevice)
	}
	next := map[string]int{} // per device, the next payload number expected
	for _, r := range recs {
		dev, num, _ := strings.Cut(r.Value, "/")
		topic := "sensors/" + dev + "/temp"
		if r.Key != dev || r.Headers["mqtt.topic"] != topic || r.Headers["mqtt.qos"] != "1" {
			t.Errorf("partition %d offset %d (%q): key %q, headers %v; want key %q and mqtt.topic %q",
				r.Partition, r.Offset, r.Value, r.Key, r.Headers, dev, topic)
		}
		if want := spoollog.KeyPartition([]byte(dev), 3); r.Partition != want {
			t.Errorf("%q is in partition %d, want %d (murmur2 of key %q)", r.Value, r.Partition, want, dev)
		}
		if num != strconv.Itoa(next[dev]) {
			t.Errorf("partition %d offset %d: %q, want %s/%d next", r.Partition, r.Offset, r.Value, dev, next[dev])
		}
		next[dev]++
	}

	events, n := readTopic(t, data, "events")
	if n != 1 || len(events) != perDevice {
		t.Errorf("topic events: %d partitions, %d records; want 1 and %d", n, len(events), perDevice)
	}
	for i, r := range events {
		if want := "events/door/" + strconv.Itoa(i); r.Key != want || r.Value != "open" {
			t.Errorf("events record %d: key %q value %q, want key %q (the default key is the MQTT topic)", i, r.Key, r.Value, want)
		}
	}

	l, err := spoollog.Open(data, spoollog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if topics := strings.Join(l.Topics(), ","); topics != "events,sensors" {
		t.Errorf("topics %s, want events,sensors (no default topic when routes are configured)", topics)
	}
}
