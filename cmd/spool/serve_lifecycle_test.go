package main

// The systemd lifecycle of `spool serve`: a wedged disk, a failing
// listener, a bad environment variable.

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	spoollog "github.com/spoolmq/spool/log"
)

// stuckFS is the real file system whose segment fsyncs block, once
// armed, until released: an SD card that stopped answering.
type stuckFS struct {
	spoollog.OSFS
	mu      sync.Mutex
	armed   bool
	entered chan struct{} // closed when the first armed Sync blocks
	release chan struct{}
	once    sync.Once
}

func (f *stuckFS) OpenFile(name string, flag int, perm fs.FileMode) (spoollog.File, error) {
	file, err := f.OSFS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &stuckFile{File: file, fs: f}, nil
}

type stuckFile struct {
	spoollog.File
	fs *stuckFS
}

func (f *stuckFile) Sync() error {
	f.fs.mu.Lock()
	armed := f.fs.armed
	f.fs.mu.Unlock()
	if armed {
		f.fs.once.Do(func() { close(f.fs.entered) })
		<-f.fs.release
	}
	return f.File.Sync()
}

// The flusher of a sync: always partition is stuck in an fsync that never
// returns; an append waits for it for ever. The watchdog probe runServe
// uses (servingProbe) withholds the pings, so that systemd restarts the
// wedged appliance.
func TestWatchdogStopsWhenFlusherStuck(t *testing.T) {
	stuck := &stuckFS{entered: make(chan struct{}), release: make(chan struct{})}
	l, err := spoollog.Open(t.TempDir(), spoollog.Options{FS: stuck})
	if err != nil {
		t.Fatal(err)
	}
	tp, err := l.CreateTopic("t", spoollog.DefaultTopicConfig())
	if err != nil {
		t.Fatal(err)
	}
	if tp.Config().Sync != spoollog.SyncAlways {
		t.Fatalf("default sync %v, want always", tp.Config().Sync)
	}
	p, _ := tp.Partition(0)
	stuck.mu.Lock()
	stuck.armed = true
	stuck.mu.Unlock()
	appended := make(chan error, 1)
	go func() {
		_, err := p.AppendRecords([]spoollog.Record{{Value: []byte("v")}}, spoollog.DefaultBatchOptions)
		appended <- err
	}()
	t.Cleanup(func() {
		close(stuck.release)
		<-appended
		l.Close()
	})
	select {
	case <-stuck.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the flusher never reached fsync")
	}

	sd := listenNotify(t)
	t.Setenv("NOTIFY_SOCKET", sd.path)
	t.Setenv("WATCHDOG_USEC", "200000") // WatchdogSec=200ms: a ping every 100ms
	t.Setenv("WATCHDOG_PID", "")
	n := newSDNotifier(slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go n.watchdog(ctx, servingProbe(l))

	// The flusher has been stuck for ten watchdog intervals: systemd
	// would have restarted the service long ago if the pings had stopped.
	time.Sleep(2 * time.Second)
	for len(sd.msgs) > 0 {
		<-sd.msgs
	}
	deadline := time.After(time.Second)
	for {
		select {
		case m := <-sd.msgs:
			if !strings.Contains(m, "WATCHDOG=1") {
				continue // STATUS= saying why, not a ping
			}
			select {
			case err := <-appended:
				t.Fatalf("append returned (%v): the fsync was not stuck", err)
			default:
			}
			t.Fatalf("watchdog ping %q sent while the flusher has been stuck in fsync for >2s (an append waits for it)", m)
		case <-deadline:
			return
		}
	}
}

// listenerFD finds the listening socket bound to port in this process.
func listenerFD(t *testing.T, port int) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd:", err)
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if v, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_ACCEPTCONN); err != nil || v != 1 {
			continue
		}
		sa, err := syscall.Getsockname(fd)
		if err != nil {
			continue
		}
		if in4, ok := sa.(*syscall.SockaddrInet4); ok && in4.Port == port {
			return fd
		}
	}
	t.Fatalf("no listening socket on port %d", port)
	return -1
}

