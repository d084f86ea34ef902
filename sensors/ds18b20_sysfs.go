package sensors

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// w1Devices is where the kernel's 1-wire driver (w1-gpio with w1-therm,
// as dtoverlay=w1-gpio loads them on a Raspberry Pi) lists its devices.
// A variable for tests.
var w1Devices = "/sys/bus/w1/devices"

// ds18b20Sysfs reads a DS18B20 through the kernel's w1-therm driver
// (bus: sysfs) instead of driving the 1-wire bus itself: it needs no
// privileges beyond reading /sys, and is what most Raspberry Pi setups
// already have. The kernel runs the conversion during the read.
type ds18b20Sysfs struct {
	spec DS18B20Spec
	name string
	dir  string
}

func newDS18B20Sysfs(s *DS18B20Spec) (*ds18b20Sysfs, error) {
	d := &ds18b20Sysfs{spec: *s}
	if s.Address != "" {
		a, err := ParseOneWireAddress(s.Address)
		if err != nil {
			return nil, err
		}
		d.name = kernelName(a)
	}
	return d, nil
}

// thermometerFamilies are the 1-wire family codes w1-therm reads in the
// same format: DS18S20, DS1822, DS18B20, and DS1825 or MAX31850 (3b).
var thermometerFamilies = []string{"10", "22", "28", "3b"}

func (d *ds18b20Sysfs) open(Hardware) error {
	name := d.name
	if name == "" {
		found := sysfsThermometers()
		if len(found) != 1 {
			return fmt.Errorf("1-wire bus sysfs: %d DS18B20s (or DS18S20, DS1822) in %s: set the address of the one to read (or load dtoverlay=w1-gpio)", len(found), w1Devices)
		}
		name = found[0]
	}
	dir := filepath.Join(w1Devices, name)
	if _, err := os.Stat(dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("1-wire device %s: %s absent: not on the bus, or the kernel's w1-gpio and w1-therm drivers are not loaded (dtoverlay=w1-gpio)", name, dir)
		}
		return fmt.Errorf("1-wire device %s: %w", name, err)
	}
	d.dir = dir
	return nil
}

// sysfsThermometers names the thermometers the kernel lists, of any
// family w1-therm reads (other 1-wire devices, such as the bus master
// itself, are listed there too).
func sysfsThermometers() []string {
	var names []string
	for _, family := range thermometerFamilies {
		found, _ := filepath.Glob(filepath.Join(w1Devices, family+"-*"))
		for _, f := range found {
			names = append(names, filepath.Base(f))
		}
	}
	return names
}

func (d *ds18b20Sysfs) close() error { return nil }

func (d *ds18b20Sysfs) run(ctx context.Context, r *runner) error {
	return r.every(ctx, func(context.Context) ([]Value, error) {
		c, err := d.read()
		if err != nil {
			return nil, fmt.Errorf("1-wire device %s: %w", filepath.Base(d.dir), err)
		}
		return []Value{{Name: "temperature", Value: c, Unit: "°C"}}, nil
	})
}

// read returns °C from the device's temperature file (millidegrees, in
// kernels since 5.x) or, on older kernels, from w1_slave, whose first line
// ends in YES when the scratchpad's CRC matched and whose second ends in
// t=<millidegrees>.
func (d *ds18b20Sysfs) read() (float64, error) {
	if b, err := os.ReadFile(filepath.Join(d.dir, "temperature")); err == nil {
		m, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("temperature %q is not millidegrees", strings.TrimSpace(string(b)))
		}
		return converted("temperature", float64(m)/1000)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return 0, err
	}
	b, err := os.ReadFile(filepath.Join(d.dir, "w1_slave"))
	if err != nil {
		return 0, err
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 || !strings.HasSuffix(strings.TrimSpace(lines[0]), "YES") {
		return 0, fmt.Errorf("w1_slave: the reading failed its CRC check (%q)", strings.TrimSpace(lines[0]))
	}
	_, t, ok := strings.Cut(lines[1], "t=")
	m, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64)
	if !ok || err != nil {
		return 0, fmt.Errorf("w1_slave: no t= in %q", lines[1])
	}
	return converted("w1_slave", float64(m)/1000)
}
