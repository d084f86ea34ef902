package sensors

import (
	"strings"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
)

// digitalRig opens a digital input on GPIO17, a watched gpiotest.Pin
// starting at level, and runs it.
func digitalRig(t *testing.T, spec DigitalSpec, level gpio.Level) (*driverRig, *watchedPin) {
	t.Helper()
	clk := newClock()
	pin := newWatchedPin("GPIO17", clk, level)
	spec.Pin = "GPIO17"
	d, err := newDigital(&spec)
	if err != nil {
		t.Fatal(err)
	}
	rig := startDriver(t, d, newHW().addPin("GPIO17", pin), clk, time.Second)
	rig.pin = pin
	pin.waitingFor(t)
	return rig, pin
}

func wantLevel(t *testing.T, g got, level float64, at time.Duration) {
	t.Helper()
	if len(g.values) != 1 || g.values[0].Name != "level" || g.values[0].Unit != "" {
		t.Fatalf("reading values %+v, want one unitless level", g.values)
	}
	if g.values[0].Value != level {
		t.Errorf("level %v, want %v", g.values[0].Value, level)
	}
	if got := g.at.Sub(t0); got != at {
		t.Errorf("reading at t0+%v, want t0+%v", got, at)
	}
}

// waitQuiet moves the clock until the driver has finished with its last
// edge (the debounce ran out, the level was compared) and waits for the
// next edge again.
func waitQuiet(t *testing.T, rig *driverRig, pin *watchedPin) {
	t.Helper()
	advancePaced(t, rig.clk, time.Millisecond, "the driver to be idle again", func() bool {
		taken, waiting, timeout := pin.state()
		return taken == pin.sentCount() && waiting && timeout == pollEdge
	}, pin.blocked)
}

func TestDigitalBounceDebouncedToOneReading(t *testing.T) {
	rig, pin := digitalRig(t, DigitalSpec{Debounce: 20 * time.Millisecond}, gpio.Low)
	// edge both: the level at start is a reading.
	wantLevel(t, rig.now(), 0, 0)

	rig.clk.Advance(100 * time.Millisecond)
	pin.send(t, gpio.High) // t0+100ms
	rig.clk.Advance(5 * time.Millisecond)
	pin.send(t, gpio.Low) // t0+105ms: a bounce
	rig.clk.Advance(5 * time.Millisecond)
	pin.send(t, gpio.High) // t0+110ms: the last edge
	rig.clk.Advance(19 * time.Millisecond)
	rig.none("19ms after the last edge, within the 20ms debounce")

	g := rig.next(time.Millisecond)
	// The reading is the time of the last edge, when the level became
	// what it is, not the end of the debounce.
	wantLevel(t, g, 1, 110*time.Millisecond)
	if since := rig.clk.Since(t0.Add(110 * time.Millisecond)); since < 20*time.Millisecond {
		t.Errorf("reading emitted %v after the last edge, before the 20ms debounce", since)
	}
	waitQuiet(t, rig, pin)
	rig.none("after the debounced change")

	// Back down, cleanly: one reading, level 0.
	rig.clk.Advance(time.Second / 2)
	at := rig.clk.Since(t0)
	pin.send(t, gpio.Low)
	wantLevel(t, rig.next(time.Millisecond), 0, at)
	waitQuiet(t, rig, pin)
	rig.none("after the second change")
}

func TestDigitalBounceBackToPreviousLevelIsNoReading(t *testing.T) {
	rig, pin := digitalRig(t, DigitalSpec{Debounce: 20 * time.Millisecond}, gpio.Low)
	wantLevel(t, rig.now(), 0, 0)

	rig.clk.Advance(50 * time.Millisecond)
	pin.send(t, gpio.High)
	rig.clk.Advance(10 * time.Millisecond)
	pin.send(t, gpio.Low) // back where it began, within the debounce
	waitQuiet(t, rig, pin)
	rig.none("a bounce that ends at the previous level")

	// A real change afterwards is reported.
	rig.clk.Advance(time.Second)
	at := rig.clk.Since(t0)
	pin.send(t, gpio.High)
	wantLevel(t, rig.next(time.Millisecond), 1, at)
}

