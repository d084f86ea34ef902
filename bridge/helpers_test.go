package bridge

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	spoollog "github.com/spoolmq/spool/log"
)

// testTimeout bounds every wait in these tests; a healthy run takes well
// under a second.
const testTimeout = 20 * time.Second

func newTestLog(t testing.TB, opts spoollog.Options) *spoollog.Log {
	t.Helper()
	l, err := spoollog.Open(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func createTopic(t testing.TB, l *spoollog.Log, name string, partitions int32, edit func(*spoollog.TopicConfig)) *spoollog.Topic {
	t.Helper()
	cfg := spoollog.DefaultTopicConfig()
	cfg.Partitions = partitions
	cfg.Preallocate = false
	if edit != nil {
		edit(&cfg)
	}
	tp, err := l.CreateTopic(name, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

func partition(t testing.TB, tp *spoollog.Topic, id int32) *spoollog.Partition {
	t.Helper()
	p, err := tp.Partition(id)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// appendBatch appends n records to p in one batch; each carries a key, a
// value and one header derived from its ordinal, so upstream copies can be
// compared field by field.
func appendBatch(t testing.TB, p *spoollog.Partition, n int, codec spoollog.Codec) {
	t.Helper()
	recs := make([]spoollog.Record, n)
	base := p.HighWatermark()
	for i := range recs {
		o := base + int64(i)
		recs[i] = spoollog.Record{
			Timestamp: time.Now().UnixMilli(),
			Key:       fmt.Appendf(nil, "%s-%d-key-%d", p.Topic().Name(), p.ID(), o%7),
			Value:     fmt.Appendf(nil, "value %d of %s/%d", o, p.Topic().Name(), p.ID()),
			Headers:   []spoollog.Header{{Key: "src", Value: fmt.Appendf(nil, "h%d", o)}},
		}
	}
	opts := spoollog.DefaultBatchOptions
	opts.Codec = codec
	if _, err := p.AppendRecords(recs, opts); err != nil {
		t.Fatal(err)
	}
}

// localRecords reads a whole partition back from the log.
func localRecords(t testing.TB, p *spoollog.Partition) []spoollog.Record {
	t.Helper()
	var out []spoollog.Record
	for off := p.LogStartOffset(); off < p.HighWatermark(); {
		data, err := p.Read(off, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		err = spoollog.SplitBatches(data, func(h spoollog.BatchHeader, b []byte) error {
			_, rs, err := spoollog.DecodeRecords(b)
			for _, r := range rs {
				if r.Offset >= off {
					out = append(out, r)
				}
			}
			off = h.LastOffset() + 1
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func newCluster(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// runLink starts a link's Run and returns a stop function that cancels it
// and waits for Run to return (also registered as cleanup).
func runLink(t testing.TB, k *KafkaLink) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx) }()
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
	t.Cleanup(func() { stop(); k.Close() })
	return stop
}

// waitFor polls cond until it holds or testTimeout passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitState(t testing.TB, k *KafkaLink, want State) Health {
	t.Helper()
	var h Health
	deadline := time.Now().Add(testTimeout)
	for h = k.Health(); h.State != want; h = k.Health() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for state %s; health %+v", want, h)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return h
}

// upstreamRecords reads every record of the upstream topics, per topic and
// partition, in order. It lists the end offsets first and reads exactly up
// to them, so the result is complete without waiting on a timeout.
func upstreamRecords(t testing.TB, seeds []string, topics ...string) map[string]map[int32][]*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	admCl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	defer admCl.Close()
	ends, err := kadm.NewClient(admCl).ListEndOffsets(ctx, topics...)
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			t.Fatalf("end offset %s/%d: %v", o.Topic, o.Partition, o.Err)
		}
		want += int(o.Offset)
	})
	out := make(map[string]map[int32][]*kgo.Record)
	for _, tp := range topics {
		out[tp] = make(map[int32][]*kgo.Record)
	}
	if want == 0 {
		return out
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for got := 0; got < want; {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d upstream records: %v", got, want, ctx.Err())
		}
		fs.EachError(func(tp string, p int32, err error) { t.Logf("fetch %s/%d: %v", tp, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			out[r.Topic][r.Partition] = append(out[r.Topic][r.Partition], r)
			got++
		})
	}
	return out
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// originOffset returns a record's spool.offset header.
func originOffset(t testing.TB, r *kgo.Record) int64 {
	t.Helper()
	o, err := strconv.ParseInt(header(r, HeaderOffset), 10, 64)
	if err != nil {
		t.Fatalf("record %s/%d@%d: bad %s header: %v", r.Topic, r.Partition, r.Offset, HeaderOffset, err)
	}
	return o
}

// checkMirrored compares one upstream copy with the local record it came
// from: key, value, timestamp, original headers first, origin headers last.
func checkMirrored(t testing.TB, site, topic string, partition int32, local spoollog.Record, up *kgo.Record) {
	t.Helper()
	if !bytes.Equal(up.Key, local.Key) || !bytes.Equal(up.Value, local.Value) {
		t.Fatalf("%s/%d@%d: upstream key/value %q/%q, local %q/%q", topic, partition, local.Offset, up.Key, up.Value, local.Key, local.Value)
	}
	if up.Timestamp.UnixMilli() != local.Timestamp {
		t.Fatalf("%s/%d@%d: upstream timestamp %d, local %d", topic, partition, local.Offset, up.Timestamp.UnixMilli(), local.Timestamp)
	}
	want := []kgo.RecordHeader{}
	for _, h := range local.Headers {
		want = append(want, kgo.RecordHeader{Key: h.Key, Value: h.Value})
	}
	want = append(want,
		kgo.RecordHeader{Key: HeaderEdge, Value: []byte(site)},
		kgo.RecordHeader{Key: HeaderTopic, Value: []byte(topic)},
		kgo.RecordHeader{Key: HeaderPartition, Value: []byte(strconv.Itoa(int(partition)))},
		kgo.RecordHeader{Key: HeaderOffset, Value: []byte(strconv.FormatInt(local.Offset, 10))},
	)
	if len(up.Headers) != len(want) {
		t.Fatalf("%s/%d@%d: %d headers upstream, want %d: %v", topic, partition, local.Offset, len(up.Headers), len(want), up.Headers)
	}
	for i := range want {
		if up.Headers[i].Key != want[i].Key || !bytes.Equal(up.Headers[i].Value, want[i].Value) {
			t.Fatalf("%s/%d@%d: header %d is %s=%q, want %s=%q", topic, partition, local.Offset, i, up.Headers[i].Key, up.Headers[i].Value, want[i].Key, want[i].Value)
		}
	}
}

// storedCursor reads a link's cursor from the metadata store.
func storedCursor(t testing.TB, l *spoollog.Log, link, topic string, partition int32) int64 {
	t.Helper()
	c, err := loadCursor(l.Meta(), cursorNamespace(link), cursorKey(topic, partition))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// testLogger keeps what a link logs, for tests that check a warning.
type testLogger struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (tl *testLogger) Write(p []byte) (int, error) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return tl.buf.Write(p)
}

func (tl *testLogger) String() string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return tl.buf.String()
}

func (tl *testLogger) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Writer(tl), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// proxy is a loopback TCP proxy in front of a kfake broker that a test can
// cut (close every connection and refuse new ones) and restore, to play an
// uplink outage. Clients reach it through kgo.Dialer, because the broker
// advertises its own address in metadata.
type proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	px := &proxy{ln: ln, target: target, conns: make(map[net.Conn]struct{})}
	px.wg.Go(px.accept)
	t.Cleanup(px.close)
	return px
}

func (px *proxy) accept() {
	for {
		c, err := px.ln.Accept()
		if err != nil {
			return
		}
		px.mu.Lock()
		if px.cut {
			px.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.DialTimeout("tcp", px.target, time.Second)
		if err != nil {
			px.mu.Unlock()
			c.Close()
			continue
		}
		px.conns[c], px.conns[up] = struct{}{}, struct{}{}
		px.wg.Go(func() { io.Copy(up, c); up.Close(); c.Close() })
		px.wg.Go(func() { io.Copy(c, up); c.Close(); up.Close() })
		px.mu.Unlock()
	}
}

// Cut drops every connection and refuses new ones until Restore.
func (px *proxy) Cut() {
	px.mu.Lock()
	defer px.mu.Unlock()
	px.cut = true
	for c := range px.conns {
		c.Close()
	}
	clear(px.conns)
}

func (px *proxy) Restore() {
	px.mu.Lock()
	px.cut = false
	px.mu.Unlock()
}

func (px *proxy) close() {
	px.ln.Close()
	px.Cut()
	px.wg.Wait()
}

// dialer sends every kgo connection to the proxy, whatever broker address
// the metadata names.
func (px *proxy) dialer() kgo.Opt {
	addr := px.ln.Addr().String()
	return kgo.Dialer(func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	})
}
