package sensors

import (
	"context"
	"encoding/hex"
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
	dev  *ds18b20.Dev
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
	dev, err := ds18b20.New(bus, addr, d.bits)
	if err != nil {
		bus.Close()
		return fmt.Errorf("1-wire bus %q device %s: %w", d.spec.Bus, kernelName(addr), err)
	}
	d.bus, d.dev, d.at = bus, dev, addr
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
		t, err := d.dev.LastTemp()
		if err != nil {
			return nil, fmt.Errorf("1-wire device %s: %w", kernelName(d.at), err)
		}
		return []Value{{Name: "temperature", Value: celsius(t), Unit: "°C"}}, nil
	})
}
