package edge

import (
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spoolmq/spool/edge/config"
	"github.com/spoolmq/spool/sensors"
)

// TestHomeAssistantDiscovery: with home_assistant.discovery, a client
// subscribing as Home Assistant does gets a retained config per sensor
// value (device class, unit, state topic, value template) and the
// sensor's last reading retained on its state topic.
func TestHomeAssistantDiscovery(t *testing.T) {
	csv := filepath.Join(t.TempDir(), "room.csv")
	if err := os.WriteFile(csv, []byte("humidity[%RH],pressure[hPa]\n55.5,1012.25\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Data = t.TempDir()
	cfg.Kafka.Addr, cfg.HTTP.Addr = "", ""
	cfg.MQTT.Addr = "127.0.0.1:0"
	cfg.EdgeID = "barn 2" // not a topic-safe name: sanitized
	cfg.HomeAssistant.Discovery = true
	cfg.Sensors = []config.SensorSpec{
		{Name: "air", Topic: "sensors", Simulated: &config.SimulatedSpec{Waveform: "square", Value: "temperature", Unit: "°C", Min: 20, Max: 20}},
		{Name: "room", Topic: "sensors", Replay: &config.ReplaySpec{File: csv}},
	}
	srv := startServer(t, cfg)

	var got received
	c := mqttClient(t, srv, "home-assistant", true, got.handler)
	defer c.Disconnect(0)
	deadline := time.Now().Add(15 * time.Second)
	want := []string{
		"homeassistant/sensor/barn_2/air_temperature/config",
		"homeassistant/sensor/barn_2/room_humidity/config",
		"homeassistant/sensor/barn_2/room_pressure/config",
		"spool/barn_2/air/state",
		"spool/barn_2/room/state",
	}
	var msgs map[string]string
	for {
		// The readings are stored at start; subscribing later gets the
		// retained messages, as Home Assistant does when it starts.
		if tok := c.Subscribe("homeassistant/#", 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
		if tok := c.Subscribe("spool/#", 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
		time.Sleep(100 * time.Millisecond)
		msgs = map[string]string{}
		for _, m := range got.get() {
			topic, payload, _ := strings.Cut(m, "=")
			msgs[topic] = payload
		}
		missing := false
		for _, w := range want {
			missing = missing || msgs[w] == ""
		}
		if !missing {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 15s got %v", msgs)
		}
		c.Unsubscribe("homeassistant/#", "spool/#").WaitTimeout(5 * time.Second)
	}

	var temp map[string]any
	if err := json.Unmarshal([]byte(msgs[want[0]]), &temp); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]any{
		"device_class": "temperature", "unit_of_measurement": "°C", "state_topic": "spool/barn_2/air/state",
		"value_template": `{{ value_json['values']["temperature"] }}`, "unique_id": "spool_barn_2_air_temperature", "state_class": "measurement",
	} {
		if temp[k] != v {
			t.Errorf("temperature config %s = %v, want %v", k, temp[k], v)
		}
	}
	if dev, _ := temp["device"].(map[string]any); dev["name"] != "air" || dev["model"] != "simulated" {
		t.Errorf("device %v", temp["device"])
	}
	var hum map[string]any
	if err := json.Unmarshal([]byte(msgs[want[1]]), &hum); err != nil {
		t.Fatal(err)
	}
	if hum["device_class"] != "humidity" || hum["unit_of_measurement"] != "%" {
		t.Errorf("humidity config: %v", hum)
	}
	var pres map[string]any
	json.Unmarshal([]byte(msgs[want[2]]), &pres)
	if pres["device_class"] != "atmospheric_pressure" || pres["unit_of_measurement"] != "hPa" {
		t.Errorf("pressure config: %v", pres)
	}
	var state struct {
		Sensor string             `json:"sensor"`
		Values map[string]float64 `json:"values"`
	}
	if err := json.Unmarshal([]byte(msgs["spool/barn_2/room/state"]), &state); err != nil {
		t.Fatal(err)
	}
	if state.Sensor != "room" || state.Values["humidity"] != 55.5 || state.Values["pressure"] != 1012.25 {
		t.Errorf("room state: %+v", state)
	}
}

// TestHomeAssistantNeedsMQTT: discovery without an MQTT listener is a
// config error naming the key.
func TestHomeAssistantNeedsMQTT(t *testing.T) {
	cfg := config.Default()
	cfg.MQTT.Addr = ""
	cfg.HomeAssistant.Discovery = true
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "home_assistant.discovery: needs an MQTT listener") {
		t.Errorf("Validate: %v", err)
	}
}

// haCapture keeps the last message published on each topic, as a broker
// keeps retained ones.
type haCapture struct {
	mu   sync.Mutex
	msgs map[string][]byte
}

func (c *haCapture) publish(topic string, payload []byte, retain bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.msgs == nil {
		c.msgs = map[string][]byte{}
	}
	c.msgs[topic] = payload
	return nil
}

func (c *haCapture) get(topic string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.msgs[topic]
	return m, ok
}

func simulatedReading(sensor string, v float64) sensors.Reading {
	return sensors.Reading{Sensor: sensor, Driver: "simulated", Time: time.Now(), Values: []sensors.Value{{Name: "value", Value: v}}}
}

// Two sensors whose names give one object id ("tank.1" and "tank_1") would
// share one discovery topic, unique_id and state topic, one entity whose
// value flips between them: config validation refuses the pair.
func TestHomeAssistantDistinctSensorsDistinctEntities(t *testing.T) {
	cfg := config.Default()
	cfg.HomeAssistant.Discovery = true
	cfg.MQTT.Addr = "127.0.0.1:1883"
	cfg.Sensors = []config.SensorSpec{
		{Name: "tank.1", Topic: "sensors", Simulated: &config.SimulatedSpec{}},
		{Name: "tank_1", Topic: "sensors", Simulated: &config.SimulatedSpec{}},
	}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), `"tank_1" and sensors[0] "tank.1" are both the Home Assistant id "tank_1"`) {
		t.Errorf("Validate: %v, want an error naming both sensors", err)
	}
	// Names that do not collide keep their ids.
	cfg.Sensors[0].Name = "tank.2"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var c haCapture
	h := newHomeAssistant(cfg, c.publish, slog.New(slog.DiscardHandler))
	h.reading(simulatedReading("tank.2", 1))
	if _, ok := c.get("homeassistant/sensor/spool/tank_2_value/config"); !ok || h.stateTopic("tank.2") != "spool/spool/tank_2/state" {
		t.Errorf("tank.2: published %v, state topic %s", c.msgs, h.stateTopic("tank.2"))
	}
}

