package kafka

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// idleTimeout closes a connection that sends nothing for this long
// (Kafka's connections.max.idle.ms).
const idleTimeout = 10 * time.Minute

// writeTimeout bounds writing one response to a client that does not read.
const writeTimeout = 30 * time.Second

// request is one decoded request and its header.
type request struct {
	key, version int16
	corr         int32
	clientID     string
	body         kmsg.Request
}

// connState is one client connection: where it came in, and whether it
// has authenticated.
type connState struct {
	c      net.Conn
	lis    *listener
	authed bool   // SASL done, or not required
	user   string // the authenticated user
	sasl   *saslConversation
	// closeAfter ends the connection once the current answer is written
	// (a failed authentication).
	closeAfter bool
}

// maxPipelined bounds the produce requests of one connection that wait
// for their appends while the next ones are read (kgo and librdkafka keep
// up to 5 in flight).
const maxPipelined = 8

// answer is one response to write, in request order: resp, or a produce
// waiting for its appends, or raw bytes (a bare SASL token).
type answer struct {
	req        *request
	resp       kmsg.Response
	produce    *pendingProduce
	raw        []byte
	closeAfter bool
}

// serveConn reads requests from c and answers each in turn, from a writer
// goroutine. Requests are handled one at a time, as a Kafka broker does,
// with one exception: a produce request only queues its appends before
// the next request is read, and its answer follows once they are durable.
// A request of any other kind first waits for those answers, so it sees
// what was produced before it.
//
// A frame it cannot understand (oversized, truncated, an API key it does
// not know, a version it cannot decode) closes the connection: there is
// no way to answer what cannot be parsed, and Kafka brokers do the same.
func (s *Server) serveConn(c net.Conn, l *listener) {
	defer s.untrack(c)
	defer c.Close()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	cs := &connState{c: c, lis: l, authed: !s.opts.RequireSASL}
	answers := make(chan answer, maxPipelined)
	var pending sync.WaitGroup // answers not yet written
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		s.writeAnswers(c, answers, &pending)
	}()
	defer func() {
		close(answers)
		<-writerDone
	}()
	send := func(a answer) {
		pending.Add(1)
		answers <- a
	}

	// Small buffer: a produce request larger than it is read straight in.
	r := bufio.NewReaderSize(c, 8<<10)
	for {
		_ = c.SetReadDeadline(time.Now().Add(idleTimeout))
		if s.ctx.Err() != nil {
			return
		}
		// A fresh buffer per request: decoded requests alias it (group
		// members keep their protocol metadata and assignments).
		frame, err := readFrame(r, s.maxFrame(cs))
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && s.ctx.Err() == nil {
				s.badRequest(c, err)
			}
			return
		}
		if cs.sasl != nil && cs.sasl.raw {
			// A bare SASL token after a v0 handshake, answered bare.
			tok, err := s.saslStep(cs, frame)
			if err != nil {
				return
			}
			send(answer{raw: tok})
			continue
		}
		req, err := parseRequest(frame) // too short a frame fails here
		if err != nil {
			s.badRequest(c, err)
			return
		}
		if !cs.authed && !preAuth(req.key) {
			// Kafka closes a connection that skips authentication; kgo
			// then says SASL may be missing.
			s.stats.AuthFailures.Add(1)
			s.lg.Warn("closing an unauthenticated Kafka connection", "remote", c.RemoteAddr().String(), "request", kmsg.NameForKey(req.key))
			return
		}
		s.stats.Requests.Add(1)
		if s.pipelines(req) {
			send(answer{req: req, produce: s.startProduce(req)})
			continue
		}
		pending.Wait()
		resp := s.handle(cs, req)
		if resp != nil || cs.closeAfter {
			send(answer{req: req, resp: resp, closeAfter: cs.closeAfter})
		}
		if cs.closeAfter {
			return
		}
	}
}

// pipelines reports whether req is a produce request that may be started
// before the answers ahead of it are written.
func (s *Server) pipelines(req *request) bool {
	api := apis[kmsg.Produce]
	return req.key == kmsg.Produce.Int16() && req.version >= api.min && req.version <= api.max
}

