package kafka_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spoolmq/spool/edge/kafka"
)

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

// kcat runs kcat against the broker with stdin and returns its stdout.
func kcat(t *testing.T, tb *testBroker, stdin string, args ...string) string {
	t.Helper()
	return kcatRaw(t, stdin, append([]string{"-b", tb.addr()}, args...)...)
}

// kcatRaw runs kcat with exactly args.
func kcatRaw(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	bin := requirePeer(t, "kcat")
	cx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cx, bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat %v: %v\n%s", args, err, errb.String())
	}
	return out.String()
}

// TestKcat: librdkafka's kcat lists metadata, produces keyed records with
// the Java-compatible murmur2 partitioner onto the partitions Spool's own
// partitioner picks, and consumes them back from the beginning.
func TestKcat(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	tb.createTopic("kc", 4)

	meta := kcat(t, tb, "", "-L", "-t", "kc")
	if !strings.Contains(meta, `topic "kc" with 4 partitions`) || !strings.Contains(meta, "broker 0 at "+tb.addr()) {
		t.Fatalf("kcat -L:\n%s", meta)
	}

	keys := []string{"pump1", "pump2", "valve-7", "sensor.a", "gw", "x1", "x2", "x3"}
	var in strings.Builder
	for _, k := range keys {
		in.WriteString(k + ":value-of-" + k + "\n")
	}
	kcat(t, tb, in.String(), "-P", "-t", "kc", "-K", ":", "-X", "topic.partitioner=murmur2_random", "-z", "lz4")

	out := kcat(t, tb, "", "-C", "-t", "kc", "-o", "beginning", "-e", "-f", `%k %p %s\n`)
	top, err := tb.Log.Topic("kc")
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var k, v string
		var p int32
		if _, err := fmtSscan(line, &k, &p, &v); err != nil {
			t.Fatalf("kcat output line %q: %v", line, err)
		}
		if want := top.PartitionFor([]byte(k), 4); p != want {
			t.Errorf("key %s on partition %d, Spool's murmur2 says %d", k, p, want)
		}
		if v != "value-of-"+k {
			t.Errorf("key %s value %q", k, v)
		}
		seen++
	}
	if seen != len(keys) {
		t.Errorf("kcat consumed %d records, want %d:\n%s", seen, len(keys), out)
	}
}

// TestKcatGroupResumes: kcat's balanced consumer (-G) reads a topic to its
// end and commits; a second run of the same group reads only what came
// after.
func TestKcatGroupResumes(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	tb.createTopic("kcg", 2)
	produceValues(t, tb, "kcg", 0, 20)
	read := func() []string {
		out := strings.TrimSpace(kcat(t, tb, "", "-G", "kcat-group", "-e", "-f", `%s\n`, "-X", "auto.offset.reset=earliest", "kcg"))
		if out == "" {
			return nil
		}
		return strings.Split(out, "\n")
	}
	if got := read(); len(got) != 20 {
		t.Fatalf("first run read %d records, want 20: %q", len(got), got)
	}
	produceValues(t, tb, "kcg", 20, 25)
	got := read()
	slices.Sort(got)
	if want := []string{"20", "21", "22", "23", "24"}; !slices.Equal(got, want) {
		t.Fatalf("second run read %q, want %q", got, want)
	}
}
