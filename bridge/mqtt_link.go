package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	spoollog "github.com/spoolmq/spool/log"
)

// MQTTLink mirrors local topics to an upstream MQTT broker (MQTT 3.1.1 with
// paho.mqtt.golang, MQTT 5 with paho.golang). Every record becomes one QoS 1
// message on the topic its template names; the cursors, retention pins,
// gaps and Health work as for KafkaLink.
//
// Delivery is at least once. Each partition publishes its records in order,
// with at most InFlight waiting for their PUBACK, and its cursor moves only
// over the acknowledged prefix. paho's own reconnect is off: when the
// connection fails, or a PUBACK does not come within DeliveryTimeout, the
// link drops the client, backs off with jitter, connects a new one (clean
// session) and resends every partition from its cursor. Messages whose
// PUBACK was lost are therefore published twice. MQTT 3.1.1 has no
// headers, so a bare-value message does not say which local offset it
// was: with Envelope off duplicates are recognisable only by content; with
// Envelope on each message carries its origin (edge, topic, partition,
// offset) and upstream consumers can drop the repeats. Over MQTT 5 the
// origin is in every message's user properties.
//
// A message too large for the broker is skipped, not retried (see
// MQTTLinkOptions.MaxMessageBytes).
type MQTTLink struct {
	opts  MQTTLinkOptions
	ns    string
	lg    *slog.Logger
	added chan struct{} // AddTopics made mirrors a session should start
	rate  rateMeter

	// mu guards the fields below.
	mu        sync.Mutex
	mirrors   []*mqttMirror
	connected bool // a connection is up now
	ever      bool // a connection was up at least once
	upErr     error
	upErrAt   time.Time
	upOKAt    time.Time
	running   bool
	stop      context.CancelFunc
	stopped   chan struct{}
	closed    bool
	mirrored  map[string]*spoollog.Partition // mirrorSet.mirrored
}

// MQTTEnvelope is the payload of a message when MQTTLinkOptions.Envelope
// is set. Key, Value and header values are base64 in JSON.
type MQTTEnvelope struct {
	Edge      string           `json:"edge"`
	Topic     string           `json:"topic"`
	Partition int32            `json:"partition"`
	Offset    int64            `json:"offset"`
	Timestamp int64            `json:"timestamp"` // Unix milliseconds
	Key       []byte           `json:"key_b64,omitempty"`
	Value     []byte           `json:"value_b64"`
	Headers   []EnvelopeHeader `json:"headers,omitempty"`
}

// EnvelopeHeader is one record header of an MQTTEnvelope.
type EnvelopeHeader struct {
	Key   string `json:"key"`
	Value []byte `json:"value_b64"`
}

// NewMQTTLink checks opts, resolves the local topics (they must exist),
// loads the stored cursors and pins retention at them. A partition the link
// never mirrored starts at its log start.
func NewMQTTLink(opts MQTTLinkOptions) (*MQTTLink, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	l := &MQTTLink{opts: opts, ns: cursorNamespace(opts.Name), lg: opts.Logger.With("link", opts.Name),
		added: make(chan struct{}, 1), mirrored: map[string]*spoollog.Partition{}}
	seen := make(map[string]bool)
	for _, name := range opts.Topics {
		if seen[name] {
			return nil, fmt.Errorf("bridge link %s: topic %q listed twice", opts.Name, name)
		}
		seen[name] = true
	}
	if _, err := l.AddTopics(opts.Topics...); err != nil {
		l.unpin()
		return nil, err
	}
	select { // a session starts these itself
	case <-l.added:
	default:
	}
	return l, nil
}

// AddTopics starts mirroring more local topics, and partitions added to
// the topics already mirrored; a connected link starts them at once. It
// returns how many partitions were added.
//
// A topic deleted and created again under the same name while the link
// runs is mirrored from its new log start.
func (l *MQTTLink) AddTopics(names ...string) (int, error) {
	return l.set().add(l.opts.Log, l.opts.Name, names,
		func(topic string, p int32) error {
			// Checked with a sample key so a bad template fails here.
			_, err := mqttTopic(l.opts.Topic, l.opts.Site, topic, p, []byte("k"))
			return err
		},
		func(p *spoollog.Partition, topic string, fresh bool) (*mqttMirror, error) {
			return newMQTTMirror(l, p, topic, fresh)
		})
}

func (l *MQTTLink) set() mirrorSet[*mqttMirror] {
	return mirrorSet[*mqttMirror]{mu: &l.mu, mirrors: &l.mirrors, mirrored: l.mirrored, added: l.added}
}

func (l *MQTTLink) mirrorList() []*mqttMirror {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.mirrors)
}

