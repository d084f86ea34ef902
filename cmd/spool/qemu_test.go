package main

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// armTargets are the release builds for Raspberry Pi boards, with the
// qemu-user emulator (Debian's qemu-user-static) and the CPU of the oldest
// board each is for: qemu's default CPU has every extension, and would run
// an ARMv7 binary where a Pi Zero's ARM1176 stops at the first ARMv7
// instruction.
var armTargets = []struct {
	target, qemu, cpu, goarch string
}{
	{"armv6", "qemu-arm-static", "arm1176", "arm"},          // Pi Zero, Pi 1
	{"armv7", "qemu-arm-static", "cortex-a7", "arm"},        // Pi 2 (and Pi 3 with a 32-bit OS)
	{"arm64", "qemu-aarch64-static", "cortex-a53", "arm64"}, // Pi 3, then 4 (A72) and 5 (A76)
}

// TestARMUnderQEMU runs the release binaries of scripts/build.sh for
// ARMv6, ARMv7 and arm64 under qemu-user, each on its board's CPU: `spool
// version` prints the stamped version and the ARM platform (and the ARMv7
// build dies on the ARMv6 CPU, so the emulated CPU is that old); `spool serve`
// on a fresh data directory acknowledges an MQTT QoS 1 publish, returns it
// over the HTTP API and over the Kafka listener, exits 0 on SIGTERM, and
// after a second start still has the record at the same offset.
func TestARMUnderQEMU(t *testing.T) {
	if testing.Short() {
		t.Skip("builds three ARM binaries and runs them under emulation; skipped with -short")
	}
	for _, q := range []string{"qemu-arm-static", "qemu-aarch64-static"} {
		needTool(t, q)
	}
	dist := t.TempDir()
	targets := make([]string, len(armTargets))
	for i, a := range armTargets {
		targets[i] = a.target
	}
	start := time.Now()
	runScript(t, 5*time.Minute, []string{"DIST=" + dist, "VERSION=0.7.0-qemu"}, "scripts/build.sh", targets...)
	t.Logf("built %v in %v", targets, time.Since(start).Round(time.Millisecond))

	// startServe runs `BIN serve ...`: BIN is a wrapper that execs the
	// emulator, so signals reach qemu, which passes them on. The wrappers
	// are written before the parallel subtests start: a fork in one while
	// another has its wrapper open for writing makes exec fail with "text
	// file busy" (golang/go#22315).
	wrappers := make(map[string]string)
	for _, a := range armTargets {
		qemu, _ := exec.LookPath(a.qemu)
		bin := filepath.Join(dist, "spool-linux-"+a.target)
		w := writeFile(t, t.TempDir(), "spool", fmt.Sprintf("#!/bin/sh\nexec %s -cpu %s %s \"$@\"\n", qemu, a.cpu, bin))
		if err := os.Chmod(w, 0o755); err != nil {
			t.Fatal(err)
		}
		wrappers[a.target] = w
	}
	for _, a := range armTargets {
		t.Run(a.target, func(t *testing.T) {
			t.Parallel()
			wrapper := wrappers[a.target]
			v := output(t, wrapper, "version")
			if !strings.HasPrefix(v, "spool 0.7.0-qemu (commit ") || !strings.Contains(v, "linux/"+a.goarch+")") {
				t.Fatalf("spool version under %s printed %q, want the stamped version on linux/%s", a.qemu, v, a.goarch)
			}
			if a.target == "armv6" {
				ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
				defer cancel()
				v7 := filepath.Join(dist, "spool-linux-armv7")
				qemu, _ := exec.LookPath(a.qemu)
				out, err := exec.CommandContext(ctx, qemu, "-cpu", a.cpu, v7, "version").CombinedOutput()
				if err == nil || !strings.Contains(string(out), "Illegal instruction") {
					t.Errorf("the ARMv7 build on %s: %v, %q; want an illegal instruction (is the CPU an ARMv6?)", a.cpu, err, out)
				}
			}
			qemuServeCycle(t, wrapper)
		})
	}
	t.Run("packages", func(t *testing.T) {
		t.Parallel()
		checkARMPackages(t, dist, targets)
	})
}

