package config

import (
	"strings"
	"testing"
	"time"
)

// TestSensorsExampleConfigs: the hardware example and the demo load and
// validate, and the demo's sensors all write to the topic sensors.
func TestSensorsExampleConfigs(t *testing.T) {
	c, err := Load(sensorsPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate %s:\n%v", sensorsPath, err)
	}
	if len(c.Sensors) != 6 || len(c.Actuators) != 1 {
		t.Fatalf("%d sensors, %d actuators", len(c.Sensors), len(c.Actuators))
	}
	door := c.Sensors[0].Spec()
	if door.Digital == nil || door.Digital.Pin != "GPIO17" || door.Digital.Debounce != 20*time.Millisecond || door.Interval != 10*time.Second {
		t.Errorf("door: %+v %+v", door, door.Digital)
	}
	if b := c.Sensors[2].Spec().BME280; b == nil || b.Address != 0x76 || b.Bus != "1" {
		t.Errorf("climate: %+v", b)
	}
	if a := c.Actuators[0].Spec(); a.Pin != "GPIO23" || !a.ActiveLow || a.Initial != "off" || a.MaxPulse != time.Minute || a.Key != "pump" {
		t.Errorf("pump: %+v", a)
	}

	sim, err := Load(sensorsSimPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Validate(); err != nil {
		t.Fatalf("Validate %s:\n%v", sensorsSimPath, err)
	}
	if len(sim.Sensors) < 3 {
		t.Fatalf("%d sensors in the demo", len(sim.Sensors))
	}
	for _, s := range sim.Sensors {
		if s.Topic != "sensors" || (s.Simulated == nil && s.Replay == nil) {
			t.Errorf("demo sensor %s: topic %q, not simulated or replayed", s.Name, s.Topic)
		}
	}
}

// TestSensorsValidate: each mistake is reported with its key.
func TestSensorsValidate(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"sensors: [{name: a, topic: s}]", "sensors[0]: no driver"},
		{"sensors: [{name: a, topic: s, simulated: {}, replay: {file: x}}]", "sensors[0]: several drivers"},
		{"sensors: [{topic: s, simulated: {}}]", "sensors[0].name: must be set"},
		{"sensors: [{name: a, topic: s, simulated: {}}, {name: a, topic: s, simulated: {}}]", `sensors[1].name: "a" is also sensors[0]`},
		{"sensors: [{name: a, topic: 'bad topic', simulated: {}}]", "sensors[0].topic:"},
		{"sensors: [{name: a, topic: s, interval: 1ms, simulated: {}}]", "sensors[0].interval: 1ms is below 10ms"},
		{"sensors: [{name: a, topic: s, digital_input: {}}]", "sensors[0].digital_input.pin: must be set"},
		{"sensors: [{name: a, topic: s, digital_input: {pin: GPIO4, pull: sideways}}]", `sensors[0].digital_input: pull "sideways" is not up, down or none`},
		{"sensors: [{name: a, topic: s, pulse_counter: {pin: GPIO4, edge: up}}]", `sensors[0].pulse_counter: edge "up" is not rising, falling or both`},
		{"sensors: [{name: a, topic: s, ds18b20: {address: 28-00}}]", "sensors[0].ds18b20: address"},
		{"sensors: [{name: a, topic: s, ds18b20: {resolution: 13}}]", "sensors[0].ds18b20: resolution 13 is not 9 to 12 bits"},
		{"sensors: [{name: a, topic: s, simulated: {waveform: zigzag}}]", `sensors[0].simulated: waveform "zigzag"`},
		{"sensors: [{name: a, topic: s, simulated: {min: 5, max: 1}}]", "sensors[0].simulated: max 1 is below min 5"},
		{"sensors: [{name: a, topic: s, replay: {}}]", "sensors[0].replay.file: must be set"},
		{"sensors: [{name: a, topic: s, bme280: {adress: 0x76}}]", "sensors[0].bme280.adress: unknown key"},
		{"actuators: [{name: p, topic: c}]", "actuators[0].pin: must be set"},
		{"actuators: [{name: p, topic: c, pin: GPIO4, initial: half}]", `actuators[0].initial: "half" is not off or on`},
		{"actuators: [{name: p, topic: c, pin: GPIO4, start: now}]", `actuators[0].start: "now" is not latest or earliest`},
		{"actuators: [{name: p, topic: c, pin: GPIO4}, {name: p, topic: c, pin: GPIO5}]", `actuators[1].name: "p" is also actuators[0]`},
	} {
		c, err := Parse(strings.NewReader(tc.yaml))
		if err == nil {
			err = c.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got %v\nwant %q", tc.yaml, err, tc.want)
		}
	}
}

