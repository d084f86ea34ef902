package sensors

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSimulatedWaveformsAtKnownPhases(t *testing.T) {
	const period = 4 * time.Second
	// The phase is the time since the Unix epoch modulo the period: a
	// whole number of periods after the epoch is phase 0.
	base := time.Unix(0, 0).Add(1_000_000 * period)
	want := map[string][4]float64{ // at phases 0, 1/4, 1/2, 3/4 of [0,1]
		"sine":     {0.5, 1, 0.5, 0},
		"square":   {0, 0, 1, 1},
		"triangle": {0, 0.5, 1, 0.5},
		"sawtooth": {0, 0.25, 0.5, 0.75},
	}
	for name, shape := range want {
		d, err := newSimulated(&SimulatedSpec{Waveform: name, Min: -10, Max: 30, Period: period, Unit: "°C"})
		if err != nil {
			t.Fatal(err)
		}
		for i, w := range shape {
			at := base.Add(time.Duration(i) * period / 4)
			if got, want := d.value(at), -10+40*w; math.Abs(got-want) > 1e-9 {
				t.Errorf("%s at phase %d/4: %v, want %v", name, i, got, want)
			}
		}
		if name == "square" {
			// The step is at half the period.
			for frac, w := range map[float64]float64{0.499: 0, 0.5: 1, 0.999: 1, 1: 0} {
				at := base.Add(time.Duration(frac * float64(period)))
				if got := d.value(at); got != -10+40*w {
					t.Errorf("square at phase %v: %v, want %v", frac, got, -10+40*w)
				}
			}
		}
		// One period later, the same value.
		if a, b := d.value(base.Add(period/8)), d.value(base.Add(period+period/8)); math.Abs(a-b) > 1e-9 {
			t.Errorf("%s is not periodic: %v then %v", name, a, b)
		}
	}

	// Defaults: sine, 0 to 1, a minute, named value.
	d, err := newSimulated(&SimulatedSpec{})
	if err != nil {
		t.Fatal(err)
	}
	if d.name != "value" || d.spec.Period != time.Minute || d.spec.Min != 0 || d.spec.Max != 1 {
		t.Errorf("defaults: name %q, period %v, range [%v, %v]", d.name, d.spec.Period, d.spec.Min, d.spec.Max)
	}
	if got := d.value(t0.Add(15 * time.Second)); math.Abs(got-1) > 1e-9 { // t0 is whole minutes
		t.Errorf("default sine a quarter minute in: %v, want 1", got)
	}
}

func TestSimulatedRunEmitsEachInterval(t *testing.T) {
	clk := newClock() // t0 is a whole number of minutes after the epoch
	d, err := newSimulated(&SimulatedSpec{Waveform: "sawtooth", Value: "level", Unit: "cm", Min: 0, Max: 60, Period: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	rig := startDriver(t, d, newHW(), clk, 15*time.Second)
	for i := range 4 {
		if i > 0 {
			clk.Advance(15 * time.Second)
		}
		g := rig.now()
		if want := t0.Add(time.Duration(i) * 15 * time.Second); g.at != want {
			t.Errorf("reading %d at %v, want %v", i, g.at, want)
		}
		if len(g.values) != 1 || g.values[0] != (Value{Name: "level", Value: float64(15 * i), Unit: "cm"}) {
			t.Errorf("reading %d: %+v, want level %d cm", i, g.values, 15*i)
		}
	}
}

func TestSimulatedRandomWalk(t *testing.T) {
	spec := SimulatedSpec{Waveform: "random_walk", Min: 10, Max: 12, Seed: 42}
	walk := func(spec SimulatedSpec, n int) []float64 {
		d, err := newSimulated(&spec)
		if err != nil {
			t.Fatal(err)
		}
		var out []float64
		for i := range n {
			out = append(out, d.value(t0.Add(time.Duration(i)*time.Second)))
		}
		return out
	}
	a := walk(spec, 5000)
	b := walk(spec, 5000)
	prev := 11.0 // a walk starts in the middle
	lo, hi := math.Inf(1), math.Inf(-1)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("step %d: %v then %v with the same seed", i, a[i], b[i])
		}
		if a[i] < 10 || a[i] > 12 {
			t.Fatalf("step %d: %v outside [10, 12]", i, a[i])
		}
		// The default step is a hundredth of the range.
		if math.Abs(a[i]-prev) > 0.02+1e-12 {
			t.Fatalf("step %d: moved %v, more than the step 0.02", i, a[i]-prev)
		}
		prev = a[i]
		lo, hi = min(lo, a[i]), max(hi, a[i])
	}
	if hi-lo < 0.2 {
		t.Errorf("the walk stayed within [%v, %v]: it does not walk", lo, hi)
	}
	spec.Seed = 43
	if c := walk(spec, 50); c[49] == a[49] && c[10] == a[10] {
		t.Errorf("seeds 42 and 43 walk alike")
	}

	// A large step is clamped to the bounds, which it reaches.
	spec = SimulatedSpec{Waveform: "random_walk", Min: -1, Max: 1, Step: 5, Seed: 7}
	atBound := 0
	for i, v := range walk(spec, 200) {
		if v < -1 || v > 1 {
			t.Fatalf("step %d: %v outside [-1, 1]", i, v)
		}
		if v == -1 || v == 1 {
			atBound++
		}
	}
	if atBound == 0 {
		t.Error("a step of 5 in [-1, 1] never reached a bound")
	}
}