// The topics published are recorded in the data directory; at the first
// reading after a restart, those of a sensor no longer configured, and
// those under an edge id no longer in use, get an empty retained message,
// which makes Home Assistant remove the entity and the broker forget it.
// A kept sensor's topics are left alone.
func TestHomeAssistantClearsTopicsNoLongerConfigured(t *testing.T) {
	cfg := config.Default()
	cfg.Data = t.TempDir()
	cfg.EdgeID = "barn"
	cfg.Sensors = []config.SensorSpec{{Name: "keep"}, {Name: "gone"}}
	var c haCapture
	h := newHomeAssistant(cfg, c.publish, slog.New(slog.DiscardHandler))
	h.reading(simulatedReading("keep", 1))
	h.reading(simulatedReading("gone", 2))

	cfg.Sensors = cfg.Sensors[:1]
	h = newHomeAssistant(cfg, c.publish, slog.New(slog.DiscardHandler))
	if _, ok := c.get("homeassistant/sensor/barn/gone_value/config"); !ok {
		t.Fatal("cleared before the broker runs (the first reading)")
	}
	h.reading(simulatedReading("keep", 3))
	for topic, want := range map[string]bool{
		"homeassistant/sensor/barn/gone_value/config": false, "spool/barn/gone/state": false,
		"homeassistant/sensor/barn/keep_value/config": true, "spool/barn/keep/state": true,
	} {
		if m, _ := c.get(topic); (len(m) > 0) != want {
			t.Errorf("%s = %q, want a message: %v", topic, m, want)
		}
	}

	// Another edge id: the topics under the old one are cleared too, and
	// the record keeps only what is current.
	cfg.EdgeID = "stable"
	h = newHomeAssistant(cfg, c.publish, slog.New(slog.DiscardHandler))
	h.reading(simulatedReading("keep", 4))
	if m, _ := c.get("homeassistant/sensor/barn/keep_value/config"); len(m) > 0 {
		t.Errorf("the config under the old edge id stays: %s", m)
	}
	if m, _ := c.get("homeassistant/sensor/stable/keep_value/config"); len(m) == 0 {
		t.Error("no config under the new edge id")
	}
	b, err := os.ReadFile(filepath.Join(cfg.Data, haRecordFile))
	if err != nil {
		t.Fatal(err)
	}
	var record map[string]string
	if err := json.Unmarshal(b, &record); err != nil || len(record) != 2 || record["spool/stable/keep/state"] != "keep" {
		t.Errorf("record %s (%v), want the two topics of keep under stable", b, err)
	}
}

