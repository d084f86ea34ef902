package edge

// Home Assistant MQTT discovery: each value of each sensor is announced
// once, on its first stored reading, with a retained config message
// (<discovery_prefix>/<component>/<node>/<sensor>_<value>/config), and
// every stored reading is published retained on
// <state_prefix>/<node>/<sensor>/state as the record's JSON, from which the
// config's value_template picks the value. Home Assistant then shows a
// device per sensor without any setup. Announcing on the first reading
// rather than at start means the entities are what the sensor really
// reports (a BMP280 has no humidity; a replayed file names its own columns).

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/spoolmq/spool/edge/config"
	"github.com/spoolmq/spool/sensors"
)

type homeAssistant struct {
	publish   func(topic string, payload []byte, retain bool) error
	discovery string
	state     string
	node      string
	lg        *slog.Logger

	mu        sync.Mutex
	announced map[string]bool // sensor NUL value
}

func newHomeAssistant(cfg config.Config, publish func(string, []byte, bool) error, lg *slog.Logger) *homeAssistant {
	node := cfg.EdgeID
	if node == "" {
		node = "spool"
	}
	return &homeAssistant{
		publish:   publish,
		discovery: cfg.HomeAssistant.DiscoveryPrefix,
		state:     cfg.HomeAssistant.StatePrefix,
		node:      objectID(node),
		lg:        lg,
		announced: map[string]bool{},
	}
}

// objectID makes a name fit a topic level and a Home Assistant object id.
func objectID(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '_' || r == '-' || '0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' {
			return r
		}
		return '_'
	}, s)
}

func (h *homeAssistant) stateTopic(sensor string) string {
	return h.state + "/" + h.node + "/" + objectID(sensor) + "/state"
}

// reading announces the reading's new values and publishes it as the
// sensor's state. Failures are logged: the reading itself is in the log.
func (h *homeAssistant) reading(r sensors.Reading) {
	h.mu.Lock()
	for _, v := range r.Values {
		k := r.Sensor + "\x00" + v.Name
		if h.announced[k] {
			continue
		}
		component, cfg := h.entity(r, v)
		b, err := json.Marshal(cfg)
		if err == nil {
			topic := fmt.Sprintf("%s/%s/%s/%s_%s/config", h.discovery, component, h.node, objectID(r.Sensor), objectID(v.Name))
			err = h.publish(topic, b, true)
		}
		if err != nil {
			h.lg.Warn("home assistant discovery: announcing failed; retried with the next reading", "sensor", r.Sensor, "value", v.Name, "error", err)
			continue
		}
		h.announced[k] = true
	}
	h.mu.Unlock()
	b, err := r.MarshalJSON()
	if err == nil {
		err = h.publish(h.stateTopic(r.Sensor), b, true)
	}
	if err != nil {
		h.lg.Warn("home assistant: publishing a state failed", "sensor", r.Sensor, "error", err)
	}
}

// entity is the discovery config of one value: a binary_sensor for a
// digital input's level, else a sensor with its unit and device class.
func (h *homeAssistant) entity(r sensors.Reading, v sensors.Value) (component string, cfg map[string]any) {
	sid, vid := objectID(r.Sensor), objectID(v.Name)
	cfg = map[string]any{
		"name":           v.Name,
		"unique_id":      "spool_" + h.node + "_" + sid + "_" + vid,
		"object_id":      sid + "_" + vid,
		"state_topic":    h.stateTopic(r.Sensor),
		"value_template": fmt.Sprintf("{{ value_json['values'][%q] }}", v.Name),
		"device": map[string]any{
			"identifiers":  []string{"spool_" + h.node + "_" + sid},
			"name":         r.Sensor,
			"manufacturer": "Spool",
			"model":        r.Driver,
		},
		"origin": map[string]any{"name": "Spool"},
	}
	if r.Driver == "digital_input" && v.Name == "level" {
		cfg["value_template"] = "{{ value_json['values']['level'] | int }}"
		cfg["payload_on"], cfg["payload_off"] = "1", "0"
		return "binary_sensor", cfg
	}
	cfg["state_class"] = "measurement"
	unit := v.Unit
	switch unit {
	case "°C", "°F", "K":
		cfg["device_class"] = "temperature"
	case "%RH":
		cfg["device_class"], unit = "humidity", "%"
	case "hPa", "Pa", "kPa", "bar", "mbar", "psi", "inHg", "mmHg":
		cfg["device_class"] = "atmospheric_pressure"
	case "Hz", "kHz":
		cfg["device_class"] = "frequency"
	}
	if unit != "" {
		cfg["unit_of_measurement"] = unit
	}
	return "sensor", cfg
}
