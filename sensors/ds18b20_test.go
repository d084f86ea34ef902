package sensors

import (
	"context"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"periph.io/x/conn/v3/onewire"
	"periph.io/x/conn/v3/onewire/onewiretest"
)

const kernelAddr = "28-0000070e41ac"

// romAddr is kernelAddr as a ROM code: family 0x28, serial 0x0000070e41ac
// little-endian, CRC 0x74.
const romAddr onewire.Address = 0x740000070e41ac28

func TestParseOneWireAddress(t *testing.T) {
	for _, s := range []string{kernelAddr, "0x740000070e41ac28", "740000070e41ac28"} {
		a, err := ParseOneWireAddress(s)
		if err != nil || a != romAddr {
			t.Errorf("ParseOneWireAddress(%q) = %#x, %v; want %#x", s, uint64(a), err, uint64(romAddr))
		}
	}
	if got := kernelName(romAddr); got != kernelAddr {
		t.Errorf("kernelName(%#x) = %q, want %q", uint64(romAddr), got, kernelAddr)
	}
	// The CRC of the computed address checks.
	var rom [8]byte
	binary.LittleEndian.PutUint64(rom[:], uint64(romAddr))
	if !onewire.CheckCRC(rom[:]) {
		t.Errorf("CRC of %x does not check", rom)
	}

	for _, tc := range []struct{ in, want string }{
		{"0x750000070e41ac28", "CRC byte is wrong"},
		{"28-0000070e41a", "not a 1-wire device name"},
		{"28-0000070e41acff", "not a 1-wire device name"},
		{"280-0000070e41ac", "not a 1-wire device name"},
		{"xx-0000070e41ac", "not a 1-wire device name"},
		{"28-00000z0e41ac", "not a 1-wire device name"},
		{"0xnothex", "not a 1-wire ROM code"},
		{"", "not a 1-wire ROM code"},
	} {
		_, err := ParseOneWireAddress(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.in) {
			t.Errorf("ParseOneWireAddress(%q): %v, want an error naming it: %q", tc.in, err, tc.want)
		}
	}

	if _, err := newDS18B20(&DS18B20Spec{Address: "0x750000070e41ac28"}); err == nil {
		t.Error("a spec with a bad CRC was accepted")
	}
	for _, bits := range []int{8, 13, -1} {
		if _, err := newDS18B20(&DS18B20Spec{Resolution: bits}); err == nil {
			t.Errorf("resolution %d accepted", bits)
		}
	}
}

// scratchpad is what a DS18B20 answers to Read Scratchpad: the raw
// temperature (1/16 °C), alarm bytes, the configuration for bits, and
// the CRC.
func scratchpad(raw int16, bits int) []byte {
	s := []byte{byte(raw), byte(uint16(raw) >> 8), 0x4b, 0x46, byte(bits-9)<<5 | 0x1f, 0xff, 0x0c, 0x10}
	return append(s, onewire.CalcCRC(s))
}

func matchROM(a onewire.Address, cmd byte) []byte {
	w := []byte{0x55, 0, 0, 0, 0, 0, 0, 0, 0, cmd}
	binary.LittleEndian.PutUint64(w[1:9], uint64(a))
	return w
}

// dsOpen is ds18b20.New reading the scratchpad of a device already set
// to bits; dsReading is one conversion and its result.
func dsOpen(a onewire.Address, bits int) []onewiretest.IO {
	return []onewiretest.IO{{W: matchROM(a, 0xbe), R: scratchpad(0x0550, bits), Pull: onewire.WeakPullup}}
}

func dsReading(a onewire.Address, raw int16, bits int) []onewiretest.IO {
	return []onewiretest.IO{
		{W: matchROM(a, 0x44), Pull: onewire.StrongPullup},
		{W: matchROM(a, 0xbe), R: scratchpad(raw, bits), Pull: onewire.WeakPullup},
	}
}