// The HTTP listener fails while serving (accept returns a permanent
// error). Shutdown begins at that moment, so STOPPING=1 goes out then and
// the watchdog pings end, not only after the drain (here a client in the
// middle of a request body holds the HTTP shutdown for its 10s timeout).
// The exit code is non-zero.
func TestServeListenerFailureSendsStoppingAtOnce(t *testing.T) {
	sd := listenNotify(t)
	t.Setenv("NOTIFY_SOCKET", sd.path)
	t.Setenv("WATCHDOG_USEC", "200000") // a ping every 100ms
	t.Setenv("WATCHDOG_PID", "")
	httpAddr := freeAddr(t)
	_, portStr, _ := net.SplitHostPort(httpAddr)
	port, _ := strconv.Atoi(portStr)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var errOut bytes.Buffer
	code := -1
	done := make(chan struct{})
	go func() {
		defer close(done)
		code = run(ctx, []string{"serve", "--data", t.TempDir(), "--mqtt-addr", "off", "--kafka-addr", "off",
			"--http-addr", httpAddr, "--log-format", "json"}, &bytes.Buffer{}, &errOut)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
		}
	})
	sd.waitFor(t, "READY", "1", 30*time.Second)
	sd.waitFor(t, "WATCHDOG", "1", 10*time.Second)

	// A client in the middle of a request body: an active connection.
	c, err := net.DialTimeout("tcp", httpAddr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /api/v1/topics HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"name\":")
	time.Sleep(200 * time.Millisecond)

	// The listener fails: accept now returns EINVAL, which is permanent.
	if err := syscall.Shutdown(listenerFD(t, port), syscall.SHUT_RD); err != nil {
		t.Fatal(err)
	}
	failed := time.Now()

	var pingsAfter int
	var stoppingAt time.Duration
	deadline := time.After(20 * time.Second)
wait:
	for {
		select {
		case m := <-sd.msgs:
			kv := map[string]string{}
			for _, line := range bytes.Split([]byte(m), []byte("\n")) {
				k, v, _ := bytes.Cut(line, []byte("="))
				kv[string(k)] = string(v)
			}
			if kv["WATCHDOG"] == "1" && time.Since(failed) > 300*time.Millisecond {
				pingsAfter++
			}
			if kv["STOPPING"] == "1" {
				stoppingAt = time.Since(failed)
				break wait
			}
		case <-deadline:
			t.Fatalf("no STOPPING=1 within 20s of the HTTP listener failing; stderr:\n%s", lastLines(errOut.String(), 10))
		}
	}
	select {
	case <-done:
	case <-time.After(20 * time.Second):
	}
	if code == 0 {
		t.Errorf("exit 0 after the HTTP listener failed, want non-zero")
	}
	if stoppingAt > 2*time.Second || pingsAfter > 0 {
		t.Errorf("STOPPING=1 sent %v after the HTTP listener failed, with %d WATCHDOG=1 pings in between (exit %d); want STOPPING=1 at once and no pings", stoppingAt.Round(10*time.Millisecond), pingsAfter, code)
	}
}

// A bad value from a SPOOL_ environment variable names that variable: the
// user set no flag and no config key.
func TestServeEnvErrorNamesVariable(t *testing.T) {
	for env, val := range map[string]string{"SPOOL_DISK_BUDGET": "lots", "SPOOL_LOG_LEVEL": "verbose"} {
		t.Run(env, func(t *testing.T) {
			t.Setenv(env, val)
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			code, _, stderr := spool(t, ctx, "serve", "--data", t.TempDir(), "--mqtt-addr", "off", "--kafka-addr", "off", "--http-addr", "off")
			if code != 1 || !strings.Contains(stderr, env) {
				t.Errorf("%s=%s: exit %d, stderr %q; want exit 1 naming %s", env, val, code, strings.TrimSpace(stderr), env)
			}
		})
	}
}
