package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	spoollog "github.com/spoolmq/spool/log"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// consumedRecord is one line of spool consume --format json.
type consumedRecord struct {
	Topic     string  `json:"topic"`
	Partition int32   `json:"partition"`
	Offset    int64   `json:"offset"`
	Timestamp string  `json:"timestamp"`
	Key       *string `json:"key"`
	KeyB64    string  `json:"key_b64"`
	Value     *string `json:"value"`
	ValueB64  string  `json:"value_b64"`
	Headers   []struct {
		Key      string  `json:"key"`
		Value    *string `json:"value"`
		ValueB64 string  `json:"value_b64"`
	} `json:"headers"`
}

// consumeJSON runs spool consume --format json and decodes every line.
func consumeJSON(t *testing.T, ctx context.Context, addr string, args ...string) []consumedRecord {
	t.Helper()
	out := mustKafka(t, ctx, addr, append(args, "--format", "json")...)
	var recs []consumedRecord
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var r consumedRecord
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("line %q is not a record object: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	return recs
}

// batchCodecs records the compression codec of every record batch
// produced to the cluster, read from the batch attributes on the wire.
type batchCodecs struct {
	mu     sync.Mutex // guards codecs
	codecs map[int8]int
}

func watchBatchCodecs(c *kfake.Cluster) *batchCodecs {
	w := &batchCodecs{codecs: map[int8]int{}}
	c.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		req := kreq.(*kmsg.ProduceRequest)
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, t := range req.Topics {
			for _, p := range t.Partitions {
				// RecordBatch: baseOffset int64, batchLength int32,
				// partitionLeaderEpoch int32, magic int8, crc uint32,
				// attributes int16, whose low three bits are the codec.
				if len(p.Records) >= 23 {
					w.codecs[int8(binary.BigEndian.Uint16(p.Records[21:23])&7)]++
				}
			}
		}
		return nil, nil, false // observe only; the cluster handles it
	})
	return w
}

func (w *batchCodecs) take() map[int8]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	got := w.codecs
	w.codecs = map[int8]int{}
	return got
}

// TestKafkaProduceConsumeCompression produces keyed lines with headers in
// every compression codec and consumes them back as JSON: the batches on
// the wire carry the codec, every record comes back with its key, value
// and headers, in the partition Kafka's murmur2 partitioner gives its key,
// and each key's records are in one partition in the order produced.
func TestKafkaProduceConsumeCompression(t *testing.T) {
	t.Parallel()
	c, addr := newKafka(t)
	ctx := testCtx(t, 2*time.Minute)
	codecs := watchBatchCodecs(c)
	const parts = 4
	const perKey = 5
	keys := []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"}

	for i, codec := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
		topic := "c-" + codec
		mustKafka(t, ctx, addr, "topic", "create", topic, "--partitions", fmt.Sprint(parts))
		var in strings.Builder
		var want []string
		for n := range perKey {
			for _, k := range keys {
				// Long and repetitive, so that every codec shrinks it and
				// kgo keeps the compressed form.
				v := fmt.Sprintf("%s-%d-%s", k, n, strings.Repeat("x", 300))
				fmt.Fprintf(&in, "%s=>%s\n", k, v)
				want = append(want, k+" "+v)
			}
		}
		code, stderr := produceInput(t, ctx, addr, in.String(), topic,
			"--key-separator", "=>", "--header", "source=test", "--header", "codec="+codec, "--header", "source=again", "--compression", codec)
		if code != 0 || stderr != fmt.Sprintf("spool: produced %d records to %s\n", len(want), topic) {
			t.Fatalf("%s: produce exit %d: %s", codec, code, stderr)
		}
		if got := codecs.take(); len(got) != 1 || got[int8(i)] == 0 {
			t.Errorf("%s: batch codecs on the wire %v, want only codec %d", codec, got, i)
		}

		recs := consumeJSON(t, ctx, addr, "consume", topic)
		if len(recs) != len(want) {
			t.Fatalf("%s: consumed %d records, want %d", codec, len(recs), len(want))
		}
		var got []string
		lastOffset := map[string]int64{}
		partOf := map[string]int32{}
		for _, r := range recs {
			if r.Topic != topic || r.Key == nil || r.Value == nil || r.KeyB64 != "" || r.ValueB64 != "" {
				t.Fatalf("%s: record %+v", codec, r)
			}
			k := *r.Key
			if wantP := spoollog.KeyPartition([]byte(k), parts); r.Partition != wantP {
				t.Errorf("%s: key %q in partition %d, murmur2 says %d", codec, k, r.Partition, wantP)
			}
			if p, ok := partOf[k]; ok && p != r.Partition {
				t.Errorf("%s: key %q in partitions %d and %d", codec, k, p, r.Partition)
			}
			partOf[k] = r.Partition
			if last, ok := lastOffset[k]; ok && r.Offset <= last {
				t.Errorf("%s: key %q offsets out of order: %d after %d", codec, k, r.Offset, last)
			}
			lastOffset[k] = r.Offset
			if len(r.Headers) != 3 || r.Headers[0].Key != "source" || *r.Headers[0].Value != "test" ||
				r.Headers[1].Key != "codec" || *r.Headers[1].Value != codec ||
				r.Headers[2].Key != "source" || *r.Headers[2].Value != "again" {
				t.Fatalf("%s: headers %+v", codec, r.Headers)
			}
			if _, err := time.Parse("2006-01-02T15:04:05.000Z07:00", r.Timestamp); err != nil || !regexp.MustCompile(`\.\d{3}Z$`).MatchString(r.Timestamp) {
				t.Errorf("%s: timestamp %q is not RFC 3339 UTC with milliseconds", codec, r.Timestamp)
			}
			got = append(got, k+" "+*r.Value)
		}
		// Per key, the values come back in the order they were written.
		byKey := func(s []string) map[string][]string {
			m := map[string][]string{}
			for _, kv := range s {
				k, _, _ := strings.Cut(kv, " ")
				m[k] = append(m[k], kv)
			}
			return m
		}
		wk, gk := byKey(want), byKey(got)
		for _, k := range keys {
			if !slices.Equal(wk[k], gk[k]) {
				t.Errorf("%s: key %q values %q, want %q", codec, k, gk[k], wk[k])
			}
		}
	}
}

