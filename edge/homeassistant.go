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
//
// The broker keeps retained messages across restarts, so the entities of a
// sensor removed from the config would stay in Home Assistant for ever.
// The topics published are therefore recorded in the data directory
// (homeassistant.json), and at the first reading of a later start those no
// longer configured get the empty retained message that removes them.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/spoolmq/spool/edge/config"
	"github.com/spoolmq/spool/sensors"
)

// haRecordFile, in the data directory, maps each topic discovery has
// published retained to its sensor.
const haRecordFile = "homeassistant.json"

type homeAssistant struct {
	publish   func(topic string, payload []byte, retain bool) error
	discovery string
	state     string
	node      string
	record    string // the path of haRecordFile
	lg        *slog.Logger

	mu        sync.Mutex
	announced map[string]bool   // sensor NUL value
	published map[string]string // topic → sensor, as in the record
	stale     []string          // recorded topics this run does not publish, cleared at the first reading
}

func newHomeAssistant(cfg config.Config, publish func(string, []byte, bool) error, lg *slog.Logger) *homeAssistant {
	node := cfg.EdgeID
	if node == "" {
		node = "spool"
	}
	h := &homeAssistant{
		publish:   publish,
		discovery: cfg.HomeAssistant.DiscoveryPrefix,
		state:     cfg.HomeAssistant.StatePrefix,
		node:      objectID(node),
		record:    filepath.Join(cfg.Data, haRecordFile),
		lg:        lg,
		announced: map[string]bool{},
	}
	h.published = h.loadRecord()
	configured := map[string]bool{}
	for _, s := range cfg.Sensors {
		configured[s.Name] = true
	}
	for topic, sensor := range h.published {
		if !configured[sensor] || !h.topicOf(sensor, topic) {
			h.stale = append(h.stale, topic)
		}
	}
	return h
}

// objectID makes a name fit a topic level and a Home Assistant object
// id; config validation refuses two sensors that come out the same.
func objectID(s string) string { return config.HomeAssistantID(s) }

func (h *homeAssistant) stateTopic(sensor string) string {
	return h.state + "/" + h.node + "/" + objectID(sensor) + "/state"
}

func (h *homeAssistant) configTopic(component, sensor, value string) string {
	return fmt.Sprintf("%s/%s/%s/%s_%s/config", h.discovery, component, h.node, objectID(sensor), objectID(value))
}

// topicOf says whether this run may publish topic for sensor: its state
// topic, or a discovery config under the current prefix and node. Not
// when the edge id or a prefix changed since the topic was recorded.
func (h *homeAssistant) topicOf(sensor, topic string) bool {
	if topic == h.stateTopic(sensor) {
		return true
	}
	for _, component := range []string{"sensor", "binary_sensor"} {
		prefix := h.discovery + "/" + component + "/" + h.node + "/" + objectID(sensor) + "_"
		if rest, ok := strings.CutPrefix(topic, prefix); ok && strings.HasSuffix(rest, "/config") && !strings.Contains(strings.TrimSuffix(rest, "/config"), "/") {
			return true
		}
	}
	return false
}

// reading announces the reading's new values and publishes it as the
// sensor's state. Failures are logged: the reading itself is in the log.
func (h *homeAssistant) reading(r sensors.Reading) {
	h.mu.Lock()
	h.clearStale()
	for _, v := range r.Values {
		k := r.Sensor + "\x00" + v.Name
		if h.announced[k] {
			continue
		}
		component, cfg := h.entity(r, v)
		b, err := json.Marshal(cfg)
		if err == nil {
			topic := h.configTopic(component, r.Sensor, v.Name)
			h.recordTopic(topic, r.Sensor)
			err = h.publish(topic, b, true)
		}
		if err != nil {
			h.lg.Warn("home assistant discovery: announcing failed; retried with the next reading", "sensor", r.Sensor, "value", v.Name, "error", err)
			continue
		}
		h.announced[k] = true
	}
	h.recordTopic(h.stateTopic(r.Sensor), r.Sensor)
	h.mu.Unlock()
	b, err := r.MarshalJSON()
	if err == nil {
		err = h.publish(h.stateTopic(r.Sensor), b, true)
	}
	if err != nil {
		h.lg.Warn("home assistant: publishing a state failed", "sensor", r.Sensor, "error", err)
	}
}

// clearStale removes the retained messages of the stale topics: an empty
// retained payload deletes an entity's config in Home Assistant, and the
// broker's retained message with it. Those that fail are retried with the
// next reading. Called with h.mu held, once the broker runs.
func (h *homeAssistant) clearStale() {
	if len(h.stale) == 0 {
		return
	}
	var failed []string
	for _, topic := range h.stale {
		if err := h.publish(topic, nil, true); err != nil {
			h.lg.Warn("home assistant discovery: removing the entity of a sensor no longer configured failed", "topic", topic, "error", err)
			failed = append(failed, topic)
			continue
		}
		h.lg.Info("home assistant discovery: removed a topic no longer configured", "topic", topic, "sensor", h.published[topic])
		delete(h.published, topic)
	}
	h.stale = failed
	h.saveRecord()
}

// recordTopic adds topic to the record before it is first published, so
// that a crash in between leaves at most a topic with nothing to clear.
// Called with h.mu held.
func (h *homeAssistant) recordTopic(topic, sensor string) {
	if h.published[topic] == sensor {
		return
	}
	h.published[topic] = sensor
	h.saveRecord()
}

// loadRecord reads the record; without one (the first start, or a data
// directory from before it) nothing is stale.
func (h *homeAssistant) loadRecord() map[string]string {
	published := map[string]string{}
	b, err := os.ReadFile(h.record)
	if err == nil {
		err = json.Unmarshal(b, &published)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		h.lg.Warn("home assistant discovery: the record of the topics published is unreadable; the entities of removed sensors stay", "file", h.record, "error", err)
		return map[string]string{}
	}
	return published
}

// saveRecord replaces the record through a rename, so that a crash leaves
// the old one or the new one. A failure is logged: discovery works
// without it, only removed sensors would then keep their entities.
func (h *homeAssistant) saveRecord() {
	err := func() error {
		b, err := json.MarshalIndent(h.published, "", "\t")
		if err != nil {
			return err
		}
		f, err := os.CreateTemp(filepath.Dir(h.record), haRecordFile+".*")
		if err != nil {
			return err
		}
		defer os.Remove(f.Name()) // left only if the rename did not happen
		_, err = f.Write(append(b, '\n'))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(f.Name(), h.record)
		}
		return err
	}()
	if err != nil {
		h.lg.Warn("home assistant discovery: recording the topics published failed", "file", h.record, "error", err)
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
