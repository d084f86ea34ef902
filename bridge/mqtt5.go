package bridge

// MQTT 5 upstream, through paho.golang. Its Publish either blocks until
// the PUBACK, one message per round trip, or (AsyncSend) returns once the
// message is sent without a way to learn the outcome. A mirror needs
// both: messages sent in order without waiting, and each one's PUBACK.
// ackSession gets the second from the session store: every QoS 1 publish
// passes through AddToSession with the channel its acknowledgement will
// arrive on, and a publish is handed over one at a time (mqtt5Conn.mu),
// so the store can pair that channel with the caller's token.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	"github.com/eclipse/paho.golang/paho/session"
	"github.com/eclipse/paho.golang/paho/session/state"

	spoollog "github.com/spoolmq/spool/log"
)

// ackToken is one MQTT 5 publish waiting for its PUBACK.
type ackToken struct {
	done chan struct{}
	once sync.Once
	err  error
}

func newAckToken() *ackToken { return &ackToken{done: make(chan struct{})} }

func (t *ackToken) Done() <-chan struct{} { return t.done }
func (t *ackToken) Error() error          { <-t.done; return t.err }

func (t *ackToken) finish(err error) { t.once.Do(func() { t.err = err; close(t.done) }) }

// complete finishes the token from what the session delivered: a PUBACK
// (or, when the client shuts down, an empty packet).
func (t *ackToken) complete(cp packets.ControlPacket) {
	switch {
	case cp.Type == packets.PUBACK:
		pa := cp.Content.(*packets.Puback)
		if pa.ReasonCode == packets.DisconnectPacketTooLarge {
			// Not a PUBACK code in the standard, but what mosquitto
			// answers a payload over its message_size_limit.
			t.finish(fmt.Errorf("%w: PUBACK reason %#x (packet too large)", errTooLarge, pa.ReasonCode))
			return
		}
		if pa.ReasonCode >= 0x80 {
			t.finish(fmt.Errorf("PUBACK reason %#x: %s", pa.ReasonCode, pa.Reason()))
			return
		}
		t.finish(nil)
	case cp.Type == 0:
		t.finish(errConnEnded)
	default:
		t.finish(fmt.Errorf("packet type %d instead of PUBACK", cp.Type))
	}
}

// ackSession is paho's in-memory session that also completes the token
// of the publish being handed over.
type ackSession struct {
	session.SessionManager
	next *ackToken       // set by mqtt5Conn.publish, under its mu
	conn context.Context // the connection's: paho tells a lost connection's waiters nothing
}

func (s *ackSession) AddToSession(ctx context.Context, p session.Packet, resp chan<- packets.ControlPacket) error {
	tok := s.next
	if tok == nil {
		return s.SessionManager.AddToSession(ctx, p, resp)
	}
	mine := make(chan packets.ControlPacket, 1)
	if err := s.SessionManager.AddToSession(ctx, p, mine); err != nil {
		return err
	}
	go func() {
		select {
		case cp := <-mine:
			tok.complete(cp)
			select {
			case resp <- cp: // paho's own channel (buffered, read by nobody under AsyncSend)
			default:
			}
		case <-s.conn.Done():
			// On a lost connection paho drops the session's waiters
			// without a word: end the token (and this goroutine) here.
			// paho hands a PUBACK over before it reads the end of the
			// connection, so one that came (a 0x95 after which mosquitto
			// may disconnect) is here now.
			select {
			case cp := <-mine:
				tok.complete(cp)
			default:
				tok.finish(errConnEnded)
			}
		}
	}()
	return nil
}

// mqtt5Conn is one MQTT 5 connection.
type mqtt5Conn struct {
	c     *paho.Client
	sess  *ackSession
	ctx   context.Context // the connection's: ends when it is dropped
	limit int             // largest PUBLISH to send (MQTTLink.packetLimit)
	mu    sync.Mutex      // one publish handed over at a time
	lost  atomic.Bool
}

// mqtt5Publisher publishes one mirror's records over a connection.
type mqtt5Publisher struct {
	conn *mqtt5Conn
	m    *mqttMirror
}

func (p mqtt5Publisher) isOpen() bool { return !p.conn.lost.Load() }

func (p mqtt5Publisher) publish(topic string, payload []byte, r spoollog.Record) token {
	props := &paho.PublishProperties{}
	for _, h := range r.Headers {
		if h.Key == "content-type" {
			props.ContentType = string(h.Value)
			continue
		}
		props.User.Add(h.Key, string(h.Value))
	}
	o := &p.m.link.opts
	props.User.Add(HeaderEdge, o.Site).
		Add(HeaderTopic, p.m.topic).
		Add(HeaderPartition, strconv.Itoa(int(p.m.p.ID()))).
		Add(HeaderOffset, strconv.FormatInt(r.Offset, 10))
	if o.Envelope {
		props.ContentType = "application/json"
	}
	c := p.conn
	pub := &paho.Publish{QoS: 1, Topic: topic, Payload: payload, Properties: props}
	// paho.golang keeps the CONNACK's Maximum Packet Size but sends
	// larger packets anyway, and the broker then drops the connection.
	if n := publish5Size(pub); n > c.limit {
		return refuseTooLarge(n, c.limit)
	}
	tok := newAckToken()
	c.mu.Lock()
	c.sess.next = tok
	_, err := c.c.PublishWithOptions(c.ctx, pub, paho.PublishOptions{Method: paho.PublishMethod_AsyncSend})
	c.sess.next = nil
	c.mu.Unlock()
	if err != nil && !errors.Is(err, paho.ErrNetworkErrorAfterStored) {
		// Not in the session: no acknowledgement will come.
		tok.finish(err)
	}
	return tok
}

