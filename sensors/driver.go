package sensors

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jonboulle/clockwork"
	"periph.io/x/conn/v3/gpio"
)

// driver is one kind of sensor. open claims the hardware (its error says
// what is missing); run produces readings until ctx ends, returning nil,
// or until the hardware fails; close releases what open claimed.
type driver interface {
	open(hw Hardware) error
	run(ctx context.Context, r *runner) error
	close() error
}

// runner is what a running driver sees of its sensor.
type runner struct {
	clock    clockwork.Clock
	interval time.Duration
	emit     func(at time.Time, values []Value)
}

// every calls read at once and then each interval, emitting what it
// returns, until ctx ends or read fails.
func (r *runner) every(ctx context.Context, read func(ctx context.Context) ([]Value, error)) error {
	t := r.clock.NewTicker(r.interval)
	defer t.Stop()
	for {
		at := r.clock.Now()
		values, err := read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		r.emit(at, values)
		select {
		case <-ctx.Done():
			return nil
		case <-t.Chan():
		}
	}
}

// sleep waits d on the runner's clock; false when ctx ended first.
func (r *runner) sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-r.clock.After(d):
		return true
	}
}

// newDriver builds the driver of a spec.
func newDriver(s *Spec) (driver, error) {
	switch {
	case s.Digital != nil:
		return newDigital(s.Digital)
	case s.Pulse != nil:
		return newPulse(s.Pulse)
	case s.BME280 != nil:
		return &bme280{spec: *s.BME280}, nil
	case s.DS18B20 != nil && s.DS18B20.Bus == "sysfs":
		return newDS18B20Sysfs(s.DS18B20)
	case s.DS18B20 != nil:
		return newDS18B20(s.DS18B20)
	case s.Simulated != nil:
		return newSimulated(s.Simulated)
	case s.Replay != nil:
		return newReplay(s.Replay)
	}
	_, err := s.driverName()
	return nil, err
}

// parsePull reads up, down or none; "" keeps the line's default.
func parsePull(s string) (gpio.Pull, error) {
	switch strings.ToLower(s) {
	case "":
		return gpio.PullNoChange, nil
	case "up":
		return gpio.PullUp, nil
	case "down":
		return gpio.PullDown, nil
	case "none", "float":
		return gpio.Float, nil
	}
	return 0, fmt.Errorf("pull %q is not up, down or none", s)
}

// parseEdge reads rising, falling or both; "" is def.
func parseEdge(s string, def gpio.Edge) (gpio.Edge, error) {
	switch strings.ToLower(s) {
	case "":
		return def, nil
	case "rising":
		return gpio.RisingEdge, nil
	case "falling":
		return gpio.FallingEdge, nil
	case "both":
		return gpio.BothEdges, nil
	}
	return 0, fmt.Errorf("edge %q is not rising, falling or both", s)
}
