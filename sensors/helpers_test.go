package sensors

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	spoollog "github.com/spoolmq/spool/log"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/onewire"
)

// realDeadline bounds every wait of these tests in real time. Nothing
// sleeps: a wait spins (yielding) until its condition holds, and fails
// the test when the deadline passes first.
const realDeadline = 10 * time.Second

// t0 is the fake clock's start: the time of the package doc's example.
var t0 = time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)

func newClock() *clockwork.FakeClock { return clockwork.NewFakeClockAt(t0) }

// fakeHW is the Hardware of the tests: periph.io's fakes by name, and an
// error naming what is missing for any other name.
type fakeHW struct {
	mu   sync.Mutex
	pins map[string]gpio.PinIO
	i2c  map[string]i2c.BusCloser
	ow   map[string]onewire.BusCloser
	// asked counts the requests per name, found or not.
	asked map[string]int
}

func newHW() *fakeHW {
	return &fakeHW{pins: map[string]gpio.PinIO{}, i2c: map[string]i2c.BusCloser{}, ow: map[string]onewire.BusCloser{}, asked: map[string]int{}}
}

func (h *fakeHW) addPin(name string, p gpio.PinIO) *fakeHW {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pins[name] = p
	return h
}

func (h *fakeHW) addI2C(name string, b i2c.BusCloser) *fakeHW {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.i2c[name] = b
	return h
}

func (h *fakeHW) addOneWire(name string, b onewire.BusCloser) *fakeHW {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ow[name] = b
	return h
}

func (h *fakeHW) count(name string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.asked[name]
}

func have[V any](m map[string]V) string {
	var names []string
	for n := range m {
		names = append(names, fmt.Sprintf("%q", n))
	}
	sort.Strings(names)
	return fmt.Sprint(names)
}

func (h *fakeHW) Pin(name string) (gpio.PinIO, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.asked["pin:"+name]++
	if p, ok := h.pins[name]; ok {
		return p, nil
	}
	return nil, fmt.Errorf("pin %s: no such GPIO line on the fake board (it has %s)", name, have(h.pins))
}

func (h *fakeHW) I2C(bus string) (i2c.BusCloser, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.asked["i2c:"+bus]++
	if b, ok := h.i2c[bus]; ok {
		return b, nil
	}
	return nil, fmt.Errorf("i2c bus %q: no such bus on the fake board (it has %s)", bus, have(h.i2c))
}

func (h *fakeHW) OneWire(bus string) (onewire.BusCloser, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.asked["1-wire:"+bus]++
	if b, ok := h.ow[bus]; ok {
		return b, nil
	}
	return nil, fmt.Errorf("1-wire bus %q: no such bus on the fake board (it has %s)", bus, have(h.ow))
}

var _ Hardware = (*fakeHW)(nil)

// watchedPin is a gpiotest.Pin (unbuffered EdgesChan, the fake clock)
// that also says where its driver is: how many edges it has taken and
// whether it is waiting for the next one, and every level it was driven
// to. gpiotest.Pin stamps nothing, and the drivers stamp an edge with
// the clock when they take it, so a test must not move the clock between
// sending an edge and the driver taking it: send waits until the driver
// is waiting again.
type watchedPin struct {
	*gpiotest.Pin

	clk *clockwork.FakeClock

	mu      sync.Mutex
	taken   int           // edges WaitForEdge returned
	waiting bool          // inside WaitForEdge, its timer set
	timeout time.Duration // of the current (or last) WaitForEdge
	expires time.Time     // when that timer fires
	outs    []gpio.Level  // every Out, in order
	sent    int           // edges sent by the test
}

// The pin's Clock is the fake clock, seen through armClock: a driver is
// waiting once gpiotest's WaitForEdge has set its timer (clock.After),
// so that a test moving the clock then fires it.
func newWatchedPin(name string, clk *clockwork.FakeClock, level gpio.Level) *watchedPin {
	p := &watchedPin{clk: clk}
	p.Pin = &gpiotest.Pin{N: name, Clock: armClock{clk, p}, L: level, EdgesChan: make(chan gpio.Level)}
	return p
}