func TestDS18B20ConversionOnTheFakeClock(t *testing.T) {
	ops := dsOpen(romAddr, 12)
	ops = append(ops, dsReading(romAddr, 0x0191, 12)...) // 25.0625 °C
	ops = append(ops, dsReading(romAddr, -0x0a2, 12)...) // -10.125 °C
	bus := &onewiretest.Playback{Ops: ops, DontPanic: true}
	clk := newClock()
	d, err := newDS18B20(&DS18B20Spec{Bus: "w1", Address: kernelAddr})
	if err != nil {
		t.Fatal(err)
	}
	rig := startDriver(t, d, newHW().addOneWire("w1", bus), clk, 10*time.Second)

	count := func() int {
		bus.Lock()
		defer bus.Unlock()
		return bus.Count
	}
	// The conversion started, and the driver waits for it on the fake
	// clock: the interval's ticker and the conversion's timer.
	waitFor(t, "the conversion to start", func() bool { return count() == 2 })
	if err := clk.BlockUntilContext(ctxDeadline(t), 2); err != nil {
		t.Fatalf("waiting for the conversion timer: %v", err)
	}
	// 12 bits take 752ms (94ms << 3).
	clk.Advance(751 * time.Millisecond)
	rig.none("before the conversion is done")
	if c := count(); c != 2 {
		t.Fatalf("%d I/O before the conversion time, want 2 (the scratchpad is read after it)", c)
	}
	clk.Advance(time.Millisecond)
	g := rig.now()
	if len(g.values) != 1 {
		t.Fatalf("values %+v, want one temperature", g.values)
	}
	wantValue(t, g, "temperature", 25.0625, "°C")
	if g.at != t0 {
		t.Errorf("reading at %v, want %v (when the conversion started)", g.at, t0)
	}

	// The next reading, a negative one, an interval later.
	clk.Advance(10*time.Second - 752*time.Millisecond)
	waitFor(t, "the second conversion to start", func() bool { return count() == 4 })
	if err := clk.BlockUntilContext(ctxDeadline(t), 2); err != nil {
		t.Fatal(err)
	}
	clk.Advance(752 * time.Millisecond)
	g = rig.now()
	wantValue(t, g, "temperature", -10.125, "°C")
	if want := t0.Add(10 * time.Second); g.at != want {
		t.Errorf("second reading at %v, want %v", g.at, want)
	}
	if err := rig.stop(); err != nil {
		t.Errorf("run: %v", err)
	}
	if c := count(); c != len(ops) {
		t.Errorf("%d of %d I/O done", c, len(ops))
	}
}

func TestDS18B20LowerResolutionConvertsFaster(t *testing.T) {
	ops := dsOpen(romAddr, 9)
	ops = append(ops, dsReading(romAddr, 0x0190, 9)...) // 25 °C
	bus := &onewiretest.Playback{Ops: ops, DontPanic: true}
	clk := newClock()
	d, err := newDS18B20(&DS18B20Spec{Address: "0x740000070e41ac28", Resolution: 9})
	if err != nil {
		t.Fatal(err)
	}
	rig := startDriver(t, d, newHW().addOneWire("", bus), clk, time.Minute)
	waitFor(t, "the conversion to start", func() bool { bus.Lock(); defer bus.Unlock(); return bus.Count == 2 })
	if err := clk.BlockUntilContext(ctxDeadline(t), 2); err != nil {
		t.Fatal(err)
	}
	clk.Advance(93 * time.Millisecond)
	rig.none("before 94ms")
	clk.Advance(time.Millisecond)
	wantValue(t, rig.now(), "temperature", 25, "°C")
}

func TestDS18B20SearchesTheBusWithoutAnAddress(t *testing.T) {
	ops := []onewiretest.IO{{W: []byte{0xf0}, Pull: onewire.WeakPullup}} // one search pass
	ops = append(ops, dsOpen(romAddr, 12)...)
	ops = append(ops, dsReading(romAddr, 0x0191, 12)...)
	bus := &onewiretest.Playback{Ops: ops, Devices: []onewire.Address{romAddr}, DontPanic: true}
	clk := newClock()
	d, err := newDS18B20(&DS18B20Spec{})
	if err != nil {
		t.Fatal(err)
	}
	rig := startDriver(t, d, newHW().addOneWire("", bus), clk, time.Minute)
	if d.at != romAddr {
		t.Errorf("found %#x, want %#x", uint64(d.at), uint64(romAddr))
	}
	waitFor(t, "the conversion to start", func() bool { bus.Lock(); defer bus.Unlock(); return bus.Count == 3 })
	if err := clk.BlockUntilContext(ctxDeadline(t), 2); err != nil {
		t.Fatal(err)
	}
	clk.Advance(752 * time.Millisecond)
	wantValue(t, rig.now(), "temperature", 25.0625, "°C")
}

func TestDS18B20SearchNeedsExactlyOneDevice(t *testing.T) {
	other := onewire.Address(0x0000000131856328)
	var rom [8]byte
	binary.LittleEndian.PutUint64(rom[:], uint64(other))
	other |= onewire.Address(onewire.CalcCRC(rom[:7])) << 56

	// Two devices: two search passes, then the driver asks for an address.
	bus := &onewiretest.Playback{
		Ops:       []onewiretest.IO{{W: []byte{0xf0}, Pull: onewire.WeakPullup}, {W: []byte{0xf0}, Pull: onewire.WeakPullup}},
		Devices:   []onewire.Address{romAddr, other},
		DontPanic: true,
	}
	d, err := newDS18B20(&DS18B20Spec{Bus: "w1"})
	if err != nil {
		t.Fatal(err)
	}
	err = d.open(newHW().addOneWire("w1", bus))
	if err == nil || !strings.Contains(err.Error(), `1-wire bus "w1"`) || !strings.Contains(err.Error(), "2 devices found") {
		t.Errorf("open with two devices: %v", err)
	}

	// A missing bus.
	err = d.open(newHW())
	if err == nil || !strings.Contains(err.Error(), `1-wire bus "w1"`) {
		t.Errorf("open without the bus: %v", err)
	}
}

