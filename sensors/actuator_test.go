package sensors

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	spoollog "github.com/spoolmq/spool/log"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
)

type actuatorRig struct {
	*managerRig
	l   *spoollog.Log
	cmd *spoollog.Topic
	hw  *fakeHW
}

// startActuators runs specs on topic cmd of l, with the pins of hw.
func startActuators(t *testing.T, l *spoollog.Log, hw *fakeHW, clk *clockwork.FakeClock, specs ...ActuatorSpec) *actuatorRig {
	t.Helper()
	tp, err := l.Topic("cmd")
	if err != nil {
		t.Fatal(err)
	}
	rig := &actuatorRig{managerRig: startManager(t, Options{Actuators: specs, Log: l, Hardware: hw, Clock: clk}), l: l, cmd: tp, hw: hw}
	for _, s := range specs {
		rig.following(s.Name)
	}
	return rig
}

// following waits until the actuator runs and has stored its position in
// every partition: from then on every command written is applied, also
// with start: latest.
func (rig *actuatorRig) following(name string) {
	rig.t.Helper()
	a := &actuator{spec: ActuatorSpec{Name: name, Topic: "cmd"}}
	waitFor(rig.t, "actuator "+name+" to follow its topic", func() bool {
		if rig.actuator(name).State != StateRunning {
			return false
		}
		for _, p := range rig.cmd.Partitions() {
			if _, ok, err := rig.l.Meta().GetCursor(nsActuators, a.cursorKey(p.ID())); err != nil || !ok {
				return false
			}
		}
		return true
	})
}

func (rig *actuatorRig) send(key, value string) int64 {
	rig.t.Helper()
	return appendValue(rig.t, rig.cmd, key, value)
}

// stored is the actuator's stored state and position in partition 0.
func stored(t *testing.T, l *spoollog.Log, name string) (state string, next int64) {
	t.Helper()
	a := &actuator{spec: ActuatorSpec{Name: name, Topic: "cmd"}}
	v, ok, err := l.Meta().GetCursor(nsActuators, a.stateKey())
	if err != nil {
		t.Fatal(err)
	}
	if ok {
		state = string(v)
	}
	v, ok, err = l.Meta().GetCursor(nsActuators, a.cursorKey(0))
	if err != nil || !ok || len(v) != 8 {
		t.Fatalf("position of %s: %x %v %v", name, v, ok, err)
	}
	return state, int64(binary.BigEndian.Uint64(v))
}

// wantOutputs waits until pin was driven len(want) times (the status
// counts a command before the pin is driven), then compares.
func wantOutputs(t *testing.T, pin *watchedPin, want ...gpio.Level) {
	t.Helper()
	waitFor(t, fmt.Sprintf("pin %s to be driven %d times", pin.N, len(want)), func() bool { return len(pin.outputs()) >= len(want) })
	if got := pin.outputs(); !slices.Equal(got, want) {
		t.Errorf("pin %s driven %v, want %v", pin.N, got, want)
	}
}

func actuatorLog(t *testing.T, dir string) *spoollog.Log {
	t.Helper()
	l := openLog(t, dir, spoollog.Options{})
	if _, err := l.Topic("cmd"); err != nil {
		createTopic(t, l, "cmd", nil)
	}
	return l
}