// End to end through the broker: a sensor removed from the config no
// longer has a retained discovery config (kept in meta.db with the
// broker's retained messages) once the restarted server has handled its
// first reading. (A client subscribing before that gets the old config
// and then the empty message that removes it.)
func TestHomeAssistantRemovedSensorIsRemoved(t *testing.T) {
	cfg := config.Default()
	cfg.Data = t.TempDir()
	cfg.Kafka.Addr, cfg.HTTP.Addr = "", ""
	cfg.MQTT.Addr = "127.0.0.1:0"
	cfg.EdgeID = "barn"
	cfg.HomeAssistant.Discovery = true
	csv := filepath.Join(t.TempDir(), "x.csv")
	if err := os.WriteFile(csv, []byte("value\n1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	keep := config.SensorSpec{Name: "keep", Topic: "sensors", Replay: &config.ReplaySpec{File: csv}}
	gone := config.SensorSpec{Name: "gone", Topic: "sensors", Replay: &config.ReplaySpec{File: csv}}
	cfg.Sensors = []config.SensorSpec{keep, gone}
	rs := startServerStoppable(t, cfg)
	const goneTopic = "homeassistant/sensor/barn/gone_value/config"
	// Subscribe only once the retained messages are all published:
	// mochi-mqtt v2.7.9 reads a topic's retained path without its lock
	// while a retained publish writes it (mochi-mqtt/server#200), which
	// the race detector reports. Two configs and two states.
	waitRetained(t, rs.s, 4)
	var first received
	c := mqttClient(t, rs.s, "ha-1", true, first.handler)
	deadline := time.Now().Add(15 * time.Second)
	for {
		c.Subscribe("homeassistant/#", 1, nil).WaitTimeout(5 * time.Second)
		time.Sleep(100 * time.Millisecond)
		found := false
		for _, m := range first.get() {
			found = found || strings.HasPrefix(m, goneTopic+"=")
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no discovery config for sensor gone: %v", first.get())
		}
		c.Unsubscribe("homeassistant/#").WaitTimeout(5 * time.Second)
	}
	c.Disconnect(0)
	rs.stop(t)

	// The same data directory, without sensor "gone".
	cfg.Sensors = []config.SensorSpec{keep}
	rs = startServerStoppable(t, cfg)
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		b, err := os.ReadFile(filepath.Join(cfg.Data, haRecordFile))
		if err == nil && !strings.Contains(string(b), goneTopic) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the config of gone was not cleared: record %s, %v", b, err)
		}
	}
	// keep's config and state follow the clearing in the same reading.
	waitRetained(t, rs.s, 1)
	var got received
	c = mqttClient(t, rs.s, "ha-2", true, got.handler)
	defer c.Disconnect(0)
	c.Subscribe("homeassistant/#", 1, nil).WaitTimeout(5 * time.Second)
	time.Sleep(time.Second)
	for _, m := range got.get() {
		if topic, payload, _ := strings.Cut(m, "="); topic == goneTopic && payload != "" {
			t.Errorf("after removing sensor gone, its retained discovery config is still served: %s", m)
		}
	}
}

// waitRetained waits until the broker holds at least min retained
// messages and their count has not changed for 300 ms: the publishes of
// the sensors' single readings are over.
func waitRetained(t *testing.T, s *Server, min int64) {
	t.Helper()
	last, since := int64(-1), time.Now()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		n := s.Broker().Stats().Retained
		if n != last {
			last, since = n, time.Now()
		} else if n >= min && time.Since(since) >= 300*time.Millisecond {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d retained messages, still changing or below %d", n, min)
		}
	}
}
