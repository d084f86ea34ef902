package bridge

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	spoollog "github.com/spoolmq/spool/log"
)

// mosquitto is a broker of the test's own on a free loopback port.
type mosquitto struct {
	t    testing.TB
	dir  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

// startMosquitto runs /usr/sbin/mosquitto (or the one on PATH). Without it
// the test is skipped, unless SPOOL_REQUIRE_PEERS is set. persist keeps
// sessions and queued messages across a clean restart, so a subscriber
// with a persistent session misses nothing published while it reconnects.
func startMosquitto(t testing.TB, persist bool) *mosquitto {
	t.Helper()
	bin := "/usr/sbin/mosquitto"
	if _, err := os.Stat(bin); err != nil {
		if bin, err = exec.LookPath("mosquitto"); err != nil {
			if os.Getenv("SPOOL_REQUIRE_PEERS") != "" {
				t.Fatal("mosquitto is not installed and SPOOL_REQUIRE_PEERS is set")
			}
			t.Skip("mosquitto is not installed")
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := t.TempDir()
	conf := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nmax_inflight_messages 0\n", port)
	if os.Geteuid() == 0 {
		conf += "user root\n" // else mosquitto drops to its own user, who cannot write dir
	}
	if persist {
		conf += fmt.Sprintf("persistence true\npersistence_location %s/\nautosave_interval 0\n", dir)
	} else {
		conf += "persistence false\n"
	}
	if err := os.WriteFile(filepath.Join(dir, "mosquitto.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	m := &mosquitto{t: t, dir: dir, port: port}
	m.cmd = exec.Command(bin, "-c", filepath.Join(dir, "mosquitto.conf"))
	m.start()
	t.Cleanup(m.stop)
	return m
}

func (m *mosquitto) url() string { return fmt.Sprintf("tcp://127.0.0.1:%d", m.port) }

func (m *mosquitto) start() {
	m.t.Helper()
	cmd := exec.Command(m.cmd.Path, m.cmd.Args[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		m.t.Fatal(err)
	}
	m.cmd, m.done = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(m.done) }()
	deadline := time.Now().Add(testTimeout)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", m.port), time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-m.done:
			m.t.Fatalf("mosquitto exited: %s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("mosquitto not listening on %d: %v", m.port, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop ends mosquitto with SIGTERM (it saves its persistence file) and
// waits for it; SIGKILL after testTimeout.
func (m *mosquitto) stop() {
	if m.done == nil {
		return
	}
	select {
	case <-m.done:
		return
	default:
	}
	m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(testTimeout):
		m.cmd.Process.Kill()
		<-m.done
	}
}

// received is what a subscriber got, in arrival order.
type received struct {
	mu   sync.Mutex
	msgs []mqtt.Message
}

func (r *received) add(m mqtt.Message) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
}

func (r *received) snapshot() []mqtt.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]mqtt.Message(nil), r.msgs...)
}

// subscribe connects a QoS 1 subscriber to filter. persistent uses a fixed
// client id without clean session and paho's reconnect, so it resumes its
// session after a broker restart.
func subscribe(t testing.TB, broker, filter string, persistent bool) *received {
	t.Helper()
	r := &received{}
	o := mqtt.NewClientOptions().AddBroker(broker).SetClientID(fmt.Sprintf("test-sub-%d", time.Now().UnixNano())).
		SetProtocolVersion(4).SetOrderMatters(true).SetConnectTimeout(5 * time.Second).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { r.add(m) })
	if persistent {
		o.SetCleanSession(false).SetAutoReconnect(true).SetConnectRetry(true).
			SetConnectRetryInterval(50 * time.Millisecond).SetMaxReconnectInterval(100 * time.Millisecond)
	} else {
		o.SetAutoReconnect(false)
	}
	cl := mqtt.NewClient(o)
	if tok := cl.Connect(); !tok.WaitTimeout(testTimeout) || tok.Error() != nil {
		t.Fatalf("subscriber connect: %v", tok.Error())
	}
	if tok := cl.Subscribe(filter, 1, nil); !tok.WaitTimeout(testTimeout) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
	t.Cleanup(func() { cl.Disconnect(100) })
	return r
}

func newTestMQTTLink(t testing.TB, opts MQTTLinkOptions) *MQTTLink {
	t.Helper()
	if opts.BackoffMin == 0 {
		opts.BackoffMin, opts.BackoffMax = 20*time.Millisecond, 200*time.Millisecond
	}
	if opts.KeepAlive == 0 {
		opts.KeepAlive = 2 * time.Second
	}
	if opts.Logger == nil && os.Getenv("SPOOL_TEST_LOG") != "" {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	l, err := NewMQTTLink(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func runMQTTLink(t testing.TB, l *MQTTLink) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(testTimeout):
				t.Errorf("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(func() { stop(); l.Close() })
	return stop
}

func waitMQTTState(t testing.TB, l *MQTTLink, want State) Health {
	t.Helper()
	var h Health
	deadline := time.Now().Add(testTimeout)
	for h = l.Health(); h.State != want; h = l.Health() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for state %s; health %+v", want, h)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return h
}

// byTopic groups messages by MQTT topic, in arrival order.
func byTopic(msgs []mqtt.Message) map[string][]mqtt.Message {
	out := make(map[string][]mqtt.Message)
	for _, m := range msgs {
		out[m.Topic()] = append(out[m.Topic()], m)
	}
	return out
}

// checkCursorsAtEnd checks every stored cursor and Health's cursor are at
// the partition's high watermark.
func checkCursorsAtEnd(t testing.TB, l *spoollog.Log, link string, h Health) {
	t.Helper()
	for _, ph := range h.Partitions {
		if ph.Cursor != ph.HighWatermark || ph.Lag != 0 {
			t.Errorf("%s/%d: cursor %d, high watermark %d", ph.Topic, ph.Partition, ph.Cursor, ph.HighWatermark)
		}
		if c := storedCursor(t, l, link, ph.Topic, ph.Partition); c != ph.HighWatermark {
			t.Errorf("%s/%d: stored cursor %d, high watermark %d", ph.Topic, ph.Partition, c, ph.HighWatermark)
		}
	}
}

// TestMQTTLinkMirrorsTopics mirrors two multi-partition topics with
// {partition} in the template: each MQTT topic gets exactly its
// partition's values, in offset order, and the link ends caught up.
func TestMQTTLinkMirrorsTopics(t *testing.T) {
	mq := startMosquitto(t, false)
	l := newTestLog(t, spoollog.Options{})
	topics := map[string]*spoollog.Topic{
		"sensors": createTopic(t, l, "sensors", 3, nil),
		"events":  createTopic(t, l, "events", 2, nil),
	}
	sub := subscribe(t, mq.url(), "edge-1/#", false)
	for _, tp := range topics {
		for _, p := range tp.Partitions() {
			appendBatch(t, p, 50, spoollog.CodecNone)
			appendBatch(t, p, 150, spoollog.CodecLz4) // more than one in-flight window
		}
	}
	link := newTestMQTTLink(t, MQTTLinkOptions{Name: "up", Site: "edge-1", Broker: mq.url(), Log: l,
		Topics: []string{"sensors", "events"}, Topic: "{site}/{topic}/{partition}"})
	runMQTTLink(t, link)
	h := waitMQTTState(t, link, StateCaughtUp)
	waitFor(t, "1000 messages", func() bool { return len(sub.snapshot()) >= 1000 })
	time.Sleep(100 * time.Millisecond) // a duplicate would arrive by now
	got := byTopic(sub.snapshot())
	if len(sub.snapshot()) != 1000 {
		t.Fatalf("%d messages, want 1000 (no failure, so no resend)", len(sub.snapshot()))
	}
	for name, tp := range topics {
		for _, p := range tp.Partitions() {
			dest := fmt.Sprintf("edge-1/%s/%d", name, p.ID())
			local := localRecords(t, p)
			if len(got[dest]) != len(local) {
				t.Fatalf("%s: %d messages, want %d", dest, len(got[dest]), len(local))
			}
			for i, r := range local {
				if m := got[dest][i]; !bytes.Equal(m.Payload(), r.Value) || m.Qos() != 1 {
					t.Fatalf("%s #%d: payload %q qos %d, want %q qos 1", dest, i, m.Payload(), m.Qos(), r.Value)
				}
			}
		}
	}
	checkCursorsAtEnd(t, l, "up", h)
	if h.Records != 1000 || h.Gaps != 0 || h.Lag != 0 {
		t.Fatalf("health %+v", h)
	}
	if h.Partitions[0].Destination != "edge-1/sensors/0" {
		t.Fatalf("destination %q", h.Partitions[0].Destination)
	}
}

// envelopeOffsets decodes envelope messages and checks each against its
// local record; it returns, per local topic and partition, the offsets in
// arrival order.
func envelopeOffsets(t testing.TB, msgs []mqtt.Message, local map[string]map[int32][]spoollog.Record) map[string]map[int32][]int64 {
	t.Helper()
	out := make(map[string]map[int32][]int64)
	for _, m := range msgs {
		var env MQTTEnvelope
		if err := json.Unmarshal(m.Payload(), &env); err != nil {
			t.Fatalf("%s: %v: %q", m.Topic(), err, m.Payload())
		}
		if env.Edge != "edge-1" || m.Topic() != "edge-1/"+env.Topic {
			t.Fatalf("envelope %+v on %s", env, m.Topic())
		}
		recs := local[env.Topic][env.Partition]
		i := int(env.Offset - recs[0].Offset)
		if i < 0 || i >= len(recs) {
			t.Fatalf("envelope offset %d outside the local partition", env.Offset)
		}
		r := recs[i]
		if !bytes.Equal(env.Key, r.Key) || !bytes.Equal(env.Value, r.Value) || env.Timestamp != r.Timestamp ||
			len(env.Headers) != 1 || env.Headers[0].Key != r.Headers[0].Key || !bytes.Equal(env.Headers[0].Value, r.Headers[0].Value) {
			t.Fatalf("envelope %+v, local %+v", env, r)
		}
		if out[env.Topic] == nil {
			out[env.Topic] = make(map[int32][]int64)
		}
		out[env.Topic][env.Partition] = append(out[env.Topic][env.Partition], env.Offset)
	}
	return out
}

// TestMQTTLinkUpstreamRestart stops mosquitto while records are appended
// locally and starts it again on the same port: health goes failing, then
// caught up; every local offset arrives at least once, the duplicates are
// recognisable by their envelope offset, the first copies arrive in order
// per partition, and the cursors end at the high watermarks.
func TestMQTTLinkUpstreamRestart(t *testing.T) {
	mq := startMosquitto(t, true)
	l := newTestLog(t, spoollog.Options{})
	tp := createTopic(t, l, "sensors", 2, nil)
	sub := subscribe(t, mq.url(), "edge-1/#", true)
	link := newTestMQTTLink(t, MQTTLinkOptions{Name: "up", Site: "edge-1", Broker: mq.url(), Log: l,
		Topics: []string{"sensors"}, Envelope: true, DeliveryTimeout: 5 * time.Second, WriteTimeout: time.Second})
	runMQTTLink(t, link)

	produce := func(rounds int) {
		for range rounds {
			for _, p := range tp.Partitions() {
				appendBatch(t, p, 20, spoollog.CodecNone)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	produce(10)
	var wg sync.WaitGroup
	wg.Go(func() { produce(20) }) // appends go on through the outage
	stopAt := time.Now()
	mq.stop()
	t.Logf("mosquitto stopped in %v", time.Since(stopAt))
	waitMQTTState(t, link, StateFailing)
	t.Logf("link failing %v after the stop began", time.Since(stopAt))
	wg.Wait()
	if h := link.Health(); h.Lag == 0 || h.LastError == "" {
		t.Fatalf("during the outage: health %+v, want lag and an error", h)
	}
	mq.start()
	produce(10)
	h := waitMQTTState(t, link, StateCaughtUp)
	checkCursorsAtEnd(t, l, "up", h)

	local := map[string]map[int32][]spoollog.Record{"sensors": {}}
	total := 0
	for _, p := range tp.Partitions() {
		local["sensors"][p.ID()] = localRecords(t, p)
		total += len(local["sensors"][p.ID()])
	}
	distinct := func() int {
		n := 0
		for _, offs := range envelopeOffsets(t, sub.snapshot(), local)["sensors"] {
			seen := make(map[int64]bool)
			for _, o := range offs {
				seen[o] = true
			}
			n += len(seen)
		}
		return n
	}
	deadline := time.Now().Add(testTimeout)
	for distinct() != total {
		if time.Now().After(deadline) {
			for pid, offs := range envelopeOffsets(t, sub.snapshot(), local)["sensors"] {
				seen := make(map[int64]bool)
				for _, o := range offs {
					seen[o] = true
				}
				var missing []int64
				for _, r := range local["sensors"][pid] {
					if !seen[r.Offset] {
						missing = append(missing, r.Offset)
					}
				}
				t.Errorf("partition %d: %d offsets missing upstream: %v", pid, len(missing), missing)
			}
			t.Fatalf("%d of %d offsets upstream", distinct(), total)
		}
		time.Sleep(10 * time.Millisecond)
	}
	msgs := sub.snapshot()
	for pid, offs := range envelopeOffsets(t, msgs, local)["sensors"] {
		// At least once: a resend repeats a run from the cursor, so each
		// offset first arrives after all the offsets below it.
		seen := make(map[int64]bool)
		next := local["sensors"][pid][0].Offset
		for _, o := range offs {
			if !seen[o] {
				if o != next {
					t.Fatalf("partition %d: offset %d first arrived before %d", pid, o, next)
				}
				seen[o] = true
				next++
			}
		}
	}
	t.Logf("%d local records, %d messages (%d duplicates)", total, len(msgs), len(msgs)-total)
}

// TestMQTTLinkResumesFromCursors stops a link half way and builds a new one
// with the same name: it publishes only what the first did not, from the
// stored cursors.
func TestMQTTLinkResumesFromCursors(t *testing.T) {
	mq := startMosquitto(t, false)
	l := newTestLog(t, spoollog.Options{})
	tp := createTopic(t, l, "sensors", 2, nil)
	sub := subscribe(t, mq.url(), "edge-1/#", false)
	for _, p := range tp.Partitions() {
		appendBatch(t, p, 30, spoollog.CodecNone)
	}
	opts := MQTTLinkOptions{Name: "up", Site: "edge-1", Broker: mq.url(), Log: l, Topics: []string{"sensors"}, Envelope: true}
	first := newTestMQTTLink(t, opts)
	stop := runMQTTLink(t, first)
	waitMQTTState(t, first, StateCaughtUp)
	stop()
	first.Close()
	for _, p := range tp.Partitions() {
		if c := storedCursor(t, l, "up", "sensors", p.ID()); c != 30 {
			t.Fatalf("partition %d: stored cursor %d after the first link, want 30", p.ID(), c)
		}
		appendBatch(t, p, 40, spoollog.CodecNone)
	}
	second := newTestMQTTLink(t, opts)
	if h := second.Health(); h.State != StateConnecting || h.Lag != 80 {
		t.Fatalf("before Run: health %+v, want connecting with lag 80", h)
	}
	runMQTTLink(t, second)
	h := waitMQTTState(t, second, StateCaughtUp)
	if h.Records != 80 {
		t.Fatalf("second link acknowledged %d records, want 80", h.Records)
	}
	checkCursorsAtEnd(t, l, "up", h)
	local := map[string]map[int32][]spoollog.Record{"sensors": {}}
	for _, p := range tp.Partitions() {
		local["sensors"][p.ID()] = localRecords(t, p)
	}
	waitFor(t, "140 messages", func() bool { return len(sub.snapshot()) >= 140 })
	time.Sleep(100 * time.Millisecond)
	offs := envelopeOffsets(t, sub.snapshot(), local)["sensors"]
	for pid, o := range offs {
		if len(o) != 70 {
			t.Fatalf("partition %d: %d messages, want 70 (each offset once)", pid, len(o))
		}
		for i, off := range o {
			if off != int64(i) {
				t.Fatalf("partition %d: message %d has offset %d", pid, i, off)
			}
		}
	}
}

// TestMQTTLinkOptions checks defaults and refusals.
func TestMQTTLinkOptions(t *testing.T) {
	l := newTestLog(t, spoollog.Options{})
	createTopic(t, l, "sensors", 1, nil)
	base := MQTTLinkOptions{Name: "up", Site: "edge-1", Broker: "tcp://127.0.0.1:1", Log: l, Topics: []string{"sensors"}}
	o, err := base.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.ClientID != "spool-edge-1-up" || o.Topic != DefaultMQTTTopic || o.InFlight != 64 {
		t.Fatalf("defaults %+v", o)
	}
	for name, edit := range map[string]func(*MQTTLinkOptions){
		"no broker":       func(o *MQTTLinkOptions) { o.Broker = "" },
		"bad scheme":      func(o *MQTTLinkOptions) { o.Broker = "http://127.0.0.1:1" },
		"wildcard topic":  func(o *MQTTLinkOptions) { o.Topic = "{site}/+/{topic}" },
		"unknown topic":   func(o *MQTTLinkOptions) { o.Topics = []string{"nope"} },
		"duplicate topic": func(o *MQTTLinkOptions) { o.Topics = []string{"sensors", "sensors"} },
		"no site":         func(o *MQTTLinkOptions) { o.Site = "" },
	} {
		o := base
		edit(&o)
		if _, err := NewMQTTLink(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for _, c := range []struct {
		key, want string
	}{{"a/b", "edge-1/s/0/a/b"}, {"", "edge-1/s/0/_"}, {"x+#", "edge-1/s/0/x__"}} {
		got, err := mqttTopic("{site}/{topic}/{partition}/{key}", "edge-1", "s", 0, []byte(c.key))
		if err != nil || got != c.want {
			t.Errorf("key %q: %q %v, want %q", c.key, got, err, c.want)
		}
	}
}

// silentBroker is a loopback MQTT server that accepts connections and
// PUBLISHes but never sends a PUBACK: the link must not move its cursor.
type silentBroker struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
	n     int // connections accepted
}

func newSilentBroker(t testing.TB) *silentBroker {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &silentBroker{ln: ln}
	b.wg.Go(b.accept)
	t.Cleanup(func() {
		ln.Close()
		b.mu.Lock()
		for _, c := range b.conns {
			c.Close()
		}
		b.mu.Unlock()
		b.wg.Wait()
	})
	return b
}

func (b *silentBroker) accept() {
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.mu.Lock()
		b.conns = append(b.conns, c)
		b.n++
		b.mu.Unlock()
		b.wg.Go(func() { b.serve(c) })
	}
}

func (b *silentBroker) connections() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n
}

// serve answers CONNECT with CONNACK and PINGREQ with PINGRESP, and reads
// and drops everything else.
func (b *silentBroker) serve(c net.Conn) {
	defer c.Close()
	hdr := make([]byte, 1)
	for {
		if _, err := io.ReadFull(c, hdr); err != nil {
			return
		}
		var n, shift int
		for {
			var lb [1]byte
			if _, err := io.ReadFull(c, lb[:]); err != nil {
				return
			}
			n |= int(lb[0]&0x7f) << shift
			shift += 7
			if lb[0]&0x80 == 0 {
				break
			}
		}
		if _, err := io.CopyN(io.Discard, c, int64(n)); err != nil {
			return
		}
		switch hdr[0] >> 4 {
		case 1: // CONNECT
			c.Write([]byte{0x20, 0x02, 0x00, 0x00})
		case 12: // PINGREQ
			c.Write([]byte{0xd0, 0x00})
		}
	}
}

// TestMQTTLinkNoPubackNoProgress publishes to a broker that never
// acknowledges: after DeliveryTimeout the link reports failing, drops the
// connection and reconnects to resend, and no cursor moves: the stored one
// stays at the log start, where the link stored it when it was built.
func TestMQTTLinkNoPubackNoProgress(t *testing.T) {
	b := newSilentBroker(t)
	l := newTestLog(t, spoollog.Options{})
	tp := createTopic(t, l, "sensors", 2, nil)
	for _, p := range tp.Partitions() {
		appendBatch(t, p, 10, spoollog.CodecNone)
	}
	link := newTestMQTTLink(t, MQTTLinkOptions{Name: "up", Site: "edge-1", Broker: "tcp://" + b.ln.Addr().String(),
		Log: l, Topics: []string{"sensors"}, DeliveryTimeout: 200 * time.Millisecond, FlushTimeout: 100 * time.Millisecond})
	runMQTTLink(t, link)
	h := waitMQTTState(t, link, StateFailing)
	waitFor(t, "a reconnect after the delivery timeout", func() bool { return b.connections() >= 2 })
	h = link.Health()
	if h.Records != 0 || h.Lag != 20 || h.LastError == "" {
		t.Fatalf("health %+v, want nothing acknowledged, lag 20 and an error", h)
	}
	for _, ph := range h.Partitions {
		if ph.Cursor != 0 {
			t.Fatalf("%s/%d: cursor %d without any PUBACK", ph.Topic, ph.Partition, ph.Cursor)
		}
		if c := storedCursor(t, l, "up", ph.Topic, ph.Partition); c != 0 {
			t.Fatalf("%s/%d: stored cursor %d without any PUBACK, want the log start 0", ph.Topic, ph.Partition, c)
		}
	}
}

// TestMQTTLinkTLS mirrors over ssl:// to a mosquitto TLS listener with a
// certificate the test made, trusted through MQTTLinkOptions.TLS.
func TestMQTTLinkTLS(t *testing.T) {
	plain := startMosquitto(t, false) // skips without mosquitto; also the subscriber's way in
	plain.stop()
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tlsPort := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	conf := fmt.Sprintf("per_listener_settings false\nallow_anonymous true\npersistence false\nlistener %d 127.0.0.1\nlistener %d 127.0.0.1\ncertfile %s\nkeyfile %s\n",
		plain.port, tlsPort, certFile, keyFile)
	if os.Geteuid() == 0 {
		conf += "user root\n"
	}
	if err := os.WriteFile(filepath.Join(plain.dir, "mosquitto.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	plain.start()

	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)

	l := newTestLog(t, spoollog.Options{})
	tp := createTopic(t, l, "sensors", 1, nil)
	sub := subscribe(t, plain.url(), "edge-1/#", false)
	appendBatch(t, partition(t, tp, 0), 25, spoollog.CodecNone)
	link := newTestMQTTLink(t, MQTTLinkOptions{Name: "up", Site: "edge-1", Broker: fmt.Sprintf("ssl://127.0.0.1:%d", tlsPort),
		TLS: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, Log: l, Topics: []string{"sensors"}})
	runMQTTLink(t, link)
	h := waitMQTTState(t, link, StateCaughtUp)
	checkCursorsAtEnd(t, l, "up", h)
	waitFor(t, "25 messages", func() bool { return len(sub.snapshot()) >= 25 })
	for i, m := range sub.snapshot() {
		if want := fmt.Sprintf("value %d of sensors/0", i); string(m.Payload()) != want || m.Topic() != "edge-1/sensors" {
			t.Fatalf("message %d: %s %q, want edge-1/sensors %q", i, m.Topic(), m.Payload(), want)
		}
	}
}

// TestMQTTLinkPinAndGap: the link's cursor pins retention from the moment
// it is built, and records deleted before it mirrored them are skipped,
// counted as a gap and logged; everything after them is published.
func TestMQTTLinkPinAndGap(t *testing.T) {
	mq := startMosquitto(t, false)
	l := newTestLog(t, spoollog.Options{})
	held := partition(t, createTopic(t, l, "held", 1, smallSegments), 0)
	for range 30 {
		appendBatch(t, held, 1, spoollog.CodecNone)
	}
	g := partition(t, createTopic(t, l, "g", 1, nil), 0)
	for range 10 {
		appendBatch(t, g, 10, spoollog.CodecNone)
	}
	var logs testLogger
	link := newTestMQTTLink(t, MQTTLinkOptions{Name: "p", Site: "edge-1", Broker: mq.url(), Log: l,
		Topics: []string{"held", "g"}, Envelope: true, Logger: logs.logger()})
	retainNothing(t, l, "held")
	if s := held.LogStartOffset(); s != 0 {
		t.Fatalf("retention deleted up to %d below the link's cursor 0", s)
	}
	if _, err := g.DeleteRecords(40); err != nil {
		t.Fatal(err)
	}
	sub := subscribe(t, mq.url(), "edge-1/#", false)
	stop := runMQTTLink(t, link)
	h := waitMQTTState(t, link, StateCaughtUp)
	if h.Gaps != 40 || h.Records != 90 {
		t.Fatalf("gaps %d records %d, want 40, 90", h.Gaps, h.Records)
	}
	if out := logs.String(); !strings.Contains(out, "records deleted before they were mirrored") || !strings.Contains(out, "lost=40") {
		t.Fatalf("no gap warning in the log:\n%s", out)
	}
	checkCursorsAtEnd(t, l, "p", h)
	local := map[string]map[int32][]spoollog.Record{"held": {0: localRecords(t, held)}, "g": {0: localRecords(t, g)}}
	waitFor(t, "90 messages", func() bool { return len(sub.snapshot()) >= 90 })
	offs := envelopeOffsets(t, sub.snapshot(), local)
	if len(offs["held"][0]) != 30 || len(offs["g"][0]) != 60 || offs["g"][0][0] != 40 {
		t.Fatalf("%d held and %d g messages, g from %v; want 30, 60 from 40", len(offs["held"][0]), len(offs["g"][0]), offs["g"][0][:1])
	}
	stop()
	if err := l.Maintain(); err != nil {
		t.Fatal(err)
	}
	if s := held.LogStartOffset(); s == 0 || s > 30 {
		t.Fatalf("after mirroring, retention left the log start at %d; want it past 0", s)
	}
}

// TestMQTTLinkAddTopics: a topic added to a connected MQTT link is
// mirrored from its start.
func TestMQTTLinkAddTopics(t *testing.T) {
	mq := startMosquitto(t, false)
	l := newTestLog(t, spoollog.Options{})
	first := createTopic(t, l, "first", 1, nil)
	appendBatch(t, partition(t, first, 0), 5, spoollog.CodecNone)
	sub := subscribe(t, mq.url(), "edge-2/#", false)
	link := newTestMQTTLink(t, MQTTLinkOptions{Name: "up", Site: "edge-2", Broker: mq.url(), Log: l, Topics: []string{"first"}})
	runMQTTLink(t, link)
	waitMQTTState(t, link, StateCaughtUp)
	later := createTopic(t, l, "later", 1, nil)
	appendBatch(t, partition(t, later, 0), 7, spoollog.CodecNone)
	if n, err := link.AddTopics("first", "later"); err != nil || n != 1 {
		t.Fatalf("AddTopics: %d, %v; want 1 partition", n, err)
	}
	waitFor(t, "12 messages", func() bool { return len(sub.snapshot()) >= 12 })
	got := byTopic(sub.snapshot())
	if len(got["edge-2/first"]) != 5 || len(got["edge-2/later"]) != 7 {
		t.Fatalf("messages per topic: first %d, later %d; want 5 and 7", len(got["edge-2/first"]), len(got["edge-2/later"]))
	}
	for i, r := range localRecords(t, partition(t, later, 0)) {
		if !bytes.Equal(got["edge-2/later"][i].Payload(), r.Value) {
			t.Fatalf("later #%d: %q, want %q", i, got["edge-2/later"][i].Payload(), r.Value)
		}
	}
}
