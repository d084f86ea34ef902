package sensors

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"periph.io/x/conn/v3/driver/driverreg"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2creg"
	"periph.io/x/conn/v3/onewire"
	"periph.io/x/conn/v3/onewire/onewirereg"

	// The Linux drivers only, not periph.io/x/host/v3's board drivers:
	// the GPIO character device, /dev/i2c-N, and the kernel's 1-wire
	// master over netlink.
	_ "periph.io/x/host/v3/gpioioctl"
	_ "periph.io/x/host/v3/netlink"
	_ "periph.io/x/host/v3/sysfs"
)

// Host is the board's hardware through periph.io's Linux drivers. The
// drivers are loaded on first use, so an appliance without sensors never
// touches /dev.
type Host struct {
	once  sync.Once
	state *driverreg.State
	err   error
}

func (h *Host) init() {
	h.once.Do(func() { h.state, h.err = driverreg.Init() })
}

// driverFailure is why the named driver did not load, or "".
func (h *Host) driverFailure(name string) string {
	if h.state == nil {
		return ""
	}
	for _, f := range append(h.state.Failed, h.state.Skipped...) {
		if strings.Contains(f.D.String(), name) {
			return f.Err.Error()
		}
	}
	return ""
}

// Pin implements Hardware.
func (h *Host) Pin(name string) (gpio.PinIO, error) {
	line, err := LineName(name)
	if err != nil {
		return nil, err
	}
	h.init()
	if p := gpioreg.ByName(line); p != nil {
		return p, nil
	}
	what := "pin " + name
	if line != name {
		what += " (" + line + ")"
	}
	return nil, fmt.Errorf("%s: %s", what, diagnoseDevice("/dev/gpiochip*", "GPIO chip", "gpio", h.driverFailure("ioctl")))
}

// I2C implements Hardware.
func (h *Host) I2C(bus string) (i2c.BusCloser, error) {
	h.init()
	b, err := i2creg.Open(bus)
	if err == nil {
		return b, nil
	}
	pattern := "/dev/i2c-*"
	if bus != "" && strings.Trim(bus, "0123456789") == "" {
		pattern = "/dev/i2c-" + bus
	}
	return nil, fmt.Errorf("i2c bus %q: %s", bus, diagnoseDevice(pattern, "I2C bus", "i2c", err.Error()))
}

// OneWire implements Hardware.
func (h *Host) OneWire(bus string) (onewire.BusCloser, error) {
	h.init()
	b, err := onewirereg.Open(bus)
	if err == nil {
		return b, nil
	}
	why := err.Error()
	if f := h.driverFailure("netlink"); f != "" {
		why = f
	}
	if _, serr := os.Stat("/sys/bus/w1"); errors.Is(serr, fs.ErrNotExist) {
		why = "/sys/bus/w1 absent: the kernel's 1-wire master is not loaded (dtoverlay=w1-gpio in config.txt on a Raspberry Pi)"
	}
	return nil, fmt.Errorf("1-wire bus %q: %s", bus, why)
}

// diagnoseDevice says why a device node matching pattern gave nothing:
// it is absent, or it exists and this process may not open it.
func diagnoseDevice(pattern, what, group, fallback string) string {
	paths, _ := filepath.Glob(pattern)
	if len(paths) == 0 {
		return fmt.Sprintf("%s absent: this board has no %s, or its kernel driver is not loaded", strings.ReplaceAll(pattern, "*", "0"), what)
	}
	for _, p := range paths {
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			if errors.Is(err, fs.ErrPermission) {
				return fmt.Sprintf("permission denied on %s (run spool as a member of group %s)", p, group)
			}
			return err.Error()
		}
		f.Close()
	}
	if fallback != "" {
		return fallback
	}
	return fmt.Sprintf("not found on %s", strings.Join(paths, ", "))
}
