package sensors

import (
	"context"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
)

func pulseRig(t *testing.T, spec PulseSpec, interval time.Duration) (*driverRig, *watchedPin) {
	t.Helper()
	clk := newClock()
	pin := newWatchedPin("GPIO27", clk, gpio.High)
	spec.Pin = "GPIO27"
	p, err := newPulse(&spec)
	if err != nil {
		t.Fatal(err)
	}
	rig := startDriver(t, p, newHW().addPin("GPIO27", pin), clk, interval)
	rig.pin = pin
	pin.waitingFor(t)
	return rig, pin
}

func wantCount(t *testing.T, g got, count int, interval time.Duration, end time.Duration) {
	t.Helper()
	if len(g.values) != 2 || g.values[0].Name != "count" || g.values[1].Name != "rate" || g.values[1].Unit != "Hz" {
		t.Fatalf("reading values %+v, want count and rate [Hz]", g.values)
	}
	if c, _ := g.value("count"); c != float64(count) {
		t.Errorf("count %v, want %d", c, count)
	}
	if r, _ := g.value("rate"); r != float64(count)/interval.Seconds() {
		t.Errorf("rate %v Hz, want %v", r, float64(count)/interval.Seconds())
	}
	if got := g.at.Sub(t0); got != end {
		t.Errorf("reading at t0+%v, want the end of the window t0+%v", got, end)
	}
}

// pulses sends n falling edges, gap apart.
func pulses(t *testing.T, rig *driverRig, pin *watchedPin, n int, gap time.Duration) {
	t.Helper()
	for range n {
		pin.send(t, gpio.Low)
		rig.clk.Advance(gap / 2)
		pin.send(t, gpio.High)
		rig.clk.Advance(gap / 2)
	}
}

func TestPulseCountsEdgesPerWindow(t *testing.T) {
	const interval = 2 * time.Second
	// Edge both counts every change: 7 pulses are 14 edges.
	rig, pin := pulseRig(t, PulseSpec{Edge: "both"}, interval)

	pulses(t, rig, pin, 7, 100*time.Millisecond)
	rig.none("before the end of the window")
	wantCount(t, rig.next(10*time.Millisecond), 14, interval, interval)

	// The next window follows at once: its edges, its reading, 7 Hz.
	pulses(t, rig, pin, 7, 200*time.Millisecond) // 14 edges in 2s
	wantCount(t, rig.next(10*time.Millisecond), 14, interval, 2*interval)

	// A window without edges is a reading of zero.
	wantCount(t, rig.next(10*time.Millisecond), 0, interval, 3*interval)
}

func TestPulseFallingEdgesByDefault(t *testing.T) {
	const interval = time.Second
	rig, pin := pulseRig(t, PulseSpec{}, interval)
	for range 5 {
		pin.send(t, gpio.Low)
		rig.clk.Advance(50 * time.Millisecond)
	}
	wantCount(t, rig.next(10*time.Millisecond), 5, interval, interval)
	for range 3 {
		pin.send(t, gpio.Low)
		rig.clk.Advance(100 * time.Millisecond)
	}
	wantCount(t, rig.next(10*time.Millisecond), 3, interval, 2*interval)
}