// publish5Size is the size of pub's PUBLISH packet, as paho encodes it.
func publish5Size(pub *paho.Publish) int {
	rem := 0
	for _, b := range pub.Packet().Buffers() {
		rem += len(b)
	}
	return packetSize(rem)
}

// dial opens the TCP or TLS connection to the broker.
func (l *MQTTLink) dial(ctx context.Context) (net.Conn, error) {
	u, err := url.Parse(l.opts.Broker)
	if err != nil {
		return nil, err
	}
	host := u.Host
	secure := u.Scheme == "ssl" || u.Scheme == "tls" || u.Scheme == "mqtts" || u.Scheme == "tcps"
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), map[bool]string{false: "1883", true: "8883"}[secure])
	}
	d := &net.Dialer{Timeout: l.opts.ConnectTimeout}
	if !secure {
		return d.DialContext(ctx, "tcp", host)
	}
	tc := l.opts.TLS
	if tc == nil {
		tc = &tls.Config{}
	}
	tc = tc.Clone()
	if tc.ServerName == "" {
		tc.ServerName = u.Hostname()
	}
	return (&tls.Dialer{NetDialer: d, Config: tc}).DialContext(ctx, "tcp", host)
}

// session5 is session over MQTT 5.
func (l *MQTTLink) session5(ctx context.Context) (connected bool, err error) {
	conn, drop := context.WithCancelCause(ctx)
	defer drop(nil)
	cctx, cancel := context.WithTimeout(ctx, l.opts.ConnectTimeout)
	defer cancel()
	nc, err := l.dial(cctx)
	if err != nil {
		return false, fmt.Errorf("connect %s: %w", l.opts.Broker, err)
	}
	mc := &mqtt5Conn{sess: &ackSession{SessionManager: state.NewInMemory(), conn: conn}, ctx: conn}
	lost := func(err error) {
		if mc.lost.CompareAndSwap(false, true) {
			l.setConnected(false)
			l.noteUpstream(err)
			drop(fmt.Errorf("connection lost: %w", err))
		}
	}
	mc.c = paho.NewClient(paho.ClientConfig{
		ClientID:      l.opts.ClientID,
		Conn:          packets.NewThreadSafeConn(nc),
		Session:       mc.sess,
		PacketTimeout: l.opts.DeliveryTimeout,
		OnClientError: lost,
		OnServerDisconnect: func(d *paho.Disconnect) {
			err := fmt.Errorf("server disconnected: reason %#x", d.ReasonCode)
			if d.ReasonCode == packets.DisconnectPacketTooLarge {
				// Refused before sending when the CONNACK says the limit.
				err = fmt.Errorf("%w: packet too large, and the broker did not announce its limit", err)
			}
			lost(err)
		},
	})
	cp := &paho.Connect{ClientID: l.opts.ClientID, CleanStart: true, KeepAlive: uint16(l.opts.KeepAlive / time.Second)}
	if l.opts.Username != "" {
		cp.Username, cp.UsernameFlag = l.opts.Username, true
		cp.Password, cp.PasswordFlag = []byte(l.opts.Password), true
	}
	ca, err := mc.c.Connect(cctx, cp)
	if err == nil && ca.ReasonCode >= 0x80 {
		err = fmt.Errorf("CONNACK reason %#x", ca.ReasonCode)
	}
	if err != nil {
		nc.Close()
		return false, fmt.Errorf("connect %s: %w", l.opts.Broker, err)
	}
	var brokerMax uint32
	if ca.Properties != nil && ca.Properties.MaximumPacketSize != nil {
		brokerMax = *ca.Properties.MaximumPacketSize
	}
	mc.limit = l.packetLimit(brokerMax)
	l.setConnected(true)
	args := []any{"broker", l.opts.Broker, "protocol", "MQTT 5"}
	if brokerMax > 0 {
		args = append(args, "max_packet_size", brokerMax)
	}
	l.lg.Info("connected", args...)
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-mc.c.Done():
			lost(errors.New("connection closed"))
		case <-conn.Done():
		}
	})
	l.runMirrors(&wg, ctx, conn, drop, func(m *mqttMirror) publisher { return mqtt5Publisher{mc, m} })
	wg.Wait()
	l.setConnected(false)
	_ = mc.c.Disconnect(&paho.Disconnect{ReasonCode: 0})
	nc.Close()
	if ctx.Err() != nil {
		return true, nil
	}
	return true, context.Cause(conn)
}