// Run mirrors until ctx ends (or Close is called), then waits up to
// FlushTimeout for PUBACKs of what was published, stores the cursors and
// returns nil. Upstream failures are retried with backoff and never end
// Run. Run may be called again after it returned.
func (l *MQTTLink) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	l.mu.Lock()
	if l.closed || l.running {
		l.mu.Unlock()
		return fmt.Errorf("bridge link %s: closed or already running", l.opts.Name)
	}
	l.running, l.stop, l.stopped = true, cancel, make(chan struct{})
	stopped := l.stopped
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.running = false
		l.mu.Unlock()
		close(stopped)
	}()

	bo := backoff{min: l.opts.BackoffMin, max: l.opts.BackoffMax}
	for ctx.Err() == nil {
		connected, err := l.session(ctx)
		if ctx.Err() != nil {
			break
		}
		if connected {
			bo.reset()
		}
		l.noteUpstream(err)
		wait := bo.next()
		l.lg.Warn("upstream connection failed", "err", err, "retry_in", wait)
		sleep(ctx, wait)
	}
	return nil
}

// session connects one paho client and mirrors every partition over it
// until the connection fails or ctx ends. connected says whether the
// connection came up; err is why it ended (nil when ctx ended).
func (l *MQTTLink) session(ctx context.Context) (connected bool, err error) {
	if l.opts.Version == 5 {
		return l.session5(ctx)
	}
	conn, drop := context.WithCancelCause(ctx)
	defer drop(nil)
	cl := mqtt.NewClient(l.clientOptions(func(err error) {
		drop(fmt.Errorf("connection lost: %w", err))
	}))
	tok := cl.Connect()
	t := time.NewTimer(l.opts.ConnectTimeout + time.Second)
	select {
	case <-tok.Done():
		err = tok.Error()
	case <-t.C:
		err = fmt.Errorf("connect: no CONNACK within %v", l.opts.ConnectTimeout)
	case <-ctx.Done():
	}
	t.Stop()
	if err != nil || ctx.Err() != nil {
		cl.Disconnect(0)
		if err != nil {
			err = fmt.Errorf("connect %s: %w", l.opts.Broker, err)
		}
		return false, err
	}
	l.setConnected(true)
	l.lg.Info("connected", "broker", l.opts.Broker)
	var wg sync.WaitGroup
	// paho calls the connection-lost handler only once its workers
	// stopped, which can take up to its write timeout after the socket
	// failed; its status says so at once.
	wg.Go(func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-conn.Done():
				return
			case <-t.C:
				if !cl.IsConnectionOpen() {
					err := errors.New("connection lost")
					l.setConnected(false)
					l.noteUpstream(err)
					l.lg.Debug("connection lost")
					drop(err)
					return
				}
			}
		}
	})
	limit := l.packetLimit(0)
	l.runMirrors(&wg, ctx, conn, drop, func(*mqttMirror) publisher { return v3Publisher{cl, limit} })
	wg.Wait()
	l.setConnected(false)
	cl.Disconnect(250)
	if ctx.Err() != nil {
		return true, nil
	}
	return true, context.Cause(conn)
}

// runMirrors starts every mirror over one connection, and those that
// AddTopics adds while it is up, until conn ends; a mirror's error drops
// the connection.
func (l *MQTTLink) runMirrors(wg *sync.WaitGroup, ctx, conn context.Context, drop context.CancelCauseFunc, pub func(*mqttMirror) publisher) {
	started := map[*mqttMirror]bool{}
	startNew := func() {
		for _, m := range l.mirrorList() {
			if !started[m] {
				started[m] = true
				wg.Go(func() {
					if err := m.run(ctx, conn, pub(m)); err != nil {
						drop(err)
					}
				})
			}
		}
	}
	startNew()
	wg.Go(func() {
		for {
			select {
			case <-conn.Done():
				return
			case <-l.added:
				startNew()
			}
		}
	})
}

func (l *MQTTLink) clientOptions(lost func(error)) *mqtt.ClientOptions {
	o := mqtt.NewClientOptions().
		AddBroker(l.opts.Broker).
		SetClientID(l.opts.ClientID).
		SetProtocolVersion(4). // 3.1.1
		SetCleanSession(true). // the cursor, not the session, says what to resend
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetKeepAlive(l.opts.KeepAlive).
		SetPingTimeout(min(l.opts.KeepAlive, 10*time.Second)).
		SetConnectTimeout(l.opts.ConnectTimeout).
		SetWriteTimeout(l.opts.WriteTimeout).
		SetOrderMatters(true).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) { lost(err) })
	if l.opts.TLS != nil {
		o.SetTLSConfig(l.opts.TLS)
	}
	if l.opts.Username != "" {
		o.SetUsername(l.opts.Username).SetPassword(l.opts.Password)
	}
	return o
}

