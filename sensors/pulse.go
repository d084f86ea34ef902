package sensors

import (
	"context"
	"fmt"
	"time"

	"periph.io/x/conn/v3/gpio"
)

type pulse struct {
	spec PulseSpec
	pull gpio.Pull
	edge gpio.Edge
	pin  gpio.PinIO
}

func newPulse(s *PulseSpec) (*pulse, error) {
	p := &pulse{spec: *s}
	var err error
	if p.pull, err = parsePull(s.Pull); err != nil {
		return nil, err
	}
	if p.edge, err = parseEdge(s.Edge, gpio.FallingEdge); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *pulse) open(hw Hardware) error {
	pin, err := hw.Pin(p.spec.Pin)
	if err != nil {
		return err
	}
	if err := pin.In(p.pull, p.edge); err != nil {
		return fmt.Errorf("pin %s: set as input: %w", p.spec.Pin, err)
	}
	p.pin = pin
	return nil
}

func (p *pulse) close() error { return p.pin.Halt() }

// run counts edges over consecutive windows of the interval and emits,
// at the end of each, the count and the rate in Hz. Windows follow each
// other without gaps; after a stall longer than a window (a blocked
// append) the next window starts now rather than emitting empty ones.
func (p *pulse) run(ctx context.Context, r *runner) error {
	stop := context.AfterFunc(ctx, func() { p.pin.Halt() })
	defer stop()
	w := edgeWaiter{pin: p.pin, clock: r.clock, name: p.spec.Pin}
	end := r.clock.Now().Add(r.interval)
	var count int64
	var lastEdge time.Time
	for ctx.Err() == nil {
		now := r.clock.Now()
		if !now.Before(end) {
			r.emit(end, []Value{
				{Name: "count", Value: float64(count)},
				{Name: "rate", Value: float64(count) / r.interval.Seconds(), Unit: "Hz"},
			})
			count = 0
			// The clock again: the append in emit may have blocked for
			// windows the driver did not listen to.
			now = r.clock.Now()
			if end = end.Add(r.interval); !now.Before(end) {
				end = now.Add(r.interval)
			}
			continue
		}
		got, err := w.wait(min(end.Sub(now), pollEdge))
		if err != nil {
			return err
		}
		if got {
			at := r.clock.Now()
			if p.spec.Debounce == 0 || lastEdge.IsZero() || at.Sub(lastEdge) >= p.spec.Debounce {
				count++
				lastEdge = at
			}
		}
	}
	return nil
}