func TestDigitalRisingOnlyReportsChangesToHigh(t *testing.T) {
	rig, pin := digitalRig(t, DigitalSpec{Edge: "rising", Debounce: 10 * time.Millisecond}, gpio.Low)
	// Not both: the initial level is no reading.
	rig.none("start with edge rising")

	var want []time.Duration
	for i := range 3 {
		rig.clk.Advance(200 * time.Millisecond)
		want = append(want, rig.clk.Since(t0))
		pin.send(t, gpio.High)
		waitQuiet(t, rig, pin)
		wantLevel(t, rig.now(), 1, want[i])

		rig.clk.Advance(200 * time.Millisecond)
		pin.send(t, gpio.Low)
		waitQuiet(t, rig, pin)
		rig.none("a change to low with edge rising")
	}
}

func TestDigitalFallingOnlyReportsChangesToLow(t *testing.T) {
	rig, pin := digitalRig(t, DigitalSpec{Edge: "falling"}, gpio.High)
	rig.none("start with edge falling")

	rig.clk.Advance(time.Second)
	pin.send(t, gpio.Low)
	waitQuiet(t, rig, pin)
	wantLevel(t, rig.now(), 0, time.Second)

	rig.clk.Advance(time.Second)
	pin.send(t, gpio.High)
	waitQuiet(t, rig, pin)
	rig.none("a change to high with edge falling")
}

func TestDigitalInitialLevelAndDefaultDebounce(t *testing.T) {
	rig, pin := digitalRig(t, DigitalSpec{}, gpio.High)
	wantLevel(t, rig.now(), 1, 0)

	// The default debounce is 20ms: a change lasting 15ms is a bounce.
	rig.clk.Advance(time.Second)
	pin.send(t, gpio.Low)
	rig.clk.Advance(15 * time.Millisecond)
	pin.send(t, gpio.High)
	waitQuiet(t, rig, pin)
	rig.none("a 15ms dip with the default debounce")

	start := rig.clk.Now()
	pin.send(t, gpio.Low)
	g := rig.next(time.Millisecond)
	wantLevel(t, g, 0, start.Sub(t0))
	if d := rig.clk.Since(start); d < defaultDebounce {
		t.Errorf("reading after %v, before the default debounce %v", d, defaultDebounce)
	}
}

func TestDigitalPullUpSetsTheLine(t *testing.T) {
	clk := newClock()
	pin := newWatchedPin("GPIO4", clk, gpio.Low)
	d, err := newDigital(&DigitalSpec{Pin: "GPIO4", Pull: "up"})
	if err != nil {
		t.Fatal(err)
	}
	rig := startDriver(t, d, newHW().addPin("GPIO4", pin), clk, time.Second)
	// gpiotest.Pin.In with PullUp raises the line: the first reading is 1.
	wantLevel(t, rig.now(), 1, 0)
	if p := pin.Pull(); p != gpio.PullUp {
		t.Errorf("pull %s, want up", p)
	}
}

func TestDigitalSpecErrors(t *testing.T) {
	for _, tc := range []struct {
		spec DigitalSpec
		want string
	}{
		{DigitalSpec{Pin: "GPIO1", Pull: "sideways"}, `pull "sideways" is not up, down or none`},
		{DigitalSpec{Pin: "GPIO1", Edge: "up"}, `edge "up" is not rising, falling or both`},
	} {
		if _, err := newDigital(&tc.spec); err == nil || err.Error() != tc.want {
			t.Errorf("newDigital(%+v): %v, want %q", tc.spec, err, tc.want)
		}
	}
	d, err := newDigital(&DigitalSpec{Pin: "GPIO99"})
	if err != nil {
		t.Fatal(err)
	}
	err = d.open(newHW())
	if err == nil || !strings.Contains(err.Error(), "GPIO99") {
		t.Errorf("open of a missing pin: %v, want an error naming GPIO99", err)
	}
}

func TestParsePullAndEdge(t *testing.T) {
	pulls := map[string]gpio.Pull{"": gpio.PullNoChange, "up": gpio.PullUp, "Down": gpio.PullDown, "none": gpio.Float, "float": gpio.Float}
	for s, want := range pulls {
		if got, err := parsePull(s); err != nil || got != want {
			t.Errorf("parsePull(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	edges := map[string]gpio.Edge{"": gpio.FallingEdge, "rising": gpio.RisingEdge, "FALLING": gpio.FallingEdge, "both": gpio.BothEdges}
	for s, want := range edges {
		if got, err := parseEdge(s, gpio.FallingEdge); err != nil || got != want {
			t.Errorf("parseEdge(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
}
