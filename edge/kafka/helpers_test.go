package kafka_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/spoolmq/spool/edge/kafka"
	spoollog "github.com/spoolmq/spool/log"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// testTimeout bounds every client call of a test.
const testTimeout = 20 * time.Second

type testBroker struct {
	t    *testing.T
	dir  string
	opts kafka.Options
	Log  *spoollog.Log
	S    *kafka.Server
	done chan error
}

// startBroker runs a Kafka listener over a fresh log on 127.0.0.1.
func startBroker(t *testing.T, opts kafka.Options) *testBroker {
	t.Helper()
	tb := &testBroker{t: t, dir: t.TempDir(), opts: opts}
	tb.open()
	t.Cleanup(tb.close)
	return tb
}

func (tb *testBroker) open() {
	t := tb.t
	t.Helper()
	l, err := spoollog.Open(tb.dir, spoollog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	o := tb.opts
	o.Log, o.Addr = l, "127.0.0.1:0"
	if testing.Verbose() {
		o.Logger = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	}
	s, err := kafka.New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	tb.Log, tb.S, tb.done = l, s, make(chan error, 1)
	go func() { tb.done <- s.Serve() }()
}

func (tb *testBroker) close() {
	if tb.S == nil {
		return
	}
	if err := tb.S.Close(); err != nil {
		tb.t.Errorf("close server: %v", err)
	}
	if err := <-tb.done; err != nil {
		tb.t.Errorf("serve: %v", err)
	}
	if err := tb.Log.Close(); err != nil {
		tb.t.Errorf("close log: %v", err)
	}
	tb.S = nil
}

// offline closes the listener and the log, lets edit change the data
// directory's log as a crash or an operator would leave it, and opens
// both again.
func (tb *testBroker) offline(edit func(l *spoollog.Log)) {
	tb.t.Helper()
	tb.close()
	l, err := spoollog.Open(tb.dir, spoollog.Options{})
	if err != nil {
		tb.t.Fatal(err)
	}
	edit(l)
	if err := l.Close(); err != nil {
		tb.t.Fatal(err)
	}
	tb.open()
}

// restart closes the listener and the log and opens both again.
func (tb *testBroker) restart() {
	tb.t.Helper()
	tb.close()
	tb.open()
}

func (tb *testBroker) addr() string { return tb.S.Addr().String() }

func (tb *testBroker) client(opts ...kgo.Opt) *kgo.Client {
	tb.t.Helper()
	c, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(tb.addr()), kgo.RetryTimeout(testTimeout)}, opts...)...)
	if err != nil {
		tb.t.Fatal(err)
	}
	tb.t.Cleanup(c.Close)
	return c
}

func (tb *testBroker) admin() *kadm.Client { return kadm.NewClient(tb.client()) }

func (tb *testBroker) createTopic(name string, partitions int32) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	resp, err := tb.admin().CreateTopic(ctx, partitions, 1, nil, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		tb.t.Fatalf("create topic %s: %v", name, err)
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return c
}

// consumeN reads n records from the client's consumed topics.
func consumeN(t *testing.T, c *kgo.Client, n int) []*kgo.Record {
	t.Helper()
	cx := ctx(t)
	var out []*kgo.Record
	for len(out) < n {
		fs := c.PollFetches(cx)
		if cx.Err() != nil {
			t.Fatalf("consumed %d of %d records before the timeout", len(out), n)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		out = append(out, fs.Records()...)
	}
	return out
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

func fmtSscan(s string, args ...any) (int, error) { return fmt.Sscan(s, args...) }
