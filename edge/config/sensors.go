package config

import (
	"strconv"
	"strings"
	"time"

	spoollog "github.com/spoolmq/spool/log"
	"github.com/spoolmq/spool/sensors"
)

// SensorSpec is one sensor wired to the board (or simulated): its
// readings become records of Topic, keyed by Name. Exactly one driver.
type SensorSpec struct {
	Name  string `yaml:"name"`
	Topic string `yaml:"topic"`
	// Interval between readings (and a pulse counter's window). Default 10s.
	Interval Duration `yaml:"interval"`

	DigitalInput *DigitalInputSpec `yaml:"digital_input"`
	PulseCounter *PulseCounterSpec `yaml:"pulse_counter"`
	BME280       *BME280Spec       `yaml:"bme280"`
	DS18B20      *DS18B20Spec      `yaml:"ds18b20"`
	Simulated    *SimulatedSpec    `yaml:"simulated"`
	Replay       *ReplaySpec       `yaml:"replay"`
}

// DigitalInputSpec: one reading per debounced change of a GPIO input.
type DigitalInputSpec struct {
	Pin      string   `yaml:"pin"`
	Pull     string   `yaml:"pull"`
	Edge     string   `yaml:"edge"`
	Debounce Duration `yaml:"debounce"`
}

// PulseCounterSpec: the edges of a GPIO input counted per interval.
type PulseCounterSpec struct {
	Pin      string   `yaml:"pin"`
	Pull     string   `yaml:"pull"`
	Edge     string   `yaml:"edge"`
	Debounce Duration `yaml:"debounce"`
}

// BME280Spec: a BME280 or BMP280 on I2C.
type BME280Spec struct {
	Bus     string `yaml:"bus"`
	Address uint16 `yaml:"address"`
}

// DS18B20Spec: a DS18B20 on 1-wire.
type DS18B20Spec struct {
	Bus        string `yaml:"bus"`
	Address    string `yaml:"address"`
	Resolution int    `yaml:"resolution"`
}

// SimulatedSpec: a waveform or random walk.
type SimulatedSpec struct {
	Waveform string   `yaml:"waveform"`
	Value    string   `yaml:"value"`
	Unit     string   `yaml:"unit"`
	Min      float64  `yaml:"min"`
	Max      float64  `yaml:"max"`
	Period   Duration `yaml:"period"`
	Step     float64  `yaml:"step"`
	Seed     int64    `yaml:"seed"`
}

// ReplaySpec: the rows of a CSV file, one per interval.
type ReplaySpec struct {
	File string `yaml:"file"`
	Loop bool   `yaml:"loop"`
}

// ActuatorSpec: a GPIO output driven by the command records of Topic.
type ActuatorSpec struct {
	Name      string   `yaml:"name"`
	Topic     string   `yaml:"topic"`
	Key       string   `yaml:"key"`
	Pin       string   `yaml:"pin"`
	ActiveLow bool     `yaml:"active_low"`
	Initial   string   `yaml:"initial"`
	MaxPulse  Duration `yaml:"max_pulse"`
	Start     string   `yaml:"start"`
}

// Spec is the sensor as package sensors takes it.
func (s SensorSpec) Spec() sensors.Spec {
	out := sensors.Spec{Name: s.Name, Topic: s.Topic, Interval: s.Interval.D()}
	if d := s.DigitalInput; d != nil {
		out.Digital = &sensors.DigitalSpec{Pin: d.Pin, Pull: d.Pull, Edge: d.Edge, Debounce: d.Debounce.D()}
	}
	if p := s.PulseCounter; p != nil {
		out.Pulse = &sensors.PulseSpec{Pin: p.Pin, Pull: p.Pull, Edge: p.Edge, Debounce: p.Debounce.D()}
	}
	if b := s.BME280; b != nil {
		out.BME280 = &sensors.BME280Spec{Bus: b.Bus, Address: b.Address}
	}
	if d := s.DS18B20; d != nil {
		out.DS18B20 = &sensors.DS18B20Spec{Bus: d.Bus, Address: d.Address, Resolution: d.Resolution}
	}
	if m := s.Simulated; m != nil {
		out.Simulated = &sensors.SimulatedSpec{Waveform: m.Waveform, Value: m.Value, Unit: m.Unit,
			Min: m.Min, Max: m.Max, Period: m.Period.D(), Step: m.Step, Seed: m.Seed}
	}
	if r := s.Replay; r != nil {
		out.Replay = &sensors.ReplaySpec{File: r.File, Loop: r.Loop}
	}
	return out
}

// Spec is the actuator as package sensors takes it.
func (a ActuatorSpec) Spec() sensors.ActuatorSpec {
	return sensors.ActuatorSpec{Name: a.Name, Topic: a.Topic, Key: a.Key, Pin: a.Pin, ActiveLow: a.ActiveLow,
		Initial: a.Initial, MaxPulse: a.MaxPulse.D(), Start: a.Start}
}

