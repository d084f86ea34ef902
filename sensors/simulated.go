package sensors

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// simulated is a made-up signal: a waveform of the clock's time, or a
// random walk, scaled to [min, max].
type simulated struct {
	spec  SimulatedSpec
	name  string
	shape func(phase float64) float64 // phase in [0,1) → [0,1]
	rng   *rand.Rand
	walk  float64
	epoch time.Time
}

var waveforms = map[string]func(float64) float64{
	"sine":     func(p float64) float64 { return (1 + math.Sin(2*math.Pi*p)) / 2 },
	"square":   func(p float64) float64 { return math.Floor(2 * p) },
	"triangle": func(p float64) float64 { return 1 - math.Abs(2*p-1) },
	"sawtooth": func(p float64) float64 { return p },
}

func newSimulated(s *SimulatedSpec) (*simulated, error) {
	d := &simulated{spec: *s, name: s.Value}
	if d.name == "" {
		d.name = "value"
	}
	if d.spec.Min == 0 && d.spec.Max == 0 {
		d.spec.Max = 1
	}
	if d.spec.Max < d.spec.Min {
		return nil, fmt.Errorf("max %v is below min %v", d.spec.Max, d.spec.Min)
	}
	if d.spec.Period < 0 {
		return nil, fmt.Errorf("period %v is negative", d.spec.Period)
	}
	if d.spec.Period == 0 {
		d.spec.Period = time.Minute
	}
	switch w := s.Waveform; w {
	case "random_walk":
		if d.spec.Step == 0 {
			d.spec.Step = (d.spec.Max - d.spec.Min) / 100
		}
		d.rng = rand.New(rand.NewPCG(uint64(s.Seed), uint64(s.Seed)>>32|1))
		d.walk = (d.spec.Min + d.spec.Max) / 2
	case "":
		d.shape = waveforms["sine"]
	default:
		if d.shape = waveforms[w]; d.shape == nil {
			return nil, fmt.Errorf("waveform %q is not sine, square, triangle, sawtooth or random_walk", w)
		}
	}
	return d, nil
}

func (d *simulated) open(Hardware) error { return nil }
func (d *simulated) close() error        { return nil }

func (d *simulated) run(ctx context.Context, r *runner) error {
	return r.every(ctx, func(context.Context) ([]Value, error) {
		// Three decimals, like a real sensor's resolution: a demo's
		// records should not carry 20.84229354648067.
		v := math.Round(d.value(r.clock.Now())*1000) / 1000
		return []Value{{Name: d.name, Value: v, Unit: d.spec.Unit}}, nil
	})
}

// value is the signal at t. A waveform's phase is t since the Unix epoch
// modulo the period, so restarts and several Spools agree.
func (d *simulated) value(t time.Time) float64 {
	lo, hi := d.spec.Min, d.spec.Max
	if d.rng != nil {
		d.walk += (2*d.rng.Float64() - 1) * d.spec.Step
		d.walk = min(max(d.walk, lo), hi)
		return d.walk
	}
	phase := float64(t.UnixNano()%int64(d.spec.Period)) / float64(d.spec.Period)
	return lo + (hi-lo)*d.shape(phase)
}
