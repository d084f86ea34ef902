// Package mqtt is Spool's MQTT front door: an embedded mochi-mqtt broker
// whose publishes are appended to the commit log and acknowledged only
// once the log has them durably, then delivered to subscribers like any
// broker does.
package mqtt

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"math"
	"net"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/spoolmq/spool/edge/config"
	spoollog "github.com/spoolmq/spool/log"
)

// Options configure a Broker.
type Options struct {
	MQTT           config.MQTTConfig
	Auth           config.AuthConfig
	AllowAnonymous bool
	// Routes send publishes to log topics; with none, every publish goes
	// to DefaultTopic keyed by its MQTT topic. Route topics must exist.
	Routes []config.RouteSpec
	// Egress delivers log topics to MQTT subscribers. Their topics must exist.
	Egress []config.EgressSpec
	Log    *spoollog.Log
	Logger *slog.Logger
}

// Broker is the embedded MQTT broker.
type Broker struct {
	server   *mqtt.Server
	inline   *mqtt.Client // redelivers stored publishes to subscribers
	router   router
	auth     *authHook
	sessions *sessionHook
	lg       *slog.Logger

	maxKeepalive uint16
	maxInflight  int
	queues       sync.Map // *mqtt.Client → *clientQueue
	pendingWG    sync.WaitGroup
	stats        counters
	conns        connSet // of every listener
	// subs says whether publishes have anyone to be delivered to.
	subs *subscriptionSet
	qos2 qos2Arrivals  // QoS 2 publishes not yet settled
	ids  packetIDSwaps // SUBSCRIBE/UNSUBSCRIBE ids handed to mochi under stand-ins

	meta        *spoollog.Meta
	egress      []*egress
	egressStop  chan struct{}
	egressWG    sync.WaitGroup
	egressStats egressStats

	mu    sync.Mutex
	addrs map[string]net.Addr
}

