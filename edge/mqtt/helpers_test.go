package mqtt_test

// Shared scaffolding of the broker tests: a broker over a real log in a
// temporary directory, paho and raw MQTT clients, a file-system seam that
// holds fsyncs, and helpers to read records back and to poll conditions.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/spoolmq/spool/edge/config"
	"github.com/spoolmq/spool/edge/mqtt"
	spoollog "github.com/spoolmq/spool/log"
)

// waitTimeout bounds every wait of these tests.
const waitTimeout = 15 * time.Second

// setup describes a broker to start. The zero value is an anonymous broker
// with no routes (every publish goes to topic "mqtt").
type setup struct {
	topics    map[string]spoollog.TopicConfig // created when missing
	routes    []config.RouteSpec
	auth      config.AuthConfig
	denyAnon  bool
	mqtt      func(*config.MQTTConfig)
	logOpts   spoollog.Options
	noDefault bool // do not create topic "mqtt"
}

// testBroker is a started broker over its own log.
type testBroker struct {
	t    testing.TB
	dir  string
	s    setup
	cfg  config.MQTTConfig
	Log  *spoollog.Log
	B    *mqtt.Broker
	logw *testLogWriter

	mu     sync.Mutex
	closed bool
}

// startBroker opens a log in a new temporary directory, creates the topics
// and starts a broker on 127.0.0.1 with port 0. Cleanup closes the broker,
// then the log.
func startBroker(t testing.TB, s setup) *testBroker {
	t.Helper()
	tb := &testBroker{t: t, dir: t.TempDir(), s: s}
	tb.logw = &testLogWriter{t: t}
	t.Cleanup(func() {
		tb.close()
		tb.logw.stop()
	})
	tb.open()
	return tb
}