// armClock is the fake clock; its After also marks the pin as waiting.
type armClock struct {
	*clockwork.FakeClock
	pin *watchedPin
}

func (c armClock) After(d time.Duration) <-chan time.Time {
	c.pin.mu.Lock()
	defer c.pin.mu.Unlock()
	c.pin.waiting, c.pin.timeout, c.pin.expires = true, d, c.FakeClock.Now().Add(d)
	return c.FakeClock.After(d)
}

func (p *watchedPin) WaitForEdge(timeout time.Duration) bool {
	got := p.Pin.WaitForEdge(timeout)
	p.mu.Lock()
	p.waiting = false
	if got {
		p.taken++
	}
	p.mu.Unlock()
	return got
}

func (p *watchedPin) Out(l gpio.Level) error {
	p.mu.Lock()
	p.outs = append(p.outs, l)
	p.mu.Unlock()
	return p.Pin.Out(l)
}

// level is the line's level, read under the gpiotest.Pin's mutex.
func (p *watchedPin) level() gpio.Level {
	p.Pin.Lock()
	defer p.Pin.Unlock()
	return p.Pin.L
}

func (p *watchedPin) outputs() []gpio.Level {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.outs)
}

func (p *watchedPin) sentCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent
}

// state is the driver's position: edges taken, waiting (its timer set
// and not yet fired: the driver is blocked until an edge or a move of
// the clock), for how long.
func (p *watchedPin) state() (taken int, waiting bool, timeout time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.taken, p.waiting && p.clk.Now().Before(p.expires), p.timeout
}

// blocked says the driver waits for an edge or the clock: a test may
// move the clock without running ahead of the driver.
func (p *watchedPin) blocked() bool {
	_, waiting, _ := p.state()
	return waiting
}

// waitingFor waits until the driver has taken every edge sent and waits
// for another.
func (p *watchedPin) waitingFor(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	sent := p.sent
	p.mu.Unlock()
	waitFor(t, fmt.Sprintf("the driver of %s to take edge %d and wait for the next", p.N, sent), func() bool {
		taken, waiting, _ := p.state()
		return taken == sent && waiting
	})
}

// send sends one edge (the line goes to l) and returns once the driver
// has taken it and waits for the next: the fake clock can move on.
func (p *watchedPin) send(t *testing.T, l gpio.Level) {
	t.Helper()
	p.waitingFor(t)
	select {
	case p.EdgesChan <- l:
	case <-time.After(realDeadline):
		t.Fatalf("pin %s: the driver did not take edge %s within %v", p.N, l, realDeadline)
	}
	p.mu.Lock()
	p.sent++
	p.mu.Unlock()
	p.waitingFor(t)
}

// waitFor spins until cond holds, without moving any clock.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(realDeadline)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v (real time) for %s", realDeadline, what)
		}
		runtime.Gosched()
	}
}

// advanceUntil moves the fake clock forward step by step, yielding
// between steps, until cond holds. It returns how far it moved the clock.
func advanceUntil(t *testing.T, clk *clockwork.FakeClock, step time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	deadline := time.Now().Add(realDeadline)
	var moved time.Duration
	for {
		// Yield a few times first: the goroutines woken by the last step
		// get to run before cond is judged and the clock moves again.
		for range 3 {
			runtime.Gosched()
		}
		if cond() {
			return moved
		}
		if time.Now().After(deadline) {
			t.Fatalf("advanced the fake clock by %v (%v real time) waiting for %s", moved, realDeadline, what)
		}
		clk.Advance(step)
		moved += step
	}
}

// advancePaced is advanceUntil moving the clock only while may says so.
func advancePaced(t *testing.T, clk *clockwork.FakeClock, step time.Duration, what string, cond, may func() bool) time.Duration {
	t.Helper()
	deadline := time.Now().Add(realDeadline)
	var moved time.Duration
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("advanced the fake clock by %v (%v real time) waiting for %s", moved, realDeadline, what)
		}
		if may() {
			clk.Advance(step)
			moved += step
		}
		runtime.Gosched()
	}
	return moved
}