func TestActuatorStateCommands(t *testing.T) {
	l := actuatorLog(t, t.TempDir())
	clk := newClock()
	pin := newWatchedPin("GPIO22", clk, gpio.High)
	hw := newHW().addPin("GPIO22", pin)
	// Written before the first start: with start latest, not applied.
	old := appendValue(t, mustTopic(t, l, "cmd"), "", `{"state":"on"}`)
	rig := startActuators(t, l, hw, clk, ActuatorSpec{Name: "pump", Topic: "cmd", Pin: "GPIO22"})

	// The first start drives the initial state, off.
	wantOutputs(t, pin, gpio.Low)
	if st := rig.actuator("pump"); st.Output != "off" || st.Applied != 0 || st.LastCommand != -1 || st.Pin != "GPIO22" || st.Topic != "cmd" {
		t.Errorf("status at start: %+v", st)
	}
	if _, next := stored(t, l, "pump"); next != old+1 {
		t.Errorf("stored position %d at the first start, want the end %d", next, old+1)
	}

	on := rig.send("", `{"state":"on"}`)
	waitFor(t, "the pump on", func() bool { return rig.actuator("pump").Applied == 1 })
	wantOutputs(t, pin, gpio.Low, gpio.High)
	if pin.level() != gpio.High {
		t.Errorf("pin %s after on", pin.level())
	}
	if st := rig.actuator("pump"); st.Output != "on" || st.LastCommand != on {
		t.Errorf("status after on: %+v", st)
	}
	if state, next := stored(t, l, "pump"); state != "on" || next != on+1 {
		t.Errorf("stored %q at %d, want on at %d", state, next, on+1)
	}

	off := rig.send("", `{"state":"off"}`)
	waitFor(t, "the pump off", func() bool { return rig.actuator("pump").Applied == 2 })
	// Each command drove the pin exactly once.
	wantOutputs(t, pin, gpio.Low, gpio.High, gpio.Low)
	if pin.level() != gpio.Low {
		t.Errorf("pin %s after off", pin.level())
	}
	if st := rig.actuator("pump"); st.Output != "off" || st.LastCommand != off || st.Invalid != 0 {
		t.Errorf("status after off: %+v", st)
	}
}

func TestActuatorPulse(t *testing.T) {
	l := actuatorLog(t, t.TempDir())
	clk := newClock()
	pin := newWatchedPin("GPIO23", clk, gpio.Low)
	rig := startActuators(t, l, newHW().addPin("GPIO23", pin), clk, ActuatorSpec{Name: "bell", Topic: "cmd", Pin: "GPIO23"})

	for _, tc := range []struct {
		cmd    string
		length time.Duration
	}{{`{"pulse":"500ms"}`, 500 * time.Millisecond}, {`{"pulse_ms":250}`, 250 * time.Millisecond}} {
		applied := rig.actuator("bell").Applied
		outs := len(pin.outputs())
		rig.send("", tc.cmd)
		waitFor(t, "the pulse to start", func() bool { return pin.level() == gpio.High })
		// The pulse's timer is the only one on the fake clock (no
		// gpiotest WaitForEdge here leaves stale ones): once it is set,
		// the clock is moved exactly.
		if err := clk.BlockUntilContext(ctxDeadline(t), 1); err != nil {
			t.Fatalf("%s: no pulse timer: %v", tc.cmd, err)
		}
		clk.Advance(tc.length - time.Millisecond)
		if pin.level() != gpio.High {
			t.Fatalf("%s: pin low %v into the pulse", tc.cmd, tc.length-time.Millisecond)
		}
		clk.Advance(time.Millisecond)
		waitFor(t, "the pulse to end", func() bool { return pin.level() == gpio.Low })
		if got := pin.outputs()[outs:]; !slices.Equal(got, []gpio.Level{gpio.High, gpio.Low}) {
			t.Errorf("%s: pin driven %v, want high then low", tc.cmd, got)
		}
		waitFor(t, "the pulse counted", func() bool { return rig.actuator("bell").Applied == applied+1 })
		if st := rig.actuator("bell"); st.Output != "off" {
			t.Errorf("output %q after a pulse, want off", st.Output)
		}
		if state, _ := stored(t, l, "bell"); state != "off" {
			t.Errorf("stored state %q after a pulse, want off", state)
		}
	}
}

