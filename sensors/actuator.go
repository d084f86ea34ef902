package sensors

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	spoollog "github.com/spoolmq/spool/log"
	"periph.io/x/conn/v3/gpio"
)

// ActuatorSpec is a GPIO output driven by the command records of a topic.
type ActuatorSpec struct {
	Name  string
	Topic string
	// Key, when set, takes only the records with this key, so that one
	// command topic can serve several actuators.
	Key       string
	Pin       string
	ActiveLow bool // "on" drives the line low (most relay boards)
	// Initial is the state at the very first start: off (default) or on.
	// After that the stored state is restored at every start.
	Initial string
	// MaxPulse bounds a pulse command (default 1m).
	MaxPulse time.Duration
	// Start is where a new actuator begins reading: latest (default, only
	// commands written from now on) or earliest.
	Start string
}

// ActuatorStatus is what the HTTP API shows of an actuator.
type ActuatorStatus struct {
	Name        string    `json:"name"`
	Topic       string    `json:"topic"`
	Pin         string    `json:"pin"`
	State       string    `json:"state"`   // starting, running, failed, stopped
	Output      string    `json:"output"`  // on or off (on during a pulse)
	Applied     int64     `json:"applied"` // commands applied since start
	Invalid     int64     `json:"invalid"` // records that are not a command (skipped, logged)
	LastCommand int64     `json:"last_command_offset"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// nsActuators holds "name NUL state" → on|off and "name NUL topic NUL
// partition" → the offset after the last command handled.
const nsActuators = "sensors.actuators"

type actuator struct {
	spec  ActuatorSpec
	opts  *Options
	topic *spoollog.Topic
	lg    *slog.Logger

	mu  sync.Mutex // one command at a time, across partitions
	pin gpio.PinIO
	on  bool

	stMu sync.Mutex
	st   ActuatorStatus
}

func newActuator(spec ActuatorSpec, opts *Options) (*actuator, error) {
	if spec.MaxPulse == 0 {
		spec.MaxPulse = time.Minute
	}
	switch spec.Initial {
	case "", "off", "on":
	default:
		return nil, fmt.Errorf("initial %q is not off or on", spec.Initial)
	}
	switch spec.Start {
	case "", "latest", "earliest":
	default:
		return nil, fmt.Errorf("start %q is not latest or earliest", spec.Start)
	}
	if spec.Pin == "" {
		return nil, errors.New("pin is not set")
	}
	t, err := opts.Log.Topic(spec.Topic)
	if err != nil {
		return nil, fmt.Errorf("topic %q: %w", spec.Topic, err)
	}
	a := &actuator{spec: spec, opts: opts, topic: t, lg: opts.Logger.With("actuator", spec.Name, "pin", spec.Pin)}
	a.st = ActuatorStatus{Name: spec.Name, Topic: spec.Topic, Pin: spec.Pin, State: StateStarting, Output: "off", LastCommand: -1}
	return a, nil
}

func (a *actuator) status(f func(s *ActuatorStatus)) {
	a.stMu.Lock()
	defer a.stMu.Unlock()
	f(&a.st)
}

func (a *actuator) get() ActuatorStatus {
	a.stMu.Lock()
	defer a.stMu.Unlock()
	return a.st
}

// command is a command record's value.
type command struct {
	State   string `json:"state"`
	Pulse   string `json:"pulse"`
	PulseMS *int64 `json:"pulse_ms"`
}

// parseCommand reads {"state":"on"|"off"} or {"pulse":"500ms"} (or
// {"pulse_ms":500}); pulse is 0 for a state command.
func (a *actuator) parseCommand(v []byte) (on bool, pulse time.Duration, err error) {
	var c command
	if err := json.Unmarshal(v, &c); err != nil {
		return false, 0, fmt.Errorf("not a JSON command: %w", err)
	}
	switch {
	case c.State != "" && (c.Pulse != "" || c.PulseMS != nil):
		return false, 0, errors.New("both a state and a pulse")
	case c.State == "on" || c.State == "off":
		return c.State == "on", 0, nil
	case c.State != "":
		return false, 0, fmt.Errorf("state %q is not on or off", c.State)
	case c.Pulse != "":
		if pulse, err = time.ParseDuration(c.Pulse); err != nil {
			return false, 0, fmt.Errorf("pulse: %w", err)
		}
	case c.PulseMS != nil:
		// Checked before the multiplication, which would wrap a huge
		// value around to any duration, a short one included.
		if ms := *c.PulseMS; ms <= 0 || ms > a.spec.MaxPulse.Milliseconds() {
			return false, 0, fmt.Errorf("pulse_ms %d is not between 0 and max_pulse %v", ms, a.spec.MaxPulse)
		}
		pulse = time.Duration(*c.PulseMS) * time.Millisecond
	default:
		return false, 0, errors.New(`neither "state" nor "pulse"`)
	}
	if pulse <= 0 || pulse > a.spec.MaxPulse {
		return false, 0, fmt.Errorf("pulse %v is not between 0 and max_pulse %v", pulse, a.spec.MaxPulse)
	}
	return false, pulse, nil
}

func (a *actuator) pinName() string { return "actuator:" + a.spec.Name }

func (a *actuator) stateKey() string { return a.spec.Name + "\x00state" }

func (a *actuator) cursorKey(p int32) string {
	return a.spec.Name + "\x00" + a.spec.Topic + "\x00" + strconv.Itoa(int(p))
}

// drive sets the line for on or off, minding active_low.
func (a *actuator) drive(on bool) error {
	level := gpio.Level(on != a.spec.ActiveLow)
	if err := a.pin.Out(level); err != nil {
		return fmt.Errorf("pin %s: drive %s: %w", a.spec.Pin, level, err)
	}
	return nil
}

// run opens the pin, restores the stored state, and follows the topic's
// partitions until ctx ends; a hardware failure starts it over after a
// backoff, from the stored positions.
func (a *actuator) run(ctx context.Context) {
	clock := a.opts.Clock
	defer a.status(func(s *ActuatorStatus) { s.State = StateStopped })
	// The retention pins stay while it backs off after a failure, so
	// commands not yet applied are kept.
	defer func() {
		for _, p := range a.topic.Partitions() {
			p.Unpin(a.pinName())
		}
	}()
	backoff := minBackoff
	for ctx.Err() == nil {
		err := a.start()
		if err == nil {
			a.status(func(s *ActuatorStatus) { s.State = StateRunning })
			a.lg.Info("actuator running", "output", onOff(a.on))
			started := clock.Now()
			err = a.follow(ctx)
			if clock.Since(started) > maxBackoff {
				backoff = minBackoff // it ran well for a while: a new failure starts over
			}
		}
		if ctx.Err() != nil {
			return
		}
		now := clock.Now()
		a.status(func(s *ActuatorStatus) {
			s.State, s.LastError, s.LastErrorAt = StateFailed, err.Error(), now
		})
		wait := backoff - time.Duration(rand.Int64N(int64(backoff)/5))
		a.lg.Error("actuator failed", "error", err, "retry_in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return
		case <-clock.After(wait):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// start claims the pin and drives it to the stored state (or the
// initial one, the first time).
func (a *actuator) start() error {
	meta := a.opts.Log.Meta()
	v, ok, err := meta.GetCursor(nsActuators, a.stateKey())
	if err != nil {
		return fmt.Errorf("reading the stored state: %w", err)
	}
	on := a.spec.Initial == "on"
	if ok {
		on = string(v) == "on"
	}
	pin, err := a.opts.Hardware.Pin(a.spec.Pin)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pin, a.on = pin, on
	if err := a.drive(on); err != nil {
		return err
	}
	a.status(func(s *ActuatorStatus) { s.Output = onOff(on) })
	return nil
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// partitionPoll is how often follow looks for partitions added to the
// command topic (the log does not announce them). Real time, not the
// Options clock: it times no command.
var partitionPoll = time.Second

// follow runs one follower per partition, and for each partition added
// while it runs, until ctx ends or one fails.
func (a *actuator) follow(ctx context.Context) error {
	resumed, err := a.hasPositions()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	goFollow := func(p *spoollog.Partition, fromStart bool) {
		wg.Go(func() {
			if err := a.followPartition(ctx, p, fromStart); err != nil {
				cancel(err)
			}
		})
	}
	// A partition without a position in an actuator that has some was
	// added while it was stopped: its commands all came after the
	// actuator first ran, and start: latest would skip them.
	followed := a.topic.Partitions()
	for _, p := range followed {
		goFollow(p, resumed)
	}
	tick := time.NewTicker(partitionPoll)
	defer tick.Stop()
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-tick.C:
			all := a.topic.Partitions()
			if len(all) <= len(followed) {
				continue // partitions only grow
			}
			for _, p := range all[len(followed):] {
				a.lg.Info("following a partition added to the command topic", "partition", p.ID())
				goFollow(p, true)
			}
			followed = all
		}
	}
	wg.Wait()
	if err := context.Cause(ctx); !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// hasPositions says whether the actuator stored a position in any
// partition of its topic: whether it ran on this topic before.
func (a *actuator) hasPositions() (bool, error) {
	cursors, err := a.opts.Log.Meta().Cursors(nsActuators)
	if err != nil {
		return false, fmt.Errorf("reading the stored positions: %w", err)
	}
	prefix := a.spec.Name + "\x00" + a.spec.Topic + "\x00"
	for k := range cursors {
		if strings.HasPrefix(k, prefix) {
			return true, nil
		}
	}
	return false, nil
}

// followPartition applies the commands of p from the stored position or,
// without one, from the partition's start when fromStart is set, else
// where spec.Start says.
func (a *actuator) followPartition(ctx context.Context, p *spoollog.Partition, fromStart bool) error {
	meta := a.opts.Log.Meta()
	key := a.cursorKey(p.ID())
	pin := a.pinName() // released by run when the actuator stops, not on a failure
	// The end of what is committed: a transaction pending there is
	// applied once it commits.
	offset := p.LastStableOffset()
	if fromStart || a.spec.Start == "earliest" {
		offset = p.LogStartOffset()
	}
	v, ok, err := meta.GetCursor(nsActuators, key)
	if err != nil {
		return fmt.Errorf("reading the position in partition %d: %w", p.ID(), err)
	}
	if ok && len(v) == 8 {
		offset = int64(binary.BigEndian.Uint64(v))
	} else if err := meta.PutCursor(nsActuators, key, binary.BigEndian.AppendUint64(nil, uint64(offset))); err != nil {
		// Stored at once so that a command written before the first
		// restart is not skipped by "latest".
		return fmt.Errorf("storing the position in partition %d: %w", p.ID(), err)
	}
	for {
		p.Pin(pin, offset)
		notify := p.Notify()
		data, err := p.ReadCommitted(offset, 256<<10)
		if errors.Is(err, spoollog.ErrOffsetOutOfRange) && offset < p.LogStartOffset() {
			a.lg.Warn("commands deleted before they were applied", "partition", p.ID(), "from", offset, "to", p.LogStartOffset())
			offset = p.LogStartOffset()
			continue
		}
		if errors.Is(err, spoollog.ErrOffsetOutOfRange) && offset >= p.LogStartOffset() {
			// Past the end. The tail the position was stored after is
			// gone (a crash lost unsynced records): without this the
			// actuator would fail until new commands reached the old
			// position, and then skip them. Go on at the end, as start:
			// latest does.
			hw := p.HighWatermark()
			if offset <= hw {
				continue // the end moved past it meanwhile
			}
			a.lg.Warn("stored position past the end of the partition; going on from its end", "partition", p.ID(), "stored", offset, "end", hw)
			offset = hw
			if err := meta.PutCursor(nsActuators, key, binary.BigEndian.AppendUint64(nil, uint64(offset))); err != nil {
				return fmt.Errorf("storing the position in partition %d: %w", p.ID(), err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("reading partition %d at %d: %w", p.ID(), offset, err)
		}
		if len(data) == 0 {
			select {
			case <-notify:
				continue
			case <-ctx.Done():
				return nil
			}
		}
		if offset, err = a.apply(ctx, p, data, offset); err != nil {
			return err
		}
	}
}

// apply handles the commands in data (whole batches) at or after offset
// and returns the offset after them.
func (a *actuator) apply(ctx context.Context, p *spoollog.Partition, data []byte, offset int64) (int64, error) {
	meta := a.opts.Log.Meta()
	part := p.ID()
	key := a.cursorKey(part)
	next, err := p.EachCommitted(data, offset, func(r spoollog.Record) error {
		if err := ctx.Err(); err != nil {
			// Stopping (maybe in the middle of a pulse, cut short): the
			// commands not applied yet wait for the next start rather
			// than being run through at once, pulses of no length. The
			// position of those applied is stored; follow takes the
			// context's error for a stop.
			return err
		}
		if (a.spec.Key != "" && string(r.Key) != a.spec.Key) || r.Value == nil {
			return nil
		}
		return a.command(ctx, part, r)
	})
	if err != nil {
		return next, err
	}
	if err := meta.PutCursor(nsActuators, key, binary.BigEndian.AppendUint64(nil, uint64(next))); err != nil {
		return offset, fmt.Errorf("storing the position in partition %d: %w", part, err)
	}
	return next, nil
}

// command applies one command record. The position after it and the
// state it leaves are stored first, in one transaction: a crash after
// that loses at most this command's effect (the state is restored at
// start), and never applies it twice.
func (a *actuator) command(ctx context.Context, part int32, r spoollog.Record) error {
	on, pulse, err := a.parseCommand(r.Value)
	if err != nil {
		a.status(func(s *ActuatorStatus) { s.Invalid++ })
		a.lg.Warn("record is not a command; skipped", "partition", part, "offset", r.Offset, "error", err)
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	err = a.opts.Log.Meta().PutCursors(nsActuators, map[string][]byte{
		a.cursorKey(part): binary.BigEndian.AppendUint64(nil, uint64(r.Offset+1)),
		a.stateKey():      []byte(onOff(on)), // a pulse ends off
	})
	if err != nil {
		return fmt.Errorf("storing the command at offset %d: %w", r.Offset, err)
	}
	a.status(func(s *ActuatorStatus) { s.Applied++; s.LastCommand = r.Offset; s.Output = onOff(on || pulse > 0) })
	if pulse > 0 {
		a.lg.Info("pulse", "offset", r.Offset, "length", pulse)
		if err := a.drive(true); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
		case <-a.opts.Clock.After(pulse):
		}
		a.on = false
		a.status(func(s *ActuatorStatus) { s.Output = "off" })
		return a.drive(false)
	}
	a.lg.Info("output set", "offset", r.Offset, "output", onOff(on))
	a.on = on
	return a.drive(on)
}