// validateSensors checks the sensors and actuators, naming each key.
func (c *Config) validateSensors(bad func(key, format string, args ...any)) {
	lines := map[string]string{} // GPIO line → the key of the pin that uses it
	names := map[string]int{}
	for i, s := range c.Sensors {
		key := "sensors[" + strconv.Itoa(i) + "]"
		switch j, dup := names[s.Name]; {
		case s.Name == "":
			bad(key+".name", "must be set (it is the key of the sensor's records)")
		case dup:
			bad(key+".name", "%q is also sensors[%d]", s.Name, j)
		}
		names[s.Name] = i
		if err := spoollog.ValidateTopicName(s.Topic); err != nil {
			bad(key+".topic", "%v", err)
		}
		if s.Interval < 0 || (s.Interval > 0 && s.Interval.D() < 10*time.Millisecond) {
			bad(key+".interval", "%v is below 10ms", s.Interval)
		}
		checkPin := func(k, pin string, debounce Duration) {
			if pin == "" {
				bad(k+".pin", "must be set (GPIO17, P1_11)")
			} else {
				claimLine(lines, k+".pin", pin, bad)
			}
			if debounce < 0 {
				bad(k+".debounce", "must not be negative")
			}
		}
		if d := s.DigitalInput; d != nil {
			checkPin(key+".digital_input", d.Pin, d.Debounce)
		}
		if p := s.PulseCounter; p != nil {
			checkPin(key+".pulse_counter", p.Pin, p.Debounce)
		}
		if r := s.Replay; r != nil && r.File == "" {
			bad(key+".replay.file", "must be set")
		} else if err := s.Spec().Check(); err != nil {
			bad(key+driverKey(s), "%v", err)
		}
	}
	names = map[string]int{}
	for i, a := range c.Actuators {
		key := "actuators[" + strconv.Itoa(i) + "]"
		switch j, dup := names[a.Name]; {
		case a.Name == "":
			bad(key+".name", "must be set")
		case dup:
			bad(key+".name", "%q is also actuators[%d]", a.Name, j)
		}
		names[a.Name] = i
		if err := spoollog.ValidateTopicName(a.Topic); err != nil {
			bad(key+".topic", "%v", err)
		}
		if a.Pin == "" {
			bad(key+".pin", "must be set (GPIO17, P1_11)")
		} else {
			claimLine(lines, key+".pin", a.Pin, bad)
		}
		if a.Initial != "" && a.Initial != "off" && a.Initial != "on" {
			bad(key+".initial", "%q is not off or on", a.Initial)
		}
		if a.MaxPulse < 0 {
			bad(key+".max_pulse", "must not be negative")
		}
		if a.Start != "" && a.Start != "latest" && a.Start != "earliest" {
			bad(key+".start", "%q is not latest or earliest", a.Start)
		}
	}
}

// claimLine checks that pin names a GPIO line and that no pin checked
// before (lines) names the same one, by its line name or its header
// position: two drivers on one line reconfigure it under each other.
func claimLine(lines map[string]string, key, pin string, bad func(key, format string, args ...any)) {
	line, err := sensors.LineName(pin)
	if err != nil {
		bad(key, "%v", err)
		return
	}
	if other, used := lines[line]; used {
		what := line
		if pin != line {
			what = pin + " (" + line + ")"
		}
		bad(key, "%s is also %s: a GPIO line serves one sensor or actuator", what, other)
		return
	}
	lines[line] = key
}

// validateHomeAssistant checks home_assistant.
func (c *Config) validateHomeAssistant(bad func(key, format string, args ...any)) {
	h := c.HomeAssistant
	if h.Discovery && c.MQTT.Addr == "" && c.MQTT.TLS.Addr == "" && c.MQTT.WebSocket == "" {
		bad("home_assistant.discovery", "needs an MQTT listener (mqtt.addr, mqtt.tls.addr or mqtt.websocket)")
	}
	for _, p := range []struct{ key, v string }{{"home_assistant.discovery_prefix", h.DiscoveryPrefix}, {"home_assistant.state_prefix", h.StatePrefix}} {
		if p.v == "" || strings.ContainsAny(p.v, "+#") || strings.HasPrefix(p.v, "/") || strings.HasSuffix(p.v, "/") {
			bad(p.key, "%q is not an MQTT topic prefix (not empty, no + or #, no leading or trailing /)", p.v)
		}
	}
	if !h.Discovery {
		return
	}
	// Two sensors with one id would be one entity in Home Assistant, fed
	// by both. Renaming one is better than an id made unique by a hash:
	// the ids stay readable, and those already announced stay as they are.
	ids := map[string]int{}
	for i, s := range c.Sensors {
		id := HomeAssistantID(s.Name)
		if j, dup := ids[id]; dup && s.Name != c.Sensors[j].Name {
			bad("sensors["+strconv.Itoa(i)+"].name", "%q and sensors[%d] %q are both the Home Assistant id %q (home_assistant.discovery): rename one", s.Name, j, c.Sensors[j].Name, id)
			continue
		}
		ids[id] = i
	}
}

// HomeAssistantID makes a name fit an MQTT topic level and a Home
// Assistant object id: every character but ASCII letters, digits, _ and
// - becomes _.
func HomeAssistantID(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '_' || r == '-' || '0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' {
			return r
		}
		return '_'
	}, s)
}

// driverKey is ".<driver>" for the one driver a sensor sets, or "" when
// it sets none or several (the error then says so).
func driverKey(s SensorSpec) string {
	var keys []string
	for k, set := range map[string]bool{
		"digital_input": s.DigitalInput != nil, "pulse_counter": s.PulseCounter != nil,
		"bme280": s.BME280 != nil, "ds18b20": s.DS18B20 != nil, "simulated": s.Simulated != nil, "replay": s.Replay != nil,
	} {
		if set {
			keys = append(keys, k)
		}
	}
	if len(keys) == 1 {
		return "." + keys[0]
	}
	return ""
}

// SensorTopics are the topics sensors write and actuators read, for the
// appliance to create when the config does not declare them.
func (c *Config) SensorTopics() []string {
	var out []string
	for _, s := range c.Sensors {
		out = append(out, s.Topic)
	}
	for _, a := range c.Actuators {
		out = append(out, a.Topic)
	}
	return out
}
