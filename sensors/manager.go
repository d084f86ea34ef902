package sensors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	spoollog "github.com/spoolmq/spool/log"
)

// Options builds a Manager.
type Options struct {
	Sensors   []Spec
	Actuators []ActuatorSpec
	// Log is where readings are appended and commands read from; the
	// topics must exist.
	Log *spoollog.Log
	// Hardware gives the pins and buses; nil is the board's (Host).
	Hardware Hardware
	// Clock times readings, intervals and backoff; nil is the real one.
	Clock  clockwork.Clock
	Logger *slog.Logger
	// OnReading, when set, is called with each reading once it is stored
	// (from the sensor's goroutine: it must not block for long).
	OnReading func(Reading)
}

// Manager runs the sensors and actuators.
type Manager struct {
	opts      Options
	sensors   []*sensor
	actuators []*actuator
}

type sensor struct {
	spec   Spec
	driver driver
	st     status
	lg     *slog.Logger
	drops  dropLog
}

// Backoff of a failed sensor or actuator: doubling from minBackoff to
// maxBackoff, each wait shortened by up to a fifth at random so that
// sensors on one failed bus do not retry in lockstep.
const (
	minBackoff = time.Second
	maxBackoff = time.Minute
)

// New checks the specs and builds their drivers. Nothing touches the
// hardware until Run.
func New(opts Options) (*Manager, error) {
	if opts.Hardware == nil {
		opts.Hardware = &Host{}
	}
	if opts.Clock == nil {
		opts.Clock = clockwork.NewRealClock()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Manager{opts: opts}
	var errs []error
	names := map[string]bool{}
	for i, spec := range opts.Sensors {
		if names[spec.Name] {
			errs = append(errs, fmt.Errorf("sensors[%d]: a second sensor named %q", i, spec.Name))
		}
		names[spec.Name] = true
		if spec.Interval == 0 {
			spec.Interval = defaultInterval
		}
		if spec.Interval < 0 {
			// A ticker panics on it, and a pulse counter would emit
			// without end.
			errs = append(errs, fmt.Errorf("sensor %q: interval %v is negative", spec.Name, spec.Interval))
			continue
		}
		kind, err := spec.driverName()
		if err != nil {
			errs = append(errs, fmt.Errorf("sensor %q: %w", spec.Name, err))
			continue
		}
		d, err := newDriver(&spec)
		if err != nil {
			errs = append(errs, fmt.Errorf("sensor %q: %s: %w", spec.Name, kind, err))
			continue
		}
		if _, err := opts.Log.Topic(spec.Topic); err != nil {
			errs = append(errs, fmt.Errorf("sensor %q: topic %q: %w", spec.Name, spec.Topic, err))
		}
		s := &sensor{spec: spec, driver: d, lg: opts.Logger.With("sensor", spec.Name, "driver", kind)}
		s.st.s = SensorStatus{Name: spec.Name, Driver: kind, Topic: spec.Topic, State: StateStarting}
		m.sensors = append(m.sensors, s)
	}
	for i, spec := range opts.Actuators {
		a, err := newActuator(spec, &m.opts)
		if err != nil {
			errs = append(errs, fmt.Errorf("actuators[%d] %q: %w", i, spec.Name, err))
			continue
		}
		m.actuators = append(m.actuators, a)
	}
	return m, errors.Join(errs...)
}

// Run runs every sensor and actuator until ctx ends, and returns when
// all have stopped.
func (m *Manager) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, s := range m.sensors {
		wg.Go(func() { m.supervise(ctx, s) })
	}
	for _, a := range m.actuators {
		wg.Go(func() { a.run(ctx) })
	}
	wg.Wait()
}

// Sensors is the state of every sensor, in config order.
func (m *Manager) Sensors() []SensorStatus {
	out := make([]SensorStatus, len(m.sensors))
	for i, s := range m.sensors {
		out[i] = s.st.get()
	}
	return out
}

