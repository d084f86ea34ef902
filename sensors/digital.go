package sensors

import (
	"context"
	"fmt"
	"time"

	"periph.io/x/conn/v3/gpio"
)

// pollEdge bounds one wait for an edge, so that a driver whose pin cannot
// be interrupted still notices the end of its context.
const pollEdge = time.Second

type digital struct {
	spec     DigitalSpec
	pull     gpio.Pull
	edge     gpio.Edge
	debounce time.Duration
	pin      gpio.PinIO
}

func newDigital(s *DigitalSpec) (*digital, error) {
	d := &digital{spec: *s, debounce: s.Debounce}
	var err error
	if d.pull, err = parsePull(s.Pull); err != nil {
		return nil, err
	}
	if d.edge, err = parseEdge(s.Edge, gpio.BothEdges); err != nil {
		return nil, err
	}
	if d.debounce == 0 {
		d.debounce = defaultDebounce
	}
	return d, nil
}

func (d *digital) open(hw Hardware) error {
	p, err := hw.Pin(d.spec.Pin)
	if err != nil {
		return err
	}
	// Both edges always: the debounced level is compared with the last
	// one reported, which needs every change, also those not reported.
	if err := p.In(d.pull, gpio.BothEdges); err != nil {
		return fmt.Errorf("pin %s: set as input: %w", d.spec.Pin, err)
	}
	d.pin = p
	return nil
}

func (d *digital) close() error { return d.pin.Halt() }

// run reports each change of level that lasts the debounce time: after
// an edge it waits until the line has been quiet that long, then reads
// it. A bounce that ends where it began reports nothing. The reading's
// time is that of the last edge, when the level became what it is.
func (d *digital) run(ctx context.Context, r *runner) error {
	stop := context.AfterFunc(ctx, func() { d.pin.Halt() })
	defer stop()
	last := d.pin.Read()
	if d.edge == gpio.BothEdges {
		r.emit(r.clock.Now(), levelValues(last))
	}
	w := edgeWaiter{pin: d.pin, clock: r.clock, name: d.spec.Pin}
	for ctx.Err() == nil {
		got, err := w.wait(pollEdge)
		if err != nil {
			return err
		}
		if !got {
			continue
		}
		at := r.clock.Now()
		for ctx.Err() == nil {
			if got, err = w.wait(d.debounce); err != nil {
				return err
			}
			if !got {
				break
			}
			at = r.clock.Now()
		}
		level := d.pin.Read()
		if level == last || ctx.Err() != nil {
			continue
		}
		last = level
		if d.edge == gpio.BothEdges || (d.edge == gpio.RisingEdge) == (level == gpio.High) {
			r.emit(at, levelValues(level))
		}
	}
	return nil
}

func levelValues(l gpio.Level) []Value {
	v := 0.0
	if l == gpio.High {
		v = 1
	}
	return []Value{{Name: "level", Value: v}}
}
