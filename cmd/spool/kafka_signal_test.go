package main

import (
	"io"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// interruptSelf sends SIGINT to the test process. The commands under test
// catch it with signal.NotifyContext, so the signal only reaches them.
// Callers must not be parallel tests: while a sequential test runs, no
// other test of the package does.
func interruptSelf(t *testing.T) {
	t.Helper()
	p, err := os.FindProcess(os.Getpid())
	if err == nil {
		err = p.Signal(os.Interrupt)
	}
	if err != nil {
		t.Fatalf("SIGINT to self: %v", err)
	}
}

// waitExit returns the exit code a command sends on done, failing the test
// if it does not stop within d.
func waitExit(t *testing.T, done <-chan int, d time.Duration, what string) int {
	t.Helper()
	select {
	case code := <-done:
		return code
	case <-time.After(d):
		t.Fatalf("%s did not stop within %v", what, d)
		return -1
	}
}

// TestKafkaInterrupt: SIGINT stops consume --follow cleanly (exit 0, what
// it read printed), and stops produce reading stdin while still flushing
// every line it had read.
func TestKafkaInterrupt(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
		t.Skipf("needs POSIX signals, not available on %s", runtime.GOOS)
	}
	_, addr := newKafka(t)
	ctx := testCtx(t, time.Minute)
	mustKafka(t, ctx, addr, "topic", "create", "sig", "--partitions", "2")

	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"consume", "sig", "--follow", "--brokers", addr, "--timeout", kafkaTestTimeout}, &out, &errOut)
	}()
	waitFor(t, 30*time.Second, "consume to follow", func() bool { return strings.Contains(errOut.String(), "following sig") })
	if code, stderr := produceInput(t, ctx, addr, "one\ntwo\nthree\n", "sig"); code != 0 {
		t.Fatal(stderr)
	}
	waitFor(t, 30*time.Second, "three followed records", func() bool { return strings.Count(out.String(), "\n") == 3 })
	interruptSelf(t)
	if code := waitExit(t, done, 15*time.Second, "consume --follow after SIGINT"); code != 0 || !strings.Contains(errOut.String(), "interrupted") || !strings.Contains(errOut.String(), "consumed 3 records") {
		t.Errorf("consume after SIGINT: exit %d, stderr %q", code, errOut.String())
	}

	// Produce from a pipe that stays open, as from a terminal.
	pr, pw := io.Pipe()
	defer pw.Close() // releases the reading goroutine that SIGINT left blocked
	var perr syncBuffer
	pdone := make(chan int, 1)
	go func() {
		pdone <- runProduce(ctx, []string{"sig", "--partition", "1", "--brokers", addr, "--timeout", kafkaTestTimeout}, pr, io.Discard, &perr)
	}()
	if _, err := io.WriteString(pw, "four\nfive\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "produce to read both lines", func() bool {
		_, out, _ := kafkaCmd(t, ctx, addr, "consume", "sig", "--partition", "1")
		return strings.Contains(out, "four\nfive\n")
	})
	interruptSelf(t)
	if code := waitExit(t, pdone, 15*time.Second, "produce after SIGINT"); code != 0 || !strings.Contains(perr.String(), "interrupted") || !strings.Contains(perr.String(), "produced 2 records to sig") {
		t.Errorf("produce after SIGINT: exit %d, stderr %q", code, perr.String())
	}
}
