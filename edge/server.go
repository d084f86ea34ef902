// Package edge is the appliance: it opens the commit log, declares the
// configured topics, and runs the listeners (MQTT, Kafka, HTTP) under one
// context, shutting them down in the order that loses nothing.
package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/spoolmq/spool/edge/config"
	"github.com/spoolmq/spool/edge/httpapi"
	"github.com/spoolmq/spool/edge/kafka"
	"github.com/spoolmq/spool/edge/metrics"
	"github.com/spoolmq/spool/edge/mqtt"
	spoollog "github.com/spoolmq/spool/log"
	"github.com/spoolmq/spool/sensors"
)

// Server is a running appliance.
type Server struct {
	cfg     config.Config
	lg      *slog.Logger
	log     *spoollog.Log
	broker  *mqtt.Broker
	kafka   *kafka.Server
	txnOnly *kafka.Server // without a Kafka listener: its transaction coordinator alone
	links   *links
	sensors *sensors.Manager
	reg     *metrics.Registry

	httpAddr   atomic.Pointer[net.Addr]
	started    atomic.Bool // every listener bound: ready
	stopping   atomic.Bool
	stoppingCh chan struct{} // closed when Run begins to shut down
}

// Stopping is closed when Run begins to shut down (its context ended, or
// a listener failed), before it drains: a supervisor learns it then.
func (s *Server) Stopping() <-chan struct{} { return s.stoppingCh }

// Open validates the configuration, opens the data directory (recovering
// every partition), declares the configured topics and builds the
// listeners. Nothing listens until Run.
func Open(cfg config.Config, lg *slog.Logger) (s *Server, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	start := time.Now()
	l, err := spoollog.Open(cfg.Data, spoollog.Options{Logger: lg.With("component", "log"), DiskBudget: int64(cfg.DiskBudget)})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	lg.Info("log opened", "data", cfg.Data, "topics", len(l.Topics()), "bytes", l.UsedBytes(), "took", time.Since(start).Round(time.Millisecond))
	if err := declareTopics(l, cfg, lg); err != nil {
		return nil, err
	}
	s = &Server{cfg: cfg, lg: lg, log: l, reg: metrics.NewRegistry(), stoppingCh: make(chan struct{})}
	if s.links, err = newLinks(cfg, l, lg); err != nil {
		return nil, err
	}
	registerBridgeMetrics(s.reg, s.links)
	var onReading func(sensors.Reading)
	if cfg.HomeAssistant.Discovery {
		publish := func(topic string, payload []byte, retain bool) error {
			return s.broker.Publish(topic, payload, 1, retain)
		}
		onReading = newHomeAssistant(cfg, publish, lg.With("component", "homeassistant")).reading
	}
	if s.sensors, err = newSensors(cfg, l, onReading, lg.With("component", "sensors")); err != nil {
		return nil, err
	}
	if s.sensors != nil {
		registerSensorMetrics(s.reg, s.sensors)
	}
	if cfg.MQTT.Addr != "" || cfg.MQTT.TLS.Addr != "" || cfg.MQTT.WebSocket != "" {
		s.broker, err = mqtt.New(mqtt.Options{
			MQTT:           cfg.MQTT,
			Auth:           cfg.Auth,
			AllowAnonymous: cfg.AnonymousAllowed(),
			Routes:         cfg.Routes,
			Egress:         cfg.Egress,
			Log:            l,
			Logger:         lg.With("component", "mqtt"),
		})
		if err != nil {
			return nil, err
		}
		registerMQTTMetrics(s.reg, s.broker)
	}
	if cfg.Kafka.Addr != "" || cfg.Kafka.TLS.Addr != "" {
		s.kafka, err = newKafka(cfg, l, lg.With("component", "kafka"))
		if err != nil {
			return nil, err
		}
		registerKafkaMetrics(s.reg, s.kafka)
	} else {
		// No listener, but the transaction coordinator still runs: a
		// transaction an earlier run left pending would otherwise hold
		// back its partitions' committed readers (links, egress, HTTP)
		// for ever, instead of timing out.
		s.txnOnly, err = kafka.New(kafka.Options{Log: l, Logger: lg.With("component", "kafka")})
		if err != nil {
			return nil, err
		}
	}
	return s, nil
}

