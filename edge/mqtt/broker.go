// Package mqtt is Spool's MQTT front door: an embedded mochi-mqtt broker
// whose publishes are appended to the commit log and acknowledged only
// once the log has them durably, then delivered to subscribers like any
// broker does.
package mqtt

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
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
	caps.MaximumMessageExpiryInterval = int64(m.SessionExpiry.D().Seconds())
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

	if err := b.buildRouter(opts); err != nil {
		return nil, err
	}
	b.auth = newAuthHook(opts.AllowAnonymous, opts.Auth)
	b.sessions = newSessionHook(opts.Log.Meta(), lg)
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
		tc, err := serverTLS(m.TLS)
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
		// mochi's WebSocket listener binds inside Serve and only logs a
		// failure, so the address is checked here first.
		ln, err := net.Listen("tcp", m.WebSocket)
		if err != nil {
			return fmt.Errorf("mqtt.websocket: %w", err)
		}
		addr := ln.Addr()
		ln.Close()
		if err := b.server.AddListener(listeners.NewWebsocket(listeners.Config{ID: "ws", Address: m.WebSocket})); err != nil {
			return err
		}
		b.setAddr("ws", addr)
	}
	return b.server.Serve()
}

func (b *Broker) addNet(id string, ln net.Listener) error {
	if err := b.server.AddListener(listeners.NewNet(id, ln)); err != nil {
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

func serverTLS(c config.TLSListener) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(c.Cert, c.Key)
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.ClientCA != "" {
		pem, err := os.ReadFile(c.ClientCA)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("client_ca: no certificates found")
		}
		tc.ClientCAs, tc.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return tc, nil
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
	err := b.server.Close()
	b.pendingWG.Wait()
	if serr := b.sessions.close(); err == nil {
		err = serr
	}
	return err
}