func TestPulseDebounceIgnoresCloseEdges(t *testing.T) {
	const interval = time.Second
	rig, pin := pulseRig(t, PulseSpec{Debounce: 10 * time.Millisecond}, interval)

	// Edges at 100, 106 (6ms after the last counted: ignored), 112 (12ms
	// after the last counted, though 6ms after the last edge: counted),
	// 115 (ignored), 122 (10ms: counted) and 500ms (counted).
	rig.clk.Advance(100 * time.Millisecond)
	for _, gap := range []time.Duration{6, 6, 3, 7, 378} {
		pin.send(t, gpio.Low)
		rig.clk.Advance(gap * time.Millisecond)
	}
	pin.send(t, gpio.Low)
	wantCount(t, rig.next(10*time.Millisecond), 4, interval, interval)

	// The debounce reaches across windows: an edge just after a window's
	// end but closer than the debounce to the last one counted in it is
	// ignored.
	const debounce = 100 * time.Millisecond
	rig, pin = pulseRig(t, PulseSpec{Debounce: debounce}, interval)
	rig.clk.Advance(interval - 2*time.Millisecond)
	pin.send(t, gpio.Low)
	counted := rig.clk.Now()
	wantCount(t, rig.next(time.Millisecond), 1, interval, interval)
	since := rig.clk.Since(counted)
	if since >= debounce {
		t.Fatalf("the window's reading came %v after its last edge, want < %v to test the debounce", since, debounce)
	}
	pin.send(t, gpio.Low) // under the debounce after the last counted edge
	rig.clk.Advance(debounce - since)
	pin.send(t, gpio.Low) // the debounce after the counted one: counted
	wantCount(t, rig.next(10*time.Millisecond), 1, interval, 2*interval)
}

func TestPulseStallStartsTheNextWindowNow(t *testing.T) {
	const interval = time.Second
	rig, pin := pulseRig(t, PulseSpec{}, interval)
	pin.send(t, gpio.Low)
	// The driver is held past three windows (as by an append blocked on
	// the disk): it emits the window that ended, not empty ones after it.
	rig.clk.Advance(3*interval + 500*time.Millisecond)
	wantCount(t, rig.now(), 1, interval, interval)
	pin.waitingFor(t)
	rig.none("after a stall")
	// The next window started when the driver noticed, at 3.5s.
	pin.send(t, gpio.Low)
	pin.send(t, gpio.Low)
	wantCount(t, rig.next(10*time.Millisecond), 2, interval, 3*interval+500*time.Millisecond+interval)
}

func TestPulseSpecErrors(t *testing.T) {
	if _, err := newPulse(&PulseSpec{Pin: "GPIO1", Edge: "sideways"}); err == nil {
		t.Error("edge sideways accepted")
	}
	if _, err := newPulse(&PulseSpec{Pin: "GPIO1", Pull: "strong"}); err == nil {
		t.Error("pull strong accepted")
	}
	p, err := newPulse(&PulseSpec{Pin: "GPIO1"})
	if err != nil {
		t.Fatal(err)
	}
	if p.edge != gpio.FallingEdge {
		t.Errorf("default edge %s, want falling", p.edge)
	}
}

// After an append that blocks inside emit for longer than a window, the
// next window starts when emit returns: no window of 0 counts is emitted
// for a span in which the driver was not listening.
func TestPulseBlockedAppendEmitsNoEmptyWindow(t *testing.T) {
	const interval = time.Second
	clk := newClock()
	pin := newWatchedPin("GPIO27", clk, gpio.High)
	p, err := newPulse(&PulseSpec{Pin: "GPIO27"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.open(newHW().addPin("GPIO27", pin)); err != nil {
		t.Fatal(err)
	}
	readings := make(chan got, 10)
	first := true
	r := &runner{clock: clk, interval: interval, emit: func(at time.Time, v []Value) {
		readings <- got{at, v}
		if first {
			first = false
			clk.Advance(3 * interval) // the append blocks for three windows
		}
	}}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.run(ctx, r) }()
	defer func() {
		cancel()
		advanceUntil(t, clk, 100*time.Millisecond, "the driver to stop", func() bool {
			select {
			case <-done:
				return true
			default:
				return false
			}
		})
	}()
	pin.send(t, gpio.Low)
	clk.Advance(interval)
	g := <-readings
	if c, _ := g.value("count"); c != 1 || g.at != t0.Add(interval) {
		t.Fatalf("first window: %+v", g)
	}
	select {
	case g := <-readings:
		t.Errorf("after an append blocked for 3 windows, a reading at t0+%v with %v: a window the driver never listened to", g.at.Sub(t0), g.values)
	case <-time.After(500 * time.Millisecond):
	}
}
