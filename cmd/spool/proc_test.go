package main

// Helpers for the tests that run the spool binary as a child process:
// build it, start `spool serve`, wait for it, signal it, connect MQTT
// clients to it, and read back the log it wrote.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	spoollog "github.com/spoolmq/spool/log"
)

// raceEnabled reports whether this test binary was built with -race.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// buildSpool compiles this command into a temporary directory and returns
// the binary. Under -race the binary is built with -race too, and
// spoolProc reports any race it prints.
func buildSpool(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the spool binary; skipped with -short")
	}
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
		t.Skipf("needs POSIX signals, not available on %s", runtime.GOOS)
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go tool to build the binary: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "spool")
	args := []string{"build", "-o", bin}
	if raceEnabled() {
		args = append(args, "-race")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, goTool, append(args, ".")...).CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Logf("built %s in %v (race: %v)", bin, time.Since(start).Round(time.Millisecond), raceEnabled())
	return bin
}

// childEnv is this process's environment without SPOOL_ variables, which
// would override the flags and config a test gives.
func childEnv(extra ...string) []string {
	// Tests that want the Kafka listener say --kafka-addr (flags win):
	// the default port would collide between tests running at once.
	env := []string{"SPOOL_KAFKA_ADDR=off"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SPOOL_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// freeAddr returns a loopback address with a port nothing listened on a
// moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// spoolProc is a running `spool serve` child. Its stdout and stderr go to
// a file, read by output and waitLog.
type spoolProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	out    string        // path of the output file
	exited chan struct{} // closed once Wait has returned
}

// startServe starts `spool serve args...` with env added to a clean
// environment. The process is killed at the end of the test if it is
// still running.
func startServe(t *testing.T, bin string, env []string, args ...string) *spoolProc {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "serve-*.log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close() // the child has its own descriptor
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...)
	cmd.Env = childEnv(env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &spoolProc{t: t, cmd: cmd, out: f.Name(), exited: make(chan struct{})}
	go func() {
		cmd.Wait() // the exit status is read from cmd.ProcessState
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// output returns what the process wrote so far.
func (p *spoolProc) output() string {
	b, err := os.ReadFile(p.out)
	if err != nil {
		p.t.Fatal(err)
	}
	return string(b)
}

// poll calls cond every 10ms until it returns true, failing the test when
// within passes or the process exits first.
func (p *spoolProc) poll(what string, within time.Duration, cond func() bool) {
	p.t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-p.exited:
			p.t.Fatalf("spool exited (%v) while waiting for %s; output:\n%s", p.cmd.ProcessState, what, p.output())
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("no %s within %v; output:\n%s", what, within, p.output())
		}
	}
}

// waitTCP waits until addr accepts connections.
func (p *spoolProc) waitTCP(addr string, within time.Duration) {
	p.t.Helper()
	p.poll("listener on "+addr, within, func() bool {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// logLines parses the process's JSON log lines.
func (p *spoolProc) logLines() []map[string]any {
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(p.output()))
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			lines = append(lines, m)
		}
	}
	return lines
}

// findLog returns the first JSON log line whose msg is msg, or nil.
func (p *spoolProc) findLog(msg string) map[string]any {
	for _, m := range p.logLines() {
		if m["msg"] == msg {
			return m
		}
	}
	return nil
}

// waitLog waits for a JSON log line whose msg is msg and returns it.
func (p *spoolProc) waitLog(msg string, within time.Duration) map[string]any {
	p.t.Helper()
	var line map[string]any
	p.poll(fmt.Sprintf("log line %q", msg), within, func() bool {
		line = p.findLog(msg)
		return line != nil
	})
	return line
}

// wait waits for the process to exit and returns its exit code (-1 when a
// signal ended it).
func (p *spoolProc) wait(within time.Duration) int {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(within):
		p.cmd.Process.Kill()
		<-p.exited
		p.t.Fatalf("spool did not exit within %v; output:\n%s", within, p.output())
	}
	p.checkNoRace()
	return p.cmd.ProcessState.ExitCode()
}