func (tb *testBroker) open() {
	t := tb.t
	t.Helper()
	lo := tb.s.logOpts
	lo.Logger = slog.New(slog.NewTextHandler(tb.logw, &slog.HandlerOptions{Level: slog.LevelWarn}))
	l, err := spoollog.Open(tb.dir, lo)
	if err != nil {
		t.Fatalf("open log: %v", err)
	}
	topics := map[string]spoollog.TopicConfig{}
	if !tb.s.noDefault && len(tb.s.routes) == 0 {
		topics[mqtt.DefaultTopic] = spoollog.DefaultTopicConfig()
	}
	for name, cfg := range tb.s.topics {
		topics[name] = cfg
	}
	for name, cfg := range topics {
		if _, err := l.Topic(name); err == nil {
			continue
		}
		if _, err := l.CreateTopic(name, cfg); err != nil {
			l.Close()
			t.Fatalf("create topic %s: %v", name, err)
		}
	}
	cfg := config.Default().MQTT
	cfg.Addr = "127.0.0.1:0"
	if tb.s.mqtt != nil {
		tb.s.mqtt(&cfg)
	}
	b, err := mqtt.New(mqtt.Options{
		MQTT:           cfg,
		Auth:           tb.s.auth,
		AllowAnonymous: !tb.s.denyAnon,
		Routes:         tb.s.routes,
		Log:            l,
		Logger:         slog.New(slog.NewTextHandler(tb.logw, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		l.Close()
		t.Fatalf("mqtt.New: %v", err)
	}
	if err := b.Start(cfg); err != nil {
		l.Close()
		t.Fatalf("Start: %v", err)
	}
	tb.mu.Lock()
	tb.cfg, tb.Log, tb.B, tb.closed = cfg, l, b, false
	tb.mu.Unlock()
}

// close closes the broker, then the log, once.
func (tb *testBroker) close() {
	if tb.closeBroker() {
		tb.closeLog()
	}
}

// closeBroker closes the broker (once) and reports whether it returned.
// It is bounded: a hang fails the test instead of stalling the run, and
// the log then stays open (closing it under a running broker would only
// add noise).
func (tb *testBroker) closeBroker() bool {
	tb.mu.Lock()
	if tb.closed || tb.B == nil {
		tb.mu.Unlock()
		return true
	}
	tb.closed = true
	b := tb.B
	tb.mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- b.Close() }()
	select {
	case err := <-done:
		if err != nil {
			tb.t.Errorf("broker Close: %v", err)
		}
		return true
	case <-time.After(waitTimeout):
		buf := make([]byte, 1<<20)
		tb.t.Errorf("broker Close did not return within %v; goroutines:\n%s", waitTimeout, buf[:runtime.Stack(buf, true)])
		tb.mu.Lock()
		tb.Log = nil
		tb.mu.Unlock()
		return false
	}
}

// closeLog closes the log, once, after closeBroker.
func (tb *testBroker) closeLog() {
	tb.mu.Lock()
	l := tb.Log
	tb.Log = nil
	tb.mu.Unlock()
	if l == nil {
		return
	}
	if err := l.Close(); err != nil {
		tb.t.Errorf("log Close: %v", err)
	}
}

// restart closes the broker and the log and opens both again on the same
// directory (topics are kept, not recreated).
func (tb *testBroker) restart() {
	tb.t.Helper()
	tb.close()
	tb.open()
}

// addr is the plain TCP listener's address.
func (tb *testBroker) addr() string { return tb.B.Addr("tcp").String() }

func (tb *testBroker) url() string { return "tcp://" + tb.addr() }

func (tb *testBroker) partition(topic string, i int32) *spoollog.Partition {
	tb.t.Helper()
	top, err := tb.Log.Topic(topic)
	if err != nil {
		tb.t.Fatalf("topic %s: %v", topic, err)
	}
	p, err := top.Partition(i)
	if err != nil {
		tb.t.Fatalf("topic %s partition %d: %v", topic, i, err)
	}
	return p
}

// records returns every readable record of a partition, in offset order.
func (tb *testBroker) records(topic string, i int32) []spoollog.Record {
	tb.t.Helper()
	return readRecords(tb.t, tb.partition(topic, i))
}

// allRecords returns the records of every partition of a topic.
func (tb *testBroker) allRecords(topic string) map[int32][]spoollog.Record {
	tb.t.Helper()
	top, err := tb.Log.Topic(topic)
	if err != nil {
		tb.t.Fatalf("topic %s: %v", topic, err)
	}
	out := map[int32][]spoollog.Record{}
	for _, p := range top.Partitions() {
		out[p.ID()] = readRecords(tb.t, p)
	}
	return out
}

// count is the number of readable records in a topic.
func (tb *testBroker) count(topic string) int64 {
	tb.t.Helper()
	top, err := tb.Log.Topic(topic)
	if err != nil {
		tb.t.Fatalf("topic %s: %v", topic, err)
	}
	var n int64
	for _, p := range top.Partitions() {
		n += p.HighWatermark() - p.LogStartOffset()
	}
	return n
}

// waitCount waits until topic holds n readable records.
func (tb *testBroker) waitCount(topic string, n int64) {
	tb.t.Helper()
	waitFor(tb.t, fmt.Sprintf("%d records in %s", n, topic), func() bool { return tb.count(topic) >= n })
}

func readRecords(t testing.TB, p *spoollog.Partition) []spoollog.Record {
	t.Helper()
	var out []spoollog.Record
	off, hw := p.LogStartOffset(), p.HighWatermark()
	for off < hw {
		data, err := p.Read(off, 1<<20)
		if err != nil {
			t.Fatalf("read partition %d at %d: %v", p.ID(), off, err)
		}
		if len(data) == 0 {
			break
		}
		next := off
		err = spoollog.SplitBatches(data, func(h spoollog.BatchHeader, batch []byte) error {
			_, recs, err := spoollog.DecodeRecords(batch)
			if err != nil {
				return err
			}
			for _, r := range recs {
				if r.Offset >= off {
					out = append(out, r)
				}
			}
			next = max(next, h.LastOffset()+1)
			return nil
		})
		if err != nil {
			t.Fatalf("decode partition %d at %d: %v", p.ID(), off, err)
		}
		if next == off {
			t.Fatalf("partition %d: no progress reading at %d", p.ID(), off)
		}
		off = next
	}
	return out
}

func header(r spoollog.Record, key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

func values(recs []spoollog.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Value)
	}
	return out
}

// waitFor polls cond until it holds, failing the test after waitTimeout.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for delay := time.Millisecond; !cond(); delay = min(2*delay, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		}
		time.Sleep(delay)
	}
}