func TestDS18B20BadScratchpadFailsTheRun(t *testing.T) {
	spad := scratchpad(0x0191, 12)
	spad[8] ^= 0xff // CRC wrong
	ops := append(dsOpen(romAddr, 12),
		onewiretest.IO{W: matchROM(romAddr, 0x44), Pull: onewire.StrongPullup},
		onewiretest.IO{W: matchROM(romAddr, 0xbe), R: spad, Pull: onewire.WeakPullup})
	bus := &onewiretest.Playback{Ops: ops, DontPanic: true}
	clk := newClock()
	d, err := newDS18B20(&DS18B20Spec{Address: kernelAddr})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.open(newHW().addOneWire("", bus)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	r := &runner{clock: clk, interval: time.Minute, emit: func(time.Time, []Value) { t.Error("a reading from a bad scratchpad") }}
	go func() { done <- d.run(t.Context(), r) }()
	if err := clk.BlockUntilContext(ctxDeadline(t), 2); err != nil {
		t.Fatal(err)
	}
	clk.Advance(752 * time.Millisecond)
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), kernelAddr) || !strings.Contains(err.Error(), "CRC") {
			t.Errorf("run: %v, want an error naming the device and the CRC", err)
		}
	case <-time.After(realDeadline):
		t.Fatal("run did not fail")
	}
}

func ctxDeadline(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), realDeadline)
	t.Cleanup(cancel)
	return ctx
}

// A DS18B20 whose data line is held low (a short, a dead sensor) answers
// nine zero bytes, which pass the CRC check (the CRC of zeros is zero):
// the run fails rather than storing 0 °C, because the datasheet fixes the
// low five bits of byte 4 and all of byte 5 to ones.
func TestDS18B20ZeroScratchpadIsNotAReading(t *testing.T) {
	ops := append(dsOpen(romAddr, 12),
		onewiretest.IO{W: matchROM(romAddr, 0x44), Pull: onewire.StrongPullup},
		onewiretest.IO{W: matchROM(romAddr, 0xbe), R: make([]byte, 9), Pull: onewire.WeakPullup})
	bus := &onewiretest.Playback{Ops: ops, DontPanic: true}
	clk := newClock()
	d, err := newDS18B20(&DS18B20Spec{Address: kernelAddr})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.open(newHW().addOneWire("", bus)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	readings := make(chan []Value, 1)
	r := &runner{clock: clk, interval: time.Minute, emit: func(_ time.Time, v []Value) { readings <- v }}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() { done <- d.run(ctx, r) }()
	if err := clk.BlockUntilContext(ctxDeadline(t), 2); err != nil {
		t.Fatal(err)
	}
	clk.Advance(752 * time.Millisecond)
	select {
	case v := <-readings:
		t.Errorf("an all-zero scratchpad (line held low) was stored as a reading: %+v", v)
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), kernelAddr) {
			t.Errorf("run: %v, want an error naming the device", err)
		}
	case <-time.After(realDeadline):
		t.Fatal("neither a reading nor an error")
	}
}

// The scratchpad decodes as periph's driver decodes it: 1/16 °C on a
// DS18B20 or DS1822, and on a DS18S20 the 1/2 °C reading refined by
// COUNT_REMAIN (datasheet: TEMP_READ - 0.25 + (16 - COUNT_REMAIN)/16).
func TestScratchpadCelsius(t *testing.T) {
	for _, tc := range []struct {
		family byte
		spad   [9]byte
		want   float64
	}{
		{0x28, [9]byte{0x91, 0x01}, 25.0625},
		{0x28, [9]byte{0x5e, 0xff}, -10.125},
		{0x22, [9]byte{0x50, 0x05}, 85},
		{0x10, [9]byte{0x32, 0x00, 6: 0x0c, 7: 0x10}, 25},     // 25.0 - 0.25 + 4/16
		{0x10, [9]byte{0x33, 0x00, 6: 0x04, 7: 0x10}, 25.5},   // 25.5 → 25.0 - 0.25 + 12/16
		{0x10, [9]byte{0xf3, 0xff, 6: 0x0a, 7: 0x10}, -6.875}, // -6.5 → -7.0 - 0.25 + 6/16
	} {
		if got := scratchpadCelsius(tc.family, tc.spad); got != tc.want {
			t.Errorf("family %02x scratchpad % x: %v °C, want %v", tc.family, tc.spad, got, tc.want)
		}
	}
}
