package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The Kafka-protocol subcommands are tested against kfake, an in-process
// Kafka cluster on 127.0.0.1, so that they are known to work with any
// Kafka cluster and not only with Spool's own listener.

// kafkaTestTimeout bounds every command of these tests: --timeout is the
// retry budget of a request, and the whole test gets a deadline too.
const kafkaTestTimeout = "5s"

// newKafka starts a one-broker kfake cluster and returns its address.
func newKafka(t *testing.T, opts ...kfake.Opt) (*kfake.Cluster, string) {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, strings.Join(c.ListenAddrs(), ",")
}

// testCtx is cancelled when the test ends or after d, whichever is first.
func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// kafkaCmd runs a spool command against addr through the dispatcher. The
// connection flags go last, which also checks that flags may follow the
// positional arguments.
func kafkaCmd(t *testing.T, ctx context.Context, addr string, args ...string) (int, string, string) {
	t.Helper()
	return spool(t, ctx, append(args, "--brokers", addr, "--timeout", kafkaTestTimeout)...)
}

// mustKafka is kafkaCmd that fails the test unless the command exits 0.
func mustKafka(t *testing.T, ctx context.Context, addr string, args ...string) string {
	t.Helper()
	code, out, stderr := kafkaCmd(t, ctx, addr, args...)
	if code != 0 {
		t.Fatalf("spool %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, stderr)
	}
	return out
}

// produceInput runs spool produce with input as its stdin.
func produceInput(t *testing.T, ctx context.Context, addr, input string, args ...string) (int, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	args = append(args, "--brokers", addr, "--timeout", kafkaTestTimeout)
	code := runProduce(ctx, args, strings.NewReader(input), &out, &errOut)
	if out.Len() != 0 {
		t.Errorf("produce wrote to stdout: %q", out.String())
	}
	return code, errOut.String()
}

// adminClient is an independent client for checking what the commands did.
func adminClient(t *testing.T, addr string, opts ...kgo.Opt) (*kgo.Client, *kadm.Client) {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl, kadm.NewClient(cl)
}

// syncBuffer is a bytes.Buffer that a running command writes while the
// test reads it.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls cond every 10ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestKafkaUnreachable: with nothing listening every command fails at once
// with exit 1 and says where it looked; a listener that accepts and never
// answers fails within the --timeout budget.
func TestKafkaUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()

	ctx := testCtx(t, time.Minute)
	cmds := [][]string{
		{"topic", "list"},
		{"topic", "create", "t"},
		{"topic", "describe", "t"},
		{"consume", "t"},
		{"group", "list"},
		{"group", "describe", "g"},
		{"group", "reset-offsets", "g", "--topic", "t", "--to-earliest"},
	}
	for _, args := range cmds {
		start := time.Now()
		code, out, stderr := kafkaCmd(t, ctx, closed, args...)
		took := time.Since(start)
		want := "spool: no Kafka broker reachable at " + closed + ": "
		if code != 1 || !strings.HasPrefix(stderr, want) || !strings.Contains(stderr, "connection refused") || out != "" {
			t.Errorf("spool %v: exit %d, stdout %q, stderr %q; want exit 1 and %q...connection refused", args, code, out, stderr, want)
		}
		if took > 3*time.Second {
			t.Errorf("spool %v took %v to fail", args, took)
		}
	}
	start := time.Now()
	code, stderr := produceInput(t, ctx, closed, "a\n", "t")
	if code != 1 || !strings.Contains(stderr, "no Kafka broker reachable at "+closed) || time.Since(start) > 3*time.Second {
		t.Errorf("produce: exit %d after %v, stderr %q", code, time.Since(start), stderr)
	}

	// Accepts connections and never answers: a black hole.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	}()
	start = time.Now()
	code, out, stderr := spool(t, ctx, "topic", "list", "--brokers", silent.Addr().String(), "--timeout", "1s")
	took := time.Since(start)
	if code != 1 || !strings.Contains(stderr, "no Kafka broker reachable at "+silent.Addr().String()) || out != "" {
		t.Errorf("silent broker: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	if took > 5*time.Second {
		t.Errorf("silent broker: took %v with --timeout 1s", took)
	}
}

// TestKafkaBrokersFromEnv: without --brokers the commands use
// SPOOL_BROKERS.
func TestKafkaBrokersFromEnv(t *testing.T) {
	_, addr := newKafka(t, kfake.SeedTopics(2, "from-env"))
	t.Setenv("SPOOL_BROKERS", addr)
	code, out, stderr := spool(t, testCtx(t, 30*time.Second), "topic", "list")
	if code != 0 || out != "from-env\n" {
		t.Fatalf("topic list with SPOOL_BROKERS: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
}

// TestKafkaUsage: malformed invocations exit 2 without contacting a
// broker (there is none at the address given).
func TestKafkaUsage(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	for _, args := range [][]string{
		{"topic"},
		{"topic", "frob"},
		{"topic", "create"},
		{"topic", "create", "a", "b"},
		{"topic", "create", "t", "--partitions", "0"},
		{"topic", "create", "t", "--config", "novalue"},
		{"topic", "alter", "t"},
		{"topic", "list", "extra"},
		{"produce"},
		{"produce", "t", "--compression", "brotli"},
		{"produce", "t", "--key", "k", "--key-separator", ":"},
		{"consume", "t", "--format", "xml"},
		{"consume", "t", "--offset", "soon"},
		{"consume", "t", "--from-beginning", "--offset", "3"},
		{"consume", "t", "--group", "g", "--partition", "0"},
		{"consume", "t", "--count", "-1"},
		{"group"},
		{"group", "describe"},
		{"group", "reset-offsets", "g", "--topic", "t"},
		{"group", "reset-offsets", "g", "--to-earliest"},
		{"group", "reset-offsets", "g", "--topic", "t", "--to-earliest", "--to-latest"},
	} {
		code, _, stderr := spool(t, ctx, append(args, "--brokers", "127.0.0.1:1")...)
		if code != 2 || strings.Contains(stderr, "reachable") {
			t.Errorf("spool %v: exit %d, stderr %q; want a usage error (exit 2)", args, code, stderr)
		}
	}
	if code, out, _ := spool(t, ctx, "consume", "-h"); code != 0 || out != "" {
		t.Errorf("consume -h: exit %d, stdout %q", code, out)
	}
}