// stays checks that cond holds throughout d: the only way to observe that
// something does not happen.
func stays(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if !cond() {
			t.Fatalf("%s stopped holding", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitToken waits for a paho token and returns its error.
func waitToken(t *testing.T, tok paho.Token) error {
	t.Helper()
	if !tok.WaitTimeout(waitTimeout) {
		t.Fatalf("paho token did not complete within %v", waitTimeout)
	}
	return tok.Error()
}

// pahoOptions are MQTT 3.1.1 client options without any retry, so that a
// refusal shows as an error.
func pahoOptions(url, id string) *paho.ClientOptions {
	return paho.NewClientOptions().
		AddBroker(url).
		SetClientID(id).
		SetProtocolVersion(4).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(waitTimeout).
		SetWriteTimeout(waitTimeout).
		SetKeepAlive(time.Minute).
		SetPingTimeout(waitTimeout)
}

// pahoConnect connects a paho client and disconnects it at cleanup.
func pahoConnect(t *testing.T, o *paho.ClientOptions) paho.Client {
	t.Helper()
	c, err := pahoTry(t, o)
	if err != nil {
		t.Fatalf("paho connect: %v", err)
	}
	return c
}

// pahoTry connects a paho client and returns the connect error.
func pahoTry(t *testing.T, o *paho.ClientOptions) (paho.Client, error) {
	t.Helper()
	c := paho.NewClient(o)
	err := waitToken(t, c.Connect())
	t.Cleanup(func() {
		if c.IsConnectionOpen() {
			c.Disconnect(50)
		}
	})
	return c, err
}

// message is a publish a paho subscriber received.
type message struct {
	topic    string
	payload  string
	qos      byte
	retained bool
}

// collector gathers the messages of a paho subscription.
type collector struct {
	mu   sync.Mutex
	msgs []message
}

func (c *collector) handler(_ paho.Client, m paho.Message) {
	c.mu.Lock()
	c.msgs = append(c.msgs, message{m.Topic(), string(m.Payload()), m.Qos(), m.Retained()})
	c.mu.Unlock()
}

func (c *collector) all() []message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]message(nil), c.msgs...)
}

func (c *collector) wait(t *testing.T, n int) []message {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for len(c.all()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %d delivered messages; got %+v", waitTimeout, n, c.all())
		}
		time.Sleep(5 * time.Millisecond)
	}
	return c.all()
}

// rawClient speaks MQTT over a bare connection with mochi's packet codec,
// so that tests can send what a library would not (bad packets, pipelined
// publishes without reading) and see reason codes exactly.
type rawClient struct {
	t       testing.TB
	conn    net.Conn
	r       *bufio.Reader
	version byte // 4 (3.1.1) or 5
}

func dialRaw(t testing.TB, addr string, version byte) *rawClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{t: t, conn: c, r: bufio.NewReader(c), version: version}
}

// connectPacket is a CONNECT for this client's protocol version.
func (rc *rawClient) connectPacket(id string) packets.Packet {
	return packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: rc.version,
		Connect: packets.ConnectParams{
			ProtocolName:     []byte("MQTT"),
			ClientIdentifier: id,
			Clean:            true,
			Keepalive:        60,
		},
	}
}