// A pin must be a GPIO line: a header position for power or ground is a
// config error naming the key, not a "GPIO chip" failure at run time.
func TestSensorsValidateNonGPIOHeaderPin(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		// P1_2 is 5V, P1_6 ground, P1_17 3.3V: no GPIO line at all.
		{"sensors: [{name: a, topic: s, digital_input: {pin: P1_2}}]", "sensors[0].digital_input.pin: header pin P1_2 is not a GPIO line"},
		{"sensors: [{name: a, topic: s, pulse_counter: {pin: P1_17}}]", "sensors[0].pulse_counter.pin: header pin P1_17 is not a GPIO line"},
		{"actuators: [{name: p, topic: c, pin: P1_6}]", "actuators[0].pin: header pin P1_6 is not a GPIO line"},
	} {
		c, err := Parse(strings.NewReader(tc.yaml))
		if err == nil {
			err = c.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got %v\nwant an error naming %q", tc.yaml, err, tc.want)
		}
	}
}

// One GPIO line serves one sensor or actuator, whether it is named by its
// line name or by its header position: a second user is a config error
// naming both keys, since both drivers would reconfigure the line.
func TestSensorsValidatePinUsedTwice(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		// Two actuators driving one line (P1_16 is GPIO23).
		{"actuators: [{name: p, topic: c, pin: GPIO23}, {name: q, topic: c, pin: P1_16}]",
			"actuators[1].pin: P1_16 (GPIO23) is also actuators[0].pin"},
		// An input and an output on one line (P1_11 is GPIO17).
		{"sensors: [{name: door, topic: s, digital_input: {pin: GPIO17}}]\nactuators: [{name: p, topic: c, pin: P1_11}]",
			"actuators[0].pin: P1_11 (GPIO17) is also sensors[0].digital_input.pin"},
		// Two inputs on one line.
		{"sensors: [{name: a, topic: s, digital_input: {pin: GPIO4}}, {name: b, topic: s, pulse_counter: {pin: GPIO4}}]",
			"sensors[1].pulse_counter.pin: GPIO4 is also sensors[0].digital_input.pin"},
	} {
		c, err := Parse(strings.NewReader(tc.yaml))
		if err == nil {
			err = c.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got %v\nwant an error naming %q", tc.yaml, err, tc.want)
		}
	}
}

// With discovery on, two sensors whose names give one Home Assistant id
// (every character but letters, digits, _ and - becomes _) are a config
// error naming both: they would be one entity fed by both sensors.
func TestSensorsValidateHomeAssistantIDsDistinct(t *testing.T) {
	const yaml = "mqtt: {addr: 127.0.0.1:1883}\nsensors: [{name: tank.1, topic: s, simulated: {}}, {name: tank_1, topic: s, simulated: {}}]\n"
	c, err := Parse(strings.NewReader(yaml + "home_assistant: {discovery: true}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), `sensors[1].name: "tank_1" and sensors[0] "tank.1" are both the Home Assistant id "tank_1"`) {
		t.Errorf("tank.1 and tank_1 with discovery: %v, want an error naming both", err)
	}
	c, err = Parse(strings.NewReader(yaml))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("tank.1 and tank_1 without discovery: %v", err)
	}
}
