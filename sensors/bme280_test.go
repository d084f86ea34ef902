package sensors

import (
	"strings"
	"testing"
	"time"

	"periph.io/x/conn/v3/i2c/i2ctest"
)

// The recording of periph.io's TestI2CSenseBME280_success
// (devices/v3/bmxx80/bmx280_test.go), with the configuration bytes of
// bme280Opts: oversampling 1x everywhere, forced mode, no filter.
var (
	bmeCalibration = []byte{0x10, 0x6e, 0x6c, 0x66, 0x32, 0x0, 0x5d, 0x95, 0xb8, 0xd5, 0xd0, 0xb, 0x77, 0x1e, 0x9d, 0xff, 0xf9, 0xff, 0xac, 0x26, 0xa, 0xd8, 0xbd, 0x10, 0x0, 0x4b}
	bmeHumidityCal = []byte{0x6e, 0x1, 0x0, 0x13, 0x5, 0x0, 0x1e}
	bmeRaw         = []byte{0x4a, 0x52, 0xc0, 0x80, 0x96, 0xc0, 0x7a, 0x76}
)

const (
	ctrlMeasSleep  = 1<<5 | 1<<2 | 0 // T 1x, P 1x, sleep
	ctrlMeasForced = 1<<5 | 1<<2 | 1 // T 1x, P 1x, forced
)

// bmeOpen is what bmxx80.NewI2C says to a BME280 (chip id 0x60) or a
// BMP280 (0x58) at addr.
func bmeOpen(addr uint16, chip byte) []i2ctest.IO {
	ops := []i2ctest.IO{
		{Addr: addr, W: []byte{0xd0}, R: []byte{chip}},
		{Addr: addr, W: []byte{0x88}, R: bmeCalibration},
	}
	if chip == 0x60 {
		ops = append(ops,
			i2ctest.IO{Addr: addr, W: []byte{0xe1}, R: bmeHumidityCal},
			// ctrl_meas (sleep), ctrl_hum 1x, config (standby 1s, no
			// filter), ctrl_meas again.
			i2ctest.IO{Addr: addr, W: []byte{0xf4, ctrlMeasSleep, 0xf2, 0x01, 0xf5, 0xa0, 0xf4, ctrlMeasSleep}})
	} else {
		ops = append(ops, i2ctest.IO{Addr: addr, W: []byte{0xf4, ctrlMeasSleep, 0xf5, 0xa0, 0xf4, ctrlMeasSleep}})
	}
	return ops
}

// bmeSense is one forced measurement.
func bmeSense(addr uint16, chip byte) []i2ctest.IO {
	raw := bmeRaw
	if chip != 0x60 {
		raw = bmeRaw[:6]
	}
	return []i2ctest.IO{
		{Addr: addr, W: []byte{0xf4, ctrlMeasForced}},
		{Addr: addr, W: []byte{0xf3}, R: []byte{8}}, // measuring
		{Addr: addr, W: []byte{0xf3}, R: []byte{0}}, // done
		{Addr: addr, W: []byte{0xf7}, R: raw},
	}
}

func bmePlayback(addr uint16, chip byte, readings int) *i2ctest.Playback {
	ops := bmeOpen(addr, chip)
	for range readings {
		ops = append(ops, bmeSense(addr, chip)...)
	}
	return &i2ctest.Playback{Ops: ops, DontPanic: true}
}

func wantValue(t *testing.T, g got, name string, want float64, unit string) {
	t.Helper()
	for _, v := range g.values {
		if v.Name == name {
			if v.Value != want || v.Unit != unit {
				t.Errorf("%s = %v %s, want %v %s", name, v.Value, v.Unit, want, unit)
			}
			return
		}
	}
	t.Errorf("no %s in %+v", name, g.values)
}

