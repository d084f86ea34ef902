package main

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// fakeSystemd is the notification socket of a Type=notify unit: a unixgram
// socket the test listens on, passed to the child as NOTIFY_SOCKET.
type fakeSystemd struct {
	path string
	msgs chan string // one datagram each
}

func listenNotify(t *testing.T) *fakeSystemd {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeSystemd{path: path, msgs: make(chan string, 1024)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			select {
			case f.msgs <- string(buf[:n]):
			default: // the test stopped reading; nothing waits for more
			}
		}
	}()
	t.Cleanup(func() { conn.Close(); <-done })
	return f
}

// next returns the next datagram's assignments, failing after within.
func (f *fakeSystemd) next(t *testing.T, within time.Duration, waitingFor string) map[string]string {
	t.Helper()
	select {
	case m := <-f.msgs:
		kv := map[string]string{}
		for _, line := range strings.Split(m, "\n") {
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("notification %q: line %q is not KEY=VALUE", m, line)
			}
			kv[k] = v
		}
		return kv
	case <-time.After(within):
		t.Fatalf("no systemd notification within %v while waiting for %s", within, waitingFor)
		return nil
	}
}

// waitFor reads notifications until one sets key=value and returns it.
func (f *fakeSystemd) waitFor(t *testing.T, key, value string, within time.Duration) map[string]string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		kv := f.next(t, time.Until(deadline), key+"="+value)
		if kv[key] == value {
			return kv
		}
	}
}

// TestServeSystemdNotify runs the binary as systemd runs a Type=notify
// unit with WatchdogSec: STATUS before the log is open, READY=1 only once
// the MQTT listener accepts connections, WATCHDOG=1 pings (with a STATUS
// line) at half of WATCHDOG_USEC while serving, STOPPING=1 after SIGTERM,
// and a clean exit.
func TestServeSystemdNotify(t *testing.T) {
	bin := buildSpool(t)
	sd := listenNotify(t)
	mqttAddr := freeAddr(t)
	const watchdogUsec = 200000 // 200ms: pings every 100ms
	p := startServe(t, bin,
		[]string{"NOTIFY_SOCKET=" + sd.path, "WATCHDOG_USEC=200000", "WATCHDOG_PID="},
		"--data", filepath.Join(t.TempDir(), "data"), "--mqtt-addr", mqttAddr, "--http-addr", "off", "--log-format", "json")

	first := sd.next(t, 30*time.Second, "the first notification")
	if !strings.HasPrefix(first["STATUS"], "opening the data directory") || first["READY"] != "" {
		t.Errorf("first notification %v, want STATUS=opening the data directory ... before READY", first)
	}
	ready := sd.waitFor(t, "READY", "1", 30*time.Second)
	// Ready means serving: the listener is bound before READY=1 is sent.
	c, err := net.DialTimeout("tcp", mqttAddr, 2*time.Second)
	if err != nil {
		t.Fatalf("READY=1 sent but MQTT %s refuses connections: %v", mqttAddr, err)
	}
	c.Close()
	if !strings.HasPrefix(ready["STATUS"], "serving 1 topics") {
		t.Errorf("READY notification STATUS %q, want serving 1 topics (mqtt)...", ready["STATUS"])
	}

	var pings []time.Time
	for len(pings) < 3 {
		kv := sd.waitFor(t, "WATCHDOG", "1", 10*time.Second)
		pings = append(pings, time.Now())
		if !strings.HasPrefix(kv["STATUS"], "serving ") {
			t.Errorf("watchdog ping STATUS %q, want serving ...", kv["STATUS"])
		}
		if kv["STOPPING"] != "" || kv["READY"] != "" {
			t.Errorf("watchdog ping %v carries other states", kv)
		}
	}
	// Pings come at half the interval: never as far apart as the interval
	// itself would allow systemd to time out on a loaded machine, and not
	// in a burst either. The bound below is loose for slow CI machines.
	if gap := pings[2].Sub(pings[1]); gap < 20*time.Millisecond || gap > 5*time.Second {
		t.Errorf("watchdog pings %v apart, want about %v", gap, time.Duration(watchdogUsec/2)*time.Microsecond)
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	sd.waitFor(t, "STOPPING", "1", 30*time.Second)
	if code := p.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0; output:\n%s", code, p.output())
	}
	// After STOPPING=1 no watchdog ping follows: at most one that was in
	// flight at the signal, then the final STATUS=stopped.
	var last map[string]string
	late := 0
	for len(sd.msgs) > 0 {
		last = sd.next(t, time.Second, "queued notifications")
		if last["WATCHDOG"] == "1" {
			late++
		}
	}
	if late > 0 {
		t.Errorf("%d watchdog pings after STOPPING=1", late)
	}
	if last == nil || last["STATUS"] != "stopped" {
		t.Errorf("last notification %v, want STATUS=stopped", last)
	}
}

// TestWatchdogOnlyWhileHealthy drives the watchdog loop in-process: it
// pings while the probe returns, sends nothing while the probe is stuck
// (so systemd's WatchdogSec would restart a wedged appliance), returns
// when its context ends, and no ping follows STOPPING=1.
func TestWatchdogOnlyWhileHealthy(t *testing.T) {
	sd := listenNotify(t)
	t.Setenv("NOTIFY_SOCKET", sd.path)
	t.Setenv("WATCHDOG_USEC", "40000") // a ping every 20ms
	t.Setenv("WATCHDOG_PID", "")
	n := newSDNotifier(slog.New(slog.DiscardHandler))

	stuck := make(chan struct{})
	var probes atomic.Int32
	probe := func(time.Duration) (string, error) {
		if probes.Add(1) > 3 {
			<-stuck // the log's lock is never released
		}
		return "healthy", nil
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); n.watchdog(ctx, probe) }()
	for i := 0; i < 3; i++ {
		if kv := sd.next(t, 10*time.Second, "a watchdog ping"); kv["WATCHDOG"] != "1" || kv["STATUS"] != "healthy" {
			t.Fatalf("ping %d: %v, want WATCHDOG=1 and STATUS=healthy", i, kv)
		}
	}
	// The fourth probe blocks: nothing may be sent while it does.
	for probes.Load() < 4 {
		time.Sleep(time.Millisecond)
	}
	select {
	case m := <-sd.msgs:
		t.Fatalf("%q sent while the probe was stuck", m)
	case <-time.After(200 * time.Millisecond): // ten ping intervals
	}
	n.stop("shutting down")
	if kv := sd.next(t, 10*time.Second, "STOPPING=1"); kv["STOPPING"] != "1" {
		t.Fatalf("got %v, want STOPPING=1", kv)
	}
	cancel()
	close(stuck) // the probe returns into a shutdown: no ping for it
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("watchdog did not return after its context ended")
	}
	n.ping("late")
	n.status("stopped")
	if kv := sd.next(t, 10*time.Second, "STATUS=stopped"); kv["STATUS"] != "stopped" || kv["WATCHDOG"] != "" {
		t.Fatalf("after STOPPING=1: %v, want only STATUS=stopped", kv)
	}

	// Without WATCHDOG_USEC (no WatchdogSec) the loop returns at once.
	t.Setenv("WATCHDOG_USEC", "")
	returned := make(chan struct{})
	go func() { n.watchdog(t.Context(), probe); close(returned) }()
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("watchdog ran without WATCHDOG_USEC")
	}
}
