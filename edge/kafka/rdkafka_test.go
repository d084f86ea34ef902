package kafka_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/spoolmq/spool/edge/kafka"
)

// debianPython is the interpreter Debian's python3-confluent-kafka is
// installed for (another python3 earlier in PATH would not have it).
const debianPython = "/usr/bin/python3"

type rdkafkaRun struct {
	Values   map[string][]string `json:"values"`
	Assigned map[string][]int    `json:"assigned"`
	Errors   []string            `json:"errors"`
}

// runRdkafkaGroup runs two librdkafka consumers of one group until they
// have read count records.
func runRdkafkaGroup(t *testing.T, tb *testBroker, topic, group string, count int) rdkafkaRun {
	t.Helper()
	if err := exec.Command(debianPython, "-c", "import confluent_kafka").Run(); err != nil {
		requirePeer(t, "python3-confluent-kafka (import confluent_kafka with "+debianPython+")")
	}
	cx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cx, debianPython, "testdata/rdkafka_group.py", tb.addr(), topic, group, strconv.Itoa(count), "45")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var run rdkafkaRun
	if jerr := json.Unmarshal(out.Bytes(), &run); jerr != nil {
		t.Fatalf("rdkafka consumers: %v (%v)\nstdout: %s\nstderr: %s", err, jerr, out.String(), errb.String())
	}
	if err != nil {
		t.Fatalf("rdkafka consumers: %v: %+v\nstderr: %s", err, run, errb.String())
	}
	return run
}

// TestRdkafkaGroupResumes: two librdkafka consumers of one group share a
// four-partition topic and commit as they go; restarted, the group
// resumes from its committed offsets: every record is read exactly once.
func TestRdkafkaGroupResumes(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	const topic, group = "rd", "rd-readers"
	tb.createTopic(topic, 4)
	produceValues(t, tb, topic, 0, 400)

	check := func(run rdkafkaRun, from, to int) {
		t.Helper()
		seen := map[string]int{}
		for _, vs := range run.Values {
			for _, v := range vs {
				seen[v]++
			}
		}
		for i := from; i < to; i++ {
			if n := seen[strconv.Itoa(i)]; n != 1 {
				t.Errorf("value %d read %d times", i, n)
			}
		}
		if len(seen) != to-from {
			t.Errorf("%d distinct values read, want %d", len(seen), to-from)
		}
	}
	first := runRdkafkaGroup(t, tb, topic, group, 400)
	check(first, 0, 400)
	if len(first.Assigned["a"]) == 0 || len(first.Assigned["b"]) == 0 {
		t.Errorf("assignments %v: both consumers should have had partitions", first.Assigned)
	}

	produceValues(t, tb, topic, 400, 600)
	second := runRdkafkaGroup(t, tb, topic, group, 200)
	check(second, 400, 600)
	t.Logf("first run assignments %v, second %v, errors %v %v", first.Assigned, second.Assigned, first.Errors, second.Errors)
}
