package edge

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/spoolmq/spool/edge/config"
	spoollog "github.com/spoolmq/spool/log"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestLinkMirrorsUpstream: with a link in the config, an MQTT publish
// reaches the upstream cluster under {site}.{topic} with its origin
// headers, and /api/v1/bridge and /metrics show the link caught up.
func TestLinkMirrorsUpstream(t *testing.T) {
	up, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	t.Setenv("SPOOL_TEST_UPSTREAM", strings.Join(up.ListenAddrs(), ","))

	c, err := config.Parse(strings.NewReader(`
edge_id: pi-7
mqtt: {addr: "127.0.0.1:0"}
kafka: {addr: ""}
http: {addr: "127.0.0.1:0"}
links:
  - name: central
    kafka: {brokers: ["${SPOOL_TEST_UPSTREAM}"]}
    topics: ["*"]
`))
	if err != nil {
		t.Fatal(err)
	}
	c.Data = t.TempDir()
	srv := startServer(t, c)

	mc := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + srv.Broker().Addr("tcp").String()).
		SetClientID("dev").SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
	if tok := mc.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("mqtt connect: %v", tok.Error())
	}
	defer mc.Disconnect(100)
	if tok := mc.Publish("devices/pump1/temp", 1, false, "21.5"); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(up.ListenAddrs()...), kgo.ConsumeTopics("pi-7.mqtt"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var rec *kgo.Record
	for rec == nil {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("nothing mirrored upstream")
		}
		if rs := fs.Records(); len(rs) > 0 {
			rec = rs[0]
		}
	}
	hdr := map[string]string{}
	for _, h := range rec.Headers {
		hdr[h.Key] = string(h.Value)
	}
	if string(rec.Value) != "21.5" || string(rec.Key) != "devices/pump1/temp" || hdr["spool.edge"] != "pi-7" ||
		hdr["spool.topic"] != "mqtt" || hdr["spool.offset"] != "0" || hdr["mqtt.topic"] != "devices/pump1/temp" {
		t.Errorf("upstream record key %q value %q headers %v", rec.Key, rec.Value, hdr)
	}

	base := "http://" + srv.HTTPAddr().String()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var out struct {
			Links []struct {
				Link    string `json:"link"`
				State   string `json:"state"`
				Lag     int64  `json:"lag"`
				Records int64  `json:"records"`
			} `json:"links"`
		}
		getJSON(t, base+"/api/v1/bridge", &out)
		if len(out.Links) == 1 && out.Links[0].State == "caught_up" && out.Links[0].Records == 1 && out.Links[0].Lag == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bridge status %+v, want central caught up with 1 record", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`spool_bridge_link_state{link="central",state="caught_up"} 1`,
		`spool_bridge_lag_records{link="central",partition="0",topic="mqtt"} 0`,
		`spool_bridge_mirrored_records_total{link="central",partition="0",topic="mqtt"} 1`,
	} {
		if !containsLine(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestDownstreamCommandReachesDevice: a command produced in the upstream
// cluster is copied into the local topic and delivered by egress to the
// MQTT device its key names.
func TestDownstreamCommandReachesDevice(t *testing.T) {
	up, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "dc.commands"))
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	c := config.Default()
	c.Data = t.TempDir()
	c.MQTT.Addr, c.Kafka.Addr, c.HTTP.Addr = "127.0.0.1:0", "", ""
	c.EdgeID = "pi-9"
	c.Links = []config.LinkSpec{{Name: "dc", Kafka: config.KafkaPeer{Brokers: up.ListenAddrs()},
		Downstream: []config.DownstreamSpec{{From: "dc.commands", To: "commands"}}}}
	c.Egress = []config.EgressSpec{{Topic: "commands", MQTTTopic: "devices/{key}/cmd"}}
	srv := startServer(t, c)

	var got received
	dev := mqttClient(t, srv, "pump4", true, got.handler)
	defer dev.Disconnect(50)
	if tok := dev.Subscribe("devices/pump4/cmd", 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	p, err := kgo.NewClient(kgo.SeedBrokers(up.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := p.ProduceSync(ctx, &kgo.Record{Topic: "dc.commands", Key: []byte("pump4"), Value: []byte(`{"rpm":1200}`)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if msgs := got.wait(t, 1); msgs[0] != `devices/pump4/cmd={"rpm":1200}` {
		t.Errorf("device got %q", msgs)
	}
}

// TestMQTTLinkFromConfig: a link with an mqtt upstream publishes what
// devices send to the upstream broker, in the JSON envelope with its origin.
func TestMQTTLinkFromConfig(t *testing.T) {
	for _, protocol := range []string{"3.1.1", "5"} {
		t.Run("protocol="+protocol, func(t *testing.T) { mqttLinkFromConfig(t, protocol) })
	}
}

func mqttLinkFromConfig(t *testing.T, protocol string) {
	port := startMosquitto(t)
	var upstream received
	deadline := time.Now().Add(10 * time.Second)
	var sub paho.Client
	for {
		sub = paho.NewClient(paho.NewClientOptions().AddBroker("tcp://127.0.0.1:" + port).SetClientID("dc").
			SetAutoReconnect(false).SetConnectTimeout(2 * time.Second))
		if tok := sub.Connect(); tok.WaitTimeout(3*time.Second) && tok.Error() == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("mosquitto did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	defer sub.Disconnect(50)
	if tok := sub.Subscribe("pi-8/#", 1, upstream.handler); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}

	c := config.Default()
	c.Data = t.TempDir()
	c.MQTT.Addr, c.Kafka.Addr, c.HTTP.Addr = "127.0.0.1:0", "", ""
	c.EdgeID = "pi-8"
	c.Links = []config.LinkSpec{{Name: "central", MQTT: config.MQTTPeer{URL: "tcp://127.0.0.1:" + port, Topic: "{site}/{topic}", Envelope: true, Protocol: protocol}, Topics: []string{"*"}}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, c)
	dev := mqttClient(t, srv, "sensor", true, nil)
	defer dev.Disconnect(50)
	if tok := dev.Publish("devices/s1/temp", 1, false, "19.5"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	msg := upstream.wait(t, 1)[0]
	topic, body, _ := strings.Cut(msg, "=")
	var env map[string]any
	if err := json.Unmarshal([]byte(body), &env); err != nil {
		t.Fatalf("upstream payload %q is not the JSON envelope: %v", body, err)
	}
	if topic != "pi-8/mqtt" || env["edge"] != "pi-8" || env["topic"] != "mqtt" || env["offset"] != float64(0) {
		t.Errorf("upstream got %s %v", topic, env)
	}
}

// TestExactlyOnceLinkFromConfig: a link with exactly_once mirrors in
// transactions: a read_committed consumer upstream gets the records, and
// the link's cursor is committed in the offsets topic.
func TestExactlyOnceLinkFromConfig(t *testing.T) {
	up, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	cfg := config.Default()
	cfg.Data = t.TempDir()
	cfg.MQTT.Addr, cfg.Kafka.Addr, cfg.HTTP.Addr = "", "", ""
	cfg.EdgeID = "pi-9"
	cfg.Topics = []config.TopicSpec{{Name: "telemetry"}}
	cfg.Links = []config.LinkSpec{{Name: "central", Kafka: config.KafkaPeer{Brokers: up.ListenAddrs()}, Topics: []string{"telemetry"},
		ExactlyOnce: true, OffsetsTopic: "edge-cursors"}}
	srv := startServer(t, cfg)
	tp, _ := srv.Log().Topic("telemetry")
	p, _ := tp.Partition(0)
	for i := range 5 {
		if _, err := p.AppendRecords([]spoollog.Record{{Timestamp: time.Now().UnixMilli(), Value: []byte(strconv.Itoa(i))}}, spoollog.DefaultBatchOptions); err != nil {
			t.Fatal(err)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(up.ListenAddrs()...), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i, r := range readPartition(ctx, t, cl, "pi-9.telemetry", 0, 5) {
		if string(r.Value) != strconv.Itoa(i) {
			t.Errorf("record %d: %q", i, r.Value)
		}
	}
	// The start marker, then one cursor per transaction (the five appends
	// may be mirrored in one or several), the last one at 5.
	const key = "pi-9/central/telemetry/0"
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{"edge-cursors": {0: kgo.NewOffset().AtStart()}})
	var cursors []*kgo.Record
	for len(cursors) == 0 || string(cursors[len(cursors)-1].Value) != "5" {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("offsets topic: no cursor at 5 among %d records", len(cursors))
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Topic == "edge-cursors" {
				cursors = append(cursors, r)
			}
		})
	}
	if string(cursors[0].Key) == key {
		t.Errorf("offsets topic starts with a cursor, not the start marker: %q = %q", cursors[0].Key, cursors[0].Value)
	}
	prev := int64(0)
	for _, r := range cursors[1:] {
		v, err := strconv.ParseInt(string(r.Value), 10, 64)
		if string(r.Key) != key || err != nil || v <= prev {
			t.Errorf("offsets topic: %q = %q after %d, want rising cursors of %s", r.Key, r.Value, prev, key)
		}
		prev = v
	}
}

// TestLinkAllTopicsTakesNewOnes: a link with topics ["*"] that started
// with nothing to mirror mirrors a topic created after it started, but
// not the topic it copies down from upstream.
func TestLinkAllTopicsTakesNewOnes(t *testing.T) {
	saved := discoverEvery
	t.Cleanup(func() { discoverEvery = saved }) // after the server's cleanup, registered later
	discoverEvery = 50 * time.Millisecond
	up, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	cfg := config.Default()
	cfg.Data = t.TempDir()
	cfg.MQTT.Addr, cfg.Kafka.Addr, cfg.HTTP.Addr = "", "", ""
	cfg.EdgeID = "pi-4"
	// No topic to mirror at start: only the downstream target exists.
	cfg.Links = []config.LinkSpec{{Name: "central", Kafka: config.KafkaPeer{Brokers: up.ListenAddrs()}, Topics: []string{"*"},
		Downstream: []config.DownstreamSpec{{From: "commands", To: "commands"}}}}
	srv := startServer(t, cfg)
	tp, err := srv.Log().CreateTopic("created-later", spoollog.DefaultTopicConfig())
	if err != nil {
		t.Fatal(err)
	}
	p, _ := tp.Partition(0)
	if _, err := p.AppendRecords([]spoollog.Record{{Timestamp: time.Now().UnixMilli(), Value: []byte("new")}}, spoollog.DefaultBatchOptions); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(up.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if r := readPartition(ctx, t, cl, "pi-4.created-later", 0, 1)[0]; string(r.Value) != "new" {
		t.Errorf("mirrored %q", r.Value)
	}
	for _, h := range srv.links.health() {
		for _, ph := range h.Partitions {
			if ph.Topic == "commands" {
				t.Errorf("the link mirrors %s, the topic it copies down", ph.Topic)
			}
		}
	}
}

// startMosquitto runs Debian's mosquitto on a free loopback port until the
// test ends and returns the port; it skips the test without mosquitto,
// unless SPOOL_REQUIRE_PEERS is set.
func startMosquitto(t *testing.T) string {
	t.Helper()
	bin := "/usr/sbin/mosquitto"
	if _, err := os.Stat(bin); err != nil {
		if bin, err = exec.LookPath("mosquitto"); err != nil {
			if os.Getenv("SPOOL_REQUIRE_PEERS") != "" {
				t.Fatal("mosquitto is not installed and SPOOL_REQUIRE_PEERS is set")
			}
			t.Skip("mosquitto is not installed")
		}
	}
	port := strings.TrimPrefix(freePort(t), "127.0.0.1:")
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	if err := os.WriteFile(conf, []byte("listener "+port+" 127.0.0.1\nallow_anonymous true\npersistence false\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mq := exec.Command(bin, "-c", conf)
	if err := mq.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mq.Process.Kill(); mq.Wait() })
	// mosquitto binds its listener after it starts: wait for it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second)
		if err == nil {
			c.Close()
			return port
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto does not listen on %s: %v", port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMQTTDownstreamCommandReachesDevice: a command published on the
// upstream MQTT broker is copied into the local topic and delivered by
// egress to the device subscribed on the edge.
func TestMQTTDownstreamCommandReachesDevice(t *testing.T) {
	port := startMosquitto(t)
	c := config.Default()
	c.Data = t.TempDir()
	c.MQTT.Addr, c.Kafka.Addr, c.HTTP.Addr = "127.0.0.1:0", "", ""
	c.EdgeID = "pi-3"
	c.Links = []config.LinkSpec{{Name: "central", MQTT: config.MQTTPeer{URL: "tcp://127.0.0.1:" + port},
		Downstream: []config.DownstreamSpec{{From: "dc/pi-3/cmd/#", To: "commands"}}}}
	c.Egress = []config.EgressSpec{{Topic: "commands", MQTTTopic: "{key}"}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, c)
	var got received
	dev := mqttClient(t, srv, "pump", true, got.handler)
	defer dev.Disconnect(50)
	if tok := dev.Subscribe("dc/pi-3/cmd/pump", 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	dc := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://127.0.0.1:" + port).SetClientID("dc").SetAutoReconnect(false))
	if tok := dc.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer dc.Disconnect(50)
	// Until the downstream has subscribed, a publish reaches nobody:
	// publish until the device sees one.
	deadline := time.Now().Add(15 * time.Second)
	for len(got.get()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the command never reached the device")
		}
		if tok := dc.Publish("dc/pi-3/cmd/pump", 1, false, `{"state":"on"}`); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if m := got.get()[0]; m != `dc/pi-3/cmd/pump={"state":"on"}` {
		t.Errorf("device got %q", m)
	}
	var down []bridgeDown
	for _, d := range srv.links.downHealth() {
		down = append(down, bridgeDown{d.Name, d.Copied})
	}
	if len(down) != 1 || down[0].copied < 1 {
		t.Errorf("downstream health %+v", down)
	}
}

type bridgeDown struct {
	name   string
	copied int64
}
