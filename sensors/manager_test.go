package sensors

import (
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	spoollog "github.com/spoolmq/spool/log"
	"periph.io/x/conn/v3/gpio"
)

// docRecord is the record value of the package doc's example, to the byte.
const docRecord = `{"sensor":"climate","driver":"bme280","time":"2026-12-01T08:00:00.000Z",` +
	`"values":{"humidity":65.3056,"pressure":1009.426953125,"temperature":23.72},` +
	`"units":{"humidity":"%RH","pressure":"hPa","temperature":"°C"}}`

func TestReadingJSONIsThePackageDocExample(t *testing.T) {
	r := Reading{Sensor: "climate", Driver: "bme280", Time: t0.In(time.FixedZone("CET", 3600)), Values: []Value{
		{Name: "temperature", Value: 23.72, Unit: "°C"},
		{Name: "pressure", Value: 1009.426953125, Unit: "hPa"},
		{Name: "humidity", Value: 65.3056, Unit: "%RH"},
	}}
	b, err := r.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != docRecord {
		t.Errorf("value\n%s\nwant\n%s", b, docRecord)
	}
	// Without units (a level), there is no units object; milliseconds
	// are kept.
	r = Reading{Sensor: "door", Driver: "digital_input", Time: t0.Add(1500 * time.Millisecond), Values: levelValues(gpio.High)}
	b, _ = r.MarshalJSON()
	if want := `{"sensor":"door","driver":"digital_input","time":"2026-12-01T08:00:01.500Z","values":{"level":1}}`; string(b) != want {
		t.Errorf("value %s, want %s", b, want)
	}
	rec, err := r.Record()
	if err != nil {
		t.Fatal(err)
	}
	if string(rec.Key) != "door" || string(rec.Value) != string(b) || rec.Timestamp != t0.UnixMilli()+1500 {
		t.Errorf("record %+v", rec)
	}
	if len(rec.Headers) != 1 || rec.Headers[0].Key != "content-type" || string(rec.Headers[0].Value) != "application/json" {
		t.Errorf("headers %+v, want content-type: application/json", rec.Headers)
	}
}

func TestManagerWritesReadingRecords(t *testing.T) {
	l := openLog(t, t.TempDir(), spoollog.Options{})
	env := createTopic(t, l, "env", func(c *spoollog.TopicConfig) { c.Partitions = 3; c.Sync = spoollog.SyncAlways })
	other := createTopic(t, l, "other", nil)
	bus := bmePlayback(0x76, 0x60, 2)
	clk := newClock()
	rig := startManager(t, Options{
		Sensors:  []Spec{{Name: "climate", Topic: "env", Interval: time.Minute, BME280: &BME280Spec{}}},
		Log:      l,
		Hardware: newHW().addI2C("", bus),
		Clock:    clk,
	})

	part := spoollog.KeyPartition([]byte("climate"), 3)
	p := partition(t, env, part)
	recs := waitRecords(t, p, 0, 1)
	r := recs[0]
	if string(r.Key) != "climate" {
		t.Errorf("key %q, want the sensor's name", r.Key)
	}
	if string(r.Value) != docRecord {
		t.Errorf("value\n%s\nwant\n%s", r.Value, docRecord)
	}
	if len(r.Headers) != 1 || r.Headers[0].Key != HeaderContentType || string(r.Headers[0].Value) != ContentType {
		t.Errorf("headers %+v, want content-type: application/json", r.Headers)
	}
	if r.Timestamp != t0.UnixMilli() {
		t.Errorf("timestamp %d, want the reading's time %d", r.Timestamp, t0.UnixMilli())
	}

	// A minute later on the fake clock, the next reading.
	clk.Advance(time.Minute)
	recs = waitRecords(t, p, 0, 2)
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2", len(recs))
	}
	if want := t0.Add(time.Minute).UnixMilli(); recs[1].Timestamp != want {
		t.Errorf("second timestamp %d, want %d", recs[1].Timestamp, want)
	}
	var v struct {
		Sensor, Driver, Time string
		Values               map[string]float64
	}
	if err := json.Unmarshal(recs[1].Value, &v); err != nil {
		t.Fatal(err)
	}
	if v.Time != "2026-12-01T08:01:00.000Z" || v.Values["temperature"] != 23.72 {
		t.Errorf("second value %s", recs[1].Value)
	}

	// Only the sensor's topic, only the key's partition.
	for i := range int32(3) {
		if n := partition(t, env, i).HighWatermark(); i != part && n != 0 {
			t.Errorf("partition %d of env has %d records", i, n)
		}
	}
	if n := partition(t, other, 0).HighWatermark(); n != 0 {
		t.Errorf("topic other has %d records", n)
	}

	// The status counts a reading once its append returned, just after
	// readers see it.
	waitFor(t, "two readings counted", func() bool { return rig.sensor("climate").Readings == 2 })
	st := rig.sensor("climate")
	if st.State != StateRunning || st.Readings != 2 || st.Dropped != 0 || st.Failures != 0 || st.Driver != "bme280" || st.Topic != "env" {
		t.Errorf("status %+v", st)
	}
	if st.LastReading == nil || !st.LastReading.Time.Equal(t0.Add(time.Minute)) || len(st.LastReading.Values) != 3 {
		t.Errorf("last reading %+v", st.LastReading)
	}
	rig.stop()
	if st := rig.sensor("climate"); st.State != StateStopped {
		t.Errorf("state after Run %q, want stopped", st.State)
	}
	if err := bus.Close(); err != nil {
		t.Errorf("playback: %v", err)
	}
}

