package edge

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spoolmq/spool/edge/config"
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