// Actuators is the state of every actuator, in config order.
func (m *Manager) Actuators() []ActuatorStatus {
	out := make([]ActuatorStatus, len(m.actuators))
	for i, a := range m.actuators {
		out[i] = a.get()
	}
	return out
}

// supervise opens and runs one sensor, and after a failure retries it
// with backoff, until ctx ends.
func (m *Manager) supervise(ctx context.Context, s *sensor) {
	clock := m.opts.Clock
	backoff := minBackoff
	r := &runner{clock: clock, interval: s.spec.Interval, emit: func(at time.Time, v []Value) { m.store(s, at, v) }}
	defer s.st.update(func(st *SensorStatus) { st.State = StateStopped; st.RetryAt = time.Time{} })
	for ctx.Err() == nil {
		s.st.update(func(st *SensorStatus) { st.State = StateStarting })
		err := s.driver.open(m.opts.Hardware)
		if err == nil {
			s.st.update(func(st *SensorStatus) { st.State = StateRunning; st.RetryAt = time.Time{} })
			s.lg.Info("sensor running")
			started := clock.Now()
			err = s.driver.run(ctx, r)
			if cerr := s.driver.close(); err == nil && cerr != nil && ctx.Err() == nil {
				err = cerr
			}
			if clock.Since(started) > maxBackoff {
				backoff = minBackoff
			}
		}
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errReplayDone) {
			s.st.update(func(st *SensorStatus) { st.State = StateFinished })
			s.lg.Info("sensor finished", "why", err)
			<-ctx.Done()
			return
		}
		if err == nil {
			err = errors.New("stopped without an error")
		}
		wait := backoff - time.Duration(rand.Int64N(int64(backoff)/5))
		now := clock.Now()
		s.st.update(func(st *SensorStatus) {
			st.State, st.Failures = StateFailed, st.Failures+1
			st.LastError, st.LastErrorAt, st.RetryAt = err.Error(), now, now.Add(wait)
		})
		s.lg.Error("sensor failed; the others go on", "error", err, "retry_in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return
		case <-clock.After(wait):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// store appends one reading to the sensor's topic and waits until it is
// as durable as the topic's sync asks. A refused reading is dropped and
// counted: the sensor goes on with the next one.
func (m *Manager) store(s *sensor, at time.Time, values []Value) {
	rd := Reading{Sensor: s.spec.Name, Driver: s.st.get().Driver, Time: at, Values: values}
	err := m.append(s.spec.Topic, rd)
	s.st.update(func(st *SensorStatus) {
		st.LastReading = &rd
		if err != nil {
			st.Dropped++
			st.DropError = err.Error()
		} else {
			st.Readings++
		}
	})
	s.drops.note(s.lg, m.opts.Clock.Now(), err)
	if err == nil && m.opts.OnReading != nil {
		m.opts.OnReading(rd)
	}
}

func (m *Manager) append(topic string, rd Reading) error {
	rec, err := rd.Record()
	if err != nil {
		return err
	}
	t, err := m.opts.Log.Topic(topic)
	if err != nil {
		return err
	}
	p, err := t.Partition(t.PartitionFor(rec.Key, len(rec.Value)))
	if err != nil {
		return err
	}
	_, err = p.AppendRecords([]spoollog.Record{rec}, spoollog.DefaultBatchOptions)
	return err
}

// dropLog logs dropped readings without flooding: the first drop at
// once, then a count at most once a minute, and the recovery.
type dropLog struct {
	since  int64 // drops not yet logged
	total  int64
	last   time.Time
	failed bool
}

func (d *dropLog) note(lg *slog.Logger, now time.Time, err error) {
	switch {
	case err == nil && d.failed:
		d.failed = false
		lg.Info("readings stored again", "dropped", d.total)
		d.total, d.since = 0, 0
	case err != nil:
		d.total++
		d.since++
		if !d.failed || now.Sub(d.last) >= time.Minute {
			lg.Warn("reading dropped: the log refused it", "error", err, "dropped", d.since, "dropped_in_a_row", d.total)
			d.since, d.last = 0, now
		}
		d.failed = true
	}
}