func TestManagerMissingPinFailsOneSensorOthersGoOn(t *testing.T) {
	l := openLog(t, t.TempDir(), spoollog.Options{})
	tp := createTopic(t, l, "readings", nil)
	p := partition(t, tp, 0)
	clk := newClock()
	hw := newHW()
	rig := startManager(t, Options{
		Sensors: []Spec{
			{Name: "door", Topic: "readings", Digital: &DigitalSpec{Pin: "GPIO5"}},
			{Name: "sim", Topic: "readings", Interval: time.Second, Simulated: &SimulatedSpec{}},
		},
		Log: l, Hardware: hw, Clock: clk,
	})

	waitFor(t, "door to fail", func() bool { return rig.sensor("door").Failures == 1 })
	st := rig.sensor("door")
	if st.State != StateFailed {
		t.Errorf("state %q, want failed", st.State)
	}
	if !strings.Contains(st.LastError, "GPIO5") || !strings.Contains(st.LastError, "no such GPIO line") {
		t.Errorf("last error %q, want one naming pin GPIO5 and what is missing", st.LastError)
	}
	if !st.LastErrorAt.Equal(t0) {
		t.Errorf("last error at %v, want %v", st.LastErrorAt, t0)
	}
	// The first retry is a second away, less up to a fifth (jitter).
	if wait := st.RetryAt.Sub(st.LastErrorAt); wait <= 800*time.Millisecond || wait > time.Second {
		t.Errorf("retry in %v, want (800ms, 1s]", wait)
	}
	waitRecords(t, p, 0, 1) // sim's first reading

	moved := advanceUntil(t, clk, 50*time.Millisecond, "door's second failure", func() bool { return rig.sensor("door").Failures == 2 })
	if moved < 800*time.Millisecond {
		t.Errorf("retried after %v, before the backoff", moved)
	}
	st = rig.sensor("door")
	// The backoff doubles: 2s less up to a fifth.
	if wait := st.RetryAt.Sub(st.LastErrorAt); wait <= 1600*time.Millisecond || wait > 2*time.Second {
		t.Errorf("second retry in %v, want (1.6s, 2s]", wait)
	}
	advanceUntil(t, clk, 50*time.Millisecond, "door's third failure", func() bool { return rig.sensor("door").Failures == 3 })
	if n := hw.count("pin:GPIO5"); n != 3 {
		t.Errorf("GPIO5 asked for %d times, want 3 (once per attempt)", n)
	}

	// sim goes on meanwhile, a reading each second of the clock (the
	// clock may run ahead of its appends: ticks that come while it is
	// busy are not queued).
	advanceUntil(t, clk, 50*time.Millisecond, "sim's readings", func() bool { return rig.sensor("sim").Readings >= 4 })
	sim := rig.sensor("sim")
	if sim.State != StateRunning || sim.Failures != 0 {
		t.Errorf("sim: %+v", sim)
	}
	if st := rig.sensor("door"); st.State != StateFailed && st.State != StateStarting {
		t.Errorf("door: %+v", st)
	}
	recs := waitRecords(t, p, 0, int(sim.Readings))
	for _, r := range recs {
		if string(r.Key) != "sim" {
			t.Errorf("a record of %q in the topic; door never opened", r.Key)
		}
	}

	// The pin appears (the overlay got loaded): the next retry opens it
	// and the door reports its level.
	pin := newWatchedPin("GPIO5", clk, gpio.High)
	hw.addPin("GPIO5", pin)
	failures := rig.sensor("door").Failures
	advanceUntil(t, clk, 50*time.Millisecond, "door to run", func() bool { return rig.sensor("door").State == StateRunning })
	waitFor(t, "door's first reading", func() bool { return rig.sensor("door").Readings == 1 })
	st = rig.sensor("door")
	if st.Failures > failures+1 || st.RetryAt != (time.Time{}) || st.LastReading == nil || st.LastReading.Values[0].Value != 1 {
		t.Errorf("door after the pin appeared: %+v", st)
	}
}