// stop sends sig and waits for the process to exit.
func (p *spoolProc) stop(sig os.Signal, within time.Duration) int {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v: %v", sig, err)
	}
	return p.wait(within)
}

// kill ends the process with SIGKILL: no shutdown, no flush.
func (p *spoolProc) kill() {
	p.t.Helper()
	if code := p.stop(syscall.SIGKILL, 10*time.Second); code != -1 {
		p.t.Fatalf("spool exited with %d before the SIGKILL; output:\n%s", code, p.output())
	}
}

// checkNoRace fails the test if a -race build of the child reported a race.
func (p *spoolProc) checkNoRace() {
	p.t.Helper()
	if out := p.output(); strings.Contains(out, "WARNING: DATA RACE") {
		p.t.Fatalf("spool reported a data race:\n%s", out)
	}
}

// mqttConnect connects an MQTT 3.1.1 client with a clean session that
// neither reconnects nor resends: what it was not acknowledged is lost
// with the connection, which is what the tests count on.
func mqttConnect(t *testing.T, addr, clientID string) paho.Client {
	t.Helper()
	opts := paho.NewClientOptions().
		AddBroker("tcp://" + addr).
		SetClientID(clientID).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(5 * time.Second).
		SetWriteTimeout(5 * time.Second).
		SetKeepAlive(30 * time.Second)
	c := paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		t.Fatalf("MQTT connect %s to %s: no CONNACK within 10s", clientID, addr)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("MQTT connect %s to %s: %v", clientID, addr, err)
	}
	return c
}

// storedRecord is one record read back from the log, copied out of the
// read buffers.
type storedRecord struct {
	Partition int32
	Offset    int64
	Key       string
	KeyNil    bool
	Value     string
	Headers   map[string]string
}

// readTopic opens the data directory and returns every record of topic in
// partition and offset order, and the topic's partition count.
func readTopic(t *testing.T, dir, topic string) ([]storedRecord, int32) {
	t.Helper()
	l, err := spoollog.Open(dir, spoollog.Options{})
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	defer func() {
		if err := l.Close(); err != nil {
			t.Errorf("close %s: %v", dir, err)
		}
	}()
	tp, err := l.Topic(topic)
	if err != nil {
		t.Fatalf("topic %q: %v (topics: %v)", topic, err, l.Topics())
	}
	var out []storedRecord
	for _, p := range tp.Partitions() {
		for off := p.LogStartOffset(); off < p.HighWatermark(); {
			data, err := p.Read(off, 1<<20)
			if err != nil {
				t.Fatalf("topic %q partition %d: read at %d: %v", topic, p.ID(), off, err)
			}
			if len(data) == 0 {
				t.Fatalf("topic %q partition %d: nothing at %d below the high watermark %d", topic, p.ID(), off, p.HighWatermark())
			}
			err = spoollog.SplitBatches(data, func(h spoollog.BatchHeader, batch []byte) error {
				_, recs, err := spoollog.DecodeRecords(batch)
				if err != nil {
					return err
				}
				for _, r := range recs {
					if r.Offset < off {
						continue // the start of a batch read from its middle
					}
					sr := storedRecord{Partition: p.ID(), Offset: r.Offset, Key: string(r.Key), KeyNil: r.Key == nil,
						Value: string(r.Value), Headers: map[string]string{}}
					for _, h := range r.Headers {
						sr.Headers[h.Key] = string(h.Value)
					}
					out = append(out, sr)
				}
				off = h.LastOffset() + 1
				return nil
			})
			if err != nil {
				t.Fatalf("topic %q partition %d: decode at %d: %v", topic, p.ID(), off, err)
			}
		}
	}
	return out, tp.NumPartitions()
}

// writeFile writes a test file and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// lastLines returns the last n lines of s, for failure messages.
func lastLines(s string, n int) string {
	lines := bytes.Split([]byte(strings.TrimRight(s, "\n")), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
