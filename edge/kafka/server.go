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
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	spoollog "github.com/spoolmq/spool/log"
)

// NodeID is the broker id Spool announces: the only node of its cluster.
const NodeID int32 = 0

// Options configure a Server.
type Options struct {
	// Addr is the plain listener's address (127.0.0.1:9092); empty: none.
	Addr string
	// Advertised is the host:port clients of the plain listener are told
	// to connect to; empty means the bound address.
	Advertised string
	// TLSAddr, TLSAdvertised and TLS are the TLS listener's; off when
	// TLSAddr is empty.
	TLSAddr, TLSAdvertised string
	TLS                    *tls.Config
	// Users who may authenticate with SASL (PLAIN, SCRAM-SHA-256/512).
	Users map[string]Credentials
	// RequireSASL makes every connection authenticate before any request
	// but ApiVersions and the SASL ones; without it SASL is optional.
	RequireSASL bool
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
	txns      *txnCoordinator
	stats     Stats

	listeners []*listener

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
	AuthFailures  atomic.Int64 // failed SASL, or a request before authenticating
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
	if found, err := ps.restore(opts.Log); err != nil || !found {
		if err != nil {
			opts.Logger.Warn("idempotent producer state not restored; reading it back from the log", "error", err)
		}
		ps.rebuildFromLog(opts.Log, time.Now())
	}
	if opts.ClusterID == "" {
		if opts.ClusterID, err = clusterID(opts.Log.Meta()); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		opts: opts, log: opts.Log, lg: opts.Logger, producers: ps, groups: newCoordinator(),
		ctx: ctx, cancel: cancel, conns: map[net.Conn]struct{}{},
	}
	if s.txns, err = newTxnCoordinator(s); err != nil {
		cancel()
		return nil, err
	}
	return s, nil
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

// Stats returns the live counters.
func (s *Server) Stats() *Stats { return &s.stats }

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
	for _, l := range s.listeners {
		if cerr := l.ln.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	s.wg.Wait()
	s.groups.close()
	s.txns.close()
	// Every connection is done: every produce was answered after its
	// appends, so the producer state matches the log.
	if serr := s.producers.save(); serr != nil && err == nil {
		err = fmt.Errorf("saving idempotent producer state: %w", serr)
	}
	return err
}
