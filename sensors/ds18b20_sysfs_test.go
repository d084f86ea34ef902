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
