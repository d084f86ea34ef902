package sensors

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"periph.io/x/conn/v3/onewire"
	"periph.io/x/devices/v3/ds18b20"
)

type ds18b20Sensor struct {
	spec DS18B20Spec
	addr onewire.Address // 0: the only device on the bus
	bits int
	bus  onewire.BusCloser
	at   onewire.Address
}

func newDS18B20(s *DS18B20Spec) (*ds18b20Sensor, error) {
	d := &ds18b20Sensor{spec: *s, bits: s.Resolution}
	if d.bits == 0 {
		d.bits = 12
	}
	if d.bits < 9 || d.bits > 12 {
		return nil, fmt.Errorf("resolution %d is not 9 to 12 bits", d.bits)
	}
	if s.Address != "" {
		a, err := ParseOneWireAddress(s.Address)
		if err != nil {
			return nil, err
		}
		d.addr = a
	}
	return d, nil
}

// ParseOneWireAddress reads a 1-wire ROM code as the kernel names the
// device (28-0000070e41ac: family, then the 48-bit serial number; the CRC
// is computed) or as a 64-bit number (0x740000070e41ac28, CRC checked).
func ParseOneWireAddress(s string) (onewire.Address, error) {
	if fam, serial, ok := strings.Cut(s, "-"); ok {
		f, ferr := strconv.ParseUint(fam, 16, 8)
		n, serr := strconv.ParseUint(serial, 16, 48)
		if ferr != nil || serr != nil || len(fam) != 2 || len(serial) != 12 {
			return 0, fmt.Errorf("address %q is not a 1-wire device name such as 28-0000070e41ac", s)
		}
		rom := make([]byte, 8)
		rom[0] = byte(f)
		for i := range 6 {
			rom[1+i] = byte(n >> (8 * i))
		}
		rom[7] = onewire.CalcCRC(rom[:7])
		return romAddress(rom), nil
	}
	n, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 64)
	if err != nil {
		return 0, fmt.Errorf("address %q is not a 1-wire ROM code such as 0x740000070e41ac28 or 28-0000070e41ac", s)
	}
	rom := make([]byte, 8)
	for i := range 8 {
		rom[i] = byte(n >> (8 * i))
	}
	if !onewire.CheckCRC(rom) {
		return 0, fmt.Errorf("address %q: its CRC byte is wrong (%s)", s, hex.EncodeToString(rom))
	}
	return onewire.Address(n), nil
}

func romAddress(rom []byte) onewire.Address {
	var a onewire.Address
	for i := range 8 {
		a |= onewire.Address(rom[i]) << (8 * i)
	}
	return a
}

// kernelName is the address as /sys/bus/w1/devices names it.
func kernelName(a onewire.Address) string {
	return fmt.Sprintf("%02x-%012x", byte(a), uint64(a)>>8&(1<<48-1))
}

func (d *ds18b20Sensor) open(hw Hardware) error {
	bus, err := hw.OneWire(d.spec.Bus)
	if err != nil {
		return err
	}
	addr := d.addr
	if addr == 0 {
		found, err := bus.Search(false)
		if err == nil && len(found) != 1 {
			err = fmt.Errorf("%d devices found: set the address of the one to read", len(found))
		}
		if err != nil {
			bus.Close()
			return fmt.Errorf("1-wire bus %q: looking for the device: %w", d.spec.Bus, err)
		}
		addr = found[0]
	}
	// periph's driver checks the device answers and sets its resolution;
	// run reads the conversions itself (readScratchpad).
	if _, err := ds18b20.New(bus, addr, d.bits); err != nil {
		bus.Close()
		return fmt.Errorf("1-wire bus %q device %s: %w", d.spec.Bus, kernelName(addr), err)
	}
	d.bus, d.at = bus, addr
	return nil
}

func (d *ds18b20Sensor) close() error { return d.bus.Close() }

// run starts a conversion, waits for it on the runner's clock (the
// driver's own Sense would sleep on the real one), then reads the result.
func (d *ds18b20Sensor) run(ctx context.Context, r *runner) error {
	dev := onewire.Dev{Bus: d.bus, Addr: d.at}
	conversion := (94 << (d.bits - 9)) * time.Millisecond
	return r.every(ctx, func(ctx context.Context) ([]Value, error) {
		if err := dev.TxPower([]byte{0x44}, nil); err != nil {
			return nil, fmt.Errorf("1-wire device %s: start conversion: %w", kernelName(d.at), err)
		}
		if !r.sleep(ctx, conversion) {
			return nil, ctx.Err()
		}
		c, err := readScratchpad(dev)
		if err != nil {
			return nil, fmt.Errorf("1-wire device %s: %w", kernelName(d.at), err)
		}
		return []Value{{Name: "temperature", Value: c, Unit: "°C"}}, nil
	})
}

// readScratchpad reads the result of the last conversion in °C. It does
// what periph's LastTemp does and checks more than the CRC: a data line
// held low (a short, a dead sensor) reads nine zero bytes, and the CRC of
// zeros is zero.
func readScratchpad(dev onewire.Dev) (float64, error) {
	var spad [9]byte
	if err := dev.Tx([]byte{0xbe}, spad[:]); err != nil {
		return 0, fmt.Errorf("read scratchpad: %w", err)
	}
	if !onewire.CheckCRC(spad[:]) {
		if spad == [9]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff} {
			return 0, errors.New("scratchpad: the device did not respond")
		}
		return 0, fmt.Errorf("scratchpad % x: its CRC does not match", spad)
	}
	// The datasheets fix these bits: byte 4 is the configuration
	// register (0RR11111) of a DS18B20 or DS1822 and reserved (0xff) on a
	// DS18S20; byte 5 is reserved (0xff) on all three.
	if spad[4]&0x1f != 0x1f || spad[5] != 0xff {
		return 0, fmt.Errorf("scratchpad % x is not a thermometer's (data line held low?)", spad)
	}
	return converted("scratchpad", scratchpadCelsius(byte(dev.Addr), spad))
}

// scratchpadCelsius decodes the temperature: 1/16 °C in bytes 0 and 1,
// but 1/2 °C on a DS18S20, whose COUNT_REMAIN (byte 6) refines it to
// TEMP_READ - 0.25 + (16 - COUNT_REMAIN)/16 (its datasheet, p.6).
func scratchpadCelsius(family byte, spad [9]byte) float64 {
	raw := int16(spad[1])<<8 | int16(spad[0])
	if family == 0x10 && spad[7] != 0 {
		raw = (raw&^1)<<3 - 4 + 16 - int16(spad[6])
	}
	return float64(raw) / 16
}

// converted refuses 85 °C, the power-on value: a thermometer reads it
// when no conversion happened (insufficient pull-up, parasite power).
// A real 85 °C is lost, which periph's driver accepts too.
func converted(source string, c float64) (float64, error) {
	if c == 85 {
		return 0, fmt.Errorf("%s: 85°C, the power-on value: no conversion (insufficient pull-up?)", source)
	}
	return c, nil
}
