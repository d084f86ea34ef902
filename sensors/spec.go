package sensors

import (
	"errors"
	"fmt"
	"sort"
	"time"
)

// Spec is one sensor: a name, the topic its readings go to, and exactly
// one driver.
type Spec struct {
	Name  string
	Topic string
	// Interval between readings of the periodic drivers, and the counting
	// window of a pulse counter. Default 10s.
	Interval time.Duration

	Digital   *DigitalSpec
	Pulse     *PulseSpec
	BME280    *BME280Spec
	DS18B20   *DS18B20Spec
	Simulated *SimulatedSpec
	Replay    *ReplaySpec
}

// DigitalSpec is a digital input: one reading per debounced change.
type DigitalSpec struct {
	Pin  string
	Pull string // up, down, none; "" leaves the line's default
	// Edge is the change that makes a reading: both (default, and then
	// the level at start is a reading too), rising or falling.
	Edge string
	// Debounce is how long the level must stay put to count. Default 20ms.
	Debounce time.Duration
}

// PulseSpec is a pulse counter (a flow meter, an anemometer): the edges
// counted over each interval, and their rate.
type PulseSpec struct {
	Pin  string
	Pull string
	Edge string // falling (default), rising or both
	// Debounce ignores an edge closer than this to the last one counted
	// (mechanical contacts); 0 (default) counts every edge.
	Debounce time.Duration
}

// BME280Spec is a Bosch BME280 (or BMP280) on I2C.
type BME280Spec struct {
	Bus     string // "" is the first bus
	Address uint16 // default 0x76
}

// DS18B20Spec is a Maxim DS18B20 (or DS18S20, DS1822) on 1-wire.
type DS18B20Spec struct {
	// Bus is the 1-wire bus periph.io drives (through the kernel's
	// netlink connector; "" is the first), or "sysfs": read the kernel's
	// w1-therm driver in /sys/bus/w1/devices (no privileges needed).
	Bus string
	// Address as the kernel names it (28-0000070e41ac) or as a 64-bit ROM
	// code (0x740000070e41ac28); "" when it is the only device on the bus.
	Address string
	// Resolution in bits, 9 to 12 (default 12: 0.0625°C, 750ms).
	Resolution int
}

// SimulatedSpec is a made-up signal, for demos and tests on any machine.
type SimulatedSpec struct {
	// Waveform: sine (default), square, triangle, sawtooth or random_walk.
	Waveform string
	Value    string // the value's name, default "value"
	Unit     string
	Min, Max float64 // default 0 and 1
	// Period of a waveform (default 1m).
	Period time.Duration
	// Step is the largest change of a random walk per reading (default a
	// hundredth of the range); Seed makes the walk repeatable.
	Step float64
	Seed int64
}

// ReplaySpec replays a CSV file: a header row names the values (with a
// unit in brackets, "temperature[°C]"), then one row per reading, one row
// each interval. A column named time is skipped.
type ReplaySpec struct {
	File string
	Loop bool // start over at the end (default: stop producing)
}

const (
	defaultInterval = 10 * time.Second
	defaultDebounce = 20 * time.Millisecond
)

// driverName is the name of the spec's one driver, or an error when it
// has none or several.
func (s *Spec) driverName() (string, error) {
	var names []string
	for name, set := range map[string]bool{
		"digital_input": s.Digital != nil, "pulse_counter": s.Pulse != nil,
		"bme280": s.BME280 != nil, "ds18b20": s.DS18B20 != nil,
		"simulated": s.Simulated != nil, "replay": s.Replay != nil,
	} {
		if set {
			names = append(names, name)
		}
	}
	sort.Strings(names) // the map's order is random; the error is not
	switch len(names) {
	case 0:
		return "", errors.New("no driver: set one of digital_input, pulse_counter, bme280, ds18b20, simulated, replay")
	case 1:
		return names[0], nil
	}
	return "", fmt.Errorf("several drivers %v: a sensor has one", names)
}