// got is one reading a driver emitted.
type got struct {
	at     time.Time
	values []Value
}

func (g got) value(name string) (float64, bool) {
	for _, v := range g.values {
		if v.Name == name {
			return v.Value, true
		}
	}
	return 0, false
}

// driverRig runs one driver the way supervise does, emitting to a
// channel.
type driverRig struct {
	t        *testing.T
	clk      *clockwork.FakeClock
	pin      *watchedPin // when set, the clock moves only while it is blocked
	readings chan got
	cancel   context.CancelFunc
	done     chan error
	d        driver
}

// startDriver opens d on hw and runs it in a goroutine; Cleanup stops it
// (moving the clock until it has noticed) and closes it.
func startDriver(t *testing.T, d driver, hw Hardware, clk *clockwork.FakeClock, interval time.Duration) *driverRig {
	t.Helper()
	if err := d.open(hw); err != nil {
		t.Fatalf("open: %v", err)
	}
	rig := &driverRig{t: t, clk: clk, readings: make(chan got, 1000), done: make(chan error, 1), d: d}
	r := &runner{clock: clk, interval: interval, emit: func(at time.Time, v []Value) { rig.readings <- got{at, slices.Clone(v)} }}
	ctx, cancel := context.WithCancel(context.Background())
	rig.cancel = cancel
	go func() { rig.done <- d.run(ctx, r) }()
	t.Cleanup(func() { rig.stop() })
	return rig
}

// stop ends the run and returns its error; the driver is closed. Later
// calls return nil.
func (rig *driverRig) stop() error {
	rig.t.Helper()
	if rig.cancel == nil {
		return nil
	}
	rig.cancel()
	rig.cancel = nil
	var err error
	// A driver blocked in WaitForEdge or on a timer notices the end of
	// its context at its next wake-up, on the fake clock.
	advanceUntil(rig.t, rig.clk, 100*time.Millisecond, "the driver to stop", func() bool {
		select {
		case err = <-rig.done:
			return true
		default:
			return false
		}
	})
	if cerr := rig.d.close(); cerr != nil {
		rig.t.Errorf("close: %v", cerr)
	}
	return err
}

// next moves the clock by step until a reading arrives. With a pin, it
// moves only while the driver is blocked on it, so the clock never runs
// ahead of a driver that is slow to be scheduled.
func (rig *driverRig) next(step time.Duration) got {
	rig.t.Helper()
	var g got
	advancePaced(rig.t, rig.clk, step, "a reading", func() bool {
		select {
		case g = <-rig.readings:
			return true
		default:
			return false
		}
	}, func() bool { return rig.pin == nil || rig.pin.blocked() })
	return g
}

// now takes a reading already emitted, without moving the clock.
func (rig *driverRig) now() got {
	rig.t.Helper()
	var g got
	waitFor(rig.t, "a reading", func() bool {
		select {
		case g = <-rig.readings:
			return true
		default:
			return false
		}
	})
	return g
}

// none checks that no reading is waiting.
func (rig *driverRig) none(why string) {
	rig.t.Helper()
	select {
	case g := <-rig.readings:
		rig.t.Errorf("%s: unexpected reading at %v: %v", why, g.at.Sub(t0), g.values)
	default:
	}
}

// ---- the log ----