// TestKafkaConsumeText covers the text format and where a consume starts
// and stops: --print-key, --partition, --offset, --count, latest, and a
// fixed --key with --partition on the produce side.
func TestKafkaConsumeText(t *testing.T) {
	t.Parallel()
	_, addr := newKafka(t)
	ctx := testCtx(t, 2*time.Minute)
	mustKafka(t, ctx, addr, "topic", "create", "txt", "--partitions", "2")
	if code, stderr := produceInput(t, ctx, addr, "one\ntwo\r\n\nfour", "txt", "--key", "k1", "--partition", "1"); code != 0 {
		t.Fatalf("produce: %d %s", code, stderr)
	}
	if code, stderr := produceInput(t, ctx, addr, "zero\n", "txt", "--partition", "0"); code != 0 {
		t.Fatalf("produce: %d %s", code, stderr)
	}

	// An empty line is an empty record; CR LF endings lose the CR; a last
	// line without a newline still counts.
	if out := mustKafka(t, ctx, addr, "consume", "txt", "--partition", "1"); out != "one\ntwo\n\nfour\n" {
		t.Errorf("partition 1: %q", out)
	}
	if out := mustKafka(t, ctx, addr, "consume", "txt", "--partition", "1", "--print-key", "--offset", "1"); out != "k1\ttwo\nk1\t\nk1\tfour\n" {
		t.Errorf("--print-key from offset 1: %q", out)
	}
	if out := mustKafka(t, ctx, addr, "consume", "txt", "--partition", "0", "--print-key"); out != "\tzero\n" {
		t.Errorf("null key printed: %q", out)
	}
	code, out, stderr := kafkaCmd(t, ctx, addr, "consume", "txt", "--count", "2", "--partition", "1", "--from-beginning")
	if code != 0 || out != "one\ntwo\n" || !strings.Contains(stderr, "consumed 2 records from txt") {
		t.Errorf("--count 2: exit %d, %q, %q", code, out, stderr)
	}
	if out := mustKafka(t, ctx, addr, "consume", "txt"); len(strings.Split(strings.TrimSuffix(out, "\n"), "\n")) != 5 {
		t.Errorf("both partitions: %q", out)
	}
	// Latest without --follow: already caught up, nothing to print.
	if out := mustKafka(t, ctx, addr, "consume", "txt", "--offset", "latest"); out != "" {
		t.Errorf("--offset latest: %q", out)
	}
	// An offset past the end starts at the end.
	if out := mustKafka(t, ctx, addr, "consume", "txt", "--partition", "1", "--offset", "99"); out != "" {
		t.Errorf("--offset 99: %q", out)
	}
	code, _, stderr = kafkaCmd(t, ctx, addr, "consume", "txt", "--partition", "2")
	if code != 1 || !strings.Contains(stderr, "partitions 0 to 1") {
		t.Errorf("missing partition: exit %d, %q", code, stderr)
	}
	code, _, stderr = kafkaCmd(t, ctx, addr, "consume", "nope")
	if code != 1 || !strings.Contains(stderr, `topic "nope" does not exist`) {
		t.Errorf("missing topic: exit %d, %q", code, stderr)
	}
}