// writeAnswers writes the answers in order until answers is closed. After
// a failed write it closes the connection (which ends the reader) and
// only drains.
func (s *Server) writeAnswers(c net.Conn, answers <-chan answer, pending *sync.WaitGroup) {
	w := bufio.NewWriterSize(c, 8<<10)
	var out []byte
	failed := false
	for a := range answers {
		resp := a.resp
		if a.produce != nil {
			// Answers already written go out before waiting for this one's
			// appends; if it need not wait (one fsync acknowledged a whole
			// pipeline), they go out together.
			if !failed && w.Buffered() > 0 && !a.produce.ready() && w.Flush() != nil {
				failed = true
				c.Close()
			}
			resp = a.produce.finish() // wait for the appends, even if the client is gone
			if a.produce.closeConn && !failed {
				_ = w.Flush()
				failed = true
				c.Close()
			}
		}
		if !failed {
			switch {
			case a.raw != nil:
				out = binary.BigEndian.AppendUint32(out[:0], uint32(len(a.raw)))
				out = append(out, a.raw...)
			case resp != nil:
				out = appendResponse(out[:0], a.req, resp)
			default:
				out = out[:0] // acks=0 produce: no answer
			}
			if len(out) > 0 {
				_ = c.SetWriteDeadline(time.Now().Add(writeTimeout))
				_, err := w.Write(out)
				if err == nil && len(answers) == 0 {
					err = w.Flush() // answers queued behind go out in the same write
				}
				failed = err != nil
			}
			if a.closeAfter || failed {
				_ = w.Flush()
				failed = true
				c.Close()
			}
			if cap(out) > 1<<20 {
				out = nil // do not keep a large fetch's buffer per idle connection
			}
		}
		pending.Done()
	}
	if !failed {
		_ = w.Flush()
	}
}

// maxFrame bounds a request: before authentication, only the small
// requests of the handshake are expected.
func (s *Server) maxFrame(cs *connState) int {
	if !cs.authed {
		return min(s.opts.MaxRequestSize, 64<<10)
	}
	return s.opts.MaxRequestSize
}

// preAuth reports whether a request is allowed before authentication.
func preAuth(key int16) bool {
	switch kmsg.Key(key) {
	case kmsg.ApiVersions, kmsg.SASLHandshake, kmsg.SASLAuthenticate:
		return true
	}
	return false
}

func (s *Server) badRequest(c net.Conn, err error) {
	s.stats.BadRequests.Add(1)
	s.lg.Warn("closing a Kafka connection after a bad request", "remote", c.RemoteAddr().String(), "error", err)
}

// readFrame reads one size-prefixed request.
func readFrame(r *bufio.Reader, max int) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return nil, err
	}
	n := int(int32(binary.BigEndian.Uint32(size[:])))
	if n < 0 || n > max {
		return nil, fmt.Errorf("request of %d bytes (allowed up to %d)", n, max)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("truncated request: %w", err)
	}
	return buf, nil
}

// parseRequest decodes the request header and body. The body's byte
// slices (produced records) alias frame.
func parseRequest(frame []byte) (*request, error) {
	rd := kbin.Reader{Src: frame}
	req := &request{key: rd.Int16(), version: rd.Int16(), corr: rd.Int32()}
	if id := rd.NullableString(); id != nil {
		req.clientID = *id
	}
	if err := rd.Complete(); err != nil {
		return nil, fmt.Errorf("request header: %w", err)
	}
	body := kmsg.RequestForKey(req.key)
	if body == nil {
		return nil, fmt.Errorf("unknown API key %d", req.key)
	}
	if req.key == kmsg.ApiVersions.Int16() && req.version > body.MaxVersion() {
		// A client newer than this broker: KIP-511 says to answer at v0
		// with the versions spoken (handle), without reading the body.
		req.body = body
		return req, nil
	}
	if req.version < 0 || req.version > body.MaxVersion() {
		return nil, fmt.Errorf("%s v%d: a version this broker cannot decode", kmsg.NameForKey(req.key), req.version)
	}
	body.SetVersion(req.version)
	rest := rd.Src
	if body.IsFlexible() {
		rd = kbin.Reader{Src: rest}
		kmsg.SkipTags(&rd)
		if err := rd.Complete(); err != nil {
			return nil, fmt.Errorf("request header tags: %w", err)
		}
		rest = rd.Src
	}
	if err := body.ReadFrom(rest); err != nil {
		return nil, fmt.Errorf("%s v%d: %w", kmsg.NameForKey(req.key), req.version, err)
	}
	req.body = body
	return req, nil
}

// appendResponse frames resp: size, correlation id, the header's tags
// (flexible versions, except ApiVersions whose response header is never
// flexible so that any client can read it), body.
func appendResponse(dst []byte, req *request, resp kmsg.Response) []byte {
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(req.corr))
	resp.SetVersion(req.version)
	if resp.IsFlexible() && req.key != kmsg.ApiVersions.Int16() {
		dst = append(dst, 0)
	}
	dst = resp.AppendTo(dst)
	binary.BigEndian.PutUint32(dst, uint32(len(dst)-4))
	return dst
}