// Close stops a running Run, waits for it and releases the retention pins.
// The cursors stay stored: a new link with the same name resumes from them.
func (l *MQTTLink) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	running, stop, stopped := l.running, l.stop, l.stopped
	l.mu.Unlock()
	if running {
		stop()
		<-stopped
	}
	l.unpin()
	return nil
}

func (l *MQTTLink) unpin() {
	for _, m := range l.mirrorList() {
		m.p.Unpin(l.ns)
	}
}

func (l *MQTTLink) setConnected(c bool) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.connected = c
	if c {
		l.ever, l.upOKAt = true, now
	}
}

func (l *MQTTLink) noteUpstream(err error) {
	if err == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.upErr, l.upErrAt = err, time.Now()
}

// Health returns the link's current state; safe at any time.
func (l *MQTTLink) Health() Health {
	mirrors := l.mirrorList()
	parts := make([]*partState, len(mirrors))
	for i, m := range mirrors {
		parts[i] = &m.partState
	}
	h, failing, draining := sumPartitions(l.opts.Name, parts, time.Now(), l.opts.StallTimeout)
	h.RecordsPerSec, h.BytesPerSec = l.rate.update(time.Now(), h.Records, h.Bytes)
	l.mu.Lock()
	connected, ever, upErr, upErrAt, upOKAt := l.connected, l.ever, l.upErr, l.upErrAt, l.upOKAt
	l.mu.Unlock()
	if upErr != nil && upErrAt.After(h.LastErrorAt) {
		h.LastError, h.LastErrorAt = "upstream: "+upErr.Error(), upErrAt
	}
	outage := !connected && upErr != nil && upErrAt.After(upOKAt)
	switch {
	case outage:
		h.State = StateFailing
	case !ever:
		h.State = StateConnecting
	case failing:
		h.State = StateFailing
	case draining:
		h.State = StateDraining
	default:
		h.State = StateCaughtUp
	}
	return h
}

// mqttMirror copies one local partition upstream; partState is shared
// with Health, the rest belongs to the goroutine running run.
type mqttMirror struct {
	partState
	link *MQTTLink
}

func newMQTTMirror(l *MQTTLink, p *spoollog.Partition, topic string, fresh bool) (*mqttMirror, error) {
	// The destination is the template expanded but for {key}.
	dest := strings.NewReplacer("{site}", l.opts.Site, "{topic}", topic,
		"{partition}", fmt.Sprint(p.ID())).Replace(l.opts.Topic)
	m := &mqttMirror{link: l}
	if err := m.init(l.opts.Log.Meta(), l.ns, p, topic, dest, l.lg, fresh); err != nil {
		return nil, fmt.Errorf("bridge link %s: %w", l.opts.Name, err)
	}
	return m, nil
}

// run mirrors over one connection until it fails (the error) or ctx
// (Run's) or conn (the connection's) ends (nil).
func (m *mqttMirror) run(ctx, conn context.Context, cl publisher) error {
	m.markStart()
	for conn.Err() == nil {
		idle, err := m.round(ctx, conn, cl)
		if err != nil {
			if ctx.Err() != nil {
				m.lg.Info("stopped with messages unacknowledged; they will be resent", "cursor", m.getCursor(), "err", err)
				return nil
			}
			if errors.Is(err, spoollog.ErrClosed) && m.deleted(m.link.opts.Log) {
				// The topic was deleted: retiring, not dropping the
				// connection the other partitions use.
				m.link.set().retire(m)
				return nil
			}
			if conn.Err() == nil || !errors.Is(err, errConnEnded) {
				m.fail(err)
			}
			return err
		}
		if idle != nil {
			m.setWaiting(true)
			select {
			case <-idle:
			case <-conn.Done():
			}
			m.setWaiting(false)
		}
	}
	return nil
}

var errConnEnded = errors.New("connection ended before PUBACK")

// inflight is one message waiting for its PUBACK.
type inflight struct {
	offset int64
	size   int64
	tok    token
	sentAt time.Time
}