// declareTopics creates the configured topics, applies changed settings
// to existing ones, and creates the topics routes name that the config
// does not (with the defaults).
func declareTopics(l *spoollog.Log, cfg config.Config, lg *slog.Logger) error {
	for i, spec := range cfg.Topics {
		t, err := l.Topic(spec.Name)
		if errors.Is(err, spoollog.ErrUnknownTopic) {
			tc, err := spec.TopicConfig(spoollog.DefaultTopicConfig())
			if err != nil {
				return fmt.Errorf("topics[%d]: %w", i, err)
			}
			if _, err := l.CreateTopic(spec.Name, tc); err != nil {
				return fmt.Errorf("topics[%d]: %w", i, err)
			}
			lg.Info("topic created", "topic", spec.Name, "partitions", tc.Partitions, "sync", tc.Sync)
			continue
		}
		if err != nil {
			return err
		}
		old := t.Config()
		tc, err := spec.TopicConfig(old)
		if err != nil {
			return fmt.Errorf("topics[%d]: %w", i, err)
		}
		if !reflect.DeepEqual(old, tc) {
			if err := l.AlterTopic(spec.Name, tc); err != nil {
				return fmt.Errorf("topics[%d]: %w", i, err)
			}
			lg.Info("topic settings changed by the config", "topic", spec.Name)
		}
	}
	routed := []string{}
	for _, r := range cfg.Routes {
		routed = append(routed, r.Topic)
	}
	for _, e := range cfg.Egress {
		routed = append(routed, e.Topic)
	}
	for _, lk := range cfg.Links {
		for _, d := range lk.Downstream {
			routed = append(routed, d.To)
		}
	}
	routed = append(routed, cfg.SensorTopics()...)
	if len(cfg.Routes) == 0 && (cfg.MQTT.Addr != "" || cfg.MQTT.TLS.Addr != "" || cfg.MQTT.WebSocket != "") {
		routed = append(routed, mqtt.DefaultTopic)
	}
	for _, name := range routed {
		if _, err := l.Topic(name); errors.Is(err, spoollog.ErrUnknownTopic) {
			if _, err := l.CreateTopic(name, spoollog.DefaultTopicConfig()); err != nil && !errors.Is(err, spoollog.ErrTopicExists) {
				return err
			}
			lg.Info("topic created for a route, egress, downstream link, sensor or actuator", "topic", name)
		}
	}
	return nil
}

// Log returns the commit log.
func (s *Server) Log() *spoollog.Log { return s.log }

// Broker returns the MQTT broker, or nil when no MQTT listener is configured.
func (s *Server) Broker() *mqtt.Broker { return s.broker }

// Kafka returns the Kafka listener, or nil when none is configured.
func (s *Server) Kafka() *kafka.Server { return s.kafka }

// HTTPAddr returns the bound HTTP address once Run is listening, or nil.
func (s *Server) HTTPAddr() net.Addr {
	if a := s.httpAddr.Load(); a != nil {
		return *a
	}
	return nil
}