// TestKafkaConsumeJSONBytes: null keys are JSON null, and keys, values and
// header values that are not UTF-8 come as base64 in the *_b64 fields.
func TestKafkaConsumeJSONBytes(t *testing.T) {
	t.Parallel()
	_, addr := newKafka(t, kfake.SeedTopics(1, "bin"))
	ctx := testCtx(t, time.Minute)
	cl, _ := adminClient(t, addr)
	ts := time.Date(2026, 3, 4, 5, 6, 7, 891e6, time.FixedZone("x", 3600))
	bad := []byte{0xff, 0xfe, 'a'}
	rs := []*kgo.Record{
		{Topic: "bin", Value: []byte(`{"a":"<b>"}`), Timestamp: ts},
		{Topic: "bin", Key: bad, Value: bad, Headers: []kgo.RecordHeader{{Key: "h", Value: bad}, {Key: "n"}}, Timestamp: ts},
		{Topic: "bin", Key: []byte{}, Value: []byte{}, Timestamp: ts},
	}
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	recs := consumeJSON(t, ctx, addr, "consume", "bin")
	if len(recs) != 3 {
		t.Fatalf("got %d records", len(recs))
	}
	r := recs[0]
	if r.Key != nil || r.KeyB64 != "" || r.Value == nil || *r.Value != `{"a":"<b>"}` || r.Timestamp != "2026-03-04T04:06:07.891Z" || r.Offset != 0 || len(r.Headers) != 0 {
		t.Errorf("first record %+v", r)
	}
	b64 := base64.StdEncoding.EncodeToString(bad)
	r = recs[1]
	if r.Key != nil || r.KeyB64 != b64 || r.Value != nil || r.ValueB64 != b64 || r.Offset != 1 {
		t.Errorf("second record %+v", r)
	}
	if len(r.Headers) != 2 || r.Headers[0].ValueB64 != b64 || r.Headers[0].Value != nil || r.Headers[1].Key != "n" {
		t.Errorf("second record headers %+v", r.Headers)
	}
	// Empty is not null.
	if r = recs[2]; r.Key == nil || *r.Key != "" || r.Value == nil || *r.Value != "" {
		t.Errorf("empty key and value came back as %+v", r)
	}
	// The raw line: non-UTF-8 fields have no plain twin, HTML is not escaped.
	out := mustKafka(t, ctx, addr, "consume", "bin", "--format", "json", "--count", "1")
	if !strings.Contains(out, `"key":null,"value":"{\"a\":\"<b>\"}","headers":[]`) {
		t.Errorf("raw JSON %s", out)
	}
}