func TestManagerOnFullRejectDropsAndCounts(t *testing.T) {
	l := openLog(t, t.TempDir(), spoollog.Options{DiskBudget: 16 << 10})
	filler := createTopic(t, l, "filler", nil)
	tp := createTopic(t, l, "readings", func(c *spoollog.TopicConfig) { c.OnFull = spoollog.OnFullReject })
	p := partition(t, tp, 0)
	// Fill the budget so that not even a small record fits.
	fp := partition(t, filler, 0)
	for _, size := range []int{1000, 1} {
		for {
			_, err := fp.AppendRecords([]spoollog.Record{{Value: make([]byte, size)}}, spoollog.DefaultBatchOptions)
			if errors.Is(err, spoollog.ErrFull) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	clk := newClock()
	rig := startManager(t, Options{
		Sensors: []Spec{{Name: "tank", Topic: "readings", Interval: time.Second, Simulated: &SimulatedSpec{Waveform: "sawtooth"}}},
		Log:     l, Hardware: newHW(), Clock: clk,
	})

	for i := range 5 {
		if i > 0 {
			clk.Advance(time.Second)
		}
		waitFor(t, "a dropped reading", func() bool { return rig.sensor("tank").Dropped == int64(i+1) })
	}
	st := rig.sensor("tank")
	if st.Readings != 0 || st.State != StateRunning || st.Failures != 0 {
		t.Errorf("status while full: %+v", st)
	}
	if !strings.Contains(st.DropError, "log full") {
		t.Errorf("drop error %q, want the log's ErrFull", st.DropError)
	}
	if st.LastReading == nil || !st.LastReading.Time.Equal(t0.Add(4*time.Second)) {
		t.Errorf("last reading %+v, want the one at t0+4s (dropped, but read)", st.LastReading)
	}
	if hw := p.HighWatermark(); hw != 0 {
		t.Fatalf("%d records stored while full", hw)
	}

	// Room again: the next readings are stored, and only they. The five
	// dropped were not queued to follow.
	if err := l.DeleteTopic("filler"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	recs := waitRecords(t, p, 0, 1)
	clk.Advance(time.Second)
	recs = waitRecords(t, p, 0, 2)
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2", len(recs))
	}
	for i, r := range recs {
		if want := t0.Add(time.Duration(5+i) * time.Second).UnixMilli(); r.Timestamp != want {
			t.Errorf("record %d timestamp t0+%dms, want t0+%dms", i, r.Timestamp-t0.UnixMilli(), want-t0.UnixMilli())
		}
	}
	waitFor(t, "two readings stored", func() bool { return rig.sensor("tank").Readings == 2 })
	if st := rig.sensor("tank"); st.Dropped != 5 {
		t.Errorf("dropped %d after recovery, want still 5", st.Dropped)
	}
}

func TestManagerReplayFinishes(t *testing.T) {
	l := openLog(t, t.TempDir(), spoollog.Options{})
	tp := createTopic(t, l, "replay", nil)
	p := partition(t, tp, 0)
	clk := newClock()
	bad := writeCSV(t, "time,temperature[°C]\n1,20\n2,warm\n")
	rig := startManager(t, Options{
		Sensors: []Spec{
			{Name: "greenhouse", Topic: "replay", Interval: 10 * time.Second, Replay: &ReplaySpec{File: writeCSV(t, replayCSV)}},
			{Name: "broken", Topic: "replay", Interval: 10 * time.Second, Replay: &ReplaySpec{File: bad}},
		},
		Log: l, Hardware: newHW(), Clock: clk,
	})
	waitRecords(t, p, 0, 1)
	clk.Advance(10 * time.Second)
	waitRecords(t, p, 0, 2)
	clk.Advance(10 * time.Second)
	recs := waitRecords(t, p, 0, 3)
	clk.Advance(10 * time.Second)
	waitFor(t, "the replay to finish", func() bool { return rig.sensor("greenhouse").State == StateFinished })
	if st := rig.sensor("greenhouse"); st.Readings != 3 || st.Failures != 0 {
		t.Errorf("status %+v", st)
	}
	var v struct {
		Values map[string]float64
		Units  map[string]string
	}
	if err := json.Unmarshal(recs[2].Value, &v); err != nil {
		t.Fatal(err)
	}
	if v.Values["temperature"] != -3.25 || v.Values["humidity"] != 42 || v.Units["temperature"] != "°C" || len(v.Values) != 3 {
		t.Errorf("third row %s", recs[2].Value)
	}

	waitFor(t, "the broken replay to fail", func() bool { return rig.sensor("broken").Failures >= 1 })
	st := rig.sensor("broken")
	// Retried as the clock moves: failed, or starting again.
	if st.State == StateRunning || !strings.Contains(st.LastError, `data row 2, column temperature: "warm"`) {
		t.Errorf("broken replay: %+v", st)
	}
	// A finished replay is not retried: nothing more, however long.
	clk.Advance(time.Hour)
	if st := rig.sensor("greenhouse"); st.State != StateFinished || st.Readings != 3 {
		t.Errorf("after an hour: %+v", st)
	}
	if n := p.HighWatermark(); n != 3 {
		t.Errorf("%d records, want 3", n)
	}
}

func TestNewChecksSpecs(t *testing.T) {
	l := openLog(t, t.TempDir(), spoollog.Options{})
	createTopic(t, l, "t", nil)
	sim := &SimulatedSpec{}
	_, err := New(Options{Log: l, Clock: newClock(), Hardware: newHW(), Sensors: []Spec{
		{Name: "a", Topic: "t", Simulated: sim},
		{Name: "a", Topic: "t", Simulated: sim},
		{Name: "none", Topic: "t"},
		{Name: "two", Topic: "t", Simulated: sim, BME280: &BME280Spec{}, Digital: &DigitalSpec{Pin: "GPIO1"}},
		{Name: "nowhere", Topic: "missing", Simulated: sim},
		{Name: "coarse", Topic: "t", DS18B20: &DS18B20Spec{Resolution: 7}},
		{Name: "backwards", Topic: "t", Interval: -time.Second, Simulated: sim},
	}, Actuators: []ActuatorSpec{
		{Name: "valve", Topic: "t", Pin: "GPIO2", Initial: "half"},
		{Name: "relay", Topic: "t", Pin: "GPIO3", Start: "middle"},
		{Name: "nopin", Topic: "t"},
		{Name: "lost", Topic: "missing", Pin: "GPIO4"},
	}})
	for _, want := range []string{
		`sensors[1]: a second sensor named "a"`,
		`sensor "none": no driver`,
		`sensor "two": several drivers [bme280 digital_input simulated]: a sensor has one`,
		`sensor "nowhere": topic "missing": unknown topic`,
		`sensor "coarse": ds18b20: resolution 7 is not 9 to 12 bits`,
		`sensor "backwards": interval -1s is negative`,
		`actuators[0] "valve": initial "half" is not off or on`,
		`actuators[1] "relay": start "middle" is not latest or earliest`,
		`actuators[2] "nopin": pin is not set`,
		`actuators[3] "lost": topic "missing": unknown topic`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New: %v\nwant it to say %q", err, want)
		}
	}

	// Valid specs get the defaults.
	m, err := New(Options{Log: l, Sensors: []Spec{{Name: "s", Topic: "t", Simulated: sim}}})
	if err != nil {
		t.Fatal(err)
	}
	if m.sensors[0].spec.Interval != defaultInterval {
		t.Errorf("interval %v, want the default %v", m.sensors[0].spec.Interval, defaultInterval)
	}
	if _, ok := m.opts.Hardware.(*Host); !ok {
		t.Errorf("default hardware %T, want *Host", m.opts.Hardware)
	}
	if got := m.Sensors(); len(got) != 1 || got[0].State != StateStarting || got[0].Driver != "simulated" {
		t.Errorf("status before Run: %+v", got)
	}
}

func TestSensorStatusJSON(t *testing.T) {
	st := SensorStatus{Name: "climate", Driver: "bme280", Topic: "env", State: StateRunning, Readings: 2,
		LastReading: &Reading{Sensor: "climate", Driver: "bme280", Time: t0, Values: []Value{{Name: "temperature", Value: 23.72, Unit: "°C"}, {Name: "level", Value: 1}}}}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"name":"climate","driver":"bme280","topic":"env","state":"running","readings":2,"dropped":0,"failures":0,` +
		`"last_reading":{"time":"2026-12-01T08:00:00Z","values":[{"name":"temperature","value":23.72,"unit":"°C"},{"name":"level","value":1}]}}`
	if string(b) != want {
		t.Errorf("status JSON\n%s\nwant\n%s", b, want)
	}
	b, _ = json.Marshal(&SensorStatus{Name: "x", State: StateFailed, LastError: "gone", LastErrorAt: t0, RetryAt: t0.Add(time.Second)})
	if !strings.Contains(string(b), `"last_error":"gone","last_error_at":"2026-12-01T08:00:00Z","retry_at":"2026-12-01T08:00:01Z"`) || strings.Contains(string(b), "last_reading") {
		t.Errorf("failed status JSON %s", b)
	}
}

// flakyPin is a watched pin whose line can go away: WaitForEdge then
// answers false at once, as a line whose reads fail does.
type flakyPin struct {
	*watchedPin
	dead atomic.Bool
}

func (p *flakyPin) WaitForEdge(timeout time.Duration) bool {
	if p.dead.Load() {
		return false
	}
	return p.watchedPin.WaitForEdge(timeout)
}

func TestManagerLineGoneIsAFailureAndBackoffResets(t *testing.T) {
	l := openLog(t, t.TempDir(), spoollog.Options{})
	createTopic(t, l, "readings", nil)
	clk := newClock()
	pin := &flakyPin{watchedPin: newWatchedPin("GPIO25", clk, gpio.Low)}
	pin.dead.Store(true)
	rig := startManager(t, Options{
		Sensors: []Spec{{Name: "door", Topic: "readings", Digital: &DigitalSpec{Pin: "GPIO25"}}},
		Log:     l, Hardware: newHW().addPin("GPIO25", pin), Clock: clk,
	})

	// The pin opens, but waiting for an edge fails at once, over and
	// over: the sensor fails (it does not spin), and is retried.
	waitFor(t, "door to fail", func() bool { return rig.sensor("door").Failures == 1 })
	st := rig.sensor("door")
	if !strings.Contains(st.LastError, "pin GPIO25: waiting for an edge fails at once") {
		t.Errorf("last error %q", st.LastError)
	}
	// The clock moves only while the sensor waits to be retried: a run on
	// the dead line takes no time on a board, and the clock must not pass
	// while it fails.
	failed := func() bool { return rig.sensor("door").State == StateFailed }
	advancePaced(t, clk, 100*time.Millisecond, "door's second failure", func() bool { return rig.sensor("door").Failures == 2 }, failed)
	advancePaced(t, clk, 100*time.Millisecond, "door's third failure", func() bool { return rig.sensor("door").Failures == 3 }, failed)
	if wait := rig.sensor("door").RetryAt.Sub(rig.sensor("door").LastErrorAt); wait <= 3200*time.Millisecond {
		t.Errorf("third retry in %v, want the backoff doubled to (3.2s, 4s]", wait)
	}

	// The line comes back; the sensor runs for more than the longest
	// backoff, then the line goes again: the backoff starts over at 1s.
	pin.dead.Store(false)
	advancePaced(t, clk, 100*time.Millisecond, "door to run", func() bool { return rig.sensor("door").State == StateRunning }, failed)
	pin.waitingFor(t)
	clk.Advance(2 * maxBackoff)
	pin.dead.Store(true)
	// The driver notices at its next wait: the clock moves while it waits
	// on the live line, not while it fails on the dead one.
	advancePaced(t, clk, 100*time.Millisecond, "door's fourth failure", func() bool { return rig.sensor("door").Failures == 4 }, pin.blocked)
	st = rig.sensor("door")
	if wait := st.RetryAt.Sub(st.LastErrorAt); wait > minBackoff {
		t.Errorf("retry in %v after a long run, want the backoff reset to at most %v", wait, minBackoff)
	}
	if st.Readings < 1 {
		t.Errorf("no reading while the line was there: %+v", st)
	}
}

func TestSpecCheck(t *testing.T) {
	for _, tc := range []struct {
		spec Spec
		want string // "" is valid
	}{
		{Spec{Name: "s", Simulated: &SimulatedSpec{}}, ""},
		{Spec{Name: "s", Replay: &ReplaySpec{File: "/nonexistent.csv"}}, ""}, // the file is not read
		{Spec{Name: "s", Digital: &DigitalSpec{Pin: "GPIO1"}}, ""},           // nor the pin opened
		{Spec{Name: "s"}, "no driver"},
		{Spec{Name: "s", Pulse: &PulseSpec{Edge: "up"}, Replay: &ReplaySpec{}}, "several drivers [pulse_counter replay]"},
		{Spec{Name: "s", Pulse: &PulseSpec{Edge: "up"}}, `edge "up"`},
		{Spec{Name: "s", DS18B20: &DS18B20Spec{Address: "28-zz"}}, "not a 1-wire device name"},
		{Spec{Name: "s", Simulated: &SimulatedSpec{Min: 2, Max: 1}}, "max 1 is below min 2"},
	} {
		err := tc.spec.Check()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("Check(%+v) = %v, want %q", tc.spec, err, tc.want)
		}
	}
}