// Run starts the listeners and serves until ctx ends. It then stops
// taking new work, lets publishes and HTTP requests in flight reach the
// log, and flushes and closes the log. The error is the first failure,
// including an fsync error surfaced by Close.
func (s *Server) Run(ctx context.Context, ready func()) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	maint := make(chan error, 1)
	go func() { maint <- s.log.Run(ctx, s.cfg.MaintainInterval.D()) }()
	go trimWhenIdle(ctx, s.log, s.cfg.MaintainInterval.D(), debug.FreeOSMemory)

	s.links.run(ctx, s.lg)
	httpSrv, httpDone, err := s.startHTTP(ctx)
	if err == nil && s.broker != nil {
		if err = s.broker.Start(s.cfg.MQTT); err == nil {
			for _, id := range []string{"tcp", "tls", "ws"} {
				if a := s.broker.Addr(id); a != nil {
					s.lg.Info("mqtt listening", "listener", id, "addr", a.String())
				}
			}
		}
	}
	kafkaDone := make(chan error, 1)
	if err == nil && s.kafka != nil {
		if err = s.kafka.Listen(); err != nil {
			err = fmt.Errorf("kafka.addr: %w", err)
		} else {
			for _, id := range []string{"plain", "tls"} {
				if a := s.kafka.ListenerAddr(id); a != nil {
					s.lg.Info("kafka listening", "listener", id, "addr", a.String())
				}
			}
			go func() {
				if err := s.kafka.Serve(); err != nil {
					kafkaDone <- err
				}
			}()
		}
	}
	// Sensors start once the listeners are bound: their first readings
	// may be published to MQTT (Home Assistant) at once.
	sensorsDone := make(chan struct{})
	if err == nil && s.sensors != nil {
		go func() {
			defer close(sensorsDone)
			s.sensors.Run(ctx)
		}()
	} else {
		close(sensorsDone)
	}
	if err == nil {
		s.started.Store(true)
		if ready != nil {
			ready()
		}
		// Opening a large data directory and binding the listeners leave
		// garbage behind; hand it back before settling in.
		debug.FreeOSMemory()
		select {
		case <-ctx.Done():
		case err = <-httpDone:
		case err = <-kafkaDone:
		}
	}
	s.stopping.Store(true)
	close(s.stoppingCh)
	cancel()
	s.lg.Info("shutting down")
	// Readings being stored and commands being applied finish first (and
	// may still be published to MQTT).
	<-sensorsDone
	if httpSrv != nil {
		// Long polls and streams end with ctx; produce requests finish.
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		if herr := httpSrv.Shutdown(sctx); herr != nil && err == nil {
			err = fmt.Errorf("http shutdown: %w", herr)
		}
		scancel()
	}
	if s.broker != nil {
		if berr := s.broker.Close(); berr != nil && err == nil {
			err = berr
		}
	}
	if s.kafka != nil {
		// Produce requests waiting for their fsync are answered first.
		if kerr := s.kafka.Close(); kerr != nil && err == nil {
			err = fmt.Errorf("kafka shutdown: %w", kerr)
		}
	}
	if s.txnOnly != nil {
		if kerr := s.txnOnly.Close(); kerr != nil && err == nil {
			err = fmt.Errorf("kafka transaction coordinator shutdown: %w", kerr)
		}
	}
	// The links flush what upstream has acknowledged into their cursors.
	s.links.close()
	if merr := <-maint; merr != nil && err == nil {
		err = merr
	}
	s.lg.Info("flushing the log")
	if cerr := s.log.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

// startHTTP binds the HTTP listener (an error if it cannot) and serves
// the API on it. done reports a serving failure.
func (s *Server) startHTTP(ctx context.Context) (*http.Server, <-chan error, error) {
	done := make(chan error, 1)
	if s.cfg.HTTP.Addr == "" {
		return nil, done, nil
	}
	ln, err := net.Listen("tcp", s.cfg.HTTP.Addr)
	if err != nil {
		return nil, done, fmt.Errorf("http.addr: %w", err)
	}
	h := httpapi.New(httpapi.Options{
		Log:      s.log,
		Registry: s.reg,
		Token:    s.cfg.HTTP.Token,
		Logger:   s.lg.With("component", "http"),
		Context:  ctx,
		Bridge:   func() any { return map[string]any{"links": s.links.health(), "downstream": s.links.downHealth()} },
		Sensors:  func() any { return sensorState(s.sensors) },
		Ready: func() error {
			switch {
			case s.stopping.Load():
				return errors.New("shutting down")
			case !s.started.Load():
				return errors.New("starting: the listeners are not all bound yet")
			}
			return nil
		},
	})
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.lg.Handler(), slog.LevelWarn),
	}
	addr := ln.Addr()
	s.httpAddr.Store(&addr)
	s.lg.Info("http listening", "addr", addr.String())
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			done <- fmt.Errorf("http: %w", err)
		}
	}()
	return srv, done, nil
}