// TestKafkaProduceErrors: every failure to produce exits 1 and names the
// cause, and what was produced before it is still reported.
func TestKafkaProduceErrors(t *testing.T) {
	t.Parallel()
	_, addr := newKafka(t)
	ctx := testCtx(t, time.Minute)
	mustKafka(t, ctx, addr, "topic", "create", "small", "--partitions", "1", "--config", "max.message.bytes=200")

	code, stderr := produceInput(t, ctx, addr, "a\n", "absent")
	if code != 1 || !strings.Contains(stderr, `topic "absent" does not exist`) {
		t.Errorf("missing topic: exit %d, %q", code, stderr)
	}
	code, stderr = produceInput(t, ctx, addr, "a\n", "small", "--partition", "3")
	if code != 1 || !strings.Contains(stderr, "partitions 0 to 0") {
		t.Errorf("missing partition: exit %d, %q", code, stderr)
	}
	code, stderr = produceInput(t, ctx, addr, "k1:v1\nk2:v2\nnokey\nk4:v4\n", "small", "--key-separator", ":")
	if code != 1 || !strings.Contains(stderr, "produced 2 records") || !strings.Contains(stderr, `line 3 has no key separator ":"`) {
		t.Errorf("line without separator: exit %d, %q", code, stderr)
	}
	var errOut bytes.Buffer
	in := io.MultiReader(strings.NewReader("r1\nr2\n"), iotest.ErrReader(errors.New("device gone")))
	code = runProduce(ctx, []string{"small", "--brokers", addr, "--timeout", kafkaTestTimeout}, in, io.Discard, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "produced 2 records") || !strings.Contains(errOut.String(), "reading stdin: device gone") {
		t.Errorf("stdin read error: exit %d, %q", code, errOut.String())
	}
	// The broker refuses the batch as a whole: both records fail.
	code, stderr = produceInput(t, ctx, addr, "ok\n"+strings.Repeat("y", 1000)+"\n", "small")
	if code != 1 || !strings.Contains(stderr, "MESSAGE_TOO_LARGE") || !strings.Contains(stderr, "2 of 2 records failed") {
		t.Errorf("record over max.message.bytes: exit %d, %q", code, stderr)
	}
	if out := mustKafka(t, ctx, addr, "consume", "small", "--print-key"); out != "k1\tv1\nk2\tv2\n\tr1\n\tr2\n" {
		t.Errorf("the topic holds %q", out)
	}
}

// TestKafkaProduceThroughRun goes through the dispatcher and the package
// stdin, as the binary does.
func TestKafkaProduceThroughRun(t *testing.T) {
	_, addr := newKafka(t, kfake.SeedTopics(1, "via-run"))
	old := stdin
	t.Cleanup(func() { stdin = old })
	stdin = strings.NewReader("x\ny\n")
	ctx := testCtx(t, time.Minute)
	code, out, stderr := kafkaCmd(t, ctx, addr, "produce", "via-run")
	if code != 0 || out != "" || stderr != "spool: produced 2 records to via-run\n" {
		t.Fatalf("exit %d, %q, %q", code, out, stderr)
	}
	if out := mustKafka(t, ctx, addr, "consume", "via-run"); out != "x\ny\n" {
		t.Errorf("consumed %q", out)
	}
}

// TestKafkaConsumeFollow: --follow prints records produced after it
// started, and stops cleanly, exit 0, when its context is cancelled.
func TestKafkaConsumeFollow(t *testing.T) {
	t.Parallel()
	_, addr := newKafka(t)
	ctx := testCtx(t, time.Minute)
	mustKafka(t, ctx, addr, "topic", "create", "live", "--partitions", "3")
	if code, stderr := produceInput(t, ctx, addr, "old\n", "live"); code != 0 {
		t.Fatal(stderr)
	}

	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var out, errOut syncBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("consume --follow wrote\nstdout: %q\nstderr: %q", out.String(), errOut.String())
		}
	})
	done := make(chan int, 1)
	go func() {
		done <- run(cctx, []string{"consume", "live", "--follow", "--brokers", addr, "--timeout", kafkaTestTimeout}, &out, &errOut)
	}()
	// Latest is where --follow starts by default, so "old" never shows;
	// records produced once it says it follows do, in any partition.
	waitFor(t, 30*time.Second, "consume to start following", func() bool { return strings.Contains(errOut.String(), "following live") })
	var in strings.Builder
	for i := range 20 {
		fmt.Fprintf(&in, "k%d:new-%d\n", i, i)
	}
	if code, stderr := produceInput(t, ctx, addr, in.String(), "live", "--key-separator", ":"); code != 0 {
		t.Fatal(stderr)
	}
	waitFor(t, 30*time.Second, "20 followed records", func() bool { return strings.Count(out.String(), "\n") >= 20 })
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d after cancel: %s", code, errOut.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("consume --follow did not stop on cancel")
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	slices.Sort(lines)
	var want []string
	for i := range 20 {
		want = append(want, fmt.Sprintf("new-%d", i))
	}
	slices.Sort(want)
	if !slices.Equal(lines, want) {
		t.Errorf("followed %q, want %q", lines, want)
	}
	if !strings.Contains(errOut.String(), "consumed 20 records from live") {
		t.Errorf("stderr %q", errOut.String())
	}
}
