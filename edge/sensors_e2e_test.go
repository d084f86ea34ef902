package edge

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/spoolmq/spool/edge/config"
	"github.com/spoolmq/spool/sensors"
)

type httpRecords struct {
	Records []struct {
		Offset  int64  `json:"offset"`
		Key     string `json:"key"`
		Value   string `json:"value"`
		Headers []struct {
			Key   string `json:"key"`
			Value string `json:"value"`
		} `json:"headers"`
	} `json:"records"`
	NextOffset int64 `json:"next_offset"`
}

// readUntil long-polls a partition over the HTTP API until done says it
// has seen enough, or fails after 20 s.
func readUntil(t *testing.T, base, topic string, done func(key, value string) bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var offset int64
	for time.Now().Before(deadline) {
		var page httpRecords
		getJSON(t, fmt.Sprintf("%s/api/v1/topics/%s/partitions/0/records?offset=%d&limit=100&wait=2s", base, topic, offset), &page)
		for _, r := range page.Records {
			if done(r.Key, r.Value) {
				return
			}
		}
		offset = page.NextOffset
	}
	t.Fatalf("%s: not every expected record arrived in 20s", topic)
}

// TestSensorsSimulatedEndToEnd serves configs/sensors-sim.yaml, the demo:
// every sensor's readings are records of the topic sensors, readable
// over the HTTP API, keyed by the sensor and in the documented JSON; the
// API and the metrics show the sensors running.
func TestSensorsSimulatedEndToEnd(t *testing.T) {
	cfg, err := config.Load("../configs/sensors-sim.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Data = t.TempDir()
	cfg.MQTT.Addr, cfg.Kafka.Addr, cfg.HTTP.Addr = "", "", "127.0.0.1:0"
	want := map[string]string{}
	for i, s := range cfg.Sensors {
		if s.Replay != nil {
			cfg.Sensors[i].Replay.File = "../" + s.Replay.File // the demo's paths are from the repository root
			want[s.Name] = "replay"
		} else {
			want[s.Name] = "simulated"
		}
	}
	srv := startServer(t, cfg)
	base := "http://" + srv.HTTPAddr().String()

	seen := map[string]bool{}
	readUntil(t, base, "sensors", func(key, value string) bool {
		var v struct {
			Sensor string             `json:"sensor"`
			Driver string             `json:"driver"`
			Time   time.Time          `json:"time"`
			Values map[string]float64 `json:"values"`
			Units  map[string]string  `json:"units"`
		}
		if err := json.Unmarshal([]byte(value), &v); err != nil {
			t.Fatalf("record %s: %q is not JSON: %v", key, value, err)
		}
		if v.Sensor != key || v.Driver != want[key] || len(v.Values) == 0 || v.Time.IsZero() {
			t.Fatalf("record %s: %+v", key, v)
		}
		seen[key] = true
		return len(seen) == len(want)
	})

	var st struct {
		Sensors []sensors.SensorStatus `json:"sensors"`
	}
	// A reading is readable once stored, a moment before the sensor's
	// status counts it.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		getJSON(t, base+"/api/v1/sensors", &st)
		counted := len(st.Sensors) == len(want)
		for _, s := range st.Sensors {
			counted = counted && s.Readings >= 1
		}
		if counted || time.Now().After(deadline) {
			break
		}
	}
	if len(st.Sensors) != len(want) {
		t.Fatalf("GET /api/v1/sensors: %d sensors, want %d", len(st.Sensors), len(want))
	}
	for _, s := range st.Sensors {
		if s.State != sensors.StateRunning || s.Readings < 1 || s.Topic != "sensors" {
			t.Errorf("sensor %s: %+v", s.Name, s)
		}
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	text, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		`spool_sensor_up{driver="simulated",sensor="greenhouse-air"} 1`,
		`spool_sensor_dropped_total{driver="replay",sensor="weather-station"} 0`,
	} {
		if !containsLine(string(text), line) {
			t.Errorf("metrics lack %s", line)
		}
	}
}

// TestSensorMissingHardware: on a machine without GPIO, a digital input
// is marked failed with an error naming the sensor's pin and what is
// missing, while a simulated sensor beside it keeps producing.
func TestSensorMissingHardware(t *testing.T) {
	if _, err := os.Stat("/dev/gpiochip0"); err == nil {
		t.Skip("this machine has a GPIO chip")
	}
	cfg := config.Default()
	cfg.Data = t.TempDir()
	cfg.MQTT.Addr, cfg.Kafka.Addr, cfg.HTTP.Addr = "", "", "127.0.0.1:0"
	cfg.Sensors = []config.SensorSpec{
		{Name: "door", Topic: "sensors", DigitalInput: &config.DigitalInputSpec{Pin: "P1_11"}},
		{Name: "sim", Topic: "sensors", Interval: config.Duration(50 * time.Millisecond), Simulated: &config.SimulatedSpec{}},
	}
	srv := startServer(t, cfg)
	base := "http://" + srv.HTTPAddr().String()
	n := 0
	readUntil(t, base, "sensors", func(key, _ string) bool {
		if key != "sim" {
			t.Fatalf("a record from %q", key)
		}
		n++
		return n == 3
	})
	var st struct {
		Sensors []sensors.SensorStatus `json:"sensors"`
	}
	// A reading is readable once stored, a moment before the sensor's
	// status counts it.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		getJSON(t, base+"/api/v1/sensors", &st)
		if st.Sensors[1].Readings >= 3 || time.Now().After(deadline) {
			break
		}
	}
	door := st.Sensors[0]
	if door.State != sensors.StateFailed || door.Failures < 1 ||
		!strings.Contains(door.LastError, "P1_11 (GPIO17)") || !strings.Contains(door.LastError, "/dev/gpiochip0 absent") {
		t.Errorf("door: %+v", door)
	}
	if sim := st.Sensors[1]; sim.State != sensors.StateRunning || sim.Readings < 3 {
		t.Errorf("sim: %+v", sim)
	}
}