func TestActuatorSkipsInvalidCommands(t *testing.T) {
	l := actuatorLog(t, t.TempDir())
	clk := newClock()
	pin := newWatchedPin("GPIO24", clk, gpio.Low)
	tp := mustTopic(t, l, "cmd")
	invalid := []string{
		`not json`,
		`{"state":"maybe"}`,
		`{"pulse":"2m"}`, // over max_pulse
		`{"pulse":"-1s"}`,
		`{"pulse":"soon"}`,
		`{"pulse_ms":0}`,
		`{}`,
		`{"state":"on","pulse":"1s"}`,
	}
	for _, v := range invalid {
		appendValue(t, tp, "", v)
	}
	appendValue(t, tp, "", "\x00tombstone") // no value: not a command, not counted
	last := appendValue(t, tp, "", `{"state":"on"}`)
	rig := startActuators(t, l, newHW().addPin("GPIO24", pin), clk,
		ActuatorSpec{Name: "valve", Topic: "cmd", Pin: "GPIO24", Start: "earliest", MaxPulse: time.Minute})

	waitFor(t, "the valid command", func() bool { return rig.actuator("valve").Applied == 1 })
	st := rig.actuator("valve")
	if st.Invalid != int64(len(invalid)) || st.LastCommand != last || st.Output != "on" || st.State != StateRunning {
		t.Errorf("status %+v, want %d invalid and the last applied", st, len(invalid))
	}
	wantOutputs(t, pin, gpio.Low, gpio.High)
	if _, next := stored(t, l, "valve"); next != last+1 {
		t.Errorf("stored position %d, want %d: the invalid ones are skipped for good", next, last+1)
	}
}

func TestActuatorKeyFilter(t *testing.T) {
	l := actuatorLog(t, t.TempDir())
	clk := newClock()
	pump := newWatchedPin("GPIO5", clk, gpio.Low)
	fan := newWatchedPin("GPIO6", clk, gpio.Low)
	all := newWatchedPin("GPIO13", clk, gpio.Low)
	hw := newHW().addPin("GPIO5", pump).addPin("GPIO6", fan).addPin("GPIO13", all)
	rig := startActuators(t, l, hw, clk,
		ActuatorSpec{Name: "pump", Topic: "cmd", Key: "pump", Pin: "GPIO5"},
		ActuatorSpec{Name: "fan", Topic: "cmd", Key: "fan", Pin: "GPIO6"},
		ActuatorSpec{Name: "all", Topic: "cmd", Pin: "GPIO13"})

	rig.send("fan", `{"state":"on"}`)
	rig.send("", `{"state":"on"}`)
	rig.send("pump", `{"state":"on"}`)
	rig.send("fan", `{"state":"off"}`)
	rig.send("pumps", `{"state":"off"}`)
	waitFor(t, "every command", func() bool {
		return rig.actuator("all").Applied == 5 && rig.actuator("fan").Applied == 2 && rig.actuator("pump").Applied == 1
	})
	wantOutputs(t, fan, gpio.Low, gpio.High, gpio.Low)
	wantOutputs(t, pump, gpio.Low, gpio.High)
	wantOutputs(t, all, gpio.Low, gpio.High, gpio.High, gpio.High, gpio.Low, gpio.Low)
	// The others' records move the position on too.
	for _, name := range []string{"pump", "fan", "all"} {
		waitFor(t, name+" to store its position past every record", func() bool { _, next := stored(t, l, name); return next == 5 })
	}
	if st := rig.actuator("pump"); st.LastCommand != 2 || st.Output != "on" || st.Invalid != 0 {
		t.Errorf("pump %+v", st)
	}
}

func TestActuatorActiveLow(t *testing.T) {
	l := actuatorLog(t, t.TempDir())
	clk := newClock()
	// A plain gpiotest.Pin: the level under its mutex is all there is.
	pin := &gpiotest.Pin{N: "GPIO26", Clock: clk, L: gpio.High}
	level := func() gpio.Level { pin.Lock(); defer pin.Unlock(); return pin.L }
	rig := startActuators(t, l, newHW().addPin("GPIO26", pin), clk,
		ActuatorSpec{Name: "relay", Topic: "cmd", Pin: "GPIO26", ActiveLow: true, Initial: "on"})

	// Initial on, active low: the line is low.
	if level() != gpio.Low {
		t.Errorf("relay initially on: line %s, want low", level())
	}
	if st := rig.actuator("relay"); st.Output != "on" {
		t.Errorf("output %q, want on", st.Output)
	}
	rig.send("", `{"state":"off"}`)
	waitFor(t, "the relay off", func() bool { return level() == gpio.High })
	// A pulse is on (low) then off (high).
	rig.send("", `{"pulse":"100ms"}`)
	waitFor(t, "the pulse to start", func() bool { return level() == gpio.Low })
	advanceUntil(t, clk, 10*time.Millisecond, "the pulse to end", func() bool { return level() == gpio.High })
	rig.send("", `{"state":"on"}`)
	waitFor(t, "the relay on", func() bool { return level() == gpio.Low })
	if st := rig.actuator("relay"); st.Applied != 3 || st.Output != "on" {
		t.Errorf("status %+v", st)
	}
}

