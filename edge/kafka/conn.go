package kafka

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
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

// serveConn reads requests from c one at a time and answers each in turn.
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
	// Small buffers: a large fetch answer is written past the buffer.
	r := bufio.NewReaderSize(c, 8<<10)
	w := bufio.NewWriterSize(c, 8<<10)
	var out []byte
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
			out = binary.BigEndian.AppendUint32(out[:0], uint32(len(tok)))
			out = append(out, tok...)
			if _, err := w.Write(out); err != nil || w.Flush() != nil {
				return
			}
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
		resp := s.handle(cs, req)
		if resp == nil {
			continue // acks=0 produce: no answer
		}
		out = appendResponse(out[:0], req, resp)
		_ = c.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := w.Write(out); err == nil {
			err = w.Flush()
		}
		if err != nil || cs.closeAfter {
			return
		}
		if cap(out) > 1<<20 {
			out = nil // do not keep a large fetch's buffer per idle connection
		}
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