func TestBME280DecodesOverI2C(t *testing.T) {
	clk := newClock()
	bus := bmePlayback(0x76, 0x60, 2)
	hw := newHW().addI2C("", bus)
	rig := startDriver(t, &bme280{}, hw, clk, 30*time.Second)

	g := rig.now()
	if g.at != t0 {
		t.Errorf("first reading at %v, want at start %v", g.at, t0)
	}
	if len(g.values) != 3 {
		t.Errorf("values %+v, want temperature, pressure and humidity", g.values)
	}
	wantValue(t, g, "temperature", 23.72, "°C")
	wantValue(t, g, "pressure", 1009.426953125, "hPa")
	wantValue(t, g, "humidity", 65.3056, "%RH")

	// The runner's ticker is the only timer: the clock is moved exactly,
	// so the reading's time is known.
	rig.clk.Advance(29 * time.Second)
	rig.none("before the interval")
	rig.clk.Advance(time.Second)
	g = rig.now()
	if want := t0.Add(30 * time.Second); g.at != want {
		t.Errorf("second reading at %v, want %v", g.at, want)
	}
	wantValue(t, g, "temperature", 23.72, "°C")
	if err := rig.stop(); err != nil {
		t.Errorf("run: %v", err)
	}
	// close closed the bus: the playback checks every recorded I/O was
	// done, and no other (Playback fails an unexpected one).
	bus.Lock()
	defer bus.Unlock()
	if bus.Count != len(bus.Ops) {
		t.Errorf("%d of %d I/O done", bus.Count, len(bus.Ops))
	}
}

func TestBMP280HasNoHumidity(t *testing.T) {
	clk := newClock()
	bus := bmePlayback(0x77, 0x58, 1)
	rig := startDriver(t, &bme280{spec: BME280Spec{Bus: "1", Address: 0x77}}, newHW().addI2C("1", bus), clk, time.Minute)
	g := rig.now()
	if len(g.values) != 2 {
		t.Errorf("values %+v, want temperature and pressure only", g.values)
	}
	wantValue(t, g, "temperature", 23.72, "°C")
	wantValue(t, g, "pressure", 1009.426953125, "hPa")
	if _, ok := g.value("humidity"); ok {
		t.Error("a BMP280 reported humidity")
	}
}

func TestBME280Errors(t *testing.T) {
	// No bus: the error is the Hardware's, naming the bus.
	err := (&bme280{spec: BME280Spec{Bus: "3"}}).open(newHW())
	if err == nil || !strings.Contains(err.Error(), `i2c bus "3"`) {
		t.Errorf("open on a missing bus: %v", err)
	}

	// A chip that does not answer as a BME280: the error names the bus
	// and the address, and the bus is closed again.
	bus := &i2ctest.Playback{Ops: []i2ctest.IO{{Addr: 0x76, W: []byte{0xd0}, R: []byte{0x42}}}, DontPanic: true}
	closed := &closeCounter{Playback: bus}
	err = (&bme280{}).open(newHW().addI2C("", closed))
	if err == nil || !strings.Contains(err.Error(), `i2c bus "" address 0x76`) || !strings.Contains(err.Error(), "unexpected chip id 42") {
		t.Errorf("open of a wrong chip: %v", err)
	}
	if closed.closes != 1 {
		t.Errorf("bus closed %d times after a failed open, want 1", closed.closes)
	}

	// A sensor that stops answering fails the run, naming bus and address.
	clk := newClock()
	bus = &i2ctest.Playback{Ops: bmeOpen(0x76, 0x60), DontPanic: true}
	b := &bme280{}
	if err := b.open(newHW().addI2C("", bus)); err != nil {
		t.Fatal(err)
	}
	r := &runner{clock: clk, interval: time.Second, emit: func(time.Time, []Value) { t.Error("a reading from a silent sensor") }}
	err = b.run(t.Context(), r)
	if err == nil || !strings.Contains(err.Error(), `i2c bus "" address 0x76`) {
		t.Errorf("run with a silent sensor: %v", err)
	}
}

type closeCounter struct {
	*i2ctest.Playback
	closes int
}

func (c *closeCounter) Close() error {
	c.closes++
	return c.Playback.Close()
}