func TestSimulatedSpecErrors(t *testing.T) {
	for _, tc := range []struct {
		spec SimulatedSpec
		want string
	}{
		{SimulatedSpec{Waveform: "noise"}, `waveform "noise" is not`},
		{SimulatedSpec{Min: 5, Max: 1}, "max 1 is below min 5"},
	} {
		if _, err := newSimulated(&tc.spec); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("newSimulated(%+v): %v, want %q", tc.spec, err, tc.want)
		}
	}
}

func writeCSV(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "data.csv")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const replayCSV = `# a recording of the greenhouse
time, temperature[°C], humidity [%RH], door
2026-01-01T00:00:00Z, 20.5, 40, 0
2026-01-01T00:00:10Z, 21, 41.5, 1
2026-01-01T00:00:20Z, -3.25, 42, 0
`

func TestReplayRowsOnePerInterval(t *testing.T) {
	for _, loop := range []bool{false, true} {
		clk := newClock()
		d, err := newReplay(&ReplaySpec{File: writeCSV(t, replayCSV), Loop: loop})
		if err != nil {
			t.Fatal(err)
		}
		rig := startDriver(t, d, newHW(), clk, 10*time.Second)
		rows := [][3]float64{{20.5, 40, 0}, {21, 41.5, 1}, {-3.25, 42, 0}}
		for i := range 5 {
			if i > 0 {
				clk.Advance(10 * time.Second)
			}
			if !loop && i == 3 {
				// Every row sent: run ends with errReplayDone, no reading.
				var err error
				waitFor(t, "the replay to end", func() bool {
					select {
					case err = <-rig.done:
						rig.cancel()
						rig.cancel = nil
						return true
					default:
						return false
					}
				})
				if err != errReplayDone {
					t.Errorf("run after the last row: %v, want errReplayDone", err)
				}
				rig.none("after the last row")
				break
			}
			g := rig.now()
			want := []Value{
				{Name: "temperature", Unit: "°C", Value: rows[i%3][0]},
				{Name: "humidity", Unit: "%RH", Value: rows[i%3][1]},
				{Name: "door", Value: rows[i%3][2]},
			}
			if len(g.values) != len(want) {
				t.Fatalf("loop %v row %d: %+v, want %+v (the time column skipped)", loop, i, g.values, want)
			}
			for j := range want {
				if g.values[j] != want[j] {
					t.Errorf("loop %v row %d: %+v, want %+v", loop, i, g.values, want)
				}
			}
			if wantAt := t0.Add(time.Duration(i) * 10 * time.Second); g.at != wantAt {
				t.Errorf("row %d at %v, want %v", i, g.at, wantAt)
			}
		}
	}
}

func TestReplayFileErrors(t *testing.T) {
	if _, err := newReplay(&ReplaySpec{}); err == nil {
		t.Error("a replay without a file was accepted")
	}
	for _, tc := range []struct{ name, csv, want string }{
		{"bad cell", "time,temperature[°C],humidity\nx,1,2\ny,3,4\nz,5,wet\n", `data row 3, column humidity: "wet" is not a number`},
		{"empty cell", "temperature\n1\n\"\"\n", `data row 2, column temperature: "" is not a number`},
		{"header only", "temperature,humidity\n", "a header row and at least one row of values are needed"},
		{"unnamed column", "temperature,,humidity\n1,2,3\n", "column 2 has no name"},
		{"ragged row", "a,b\n1,2\n3\n", "wrong number of fields"},
		// ParseFloat takes these, JSON has no way to write them: every
		// such row would be a reading the log never gets.
		{"NaN", "a,b\n1,2\n3,NaN\n", `data row 2, column b: "NaN" is not a number`},
		{"infinity", "a,b\n-Inf,2\n", `data row 1, column a: "-Inf" is not a number`},
	} {
		path := writeCSV(t, tc.csv)
		d, err := newReplay(&ReplaySpec{File: path})
		if err != nil {
			t.Fatal(err)
		}
		err = d.open(nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: open: %v, want an error naming the file and %q", tc.name, err, tc.want)
		}
	}
	d, _ := newReplay(&ReplaySpec{File: filepath.Join(t.TempDir(), "missing.csv")})
	if err := d.open(nil); err == nil || !strings.Contains(err.Error(), "missing.csv") {
		t.Errorf("open of a missing file: %v", err)
	}
}