// checkARMPackages packages the ARM binaries with scripts/package.sh and
// checks what each package would install: its architecture, the very
// binary that was built (an ELF for the board's machine), running under
// emulation, and the same config and unit as every other package.
func checkARMPackages(t *testing.T, dist string, targets []string) {
	needTool(t, "dpkg-deb")
	out := runScript(t, 5*time.Minute, []string{"DIST=" + dist, "VERSION=0.7.0-qemu", "SKIP_BUILD=1"}, "scripts/package.sh", targets...)
	t.Logf("scripts/package.sh %v:\n%s", targets, out)
	debArch := map[string]string{"arm": "armhf", "arm64": "arm64"}
	machine := map[string]elf.Machine{"arm": elf.EM_ARM, "arm64": elf.EM_AARCH64}
	for _, a := range armTargets {
		deb := filepath.Join(dist, "spool_0.7.0+qemu_"+a.target+".deb")
		if got := strings.TrimSpace(output(t, "dpkg-deb", "-f", deb, "Architecture")); got != debArch[a.goarch] {
			t.Errorf("%s: Architecture %q, want %q", deb, got, debArch[a.goarch])
		}
		root := t.TempDir()
		output(t, "dpkg-deb", "-x", deb, root)
		packaged, err := os.ReadFile(filepath.Join(root, "usr/bin/spool"))
		if err != nil {
			t.Fatalf("%s: %v", deb, err)
		}
		built, err := os.ReadFile(filepath.Join(dist, "spool-linux-"+a.target))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(packaged, built) {
			t.Errorf("%s: /usr/bin/spool differs from the %s build", deb, a.target)
		}
		f, err := elf.Open(filepath.Join(root, "usr/bin/spool"))
		if err != nil {
			t.Fatalf("%s: /usr/bin/spool: %v", deb, err)
		}
		if f.Machine != machine[a.goarch] || f.Type != elf.ET_EXEC {
			t.Errorf("%s: /usr/bin/spool is a %v %v, want a static %v executable", deb, f.Machine, f.Type, machine[a.goarch])
		}
		f.Close()
		qemu, _ := exec.LookPath(a.qemu)
		if v := output(t, qemu, "-cpu", a.cpu, filepath.Join(root, "usr/bin/spool"), "version"); !strings.Contains(v, "linux/"+a.goarch+")") {
			t.Errorf("%s: the packaged binary printed %q", deb, v)
		}
		for _, conf := range []struct{ installed, source string }{
			{"etc/spool/spool.yaml", "configs/spool-service.yaml"},
			{"lib/systemd/system/spool.service", "configs/spool.service"},
		} {
			got, err := os.ReadFile(filepath.Join(root, conf.installed))
			want, werr := os.ReadFile(filepath.Join(repoRoot, conf.source))
			if err != nil || werr != nil || !bytes.Equal(got, want) {
				t.Errorf("%s: /%s differs from %s (%v, %v)", deb, conf.installed, conf.source, err, werr)
			}
		}
	}
}

// qemuServeCycle is one board's life: serve, publish, read back over
// HTTP and Kafka, stop, serve again, read back.
func qemuServeCycle(t *testing.T, bin string) {
	data := filepath.Join(t.TempDir(), "data")
	mqttAddr, httpAddr, kafkaAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	serve := func() *spoolProc {
		p := startServe(t, bin, nil, "--data", data, "--mqtt-addr", mqttAddr, "--http-addr", httpAddr,
			"--kafka-addr", kafkaAddr, "--log-format", "json")
		p.waitLog("spool serving", 90*time.Second)
		return p
	}
	stop := func(p *spoolProc) {
		t.Helper()
		if code := p.stop(syscall.SIGTERM, 60*time.Second); code != 0 {
			t.Fatalf("exit %d after SIGTERM, want 0; output:\n%s", code, lastLines(p.output(), 30))
		}
		if p.findLog("spool stopped") == nil {
			t.Fatalf("no clean stop logged; output:\n%s", lastLines(p.output(), 30))
		}
	}

	p := serve()
	const topic, payload = "devices/pi/temp", `{"c": 21.5}`
	c := mqttConnect(t, mqttAddr, "pi-sensor")
	tok := c.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(30 * time.Second) {
		t.Fatal("no PUBACK within 30s")
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("publish: %v", err)
	}
	c.Disconnect(100)

	checkHTTPRecord(t, httpAddr, topic, payload)
	checkKafkaRecord(t, kafkaAddr, topic, payload)
	stop(p)

	p = serve()
	checkHTTPRecord(t, httpAddr, topic, payload)
	stop(p)
}

// checkHTTPRecord reads the partition of the mqtt topic from the start
// over the HTTP API and wants exactly the one record, at offset 0.
func checkHTTPRecord(t *testing.T, addr, key, value string) {
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Get("http://" + addr + "/api/v1/topics/mqtt/partitions/0/records?offset=earliest")
	if err != nil {
		t.Fatalf("HTTP read: %v", err)
	}
	defer resp.Body.Close()
	var body struct {
		Records []struct {
			Offset int64  `json:"offset"`
			Key    string `json:"key"`
			Value  string `json:"value"`
		} `json:"records"`
		HighWatermark int64 `json:"high_watermark"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP read: status %d, %v", resp.StatusCode, err)
	}
	if len(body.Records) != 1 || body.HighWatermark != 1 {
		t.Fatalf("HTTP read: %+v, want one record", body)
	}
	if r := body.Records[0]; r.Offset != 0 || r.Key != key || r.Value != value {
		t.Fatalf("HTTP read: record %+v, want offset 0, key %q, value %q", r, key, value)
	}
}

// checkKafkaRecord consumes the mqtt topic from the start over the Kafka
// listener and wants the record.
func checkKafkaRecord(t *testing.T, addr, key, value string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("mqtt"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.RequestTimeoutOverhead(20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var got []*kgo.Record
	for len(got) == 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("Kafka fetch: nothing within 60s (errors: %v)", fs.Errors())
		}
		for _, e := range fs.Errors() {
			t.Logf("Kafka fetch: %v", e)
		}
		got = append(got, fs.Records()...)
	}
	if r := got[0]; r.Offset != 0 || string(r.Key) != key || string(r.Value) != value || r.Topic != "mqtt" || r.Partition != 0 {
		t.Fatalf("Kafka record %s/%d@%d %q=%q, want mqtt/0@0 %q=%q", r.Topic, r.Partition, r.Offset, r.Key, r.Value, key, value)
	}
}
