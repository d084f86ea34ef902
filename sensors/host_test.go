package sensors

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// These run against the real periph.io drivers of the machine running
// the tests, which is not a board: they check what a sensor's error says
// when the hardware is absent.

func skipIfExists(t *testing.T, pattern string) {
	t.Helper()
	if m, _ := filepath.Glob(pattern); len(m) > 0 {
		t.Skipf("%s exists: this machine has the hardware", m[0])
	}
}

func TestHostPinWithoutGPIOChip(t *testing.T) {
	skipIfExists(t, "/dev/gpiochip0")
	h := &Host{}
	p, err := h.Pin("GPIO17")
	if err == nil {
		t.Fatalf("Pin(GPIO17) = %v without a GPIO chip", p)
	}
	for _, want := range []string{"pin GPIO17", "/dev/gpiochip"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Pin(GPIO17): %q, want it to say %q", err, want)
		}
	}
	// A header position names both.
	_, err = h.Pin("P1_11")
	if err == nil || !strings.Contains(err.Error(), "pin P1_11 (GPIO17)") || !strings.Contains(err.Error(), "/dev/gpiochip") {
		t.Errorf("Pin(P1_11): %v", err)
	}
}

func TestHostI2CWithoutBus(t *testing.T) {
	skipIfExists(t, "/dev/i2c-*")
	_, err := (&Host{}).I2C("1")
	if err == nil || !strings.Contains(err.Error(), `i2c bus "1"`) || !strings.Contains(err.Error(), "/dev/i2c-1 absent") {
		t.Errorf("I2C(1): %v", err)
	}
	_, err = (&Host{}).I2C("")
	if err == nil || !strings.Contains(err.Error(), "/dev/i2c-0 absent") {
		t.Errorf("I2C(\"\"): %v", err)
	}
}

func TestHostOneWireWithoutMaster(t *testing.T) {
	if _, err := os.Stat("/sys/bus/w1"); err == nil {
		t.Skip("/sys/bus/w1 exists")
	}
	_, err := (&Host{}).OneWire("")
	if err == nil || !strings.Contains(err.Error(), `1-wire bus ""`) || !strings.Contains(err.Error(), "/sys/bus/w1 absent") {
		t.Errorf("OneWire: %v", err)
	}
}

func TestHostSensorFailsNamingThePin(t *testing.T) {
	skipIfExists(t, "/dev/gpiochip0")
	d, err := newDigital(&DigitalSpec{Pin: "P1_11"})
	if err != nil {
		t.Fatal(err)
	}
	err = d.open(&Host{})
	if err == nil || !strings.Contains(err.Error(), "P1_11") || !strings.Contains(err.Error(), "GPIO17") {
		t.Errorf("open on the host: %v", err)
	}
}

func TestDiagnoseDevice(t *testing.T) {
	dir := t.TempDir()
	if got := diagnoseDevice(filepath.Join(dir, "chip*"), "GPIO chip", "gpio", "fallback"); !strings.Contains(got, filepath.Join(dir, "chip0")+" absent") {
		t.Errorf("no device: %q", got)
	}
	node := filepath.Join(dir, "chip0")
	if err := os.WriteFile(node, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := diagnoseDevice(filepath.Join(dir, "chip*"), "GPIO chip", "gpio", "fallback"); got != "fallback" {
		t.Errorf("an openable device: %q, want the driver's reason", got)
	}
	if got := diagnoseDevice(filepath.Join(dir, "chip*"), "GPIO chip", "gpio", ""); !strings.Contains(got, "not found on "+node) {
		t.Errorf("an openable device, no reason: %q", got)
	}
	if os.Geteuid() != 0 {
		if err := os.Chmod(node, 0); err != nil {
			t.Fatal(err)
		}
		if got := diagnoseDevice(filepath.Join(dir, "chip*"), "GPIO chip", "gpio", "fallback"); !strings.Contains(got, "permission denied on "+node) || !strings.Contains(got, "group gpio") {
			t.Errorf("a device without access: %q", got)
		}
	}
}

func TestLineName(t *testing.T) {
	for in, want := range map[string]string{"P1_11": "GPIO17", "P1_3": "GPIO2", "P1_40": "GPIO21", "GPIO4": "GPIO4"} {
		if got, err := LineName(in); got != want || err != nil {
			t.Errorf("LineName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	// Power (1, 2, 4, 17) and ground (6, 9, ...) have no line; P1_41 is
	// off the header.
	for _, in := range []string{"P1_1", "P1_2", "P1_6", "P1_17", "P1_41"} {
		if got, err := LineName(in); err == nil || !strings.Contains(err.Error(), in) {
			t.Errorf("LineName(%q) = %q, %v; want an error naming it", in, got, err)
		}
	}
}
