package sensors

import (
	"context"
	"fmt"
	"strings"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/bmxx80"
)

// bme280Opts is Bosch's setting for weather monitoring (datasheet 3.5.1):
// forced mode, one sample of each, no IIR filter. One reading costs
// about 10ms of the sensor's time and nothing between readings.
var bme280Opts = bmxx80.Opts{Temperature: bmxx80.O1x, Pressure: bmxx80.O1x, Humidity: bmxx80.O1x}

type bme280 struct {
	spec BME280Spec
	bus  i2c.BusCloser
	dev  *bmxx80.Dev
}

func (b *bme280) address() uint16 {
	if b.spec.Address == 0 {
		return 0x76
	}
	return b.spec.Address
}

func (b *bme280) open(hw Hardware) error {
	bus, err := hw.I2C(b.spec.Bus)
	if err != nil {
		return err
	}
	dev, err := bmxx80.NewI2C(bus, b.address(), &bme280Opts)
	if err != nil {
		bus.Close()
		return fmt.Errorf("i2c bus %q address %#x: %w", b.spec.Bus, b.address(), err)
	}
	b.bus, b.dev = bus, dev
	return nil
}

func (b *bme280) close() error {
	b.dev.Halt()
	return b.bus.Close()
}

func (b *bme280) run(ctx context.Context, r *runner) error {
	return r.every(ctx, func(context.Context) ([]Value, error) {
		var e physic.Env
		if err := b.dev.Sense(&e); err != nil {
			return nil, fmt.Errorf("i2c bus %q address %#x: %w", b.spec.Bus, b.address(), err)
		}
		values := []Value{
			{Name: "temperature", Value: celsius(e.Temperature), Unit: "°C"},
			{Name: "pressure", Value: float64(e.Pressure) / float64(100*physic.Pascal), Unit: "hPa"},
		}
		if strings.HasPrefix(b.dev.String(), "BME280") { // a BMP280 has no humidity
			values = append(values, Value{Name: "humidity", Value: float64(e.Humidity) / float64(physic.PercentRH), Unit: "%RH"})
		}
		return values, nil
	})
}

func celsius(t physic.Temperature) float64 {
	return float64(t-physic.ZeroCelsius) / float64(physic.Celsius)
}