func TestActuatorRestartRestoresWithoutReapplying(t *testing.T) {
	dir := t.TempDir()
	l := actuatorLog(t, dir)
	clk := newClock()
	pin := newWatchedPin("GPIO16", clk, gpio.Low)
	spec := ActuatorSpec{Name: "heater", Topic: "cmd", Pin: "GPIO16"}
	rig := startActuators(t, l, newHW().addPin("GPIO16", pin), clk, spec)
	on := rig.send("", `{"state":"on"}`)
	waitFor(t, "the heater on", func() bool { return rig.actuator("heater").Applied == 1 })
	wantOutputs(t, pin, gpio.Low, gpio.High)
	rig.stop()
	if st := rig.actuator("heater"); st.State != StateStopped {
		t.Errorf("state after Run: %q", st.State)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	// Restart on the same data directory, with the pin reset to low (as
	// after a reboot): it is driven back to on, and the command is not
	// applied a second time.
	l = actuatorLog(t, dir)
	pin = newWatchedPin("GPIO16", clk, gpio.Low)
	rig = startActuators(t, l, newHW().addPin("GPIO16", pin), clk, spec)
	wantOutputs(t, pin, gpio.High)
	if st := rig.actuator("heater"); st.Output != "on" || st.Applied != 0 || st.LastCommand != -1 {
		t.Errorf("status after the restart: %+v", st)
	}
	// A command written while it was down is applied, though start is
	// latest: the stored position is where it goes on.
	rig.stop()
	off := appendValue(t, rig.cmd, "", `{"state":"off"}`)
	if off != on+1 {
		t.Fatalf("offset %d, want %d", off, on+1)
	}
	pin = newWatchedPin("GPIO16", clk, gpio.Low)
	rig = startActuators(t, l, newHW().addPin("GPIO16", pin), clk, spec)
	waitFor(t, "the command written while down", func() bool { return rig.actuator("heater").Applied == 1 })
	wantOutputs(t, pin, gpio.High, gpio.Low)
	if st := rig.actuator("heater"); st.LastCommand != off || st.Output != "off" {
		t.Errorf("status %+v", st)
	}
	rig.stop()

	// And once more: nothing new, the stored off is restored, nothing
	// applied.
	pin = newWatchedPin("GPIO16", clk, gpio.High)
	rig = startActuators(t, l, newHW().addPin("GPIO16", pin), clk, spec)
	wantOutputs(t, pin, gpio.Low)
	if st := rig.actuator("heater"); st.Applied != 0 {
		t.Errorf("applied %d after a restart with nothing new", st.Applied)
	}
}

func TestActuatorMissingPinIsRetried(t *testing.T) {
	l := actuatorLog(t, t.TempDir())
	clk := newClock()
	hw := newHW()
	rig := startManager(t, Options{Actuators: []ActuatorSpec{{Name: "door", Topic: "cmd", Pin: "GPIO12"}}, Log: l, Hardware: hw, Clock: clk})

	waitFor(t, "the actuator to fail", func() bool { return rig.actuator("door").State == StateFailed })
	st := rig.actuator("door")
	if !strings.Contains(st.LastError, "GPIO12") || !st.LastErrorAt.Equal(t0) {
		t.Errorf("status %+v, want an error naming GPIO12", st)
	}
	pin := newWatchedPin("GPIO12", clk, gpio.High)
	hw.addPin("GPIO12", pin)
	moved := advanceUntil(t, clk, 50*time.Millisecond, "the actuator to run", func() bool { return rig.actuator("door").State == StateRunning })
	if moved < 800*time.Millisecond {
		t.Errorf("retried after %v, before the backoff", moved)
	}
	wantOutputs(t, pin, gpio.Low)
}

func TestActuatorStoredPositionPastTheEnd(t *testing.T) {
	// The stored position is past the partition's end, as after a crash
	// that lost the partition's unsynced tail: the actuator starts at the
	// end rather than failing until enough new commands arrive.
	l := actuatorLog(t, t.TempDir())
	a := &actuator{spec: ActuatorSpec{Name: "lamp", Topic: "cmd"}}
	if err := l.Meta().PutCursor(nsActuators, a.cursorKey(0), binary.BigEndian.AppendUint64(nil, 5)); err != nil {
		t.Fatal(err)
	}
	clk := newClock()
	pin := newWatchedPin("GPIO20", clk, gpio.Low)
	rig := startActuators(t, l, newHW().addPin("GPIO20", pin), clk, ActuatorSpec{Name: "lamp", Topic: "cmd", Pin: "GPIO20"})
	waitFor(t, "the position to be reset", func() bool { _, next := stored(t, l, "lamp"); return next == 0 })
	on := rig.send("", `{"state":"on"}`)
	waitFor(t, "the lamp on", func() bool { return rig.actuator("lamp").Applied == 1 })
	if st := rig.actuator("lamp"); st.State != StateRunning || st.LastCommand != on || st.LastError != "" {
		t.Errorf("status %+v", st)
	}
	wantOutputs(t, pin, gpio.Low, gpio.High)
}

func mustTopic(t *testing.T, l *spoollog.Log, name string) *spoollog.Topic {
	t.Helper()
	tp, err := l.Topic(name)
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

func TestActuatorStopLeavesTheRestForTheNextStart(t *testing.T) {
	dir := t.TempDir()
	l := actuatorLog(t, dir)
	tp := mustTopic(t, l, "cmd")
	appendValue(t, tp, "", `{"pulse":"10s"}`)
	appendValue(t, tp, "", `{"pulse":"10s"}`)
	appendValue(t, tp, "", `{"state":"on"}`)
	clk := newClock()
	spec := ActuatorSpec{Name: "siren", Topic: "cmd", Pin: "GPIO19", Start: "earliest"}
	pin := newWatchedPin("GPIO19", clk, gpio.Low)
	rig := startActuators(t, l, newHW().addPin("GPIO19", pin), clk, spec)
	waitFor(t, "the first pulse", func() bool { return pin.level() == gpio.High })
	if err := clk.BlockUntilContext(ctxDeadline(t), 1); err != nil {
		t.Fatal(err)
	}
	// Stopped mid-pulse: the pulse is cut short (the line off), and the
	// commands after it are neither applied nor skipped.
	rig.cancel()
	rig.cancel = nil
	waitFor(t, "Run to return", func() bool {
		select {
		case <-rig.done:
			return true
		default:
			return false
		}
	})
	wantOutputs(t, pin, gpio.Low, gpio.High, gpio.Low)
	if st := rig.actuator("siren"); st.Applied != 1 {
		t.Errorf("applied %d commands while stopping, want 1", st.Applied)
	}
	if state, next := stored(t, l, "siren"); state != "off" || next != 1 {
		t.Errorf("stored %q at %d, want off at 1", state, next)
	}

	// The next start goes on with the second pulse. (A new clock: the
	// first pulse's timer, never fired, is still on the old one.)
	clk = newClock()
	pin = newWatchedPin("GPIO19", clk, gpio.Low)
	rig = startActuators(t, l, newHW().addPin("GPIO19", pin), clk, spec)
	waitFor(t, "the second pulse", func() bool { return pin.level() == gpio.High })
	if err := clk.BlockUntilContext(ctxDeadline(t), 1); err != nil {
		t.Fatal(err)
	}
	clk.Advance(10 * time.Second)
	waitFor(t, "the on command", func() bool { return rig.actuator("siren").Applied == 2 })
	wantOutputs(t, pin, gpio.Low, gpio.High, gpio.Low, gpio.High)
}

// fastPartitionPoll makes actuators notice added partitions at once.
// Registered before the rig, it is restored after the rig has stopped.
func fastPartitionPoll(t *testing.T) {
	saved := partitionPoll
	partitionPoll = 10 * time.Millisecond
	t.Cleanup(func() { partitionPoll = saved })
}

// addPartition grows topic cmd of l to two partitions and writes an "on"
// command to the new one.
func addPartition(t *testing.T, l *spoollog.Log) {
	t.Helper()
	tp := mustTopic(t, l, "cmd")
	cfg := tp.Config()
	cfg.Partitions = 2
	if err := l.AlterTopic("cmd", cfg); err != nil {
		t.Fatal(err)
	}
	rec := spoollog.Record{Timestamp: t0.UnixMilli(), Value: []byte(`{"state":"on"}`)}
	if _, err := partition(t, tp, 1).AppendRecords([]spoollog.Record{rec}, spoollog.DefaultBatchOptions); err != nil {
		t.Fatal(err)
	}
}

// A partition added to the command topic while the actuator runs (Kafka
// CreatePartitions) is followed from its start: a keyed command landing
// there is applied, and after a restart its position is kept.
func TestActuatorFollowsAddedPartition(t *testing.T) {
	fastPartitionPoll(t)
	l := actuatorLog(t, t.TempDir())
	clk := newClock()
	spec := ActuatorSpec{Name: "pump", Topic: "cmd", Pin: "GPIO21"}
	rig := startActuators(t, l, newHW().addPin("GPIO21", newWatchedPin("GPIO21", clk, gpio.Low)), clk, spec)
	addPartition(t, l)
	waitFor(t, "the command in partition 1 to be applied", func() bool { return rig.actuator("pump").Applied == 1 })
	rig.following("pump")

	rig.stop()
	rig2 := startManager(t, Options{Actuators: []ActuatorSpec{spec}, Log: l, Hardware: newHW().addPin("GPIO21", newWatchedPin("GPIO21", clk, gpio.Low)), Clock: clk})
	waitFor(t, "the actuator to run again", func() bool { return rig2.actuator("pump").State == StateRunning })
	if st := rig2.actuator("pump"); st.Applied != 0 || st.Output != "on" {
		t.Errorf("after a restart: applied %d, output %q; want the stored state on and the command not applied again", st.Applied, st.Output)
	}
}

// A partition added while the actuator was stopped has no stored position
// at the next start, but the actuator has positions in the others: the new
// partition is read from its start, not from its end as start: latest
// would, which would skip every command already in it.
func TestActuatorPartitionAddedWhileStoppedIsReadFromItsStart(t *testing.T) {
	l := actuatorLog(t, t.TempDir())
	clk := newClock()
	spec := ActuatorSpec{Name: "pump", Topic: "cmd", Pin: "GPIO21"}
	rig := startActuators(t, l, newHW().addPin("GPIO21", newWatchedPin("GPIO21", clk, gpio.Low)), clk, spec)
	rig.stop()

	addPartition(t, l)
	rig2 := startManager(t, Options{Actuators: []ActuatorSpec{spec}, Log: l, Hardware: newHW().addPin("GPIO21", newWatchedPin("GPIO21", clk, gpio.Low)), Clock: clk})
	waitFor(t, "the command in partition 1 to be applied", func() bool { return rig2.actuator("pump").Applied == 1 })
	if st := rig2.actuator("pump"); st.Output != "on" {
		t.Errorf("output %q after the command in the added partition, want on", st.Output)
	}
}

// pulse_ms is range-checked before it becomes a time.Duration: 500 + 2^58
// ms (about nine million years) would wrap around to exactly 500ms.
func TestActuatorPulseMSOverflowIsRefused(t *testing.T) {
	a := &actuator{spec: ActuatorSpec{Name: "pump", MaxPulse: time.Minute}}
	for _, v := range []string{`{"pulse_ms":288230376151712244}`, `{"pulse_ms":60001}`, `{"pulse_ms":0}`, `{"pulse_ms":-1}`} {
		if on, pulse, err := a.parseCommand([]byte(v)); err == nil {
			t.Errorf("%s accepted as on=%v pulse=%v; want an error (not above 0 and up to max_pulse 1m)", v, on, pulse)
		}
	}
	if _, pulse, err := a.parseCommand([]byte(`{"pulse_ms":60000}`)); err != nil || pulse != time.Minute {
		t.Errorf(`{"pulse_ms":60000}: %v, %v; want max_pulse, 1m`, pulse, err)
	}
}