// connect sends CONNECT (after mut) and returns the CONNACK.
func (rc *rawClient) connect(id string, mut func(*packets.Packet)) packets.Packet {
	rc.t.Helper()
	pk := rc.connectPacket(id)
	if mut != nil {
		mut(&pk)
	}
	if pk.Connect.Username != nil {
		pk.Connect.UsernameFlag = true
	}
	if pk.Connect.Password != nil {
		pk.Connect.PasswordFlag = true
	}
	rc.send(pk)
	ack := rc.read()
	if ack.FixedHeader.Type != packets.Connack {
		rc.t.Fatalf("expected CONNACK, got packet type %d", ack.FixedHeader.Type)
	}
	return ack
}

// mustConnect connects and fails unless the CONNACK is a success.
func (rc *rawClient) mustConnect(id string) {
	rc.t.Helper()
	if ack := rc.connect(id, nil); ack.ReasonCode != 0 {
		rc.t.Fatalf("CONNACK reason 0x%02x", ack.ReasonCode)
	}
}

func (rc *rawClient) encode(pk packets.Packet) []byte {
	rc.t.Helper()
	pk.ProtocolVersion = rc.version
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Puback:
		err = pk.PubackEncode(&buf)
	case packets.Pubrec:
		err = pk.PubrecEncode(&buf)
	case packets.Pubrel:
		err = pk.PubrelEncode(&buf)
	case packets.Pubcomp:
		err = pk.PubcompEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	case packets.Unsubscribe:
		err = pk.UnsubscribeEncode(&buf)
	case packets.Pingreq:
		err = pk.PingreqEncode(&buf)
	case packets.Disconnect:
		err = pk.DisconnectEncode(&buf)
	default:
		rc.t.Fatalf("rawClient cannot encode packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		rc.t.Fatalf("encode packet type %d: %v", pk.FixedHeader.Type, err)
	}
	return buf.Bytes()
}

func (rc *rawClient) send(pk packets.Packet) {
	rc.t.Helper()
	rc.write(rc.encode(pk))
}

func (rc *rawClient) write(b []byte) {
	rc.t.Helper()
	rc.conn.SetWriteDeadline(time.Now().Add(waitTimeout))
	if _, err := rc.conn.Write(b); err != nil {
		rc.t.Fatalf("write: %v", err)
	}
}

// publish sends a PUBLISH.
func (rc *rawClient) publish(topic string, qos byte, id uint16, payload string) {
	rc.t.Helper()
	rc.send(publishPacket(topic, qos, id, payload))
}

func publishPacket(topic string, qos byte, id uint16, payload string) packets.Packet {
	return packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos},
		TopicName:   topic,
		PacketID:    id,
		Payload:     []byte(payload),
	}
}

// read returns the next packet, failing the test on an error or timeout.
func (rc *rawClient) read() packets.Packet {
	rc.t.Helper()
	pk, err := rc.tryRead(waitTimeout)
	if err != nil {
		rc.t.Fatalf("read packet: %v", err)
	}
	return pk
}

// tryRead returns the next packet or the error that prevented it.
func (rc *rawClient) tryRead(timeout time.Duration) (packets.Packet, error) {
	rc.conn.SetReadDeadline(time.Now().Add(timeout))
	var pk packets.Packet
	b, err := rc.r.ReadByte()
	if err != nil {
		return pk, err
	}
	if err := pk.FixedHeader.Decode(b); err != nil {
		return pk, err
	}
	n, _, err := packets.DecodeLength(rc.r)
	if err != nil {
		return pk, err
	}
	pk.FixedHeader.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(rc.r, body); err != nil {
		return pk, err
	}
	pk.ProtocolVersion = rc.version
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Pubrec:
		err = pk.PubrecDecode(body)
	case packets.Pubrel:
		err = pk.PubrelDecode(body)
	case packets.Pubcomp:
		err = pk.PubcompDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Unsuback:
		err = pk.UnsubackDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	case packets.Pingresp:
	default:
		err = fmt.Errorf("unexpected packet type %d", pk.FixedHeader.Type)
	}
	return pk, err
}

