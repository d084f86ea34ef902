package edge

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/spoolmq/spool/edge/config"
)

// freePort returns a loopback address nobody listens on (for mochi's
// WebSocket listener, which binds an address, not a listener).
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startServer runs an appliance and stops it (checking a clean exit) at
// the end of the test.
func startServer(t *testing.T, cfg config.Config) *Server {
	t.Helper()
	srv, err := Open(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("server not ready after 10s")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("server did not stop")
		}
	})
	return srv
}

// TestWebSocketPublishReadOverHTTP: an MQTT client over WebSocket
// publishes; the record is read back over the HTTP API, routed and keyed
// as configured; /metrics counts it.
func TestWebSocketPublishReadOverHTTP(t *testing.T) {
	cfg := config.Default()
	cfg.Data = t.TempDir()
	cfg.MQTT.Addr = ""
	cfg.Kafka.Addr = ""
	cfg.MQTT.WebSocket = freePort(t)
	cfg.HTTP.Addr = "127.0.0.1:0"
	three := int32(3)
	cfg.Topics = []config.TopicSpec{{Name: "telemetry", Partitions: &three}}
	cfg.Routes = []config.RouteSpec{{Match: "devices/+/telemetry", Topic: "telemetry", Key: "level:1"}}
	srv := startServer(t, cfg)

	opts := paho.NewClientOptions().AddBroker("ws://" + cfg.MQTT.WebSocket + "/mqtt").SetClientID("ws-dev").
		SetConnectTimeout(5 * time.Second).SetAutoReconnect(false)
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect over websocket: %v", tok.Error())
	}
	defer c.Disconnect(100)
	tok := c.Publish("devices/pump7/telemetry", 1, false, `{"flow": 3}`)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}

	tp, err := srv.Log().Topic("telemetry")
	if err != nil {
		t.Fatal(err)
	}
	part := tp.PartitionFor([]byte("pump7"), 0)
	base := "http://" + srv.HTTPAddr().String()
	var out struct {
		Records []struct {
			Offset  int64  `json:"offset"`
			Key     string `json:"key"`
			Value   string `json:"value"`
			Headers []struct {
				Key   string `json:"key"`
				Value string `json:"value"`
			} `json:"headers"`
		} `json:"records"`
	}
	getJSON(t, fmt.Sprintf("%s/api/v1/topics/telemetry/partitions/%d/records?offset=earliest", base, part), &out)
	if len(out.Records) != 1 {
		t.Fatalf("partition %d holds %d records, want 1", part, len(out.Records))
	}
	r := out.Records[0]
	if r.Key != "pump7" || r.Value != `{"flow": 3}` {
		t.Errorf("record key %q value %q", r.Key, r.Value)
	}
	if len(r.Headers) == 0 || r.Headers[0].Key != "mqtt.topic" || r.Headers[0].Value != "devices/pump7/telemetry" {
		t.Errorf("headers %+v, want mqtt.topic first", r.Headers)
	}

	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"spool_mqtt_publishes_received_total 1", `spool_topic_ingested_records_total{topic="telemetry"} 1`} {
		if !containsLine(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func containsLine(text, line string) bool {
	for len(text) > 0 {
		i := 0
		for i < len(text) && text[i] != '\n' {
			i++
		}
		if text[:i] == line {
			return true
		}
		if i == len(text) {
			break
		}
		text = text[i+1:]
	}
	return false
}
