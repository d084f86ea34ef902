// Package kafka is Spool's Kafka front door: a single-node broker that
// speaks the Kafka wire protocol over Spool's own commit log, so kcat,
// librdkafka, franz-go and the Java client read and write Spool topics.
//
// Produced batches are stored as the client sent them (the on-disk format
// is Kafka's RecordBatch v2) and fetched back as stored, without
// re-encoding. Requests on one connection are handled one at a time and
// answered in order, as a Kafka broker does; parallelism comes from
// connections, and appends from all of them share fsyncs.
package kafka

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	spoollog "github.com/spoolmq/spool/log"
)

// NodeID is the broker id Spool announces: the only node of its cluster.
const NodeID int32 = 0

// Options configure a Server.
type Options struct {
	// Addr is the listen address (127.0.0.1:9092).
	Addr string
	// Advertised is the host:port clients are told to connect to; empty
	// means the bound address.
	Advertised string
	// AutoCreateTopics creates a topic on its first produce or metadata
	// request, with the log's defaults (Kafka's auto.create.topics.enable).
	AutoCreateTopics bool
	// MaxRequestSize bounds one request frame; a bigger one closes the
	// connection (Kafka's socket.request.max.bytes). 0 means 100 MiB.
	MaxRequestSize int
	// ClusterID names the cluster in metadata responses; empty means the
	// data directory's own, made at its first start.
	ClusterID string

	Log    *spoollog.Log
	Logger *slog.Logger
}

// Server is the Kafka listener.
type Server struct {
	opts      Options
	log       *spoollog.Log
	lg        *slog.Logger
	producers *producers
	groups    *coordinator
	stats     Stats

	ln   net.Listener
	host string
	port int32

	ctx    context.Context // ends at Close: long polls return
	cancel context.CancelFunc
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
	closed bool
}

// Stats are the listener's counters.
type Stats struct {
	Connections   atomic.Int64 // open now
	Requests      atomic.Int64
	BadRequests   atomic.Int64 // malformed, oversized or of unknown key: the connection was closed
	ProducedBatch atomic.Int64
	ProduceErrors atomic.Int64
}

// New builds a server. Nothing listens until Listen.
func New(opts Options) (*Server, error) {
	if opts.Log == nil {
		return nil, errors.New("kafka: no log")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxRequestSize <= 0 {
		opts.MaxRequestSize = 100 << 20
	}
	ps, err := newProducers(opts.Log.Meta())
	if err != nil {
		return nil, err
	}
	if opts.ClusterID == "" {
		if opts.ClusterID, err = clusterID(opts.Log.Meta()); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		opts: opts, log: opts.Log, lg: opts.Logger, producers: ps, groups: newCoordinator(),
		ctx: ctx, cancel: cancel, conns: map[net.Conn]struct{}{},
	}, nil
}

// clusterID returns the data directory's cluster id, making one (22
// characters of base64 of 16 random bytes, like Kafka's) the first time.
// Clients notice a cluster id that changes: it must not.
func clusterID(meta *spoollog.Meta) (string, error) {
	b, ok, err := meta.GetCursor(nsKafka, keyClusterID)
	if err != nil || ok {
		return string(b), err
	}
	var raw [16]byte
	_, _ = rand.Read(raw[:])
	id := base64.RawURLEncoding.EncodeToString(raw[:])
	return id, meta.PutCursor(nsKafka, keyClusterID, []byte(id))
}

// Listen binds the listener; Serve then accepts on it.
func (s *Server) Listen() error {
	ln, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return err
	}
	adv := s.opts.Advertised
	if adv == "" {
		adv = ln.Addr().String()
	}
	host, port, err := net.SplitHostPort(adv)
	if err == nil {
		var p int
		if p, err = strconv.Atoi(port); err == nil && (p < 1 || p > 65535) {
			err = fmt.Errorf("port %d out of range", p)
		}
		s.port = int32(p)
	}
	if err != nil {
		ln.Close()
		return fmt.Errorf("advertised address %q: %w", adv, err)
	}
	s.ln, s.host = ln, host
	return nil
}

// Addr is the bound address, or nil before Listen.
func (s *Server) Addr() net.Addr {
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Stats returns the live counters.
func (s *Server) Stats() *Stats { return &s.stats }

// Serve accepts connections until Close. It returns nil after Close.
func (s *Server) Serve() error {
	var delay time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if s.isClosed() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, errTemporary(err)) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("kafka accept: %w", err)
		}
		delay = 0
		if !s.track(c) {
			c.Close()
			continue
		}
		go s.serveConn(c)
	}
}

// errTemporary treats the accept errors a busy machine produces (too many
// open files) as a reason to wait, not to stop listening.
func errTemporary(err error) error {
	type temporary interface{ Temporary() bool }
	var t temporary
	if errors.As(err, &t) && t.Temporary() {
		return err
	}
	return nil
}

func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.stats.Connections.Add(1)
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.stats.Connections.Add(-1)
	s.wg.Done()
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close stops accepting, ends long polls, and waits for every connection
// to finish the request it is handling (a produce waiting for its fsync
// is answered) before closing it. Call it before closing the log.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	// Cancelled before the deadlines are set: a connection that sets its
	// own read deadline after this sees the context over (serveConn).
	s.cancel()
	for c := range s.conns {
		// Unblocks a read waiting for the next request; a request being
		// handled finishes and its answer is written first.
		_ = c.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()
	var err error
	if s.ln != nil {
		err = s.ln.Close()
	}
	s.wg.Wait()
	s.groups.close()
	return err
}