// readAck reads the next packet, which must be typ for packet id.
func (rc *rawClient) readAck(typ byte, id uint16) packets.Packet {
	rc.t.Helper()
	pk := rc.read()
	if pk.FixedHeader.Type != typ || pk.PacketID != id {
		rc.t.Fatalf("expected packet type %d id %d, got type %d id %d reason 0x%02x",
			typ, id, pk.FixedHeader.Type, pk.PacketID, pk.ReasonCode)
	}
	return pk
}

// expectClosed reads until the server closes the connection, ignoring a
// CONNACK or DISCONNECT it may send first; it fails if the connection
// stays open or anything else arrives.
func (rc *rawClient) expectClosed() {
	rc.t.Helper()
	for {
		pk, err := rc.tryRead(waitTimeout)
		if err == nil && (pk.FixedHeader.Type == packets.Disconnect || pk.FixedHeader.Type == packets.Connack) {
			continue
		}
		var ne net.Error
		switch {
		case err == nil:
			rc.t.Fatalf("expected the connection to close, got packet type %d", pk.FixedHeader.Type)
		case errors.As(err, &ne) && ne.Timeout():
			rc.t.Fatalf("connection still open after %v", waitTimeout)
		}
		return
	}
}

// ping checks that the connection is alive.
func (rc *rawClient) ping() {
	rc.t.Helper()
	rc.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	if pk := rc.read(); pk.FixedHeader.Type != packets.Pingresp {
		rc.t.Fatalf("expected PINGRESP, got packet type %d", pk.FixedHeader.Type)
	}
}

// syncGate is a file-system seam that can hold every segment fsync, to
// observe what the broker does while the log is not yet durable.
type syncGate struct {
	mu      sync.Mutex
	open    chan struct{} // closed while fsyncs may proceed
	waiting atomic.Int64  // fsyncs held now
	syncs   atomic.Int64  // fsyncs completed
}

func newSyncGate() *syncGate {
	g := &syncGate{open: make(chan struct{})}
	close(g.open)
	return g
}

// hold makes fsyncs block until release.
func (g *syncGate) hold() {
	g.mu.Lock()
	select {
	case <-g.open:
		g.open = make(chan struct{})
	default:
	}
	g.mu.Unlock()
}

// release lets held and future fsyncs proceed.
func (g *syncGate) release() {
	g.mu.Lock()
	select {
	case <-g.open:
	default:
		close(g.open)
	}
	g.mu.Unlock()
}

func (g *syncGate) wait() {
	g.mu.Lock()
	ch := g.open
	g.mu.Unlock()
	g.waiting.Add(1)
	<-ch
	g.waiting.Add(-1)
	g.syncs.Add(1)
}

// fs wraps the real file system.
func (g *syncGate) fs() spoollog.FS { return gateFS{spoollog.OSFS{}, g} }

type gateFS struct {
	spoollog.FS
	g *syncGate
}

func (f gateFS) OpenFile(name string, flag int, perm fs.FileMode) (spoollog.File, error) {
	file, err := f.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return gateFile{file, f.g}, nil
}

type gateFile struct {
	spoollog.File
	g *syncGate
}

func (f gateFile) Sync() error {
	f.g.wait()
	return f.File.Sync()
}

// requirePeer returns the path of an external client program. Without it
// the test is skipped, unless SPOOL_REQUIRE_PEERS is set (CI), where a
// missing program fails.
func requirePeer(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("SPOOL_REQUIRE_PEERS") != "" {
		t.Fatalf("%s not found and SPOOL_REQUIRE_PEERS is set: %v", name, err)
	}
	t.Skipf("%s not installed", name)
	return ""
}

// runPeer runs an external client with a deadline and returns its output.
func runPeer(t *testing.T, ctx context.Context, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// testLogWriter sends the broker's warnings to the test log until the test
// ends (goroutines may still log after that, which testing forbids).
type testLogWriter struct {
	t       testing.TB
	mu      sync.Mutex
	stopped bool
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

func (w *testLogWriter) stop() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
}
