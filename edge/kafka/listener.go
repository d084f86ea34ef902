package kafka

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

// listener is one bound address and what clients that connect to it are
// told in metadata: Kafka answers each client with the address of the
// listener it came in on.
type listener struct {
	name string // "plain" or "tls"
	ln   net.Listener
	host string
	port int32
}

// Listen binds the configured listeners; Serve then accepts on them.
func (s *Server) Listen() error {
	type spec struct {
		name, addr, adv string
		tls             *tls.Config
	}
	specs := []spec{{"plain", s.opts.Addr, s.opts.Advertised, nil}}
	if s.opts.TLSAddr != "" {
		if s.opts.TLS == nil {
			return errors.New("kafka: a TLS address without a TLS configuration")
		}
		specs = append(specs, spec{"tls", s.opts.TLSAddr, s.opts.TLSAdvertised, s.opts.TLS})
	}
	for _, sp := range specs {
		if sp.addr == "" {
			continue
		}
		l, err := bind(sp.name, sp.addr, sp.adv, sp.tls)
		if err != nil {
			for _, o := range s.listeners {
				o.ln.Close()
			}
			s.listeners = nil
			return err
		}
		s.listeners = append(s.listeners, l)
	}
	if len(s.listeners) == 0 {
		return errors.New("kafka: no listener address")
	}
	return nil
}

func bind(name, addr, adv string, tc *tls.Config) (*listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if adv == "" {
		adv = ln.Addr().String()
	}
	host, port, err := net.SplitHostPort(adv)
	var p int
	if err == nil {
		if p, err = strconv.Atoi(port); err == nil && (p < 1 || p > 65535) {
			err = fmt.Errorf("port %d out of range", p)
		}
	}
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("advertised address %q: %w", adv, err)
	}
	if tc != nil {
		ln = tls.NewListener(ln, tc)
	}
	return &listener{name: name, ln: ln, host: host, port: int32(p)}, nil
}

// Addr is the plain listener's bound address (or the TLS one's when there
// is no plain listener), or nil before Listen.
func (s *Server) Addr() net.Addr { return s.ListenerAddr("plain") }

// ListenerAddr is the bound address of the "plain" or "tls" listener, or nil.
func (s *Server) ListenerAddr(name string) net.Addr {
	for _, l := range s.listeners {
		if l.name == name {
			return l.ln.Addr()
		}
	}
	if name == "plain" && len(s.listeners) > 0 {
		return s.listeners[0].ln.Addr()
	}
	return nil
}

// Serve accepts connections on every listener until Close, then returns
// nil; a listener that fails otherwise is the error, returned at once
// (the others go on accepting until Close).
func (s *Server) Serve() error {
	errs := make(chan error, len(s.listeners))
	for _, l := range s.listeners {
		go func() { errs <- s.accept(l) }()
	}
	for range s.listeners {
		if err := <-errs; err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) accept(l *listener) error {
	var delay time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if s.isClosed() {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("kafka %s listener: %w", l.name, err)
			}
			// Out of file descriptors and the like: wait, do not stop.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.lg.Warn("accepting a Kafka connection failed; retrying", "listener", l.name, "error", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		if !s.track(c) {
			c.Close()
			continue
		}
		go s.serveConn(c, l)
	}
}
