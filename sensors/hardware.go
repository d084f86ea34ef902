package sensors

import (
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/onewire"
)

// Hardware hands out the pins and buses the sensors use. Host is the
// board's own (periph.io's Linux drivers); tests give periph.io's fakes.
// Every error names what is missing, so that the sensor's error can say
// which pin or bus and why.
type Hardware interface {
	// Pin returns a GPIO line by name: its line name (GPIO17), or a
	// Raspberry Pi header position (P1_11).
	Pin(name string) (gpio.PinIO, error)
	// I2C opens an I2C bus by number or name; "" is the first bus.
	I2C(bus string) (i2c.BusCloser, error)
	// OneWire opens a 1-wire bus; "" is the first bus.
	OneWire(bus string) (onewire.BusCloser, error)
}