// New builds a broker over the log. Nothing listens until Start.
func New(opts Options) (*Broker, error) {
	lg := opts.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	m := opts.MQTT
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = uint32(m.MaxPacketSize)
	caps.MaximumClients = int64(m.MaxClients)
	caps.ReceiveMaximum = uint16(m.MaxInflight)
	caps.MaximumInflight = uint16(min(m.MaxQueued, math.MaxUint16))
	caps.MaximumClientWritesPending = int32(m.MaxQueued)
	caps.MaximumSessionExpiryInterval = uint32(m.SessionExpiry.D().Seconds())
	// No cap on a message's age: mochi would also delete every retained
	// message older than the cap (device states, Home Assistant's
	// discovery configs). Messages queued for a session go with the
	// session, which session_expiry bounds; an MQTT 5 message expiry is
	// still honoured.
	caps.MaximumMessageExpiryInterval = 0
	if !m.Retain {
		caps.RetainAvailable = 0
	}
	b := &Broker{
		lg:           lg,
		maxKeepalive: uint16(m.MaxKeepalive.D().Seconds()),
		maxInflight:  m.MaxInflight,
		addrs:        map[string]net.Addr{},
	}
	b.server = mqtt.New(&mqtt.Options{
		Capabilities: caps,
		Logger:       slog.New(payloadFilter{lg.Handler()}),
		// $SYS topics every second would be the only work of an idle broker.
		SysTopicResendInterval: math.MaxInt32,
	})
	b.inline = b.server.NewClient(nil, mqtt.LocalListener, "spool-log", true)
	// mochi expires only packets of MQTT 5: what the inline client hands
	// back keeps its message expiry (retained and queued messages alike).
	b.inline.Properties.ProtocolVersion = 5

	if err := b.buildRouter(opts); err != nil {
		return nil, err
	}
	b.meta = opts.Log.Meta()
	if err := b.buildEgress(opts); err != nil {
		return nil, err
	}
	b.auth = newAuthHook(opts.AllowAnonymous, opts.Auth)
	b.auth.lg = lg
	b.auth.sessionUser = func(id string) (string, bool) {
		cl, ok := b.server.Clients.Get(id)
		if !ok {
			return "", false
		}
		return string(cl.Properties.Username), true
	}
	b.auth.refuse = func(cl *mqtt.Client, code packets.Code) { _ = b.server.SendConnack(cl, code, false, nil) }
	b.sessions = newSessionHook(opts.Log.Meta(), lg)
	b.sessions.maxExpiry = caps.MaximumSessionExpiryInterval
	b.sessions.onStarted = b.afterRestore
	b.subs = newSubscriptionSet()
	b.sessions.onRestored = func(subs []storage.Subscription) {
		for _, sub := range subs {
			b.subs.restore(sub.Client, sub.Filter)
		}
	}
	for _, h := range []mqtt.Hook{b.auth, b.sessions, &ingestHook{b: b}} {
		if err := b.server.AddHook(h, nil); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func (b *Broker) buildRouter(opts Options) error {
	specs := opts.Routes
	if len(specs) == 0 {
		specs = []config.RouteSpec{{Match: "#", Topic: DefaultTopic, Key: "topic"}}
	}
	for i, s := range specs {
		key, err := config.ParseKey(s.Key)
		if err != nil {
			return fmt.Errorf("routes[%d].key: %w", i, err)
		}
		t, err := opts.Log.Topic(s.Topic)
		if err != nil {
			return fmt.Errorf("routes[%d].topic: %w", i, err)
		}
		b.router.routes = append(b.router.routes, route{filter: s.Match, topic: t, key: key})
	}
	return nil
}

// Start binds the listeners and starts serving; a listener that cannot
// bind is an error, and nothing is left listening.
func (b *Broker) Start(m config.MQTTConfig) (err error) {
	var opened []net.Listener
	defer func() {
		if err != nil {
			for _, l := range opened {
				l.Close()
			}
		}
	}()
	if m.Addr != "" {
		ln, err := net.Listen("tcp", m.Addr)
		if err != nil {
			return fmt.Errorf("mqtt.addr: %w", err)
		}
		opened = append(opened, ln)
		if err := b.addNet("tcp", ln); err != nil {
			return err
		}
	}
	if m.TLS.Addr != "" {
		tc, err := m.TLS.ServerConfig()
		if err != nil {
			return fmt.Errorf("mqtt.tls: %w", err)
		}
		ln, err := net.Listen("tcp", m.TLS.Addr)
		if err != nil {
			return fmt.Errorf("mqtt.tls.addr: %w", err)
		}
		opened = append(opened, ln)
		if err := b.addNet("tls", tls.NewListener(ln, tc)); err != nil {
			return err
		}
	}
	if m.WebSocket != "" {
		ln, err := net.Listen("tcp", m.WebSocket)
		if err != nil {
			return fmt.Errorf("mqtt.websocket: %w", err)
		}
		opened = append(opened, ln)
		if err := b.server.AddListener(newWSListener("ws", ln, b)); err != nil {
			return err
		}
		b.setAddr("ws", ln.Addr())
	}
	if err := b.server.Serve(); err != nil {
		return err
	}
	b.startEgress()
	return nil
}

func (b *Broker) addNet(id string, ln net.Listener) error {
	if err := b.server.AddListener(newTCPListener(id, ln, b)); err != nil {
		return err
	}
	b.setAddr(id, ln.Addr())
	return nil
}

func (b *Broker) setAddr(id string, a net.Addr) {
	b.mu.Lock()
	b.addrs[id] = a
	b.mu.Unlock()
}

// Addr returns the bound address of a listener ("tcp", "tls", "ws"), or
// nil when it is not listening.
func (b *Broker) Addr(id string) net.Addr {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.addrs[id]
}

// queue returns the connection's publish queue, creating it on first use.
func (b *Broker) queue(cl *mqtt.Client) *clientQueue {
	if q, ok := b.queues.Load(cl); ok {
		return q.(*clientQueue)
	}
	q, _ := b.queues.LoadOrStore(cl, newClientQueue(b, cl, b.maxInflight))
	return q.(*clientQueue)
}

// Close stops the listeners and disconnects the clients, waits for the
// publishes still waiting for the log, then writes the session state.
// Call it before closing the log.
func (b *Broker) Close() error {
	b.stopEgress()
	// The clients are disconnected here rather than by mochi's Close, which
	// disconnects only the clients that have a session (one still to send
	// its CONNECT would hold it for ever) and deadlocks when one of them
	// leaves meanwhile (Clients.GetByListener read-locks twice while the
	// leaving client waits to write-lock).
	gone := b.conns.shutdown()
	for _, cl := range b.server.Clients.GetAll() {
		if cl.Net.Conn == nil || cl.Closed() {
			continue
		}
		// A write stuck on a client that does not read holds the client's
		// lock, which the DISCONNECT needs.
		_ = cl.Net.Conn.SetWriteDeadline(time.Now().Add(closeWriteTimeout))
		_ = b.server.DisconnectClient(cl, packets.ErrServerShuttingDown)
	}
	<-gone
	err := b.server.Close()
	b.pendingWG.Wait()
	if serr := b.sessions.close(); err == nil {
		err = serr
	}
	return err
}

// connectTimeout bounds how long a new connection may take to send its
// CONNECT. mochi sets no deadline before the CONNECT: an idle connection
// would hold its goroutine (and Close) for ever.
const connectTimeout = 10 * time.Second

// closeWriteTimeout bounds the writes to a client at Close.
const closeWriteTimeout = time.Second

// serveConn hands a new connection of any listener to mochi, tracked in
// b.conns for as long as mochi has it.
func (b *Broker) serveConn(establish listeners.EstablishFn, id string, c net.Conn) error {
	if !b.conns.add(c) {
		c.Close() // accepted while closing
		return nil
	}
	_ = c.SetReadDeadline(time.Now().Add(connectTimeout)) // mochi replaces it after CONNECT
	err := establish(id, c)
	if session, closing := b.conns.remove(c); !session && !closing {
		b.countRefused(err)
	}
	if err != nil {
		b.lg.Debug("MQTT connection ended", "listener", id, "remote", c.RemoteAddr().String(), "error", err)
	}
	return err
}

// connSet tracks the connections of the listeners, from
// accept until mochi is done with them.
type connSet struct {
	mu      sync.Mutex
	conns   map[net.Conn]bool // → its session is established
	closing bool
	gone    chan struct{} // closing: closed once conns is empty
}

// add tracks a new connection; it reports false once the broker closes.
func (s *connSet) add(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	if s.conns == nil {
		s.conns = map[net.Conn]bool{}
	}
	s.conns[c] = false
	return true
}

// established notes that c has a session: mochi reports its end to the
// OnDisconnect hooks.
func (s *connSet) established(c net.Conn) {
	s.mu.Lock()
	if _, ok := s.conns[c]; ok {
		s.conns[c] = true
	}
	s.mu.Unlock()
}

// remove forgets c and reports whether it had a session and whether the
// broker is closing.
func (s *connSet) remove(c net.Conn) (session, closing bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	session = s.conns[c]
	delete(s.conns, c)
	if s.closing && len(s.conns) == 0 {
		s.signalGone()
	}
	return session, s.closing
}

// shutdown refuses new connections and closes those without a session
// (the broker disconnects the others). The channel is closed once every
// connection has ended.
func (s *connSet) shutdown() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closing {
		s.closing, s.gone = true, make(chan struct{})
		for c, session := range s.conns {
			if !session {
				c.Close()
			}
		}
		if len(s.conns) == 0 {
			s.signalGone()
		}
	}
	return s.gone
}

// signalGone closes gone once; s.mu is held.
func (s *connSet) signalGone() {
	select {
	case <-s.gone:
	default:
		close(s.gone)
	}
}