// round reads at the cursor, publishes what it read with at most InFlight
// messages unacknowledged, and stores the cursor of the acknowledged
// prefix. It returns a channel to wait on when there was nothing to read.
func (m *mqttMirror) round(ctx, conn context.Context, cl publisher) (<-chan struct{}, error) {
	o := &m.link.opts
	cursor := m.getCursor()
	if start := m.p.LogStartOffset(); cursor < start {
		return nil, m.skipGap(cursor, start)
	}
	notify := m.p.Notify()
	data, err := m.p.ReadCommitted(cursor, o.ReadBytes)
	if errors.Is(err, spoollog.ErrOffsetOutOfRange) && cursor < m.p.LogStartOffset() {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read local log at %d: %w", cursor, err)
	}
	if len(data) == 0 {
		return notify, nil
	}
	recs, end, err := decodeLocal(m.p, data, cursor)
	if err != nil {
		return nil, err
	}
	if end <= cursor {
		return nil, fmt.Errorf("read local log at %d: %d bytes but no whole batch", cursor, len(data))
	}

	next, n, b := cursor, int64(0), int64(0)
	var window []inflight
	var flushBy time.Time // set once Run's context ended
	// await waits for the oldest message's PUBACK and moves the
	// acknowledged prefix over it.
	await := func() error {
		f := window[0]
		for {
			d := time.Until(f.sentAt.Add(o.DeliveryTimeout))
			if !flushBy.IsZero() {
				d = min(d, time.Until(flushBy))
			}
			t := time.NewTimer(max(d, 0))
			var done <-chan struct{}
			if flushBy.IsZero() {
				done = conn.Done()
			}
			select {
			case <-f.tok.Done():
				t.Stop()
			case <-t.C:
				if !flushBy.IsZero() {
					return fmt.Errorf("offset %d: no PUBACK within the flush timeout", f.offset)
				}
				return fmt.Errorf("offset %d: no PUBACK within %v", f.offset, o.DeliveryTimeout)
			case <-done:
				t.Stop()
				if ctx.Err() != nil {
					flushBy = time.Now().Add(o.FlushTimeout) // stopping: let PUBACKs in
					continue
				}
				if !settled(f.tok) {
					return errConnEnded
				}
			}
			err := f.tok.Error()
			if errors.Is(err, errTooLarge) {
				// Every message before it is acknowledged: the cursor
				// may move past it.
				if err := m.skipTooLarge(f.offset, fmt.Errorf("upstream %s: %w", m.dest, err)); err != nil {
					return err
				}
				window = window[1:]
				next = f.offset + 1
				return nil
			}
			if err != nil {
				return fmt.Errorf("publish offset %d: %w", f.offset, err)
			}
			window = window[1:]
			next, n, b = f.offset+1, n+1, b+f.size
			return nil
		}
	}
	var perr error
	complete := true // every record was published
	for _, r := range recs {
		// paho's Publish blocks for up to its write timeout while a lost
		// connection is being torn down, and the loss is reported only
		// after that: stop publishing as soon as the connection is not
		// open.
		if conn.Err() != nil || !cl.isOpen() {
			complete = false
			break
		}
		for len(window) >= o.InFlight && perr == nil {
			perr = await()
		}
		if perr != nil {
			break
		}
		topic, payload, err := m.message(r)
		if err != nil {
			perr = err
			break
		}
		window = append(window, inflight{offset: r.Offset, size: int64(len(r.Key) + len(r.Value)),
			tok: cl.publish(topic, payload, r), sentAt: time.Now()})
	}
	for len(window) > 0 && perr == nil {
		perr = await()
	}
	switch {
	case perr != nil:
	case complete && conn.Err() == nil:
		next = end // includes control batches and compacted-away offsets
	default:
		perr = errConnEnded
	}
	if err := m.advance(next, n, b, n > 0 || perr == nil); err != nil {
		return nil, err
	}
	return nil, perr
}

// settled reports whether tok, whose connection ended, has its outcome:
// an MQTT 5 token always gets one at once (its PUBACK if it came before
// the end, else errConnEnded), so a refusal just before a disconnect
// still counts; paho.mqtt.golang's only if it has it already.
func settled(tok token) bool {
	if t, ok := tok.(*ackToken); ok {
		<-t.done
		return true
	}
	select {
	case <-tok.Done():
		return true
	default:
		return false
	}
}

// decodeLocal returns the records of stored batches at or after cursor, and
// the offset after the last batch; control batches and aborted
// transactions are skipped.
func decodeLocal(p *spoollog.Partition, data []byte, cursor int64) ([]spoollog.Record, int64, error) {
	var recs []spoollog.Record
	end, err := p.EachCommitted(data, cursor, func(r spoollog.Record) error {
		recs = append(recs, r)
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("decode local batch at %d: %w", cursor, err)
	}
	return recs, end, nil
}

// message returns the topic and payload of one record.
func (m *mqttMirror) message(r spoollog.Record) (string, []byte, error) {
	o := &m.link.opts
	topic, err := mqttTopic(o.Topic, o.Site, m.topic, m.p.ID(), r.Key)
	if err != nil {
		return "", nil, err
	}
	if !o.Envelope {
		if r.Value == nil {
			return topic, []byte{}, nil
		}
		return topic, r.Value, nil
	}
	env := MQTTEnvelope{Edge: o.Site, Topic: m.topic, Partition: m.p.ID(), Offset: r.Offset,
		Timestamp: r.Timestamp, Key: r.Key, Value: r.Value}
	if env.Value == nil {
		env.Value = []byte{}
	}
	for _, h := range r.Headers {
		env.Headers = append(env.Headers, EnvelopeHeader{Key: h.Key, Value: h.Value})
	}
	payload, err := json.Marshal(env)
	return topic, payload, err
}
