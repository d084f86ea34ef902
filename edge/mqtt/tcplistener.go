package mqtt

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// tcpListener serves MQTT on a bound TCP (or TLS) listener. It replaces
// mochi's own, which shares one error variable between the goroutines of
// all its connections (a data race) and logs every failed connection as
// a warning with no message. Connections go through Broker.serveConn,
// which sets the CONNECT deadline, tracks them for Close and counts what
// ended them; their ends are logged at debug level.
type tcpListener struct {
	id   string
	ln   net.Listener
	b    *Broker
	once sync.Once
}

func newTCPListener(id string, ln net.Listener, b *Broker) *tcpListener {
	return &tcpListener{id: id, ln: ln, b: b}
}

func (l *tcpListener) ID() string       { return l.id }
func (l *tcpListener) Address() string  { return l.ln.Addr().String() }
func (l *tcpListener) Protocol() string { return "tcp" }

func (l *tcpListener) Init(*slog.Logger) error { return nil }

func (l *tcpListener) Serve(establish listeners.EstablishFn) {
	var delay time.Duration
	for {
		c, err := l.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			// Out of file descriptors and the like: wait, do not stop.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			l.b.lg.Warn("accepting an MQTT connection failed; retrying", "listener", l.id, "error", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		go func() { _ = l.b.serveConn(establish, l.id, c) }()
	}
}

// Close stops accepting; mochi closes the clients with closeClients, and
// Broker.Close has disconnected them before.
func (l *tcpListener) Close(closeClients listeners.CloseFn) {
	l.once.Do(func() { l.ln.Close() })
	closeClients(l.id)
}
