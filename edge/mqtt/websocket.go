package mqtt

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// wsListener serves MQTT over WebSocket (binary frames, subprotocol
// "mqtt") on a listener bound by Start. mochi's own WebSocket listener
// binds its address inside Serve, on a goroutine, and only logs a failure:
// the broker would report ready before it listens, and a taken port would
// go unnoticed. Its connections go through Broker.serveConn like TCP ones,
// so they get the CONNECT deadline and are ended by Close.
type wsListener struct {
	id  string
	ln  net.Listener
	b   *Broker
	srv *http.Server
}

func newWSListener(id string, ln net.Listener, b *Broker) *wsListener {
	return &wsListener{id: id, ln: ln, b: b}
}

func (l *wsListener) ID() string       { return l.id }
func (l *wsListener) Address() string  { return l.ln.Addr().String() }
func (l *wsListener) Protocol() string { return "ws" }

func (l *wsListener) Init(*slog.Logger) error { return nil }

func (l *wsListener) Serve(establish listeners.EstablishFn) {
	up := websocket.Upgrader{
		Subprotocols: []string{"mqtt"},
		// Browsers on any page may connect, as to any MQTT broker; access
		// is decided by MQTT authentication, not by the origin.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	l.srv = &http.Server{
		ReadHeaderTimeout: connectTimeout,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := up.Upgrade(w, r, nil) // answers the client itself on failure
			if err != nil {
				return
			}
			defer c.Close()
			_ = l.b.serveConn(establish, l.id, &wsConn{Conn: c.UnderlyingConn(), ws: c})
		}),
	}
	_ = l.srv.Serve(l.ln) // ends with ErrServerClosed at Close
}

// Close stops accepting; mochi closes the clients with closeClients, and
// Broker.Close has disconnected them before.
func (l *wsListener) Close(closeClients listeners.CloseFn) {
	if l.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), closeWriteTimeout)
		_ = l.srv.Shutdown(ctx) // hijacked connections are not waited for
		cancel()
	} else {
		l.ln.Close()
	}
	closeClients(l.id)
}

// errTextFrame ends a connection that sends a text frame: MQTT over
// WebSocket is binary only.
var errTextFrame = errors.New("mqtt over websocket: text frame")

// wsConn is a WebSocket connection as the byte stream mochi reads packets
// from: the frames' payloads in order, whatever their boundaries. Deadlines
// go to the underlying connection, which the WebSocket reads through.
type wsConn struct {
	net.Conn
	ws *websocket.Conn
	r  io.Reader // the frame being read, or nil
}

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			op, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if op != websocket.BinaryMessage {
				return 0, errTextFrame
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r, err = nil, nil
			if n == 0 {
				continue // an empty frame, or the end of one: read the next
			}
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// SetWriteDeadline also bounds the WebSocket's own writes.
func (c *wsConn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }
