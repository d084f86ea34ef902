package kafka_test

// Kafka transactions with librdkafka (python3-confluent-kafka), run as in
// rdkafka_test.go: the Debian interpreter, skipped when the module is
// missing unless SPOOL_REQUIRE_PEERS is set.

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/spoolmq/spool/edge/kafka"
	"github.com/twmb/franz-go/pkg/kgo"
)

// rdkafkaTxnScript has two modes.
//
// produce BOOTSTRAP TOPIC: a transactional producer commits c1-0..9,
// aborts a-0..9 (both over the topic's two partitions), then produces
// c2-0..9 to partition 0; while that transaction is pending, a plain
// producer writes n-0..4 to partition 1 and a read_committed consumer
// reads until it has 15 records (and 1 s more). Then the transaction
// commits, and the consumer goes on until it has 25 (and 1 s more). A
// read_uncommitted consumer then reads everything.
//
// eos BOOTSTRAP IN OUT GROUP COUNT: consume-transform-produce: a group
// consumer (read_committed) and a transactional producer; each round
// writes "y"+value to OUT and sends the consumer's offsets to the
// transaction; the second round is aborted and its input read again.
// Ends when COUNT input records were committed; prints the group's
// committed offsets as librdkafka reads them.
const rdkafkaTxnScript = `
import json, os, sys, time
from confluent_kafka import Consumer, Producer, TopicPartition, KafkaException, OFFSET_BEGINNING

mode, bootstrap = sys.argv[1], sys.argv[2]
errors = []

def error_cb(err):
    errors.append("error_cb: " + str(err))

def debug(conf):
    if os.environ.get("RDKAFKA_DEBUG"):
        conf["debug"] = os.environ["RDKAFKA_DEBUG"]
    return conf

def good(msgs):
    out = []
    for m in msgs:
        if m.error():
            errors.append("message: " + str(m.error()))
        else:
            out.append(m)
    return out

def values(msgs):
    out = []
    return [m.value().decode() for m in good(msgs)]

def read(c, want, timeout, extra):
    got, deadline = [], time.time() + timeout
    while len(got) < want and time.time() < deadline:
        got += values(c.consume(num_messages=100, timeout=0.2))
    end = time.time() + extra
    while time.time() < end:
        got += values(c.consume(num_messages=100, timeout=0.2))
    return got

def consumer(topic, parts, isolation):
    c = Consumer(debug({"bootstrap.servers": bootstrap, "group.id": "unused-" + isolation, "enable.auto.commit": False,
                        "isolation.level": isolation, "error_cb": error_cb, "fetch.wait.max.ms": 100}))
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(parts)])
    return c

def produce_mode(topic):
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": "rd-txn-producer", "error_cb": error_cb,
                  "transaction.timeout.ms": 30000})
    p.init_transactions(10)
    def txn(prefix, commit):
        p.begin_transaction()
        for i in range(10):
            p.produce(topic, key=str(i).encode(), value=("%s-%d" % (prefix, i)).encode())
        if commit:
            p.commit_transaction(10)
        else:
            p.flush(10)
            p.abort_transaction(10)
    txn("c1", True)
    txn("a", False)
    # Pending on partition 0 while a plain producer writes to partition 1.
    p.begin_transaction()
    for i in range(10):
        p.produce(topic, partition=0, value=("c2-%d" % i).encode())
    p.flush(10)
    plain = Producer({"bootstrap.servers": bootstrap, "error_cb": error_cb})
    for i in range(5):
        plain.produce(topic, partition=1, value=("n-%d" % i).encode())
    plain.flush(10)
    rc = consumer(topic, 2, "read_committed")
    pending = read(rc, 15, 5.0, 1.0)
    p.commit_transaction(10)
    after = read(rc, 25 - len(pending), 15.0, 1.0)
    rc.close()
    ru = consumer(topic, 2, "read_uncommitted")
    uncommitted = read(ru, 35, 15.0, 0.5)
    ru.close()
    return {"pending": pending, "committed": pending + after, "uncommitted": uncommitted}

def eos_mode(src, dst, group, count):
    c = Consumer(debug({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                        "auto.offset.reset": "earliest", "isolation.level": "read_committed", "error_cb": error_cb,
                        "session.timeout.ms": 6000, "heartbeat.interval.ms": 500, "fetch.wait.max.ms": 100}))
    c.subscribe([src])
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": "rd-eos-tx", "error_cb": error_cb,
                  "transaction.timeout.ms": 30000})
    p.init_transactions(10)
    done, rounds, aborted, deadline = 0, 0, 0, time.time() + 30
    while done < count and time.time() < deadline:
        msgs = good(c.consume(num_messages=15, timeout=0.3))
        if not msgs:
            continue
        rounds += 1
        p.begin_transaction()
        for m in msgs:
            p.produce(dst, key=m.key(), value=b"y" + m.value())
        if rounds == 2:
            # Aborted on purpose: the records reach the broker first, and
            # the input is read again from where this round began.
            p.flush(10)
            p.abort_transaction(10)
            aborted += 1
            first = {}
            for m in msgs:
                first[m.partition()] = min(first.get(m.partition(), m.offset()), m.offset())
            for part, off in first.items():
                c.seek(TopicPartition(src, part, off))
            continue
        nxt = {}
        for m in msgs:
            nxt[m.partition()] = max(nxt.get(m.partition(), 0), m.offset() + 1)
        p.send_offsets_to_transaction([TopicPartition(src, part, off) for part, off in nxt.items()],
                                      c.consumer_group_metadata(), 10)
        p.commit_transaction(10)
        done += len(msgs)
    parts = c.assignment()
    committed = {str(tp.partition): tp.offset for tp in c.committed(parts, timeout=10)}
    c.close()
    return {"rounds": rounds, "aborted": aborted, "done": done, "committed_offsets": committed}

try:
    if mode == "produce":
        out = produce_mode(sys.argv[3])
    else:
        out = eos_mode(sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]))
except KafkaException as e:
    out = {"fatal": str(e)}
out["errors"] = errors
print(json.dumps(out))
sys.exit(1 if "fatal" in out else 0)
`

type rdkafkaTxnRun struct {
	Pending     []string         `json:"pending"`
	Committed   []string         `json:"committed"`
	Uncommitted []string         `json:"uncommitted"`
	Rounds      int              `json:"rounds"`
	Aborted     int              `json:"aborted"`
	Done        int              `json:"done"`
	Offsets     map[string]int64 `json:"committed_offsets"`
	Fatal       string           `json:"fatal"`
	Errors      []string         `json:"errors"`
}

// runRdkafkaTxn runs the script in one mode and decodes its report.
func runRdkafkaTxn(t *testing.T, args ...string) (rdkafkaTxnRun, []byte) {
	t.Helper()
	if err := exec.Command(debianPython, "-c", "import confluent_kafka").Run(); err != nil {
		requirePeer(t, "python3-confluent-kafka (import confluent_kafka with "+debianPython+")")
	}
	script := filepath.Join(t.TempDir(), "rdkafka_txn.py")
	if err := os.WriteFile(script, []byte(rdkafkaTxnScript), 0o600); err != nil {
		t.Fatal(err)
	}
	cx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cx, debianPython, append([]string{script}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var run rdkafkaTxnRun
	if jerr := json.Unmarshal(out.Bytes(), &run); jerr != nil {
		t.Fatalf("rdkafka %v: %v (%v)\nstdout: %s\nstderr: %s", args, err, jerr, out.String(), errb.String())
	}
	if err != nil || run.Fatal != "" {
		t.Fatalf("rdkafka %v: %v %s\nerrors: %v\nstderr: %s", args, err, run.Fatal, run.Errors, errb.String())
	}
	return run, errb.Bytes()
}

// TestTxnRdkafkaProducerReadCommitted: librdkafka's transactional producer
// commits, aborts, and commits again; a librdkafka read_committed consumer
// gets exactly the committed records, none of the aborted. While the last
// transaction is pending on partition 0 it gets nothing of it, but it
// does get what a plain producer writes to partition 1 meanwhile: waiting
// at partition 0's LSO must not stall the fetch (librdkafka drops a whole
// Fetch answer it fails to parse). read_uncommitted gets everything; kgo
// agrees.
func TestTxnRdkafkaProducerReadCommitted(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, kafka.Options{})
	const topic = "rd-txn"
	tb.createTopic(topic, 2)
	run, stderr := runRdkafkaTxn(t, "produce", tb.addr(), topic)
	if os.Getenv("RDKAFKA_DEBUG") != "" {
		t.Logf("librdkafka log:\n%s", stderr)
	}
	if len(run.Errors) > 0 {
		t.Errorf("librdkafka reported errors: %v", run.Errors)
	}
	if bytes.Contains(stderr, []byte("PROTOERR")) {
		t.Errorf("librdkafka could not parse answers:\n%s", stderr)
	}
	var c1, c2, a, plain []string
	for i := range 10 {
		c1 = append(c1, "c1-"+strconv.Itoa(i))
		c2 = append(c2, "c2-"+strconv.Itoa(i))
		a = append(a, "a-"+strconv.Itoa(i))
	}
	for i := range 5 {
		plain = append(plain, "n-"+strconv.Itoa(i))
	}
	sorted := func(vs ...[]string) []string {
		out := slices.Concat(vs...)
		slices.Sort(out)
		return out
	}
	if got := sorted(run.Pending); !slices.Equal(got, sorted(c1, plain)) {
		t.Errorf("read_committed while the last transaction was pending: %v, want %v", got, sorted(c1, plain))
	}
	if got := sorted(run.Committed); !slices.Equal(got, sorted(c1, plain, c2)) {
		t.Errorf("read_committed: %v, want %v", got, sorted(c1, plain, c2))
	}
	if got := sorted(run.Uncommitted); !slices.Equal(got, sorted(c1, a, plain, c2)) {
		t.Errorf("read_uncommitted: %v, want all 35", got)
	}
	if got := sorted(e2eValues(e2eConsumeAll(t, tb, topic, true, 25, 500*time.Millisecond))); !slices.Equal(got, sorted(c1, plain, c2)) {
		t.Errorf("kgo read_committed: %v, want %v", got, sorted(c1, plain, c2))
	}
}

// TestTxnRdkafkaSendOffsetsToTransaction: a librdkafka consume-transform-
// produce loop with send_offsets_to_transaction (KIP-447 TxnOffsetCommit,
// with the consumer's group metadata), one round aborted and read again:
// the output, read_committed, has each input transformed exactly once, and
// the group's committed offsets are the input's ends, for librdkafka and
// for kadm.
func TestTxnRdkafkaSendOffsetsToTransaction(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, kafka.Options{})
	const in, out, group, n = "rd-eos-in", "rd-eos-out", "rd-eos-group", 90
	tb.createTopic(in, 3)
	tb.createTopic(out, 3)
	produceValues(t, tb, in, 0, n)
	ends, err := tb.admin().ListEndOffsets(ctx(t), in)
	if err != nil {
		t.Fatal(err)
	}
	run, stderr := runRdkafkaTxn(t, "eos", tb.addr(), in, out, group, strconv.Itoa(n))
	t.Logf("librdkafka: %d rounds, %d aborted, %d committed, offsets %v, errors %v", run.Rounds, run.Aborted, run.Done, run.Offsets, run.Errors)
	if len(run.Errors) > 0 {
		t.Errorf("librdkafka reported errors: %v", run.Errors)
	}
	if bytes.Contains(stderr, []byte("PROTOERR")) {
		t.Errorf("librdkafka could not parse answers:\n%s", stderr)
	}
	if run.Done != n || run.Aborted != 1 {
		t.Fatalf("librdkafka committed %d of %d inputs with %d aborted rounds, want all and 1", run.Done, n, run.Aborted)
	}
	for p := range int32(3) {
		e, _ := ends.Lookup(in, p)
		if got, ok := run.Offsets[strconv.Itoa(int(p))]; !ok || got != e.Offset {
			t.Errorf("librdkafka's committed offset of partition %d: %d (%v), want the end %d", p, got, ok, e.Offset)
		}
	}
	offs, err := tb.admin().FetchOffsets(ctx(t), group)
	if err != nil {
		t.Fatal(err)
	}
	for p := range int32(3) {
		o, _ := offs.Lookup(in, p)
		e, _ := ends.Lookup(in, p)
		if o.Err != nil || o.At != e.Offset {
			t.Errorf("kadm: group offset of partition %d is %d (%v), want the end %d", p, o.At, o.Err, e.Offset)
		}
	}
	got := e2eConsumeAll(t, tb, out, true, n, time.Second)
	seen := map[string]int{}
	for _, r := range got {
		seen[string(r.Value)]++
	}
	for i := range n {
		if c := seen["y"+strconv.Itoa(i)]; c != 1 {
			t.Errorf("output y%d seen %d times by read_committed, want 1", i, c)
		}
	}
	// The aborted round's records are in the log, not committed.
	all := tb.client(kgo.ConsumeTopics(out), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadUncommitted()))
	if extra := len(consumeN(t, all, n+1)); extra <= n {
		t.Errorf("read_uncommitted has %d records: the aborted round wrote none", extra)
	}
}
