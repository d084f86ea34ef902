package sensors

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

// fakeW1 makes a /sys/bus/w1/devices of its own for the test.
func fakeW1(t *testing.T, files map[string]string) {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	saved := w1Devices
	w1Devices = root
	t.Cleanup(func() { w1Devices = saved })
}

func readSysfsOnce(t *testing.T, spec DS18B20Spec) ([]Value, error) {
	t.Helper()
	d, err := newDS18B20Sysfs(&spec)
	if err != nil {
		return nil, err
	}
	if err := d.open(nil); err != nil {
		return nil, err
	}
	got := make(chan []Value, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := &runner{clock: clockwork.NewFakeClock(), interval: time.Minute, emit: func(_ time.Time, v []Value) { got <- v; cancel() }}
	if err := d.run(ctx, r); err != nil {
		return nil, err
	}
	return <-got, nil
}

func TestDS18B20Sysfs(t *testing.T) {
	fakeW1(t, map[string]string{
		"28-0000070e41ac/temperature": "25062\n",
		"28-000000000001/w1_slave":    "91 01 4b 46 7f ff 0f 10 25 : crc=25 YES\n91 01 4b 46 7f ff 0f 10 25 t=25062\n",
		"28-000000000002/w1_slave":    "91 01 4b 46 7f ff 0f 10 25 : crc=24 NO\n91 01 4b 46 7f ff 0f 10 25 t=25062\n",
		"28-000000000003/w1_slave":    "50 05 4b 46 7f ff 0c 10 1c : crc=1c YES\n50 05 4b 46 7f ff 0c 10 1c t=85000\n",
	})
	for _, tc := range []struct {
		addr string
		want float64
		err  string
	}{
		{"28-0000070e41ac", 25.062, ""},
		{"0x740000070e41ac28", 25.062, ""}, // the same device by its ROM code
		{"28-000000000001", 25.062, ""},    // an older kernel: w1_slave
		{"28-000000000002", 0, "CRC check"},
		{"28-000000000003", 0, "power-on value"},
		{"28-0000000000ff", 0, "absent"},
		{"", 0, "4 DS18B20s"},
	} {
		v, err := readSysfsOnce(t, DS18B20Spec{Bus: "sysfs", Address: tc.addr})
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err %v, want %q", tc.addr, err, tc.err)
			}
		case err != nil:
			t.Errorf("%q: %v", tc.addr, err)
		case len(v) != 1 || v[0].Name != "temperature" || v[0].Value != tc.want || v[0].Unit != "°C":
			t.Errorf("%q: %+v, want %v °C", tc.addr, v, tc.want)
		}
	}
}

// The temperature file of newer kernels can hold the power-on value 85000
// just as w1_slave can (no conversion: weak pull-up, parasite power): it
// is refused, not stored as 85 °C.
func TestSysfsTemperatureFilePowerOnValue(t *testing.T) {
	fakeW1(t, map[string]string{"28-0000070e41ac/temperature": "85000\n"})
	v, err := readSysfsOnce(t, DS18B20Spec{Bus: "sysfs", Address: "28-0000070e41ac"})
	if err == nil || !strings.Contains(err.Error(), "power-on") {
		t.Fatalf("temperature file 85000: got %+v, err %v; want the power-on error as for w1_slave", v, err)
	}
}

// Without an address the one thermometer on the bus is read whatever its
// family: a DS1822 (22), a DS18S20 (10) or a DS1825/MAX31850 (3b) as well
// as a DS18B20 (28). Other 1-wire devices do not count.
func TestSysfsFindsTheOnlyThermometerOfAnyFamily(t *testing.T) {
	for _, name := range []string{"22-000000000001", "10-000000000001", "3b-000000000001"} {
		fakeW1(t, map[string]string{
			name + "/temperature":             "21500\n",
			"w1_bus_master1/w1_master_slaves": name + "\n",
			"01-000000000002/id":              "\n", // a DS2401 serial number chip
		})
		v, err := readSysfsOnce(t, DS18B20Spec{Bus: "sysfs"})
		if err != nil || len(v) != 1 || v[0].Value != 21.5 {
			t.Errorf("a lone %s without an address: %+v, %v; want 21.5 °C", name, v, err)
		}
	}
	fakeW1(t, map[string]string{"22-000000000001/temperature": "21500\n", "28-000000000002/temperature": "20000\n"})
	if _, err := readSysfsOnce(t, DS18B20Spec{Bus: "sysfs"}); err == nil || !strings.Contains(err.Error(), "2 DS18B20s") {
		t.Errorf("two thermometers of different families without an address: %v, want an error asking for the address", err)
	}
}