func openLog(t *testing.T, dir string, opts spoollog.Options) *spoollog.Log {
	t.Helper()
	l, err := spoollog.Open(dir, opts)
	if err != nil {
		t.Fatalf("open log: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func createTopic(t *testing.T, l *spoollog.Log, name string, edit func(*spoollog.TopicConfig)) *spoollog.Topic {
	t.Helper()
	cfg := spoollog.DefaultTopicConfig()
	cfg.Sync = spoollog.SyncNever // these tests never crash the machine
	cfg.Preallocate = false
	if edit != nil {
		edit(&cfg)
	}
	tp, err := l.CreateTopic(name, cfg)
	if err != nil {
		t.Fatalf("create topic %q: %v", name, err)
	}
	return tp
}

func partition(t *testing.T, tp *spoollog.Topic, i int32) *spoollog.Partition {
	t.Helper()
	p, err := tp.Partition(i)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// readAll decodes every record of p from offset from up to its high
// watermark.
func readAll(t *testing.T, p *spoollog.Partition, from int64) []spoollog.Record {
	t.Helper()
	var out []spoollog.Record
	for off := from; off < p.HighWatermark(); {
		data, err := p.Read(off, 1<<20)
		if err != nil {
			t.Fatalf("read partition %d at %d: %v", p.ID(), off, err)
		}
		if len(data) == 0 {
			break
		}
		err = spoollog.SplitBatches(data, func(h spoollog.BatchHeader, b []byte) error {
			_, recs, err := spoollog.DecodeRecords(b)
			if err != nil {
				return err
			}
			for _, r := range recs {
				if r.Offset >= off {
					out = append(out, r)
				}
			}
			off = h.LastOffset() + 1
			return nil
		})
		if err != nil {
			t.Fatalf("decode partition %d: %v", p.ID(), err)
		}
	}
	return out
}

// waitRecords waits, on p's Notify, until p holds at least n records
// from offset from, without moving any clock.
func waitRecords(t *testing.T, p *spoollog.Partition, from int64, n int) []spoollog.Record {
	t.Helper()
	timeout := time.After(realDeadline)
	for {
		notify := p.Notify()
		if recs := readAll(t, p, from); len(recs) >= n {
			return recs
		}
		select {
		case <-notify:
		case <-timeout:
			t.Fatalf("partition %d: waited %v for %d records, have %d", p.ID(), realDeadline, n, len(readAll(t, p, from)))
		}
	}
}

// appendValue writes one record to partition 0 of tp.
func appendValue(t *testing.T, tp *spoollog.Topic, key, value string) int64 {
	t.Helper()
	p := partition(t, tp, 0)
	rec := spoollog.Record{Timestamp: t0.UnixMilli(), Value: []byte(value)}
	if key != "" {
		rec.Key = []byte(key)
	}
	if value == "\x00tombstone" {
		rec.Value = nil
	}
	res, err := p.AppendRecords([]spoollog.Record{rec}, spoollog.DefaultBatchOptions)
	if err != nil {
		t.Fatalf("append %q: %v", value, err)
	}
	return res.BaseOffset
}

// ---- the Manager ----

type managerRig struct {
	t      *testing.T
	m      *Manager
	clk    *clockwork.FakeClock
	cancel context.CancelFunc
	done   chan struct{}
}

func startManager(t *testing.T, opts Options) *managerRig {
	t.Helper()
	m, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rig := &managerRig{t: t, m: m, clk: opts.Clock.(*clockwork.FakeClock), cancel: cancel, done: make(chan struct{})}
	go func() { m.Run(ctx); close(rig.done) }()
	t.Cleanup(rig.stop)
	return rig
}

// stop ends Run, moving the clock until every sensor and actuator has
// noticed.
func (rig *managerRig) stop() {
	rig.t.Helper()
	if rig.cancel == nil {
		return
	}
	rig.cancel()
	rig.cancel = nil
	advanceUntil(rig.t, rig.clk, 100*time.Millisecond, "the Manager to stop", func() bool {
		select {
		case <-rig.done:
			return true
		default:
			return false
		}
	})
}

func (rig *managerRig) sensor(name string) SensorStatus {
	for _, s := range rig.m.Sensors() {
		if s.Name == name {
			return s
		}
	}
	rig.t.Fatalf("no sensor %q", name)
	return SensorStatus{}
}

func (rig *managerRig) actuator(name string) ActuatorStatus {
	for _, a := range rig.m.Actuators() {
		if a.Name == name {
			return a
		}
	}
	rig.t.Fatalf("no actuator %q", name)
	return ActuatorStatus{}
}
