package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spoolmq/spool/edge/metrics"
	"github.com/spoolmq/spool/edge/metrics/metricstest"
	spoollog "github.com/spoolmq/spool/log"
)

// testTopic is the base config of topics created in tests: small
// segments, so the tests write little.
func testTopic() spoollog.TopicConfig {
	c := spoollog.DefaultTopicConfig()
	c.SegmentBytes = 256 << 10
	c.MaxMessageBytes = 128 << 10
	return c
}

type env struct {
	t   *testing.T
	l   *spoollog.Log
	a   *api
	srv *httptest.Server
	reg *metrics.Registry
}

// newEnv opens a log in a temporary directory and serves the API over it.
// edit may change the options (and the api, before it serves).
func newEnv(t *testing.T, logOpts spoollog.Options, edit func(*Options)) *env {
	t.Helper()
	l, err := spoollog.Open(t.TempDir(), logOpts)
	if err != nil {
		t.Fatal(err)
	}
	reg := metrics.NewRegistry()
	opts := Options{Log: l, Registry: reg, DefaultTopic: testTopic()}
	if edit != nil {
		edit(&opts)
	}
	a := New(opts).(*api)
	e := &env{t: t, l: l, a: a, reg: reg}
	e.srv = httptest.NewServer(a)
	t.Cleanup(func() {
		e.srv.Close()
		if err := l.Close(); err != nil {
			t.Errorf("close log: %v", err)
		}
	})
	return e
}

// do sends a request and returns the status and body.
func (e *env) do(method, path string, body any, header ...string) (int, []byte) {
	e.t.Helper()
	resp := e.send(context.Background(), method, path, body, header...)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, b
}

func (e *env) send(ctx context.Context, method, path string, body any, header ...string) *http.Response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp
}

// must checks the status and decodes the body into v (when not nil).
func (e *env) must(want int, method, path string, body, v any, header ...string) {
	e.t.Helper()
	status, b := e.do(method, path, body, header...)
	if status != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, status, want, b)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			e.t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
}

// errorOf checks the status and returns the JSON error message.
func (e *env) errorOf(want int, method, path string, body any, header ...string) string {
	e.t.Helper()
	var out struct {
		Error string `json:"error"`
	}
	e.must(want, method, path, body, &out, header...)
	if out.Error == "" {
		e.t.Fatalf("%s %s: no error message", method, path)
	}
	return out.Error
}

func (e *env) createTopic(name string, cfg map[string]any) {
	e.t.Helper()
	e.must(http.StatusCreated, "POST", "/api/v1/topics", map[string]any{"name": name, "config": cfg}, nil)
}

type produced struct {
	Offsets []struct {
		Partition int32  `json:"partition"`
		Offset    *int64 `json:"offset"`
		Error     string `json:"error"`
	} `json:"offsets"`
}

type readResp struct {
	Records        []readRecord `json:"records"`
	NextOffset     int64        `json:"next_offset"`
	HighWatermark  int64        `json:"high_watermark"`
	LogStartOffset int64        `json:"log_start_offset"`
}

type readRecord struct {
	Offset    int64   `json:"offset"`
	Timestamp int64   `json:"timestamp"`
	Key       *string `json:"key"`
	KeyB64    *string `json:"key_b64"`
	Value     *string `json:"value"`
	ValueB64  *string `json:"value_b64"`
	Headers   []struct {
		Key      string  `json:"key"`
		Value    *string `json:"value"`
		ValueB64 *string `json:"value_b64"`
	} `json:"headers"`
}

func recordsPath(topic string, p int32, query string) string {
	return fmt.Sprintf("/api/v1/topics/%s/partitions/%d/records?%s", topic, p, query)
}

func str(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

func TestProduceAndReadBack(t *testing.T) {
	e := newEnv(t, spoollog.Options{}, nil)
	e.createTopic("events", map[string]any{"partitions": 4})

	type rec struct {
		key, value string
		partition  int32
	}
	var body []map[string]any
	var want []rec
	for i := range 20 {
		key := fmt.Sprintf("device-%d", i%7)
		value := fmt.Sprintf("reading %d", i)
		body = append(body, map[string]any{
			"key":     key,
			"value":   value,
			"headers": map[string]string{"seq": strconv.Itoa(i), "content-type": "text/plain"},
		})
		want = append(want, rec{key, value, spoollog.KeyPartition([]byte(key), 4)})
	}
	// An explicit partition overrides the key's; a JSON object value is
	// stored as compact JSON text; null is a tombstone.
	body = append(body,
		map[string]any{"key": "device-0", "value": map[string]any{"temp": 21.5, "ok": true}, "partition": 3},
		map[string]any{"key": "device-1", "value": nil, "partition": 3},
	)
	var out produced
	e.must(http.StatusOK, "POST", "/api/v1/topics/events/records", map[string]any{"records": body}, &out)
	if len(out.Offsets) != len(body) {
		t.Fatalf("%d results for %d records", len(out.Offsets), len(body))
	}
	next := map[int32]int64{}
	for i, o := range out.Offsets {
		wantPart := int32(3)
		if i < len(want) {
			wantPart = want[i].partition
		}
		if o.Partition != wantPart || o.Offset == nil {
			t.Fatalf("record %d: partition %d offset %v error %q, want partition %d", i, o.Partition, o.Offset, o.Error, wantPart)
		}
		// Offsets follow request order within a partition.
		if *o.Offset != next[o.Partition] {
			t.Errorf("record %d: offset %d, want %d", i, *o.Offset, next[o.Partition])
		}
		next[o.Partition]++
	}

	for p := range int32(4) {
		var rr readResp
		e.must(http.StatusOK, "GET", recordsPath("events", p, ""), nil, &rr)
		if int64(len(rr.Records)) != next[p] || rr.NextOffset != next[p] || rr.HighWatermark != next[p] || rr.LogStartOffset != 0 {
			t.Fatalf("partition %d: %d records, next %d, hw %d, start %d; want %d", p, len(rr.Records), rr.NextOffset, rr.HighWatermark, rr.LogStartOffset, next[p])
		}
		for _, r := range rr.Records {
			// Find the produced record by partition and offset.
			i := -1
			for j, o := range out.Offsets {
				if o.Partition == p && *o.Offset == r.Offset {
					i = j
				}
			}
			if i < 0 {
				t.Fatalf("partition %d offset %d: not produced", p, r.Offset)
			}
			if time.Since(time.UnixMilli(r.Timestamp)) > time.Minute {
				t.Errorf("record %d: timestamp %d", i, r.Timestamp)
			}
			switch {
			case i < len(want):
				if str(r.Key) != want[i].key || str(r.Value) != want[i].value {
					t.Errorf("record %d: key %s value %s, want %s %s", i, str(r.Key), str(r.Value), want[i].key, want[i].value)
				}
				// Object headers are stored sorted by key.
				if len(r.Headers) != 2 || r.Headers[0].Key != "content-type" || str(r.Headers[0].Value) != "text/plain" ||
					r.Headers[1].Key != "seq" || str(r.Headers[1].Value) != strconv.Itoa(i) {
					t.Errorf("record %d: headers %+v", i, r.Headers)
				}
			case i == len(want):
				if str(r.Value) != `{"ok":true,"temp":21.5}` {
					t.Errorf("JSON value stored as %s", str(r.Value))
				}
			default:
				if r.Value != nil || r.ValueB64 != nil || str(r.Key) != "device-1" {
					t.Errorf("tombstone read back as key %s value %s", str(r.Key), str(r.Value))
				}
			}
		}
	}

	// The topic's description agrees.
	var d topicJSON
	e.must(http.StatusOK, "GET", "/api/v1/topics/events", nil, &d)
	if d.Config.Partitions != 4 || len(d.Partitions) != 4 || d.IngestedRecords != int64(len(body)) {
		t.Fatalf("describe: %+v", d)
	}
	for _, p := range d.Partitions {
		if p.HighWatermark != next[p.Partition] || (p.HighWatermark > 0) != (p.SizeBytes > 0) {
			t.Errorf("describe partition %+v, want hw %d", p, next[p.Partition])
		}
	}
}

func TestKeylessRecordsAreSticky(t *testing.T) {
	e := newEnv(t, spoollog.Options{}, nil)
	e.createTopic("k", map[string]any{"partitions": 3})
	var out produced
	e.must(http.StatusOK, "POST", "/api/v1/topics/k/records",
		`{"records":[{"value":"a"},{"value":"b"},{"value":"c"}]}`, &out)
	// Small keyless records stay on one partition (one batch).
	p := out.Offsets[0].Partition
	for i, o := range out.Offsets {
		if o.Partition != p || *o.Offset != int64(i) {
			t.Errorf("keyless record %d went to partition %d offset %d; want %d/%d", i, o.Partition, *o.Offset, p, i)
		}
	}
}

func TestBinaryPayloads(t *testing.T) {
	e := newEnv(t, spoollog.Options{}, nil)
	e.createTopic("bin", nil)
	key := []byte{0xff, 0x00, 0xfe}
	value := []byte{0x80, 0x81, 'x', 0x00}
	hv := []byte{0xc3, 0x28} // invalid UTF-8
	b64 := base64.StdEncoding.EncodeToString
	e.must(http.StatusOK, "POST", "/api/v1/topics/bin/records", map[string]any{"records": []map[string]any{{
		"key_b64": b64(key), "value_b64": b64(value),
		"headers": []map[string]any{{"key": "raw", "value_b64": b64(hv)}, {"key": "raw", "value": "again"}, {"key": "nil"}},
	}, {
		"value": "line\nbreak \"quoted\" \u2028 é \x01",
	}}}, nil)

	var rr readResp
	e.must(http.StatusOK, "GET", recordsPath("bin", 0, "offset=0"), nil, &rr)
	if len(rr.Records) != 2 {
		t.Fatalf("%d records", len(rr.Records))
	}
	r := rr.Records[0]
	if r.Key != nil || str(r.KeyB64) != b64(key) || r.Value != nil || str(r.ValueB64) != b64(value) {
		t.Errorf("binary record read back as key %s/%s value %s/%s", str(r.Key), str(r.KeyB64), str(r.Value), str(r.ValueB64))
	}
	if len(r.Headers) != 3 || str(r.Headers[0].ValueB64) != b64(hv) || str(r.Headers[1].Value) != "again" ||
		r.Headers[2].Key != "nil" || r.Headers[2].Value != nil || r.Headers[2].ValueB64 != nil {
		t.Errorf("headers %+v", r.Headers)
	}
	if got := str(rr.Records[1].Value); got != "line\nbreak \"quoted\" \u2028 é \x01" {
		t.Errorf("text value read back as %q", got)
	}
	if rr.Records[1].Key != nil || rr.Records[1].KeyB64 != nil {
		t.Error("keyless record read back with a key")
	}

	for name, body := range map[string]string{
		"both":       `{"records":[{"value":"a","value_b64":"YQ=="}]}`,
		"bad b64":    `{"records":[{"value_b64":"!!"}]}`,
		"unknown":    `{"records":[{"valu":"a"}]}`,
		"empty":      `{"records":[]}`,
		"not json":   `records`,
		"trailing":   `{"records":[{"value":"a"}]} {}`,
		"headers":    `{"records":[{"value":"a","headers":{"h":1}}]}`,
		"no body":    ``,
		"bad header": `{"records":[{"value":"a","headers":[{"key":"h","value":"v","value_b64":"dg=="}]}]}`,
	} {
		if msg := e.errorOf(http.StatusBadRequest, "POST", "/api/v1/topics/bin/records", body); msg == "" {
			t.Errorf("%s: no message", name)
		}
	}
	e.must(http.StatusOK, "GET", recordsPath("bin", 0, "offset=0"), nil, &rr)
	if len(rr.Records) != 2 {
		t.Errorf("bad requests stored records: %d", len(rr.Records))
	}
}

func TestReadOffsetsAndLimits(t *testing.T) {
	e := newEnv(t, spoollog.Options{}, nil)
	e.createTopic("r", nil)
	// Two batches: offsets 0-4 and 5-9.
	for b := range 2 {
		var recs []map[string]any
		for i := range 5 {
			recs = append(recs, map[string]any{"value": strconv.Itoa(b*5 + i)})
		}
		e.must(http.StatusOK, "POST", "/api/v1/topics/r/records", map[string]any{"records": recs}, nil)
	}
	check := func(query string, wantFirst, wantN int, wantNext int64) {
		t.Helper()
		var rr readResp
		e.must(http.StatusOK, "GET", recordsPath("r", 0, query), nil, &rr)
		if len(rr.Records) != wantN || rr.NextOffset != wantNext || rr.HighWatermark != 10 {
			t.Fatalf("%s: %d records next %d hw %d; want %d next %d", query, len(rr.Records), rr.NextOffset, rr.HighWatermark, wantN, wantNext)
		}
		for i, r := range rr.Records {
			if r.Offset != int64(wantFirst+i) || str(r.Value) != strconv.Itoa(wantFirst+i) {
				t.Fatalf("%s: record %d is offset %d value %s", query, i, r.Offset, str(r.Value))
			}
		}
	}
	check("", 0, 10, 10)
	check("offset=earliest", 0, 10, 10)
	check("offset=2", 2, 8, 10)            // records before 2 in the first batch skipped
	check("offset=2&limit=4", 2, 4, 6)     // limit across a batch boundary
	check("offset=7&limit=1", 7, 1, 8)     // inside the second batch
	check("offset=latest", 0, 0, 10)       // at the high watermark
	check("offset=50", 0, 0, 50)           // beyond it: empty, not an error
	check("offset=0&max_bytes=1", 0, 5, 5) // at least one batch

	for _, q := range []string{"offset=-1", "offset=x", "limit=0", "limit=10001", "max_bytes=0", "wait=forever", "wait=-1s", "follow=maybe"} {
		e.errorOf(http.StatusBadRequest, "GET", recordsPath("r", 0, q), nil)
	}
	e.errorOf(http.StatusBadRequest, "GET", "/api/v1/topics/r/partitions/x/records", nil)
}

func TestReadBelowLogStart(t *testing.T) {
	e := newEnv(t, spoollog.Options{}, nil)
	// Tiny segments and retention: Maintain deletes the oldest ones.
	e.createTopic("old", map[string]any{"segment_bytes": "1KiB", "retention_bytes": 1024, "max_message_bytes": 1024, "preallocate": false,
		"on_full": "drop_oldest"})
	big := strings.Repeat("x", 400)
	for range 20 {
		e.must(http.StatusOK, "POST", "/api/v1/topics/old/records", map[string]any{"records": []map[string]any{{"value": big}}}, nil)
	}
	if err := e.l.Maintain(); err != nil {
		t.Fatal(err)
	}
	var d topicJSON
	e.must(http.StatusOK, "GET", "/api/v1/topics/old", nil, &d)
	start := d.Partitions[0].LogStartOffset
	if start == 0 {
		t.Fatal("retention deleted nothing; the test needs a log start above 0")
	}
	var out struct {
		Error          string `json:"error"`
		LogStartOffset int64  `json:"log_start_offset"`
		HighWatermark  int64  `json:"high_watermark"`
	}
	e.must(http.StatusRequestedRangeNotSatisfiable, "GET", recordsPath("old", 0, "offset=0"), nil, &out)
	if out.LogStartOffset != start || out.HighWatermark != 20 || !strings.Contains(out.Error, "log start") {
		t.Errorf("416 body %+v, want log start %d", out, start)
	}
	// The default (earliest) starts at the log start.
	var rr readResp
	e.must(http.StatusOK, "GET", recordsPath("old", 0, ""), nil, &rr)
	if len(rr.Records) == 0 || rr.Records[0].Offset != start || rr.LogStartOffset != start {
		t.Errorf("earliest read: %+v", rr)
	}
}

func TestLongPoll(t *testing.T) {
	e := newEnv(t, spoollog.Options{}, nil)
	waiting := make(chan struct{}, 1)
	e.a.pollWaiting = func() {
		select {
		case waiting <- struct{}{}:
		default:
		}
	}
	e.createTopic("lp", nil)

	t.Run("record arrives mid-wait", func(t *testing.T) {
		done := make(chan readResp, 1)
		start := time.Now()
		go func() {
			status, b := e.do("GET", recordsPath("lp", 0, "offset=0&wait=20s"), nil)
			var rr readResp
			if status != http.StatusOK || json.Unmarshal(b, &rr) != nil {
				t.Errorf("long poll: %d %s", status, b)
			}
			done <- rr
		}()
		<-waiting // the poll found nothing and waits
		e.must(http.StatusOK, "POST", "/api/v1/topics/lp/records", `{"records":[{"key":"k","value":"late"}]}`, nil)
		rr := <-done
		if len(rr.Records) != 1 || str(rr.Records[0].Value) != "late" || rr.NextOffset != 1 {
			t.Fatalf("long poll returned %+v", rr)
		}
		if el := time.Since(start); el > 15*time.Second {
			t.Errorf("long poll took %v: it waited for the timeout", el)
		}
	})

	t.Run("empty after the wait", func(t *testing.T) {
		const wait = 150 * time.Millisecond
		start := time.Now()
		var rr readResp
		e.must(http.StatusOK, "GET", recordsPath("lp", 0, "offset=1&wait="+wait.String()), nil, &rr)
		if el := time.Since(start); el < wait {
			t.Errorf("returned after %v, before the wait of %v", el, wait)
		}
		if len(rr.Records) != 0 || rr.NextOffset != 1 || rr.HighWatermark != 1 {
			t.Errorf("empty poll: %+v", rr)
		}
	})

	t.Run("records already there", func(t *testing.T) {
		start := time.Now()
		var rr readResp
		e.must(http.StatusOK, "GET", recordsPath("lp", 0, "offset=0&wait=20s"), nil, &rr)
		if len(rr.Records) != 1 || time.Since(start) > 10*time.Second {
			t.Errorf("poll with data waited or missed it: %+v", rr)
		}
	})
}

// sseEvent is one parsed Server-Sent Event.
type sseEvent struct {
	id, event, data string
}

// readEvent reads the next event, skipping comments.
func readEvent(br *bufio.Reader) (sseEvent, error) {
	var ev sseEvent
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return ev, err
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if ev.data != "" || ev.event != "" {
				return ev, nil
			}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id: "):
			ev.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			ev.event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			ev.data += strings.TrimPrefix(line, "data: ")
		default:
			return ev, fmt.Errorf("unexpected SSE line %q", line)
		}
	}
}

func TestSSE(t *testing.T) {
	serverCtx, stopServer := context.WithCancel(context.Background())
	defer stopServer()
	e := newEnv(t, spoollog.Options{}, func(o *Options) { o.Context = serverCtx })
	e.createTopic("live", nil)
	e.must(http.StatusOK, "POST", "/api/v1/topics/live/records", `{"records":[{"value":"before"}]}`, nil)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp := e.send(ctx, "GET", recordsPath("live", 0, "offset=latest"), nil, "Accept", "text/event-stream")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	br := bufio.NewReader(resp.Body)
	// Produced after the stream opened (its headers arrived).
	for i := range 3 {
		e.must(http.StatusOK, "POST", "/api/v1/topics/live/records",
			fmt.Sprintf(`{"records":[{"key":"k","value":"after %d","headers":{"h":"v"}}]}`, i), nil)
	}
	for i := range 3 {
		ev, err := readEvent(br)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		var r readRecord
		if err := json.Unmarshal([]byte(ev.data), &r); err != nil {
			t.Fatalf("event %d data %q: %v", i, ev.data, err)
		}
		want := int64(i + 1)
		if ev.id != strconv.FormatInt(want, 10) || r.Offset != want || str(r.Value) != fmt.Sprintf("after %d", i) ||
			str(r.Key) != "k" || len(r.Headers) != 1 {
			t.Fatalf("event %d: id %s record %+v", i, ev.id, r)
		}
	}
	resp.Body.Close()

	// Resume after event 2 with Last-Event-ID: the next event is offset 3.
	resp = e.send(ctx, "GET", recordsPath("live", 0, "follow=1"), nil, "Last-Event-ID", "2")
	br = bufio.NewReader(resp.Body)
	ev, err := readEvent(br)
	if err != nil || ev.id != "3" {
		t.Fatalf("resumed stream: first event %+v, %v; want id 3", ev, err)
	}
	// The server's context ending closes the stream.
	stopServer()
	if _, err := readEvent(br); err == nil {
		t.Error("stream went on after the server context ended")
	}
	resp.Body.Close()

	// A bad Last-Event-ID is refused before streaming.
	e.errorOf(http.StatusBadRequest, "GET", recordsPath("live", 0, "follow=1"), nil, "Last-Event-ID", "x")
}

func TestSSEClientGoneEndsStream(t *testing.T) {
	e := newEnv(t, spoollog.Options{}, nil)
	e.createTopic("gone", nil)
	waits := make(chan struct{}, 1)
	e.a.pollWaiting = func() {
		select {
		case waits <- struct{}{}:
		default:
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp := e.send(ctx, "GET", recordsPath("gone", 0, "follow=1"), nil)
	<-waits // the stream is idle, waiting for records
	cancel()
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	// httptest.Server.Close blocks until running handlers return: it
	// returns only if the stream ended when the client left.
	done := make(chan struct{})
	go func() { e.srv.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("stream handler still running after the client left")
	}
}

func TestAuth(t *testing.T) {
	const token = "s3cret"
	e := newEnv(t, spoollog.Options{}, func(o *Options) { o.Token = token })
	auth := []string{"Authorization", "Bearer " + token}
	wrong := []string{"Authorization", "Bearer nope"}
	create := `{"name":"sec"}`
	produce := `{"records":[{"value":"v"}]}`

	e.errorOf(http.StatusUnauthorized, "POST", "/api/v1/topics", create)
	e.errorOf(http.StatusUnauthorized, "POST", "/api/v1/topics", create, wrong...)
	e.errorOf(http.StatusUnauthorized, "POST", "/api/v1/topics", create, "Authorization", token)
	e.must(http.StatusCreated, "POST", "/api/v1/topics", create, nil, auth...)
	e.must(http.StatusCreated, "POST", "/api/v1/topics", `{"name":"sec2"}`, nil, "Authorization", "bearer "+token)

	e.errorOf(http.StatusUnauthorized, "POST", "/api/v1/topics/sec/records", produce)
	e.must(http.StatusOK, "POST", "/api/v1/topics/sec/records", produce, nil, auth...)

	// Reads, probes and metrics need no token.
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/api/v1/topics", "/api/v1/topics/sec", recordsPath("sec", 0, "")} {
		if status, b := e.do("GET", path, nil); status != http.StatusOK {
			t.Errorf("GET %s without token: %d %s", path, status, b)
		}
	}
	var rr readResp
	e.must(http.StatusOK, "GET", recordsPath("sec", 0, ""), nil, &rr)
	if len(rr.Records) != 1 {
		t.Errorf("unauthorised produce stored records: %d", len(rr.Records))
	}

	if status, _ := e.do("DELETE", "/api/v1/topics/sec", nil); status != http.StatusUnauthorized {
		t.Errorf("delete without token: %d", status)
	}
	e.must(http.StatusNoContent, "DELETE", "/api/v1/topics/sec", nil, nil, auth...)
	e.errorOf(http.StatusNotFound, "GET", "/api/v1/topics/sec", nil)
}

func TestFullIs507(t *testing.T) {
	e := newEnv(t, spoollog.Options{DiskBudget: 64 << 10}, nil)
	e.createTopic("full", map[string]any{"segment_bytes": "16KiB", "max_message_bytes": "8KiB", "preallocate": false})
	body := map[string]any{"records": []map[string]any{{"value": strings.Repeat("x", 4000)}}}
	var stored int
	for range 100 {
		status, b := e.do("POST", "/api/v1/topics/full/records", body)
		if status == http.StatusOK {
			stored++
			continue
		}
		if status != http.StatusInsufficientStorage {
			t.Fatalf("status %d: %s", status, b)
		}
		var out struct {
			Error   string `json:"error"`
			Offsets []struct {
				Offset *int64 `json:"offset"`
				Error  string `json:"error"`
			} `json:"offsets"`
		}
		if err := json.Unmarshal(b, &out); err != nil || !strings.Contains(out.Error, "full") ||
			len(out.Offsets) != 1 || out.Offsets[0].Offset != nil || out.Offsets[0].Error == "" {
			t.Fatalf("507 body %s", b)
		}
		if stored == 0 {
			t.Fatal("the first append was refused: the budget is too small for the test")
		}
		// Nothing of the refused append was stored.
		var rr readResp
		e.must(http.StatusOK, "GET", recordsPath("full", 0, "limit=10000"), nil, &rr)
		if len(rr.Records) != stored {
			t.Errorf("%d records readable, %d acknowledged", len(rr.Records), stored)
		}
		return
	}
	t.Fatal("never full")
}

func TestTooLargeIs413(t *testing.T) {
	e := newEnv(t, spoollog.Options{}, func(o *Options) { o.MaxBodyBytes = 64 << 10 })
	e.createTopic("small", map[string]any{"max_message_bytes": 1024})
	msg := e.errorOf(http.StatusRequestEntityTooLarge, "POST", "/api/v1/topics/small/records",
		map[string]any{"records": []map[string]any{{"value": strings.Repeat("x", 2000)}}})
	if !strings.Contains(msg, "max_message_bytes") {
		t.Errorf("413 message %q", msg)
	}
	// A body over MaxBodyBytes is refused too.
	e.errorOf(http.StatusRequestEntityTooLarge, "POST", "/api/v1/topics/small/records",
		map[string]any{"records": []map[string]any{{"value": strings.Repeat("x", 100<<10)}}})
	e.must(http.StatusOK, "POST", "/api/v1/topics/small/records", `{"records":[{"value":"fits"}]}`, nil)
}

func TestNotFound(t *testing.T) {
	e := newEnv(t, spoollog.Options{}, nil)
	e.createTopic("here", map[string]any{"partitions": 2})
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/api/v1/topics/nope/records", `{"records":[{"value":"v"}]}`},
		{"GET", "/api/v1/topics/nope", ""},
		{"DELETE", "/api/v1/topics/nope", ""},
		{"GET", recordsPath("nope", 0, ""), ""},
		{"GET", recordsPath("here", 2, ""), ""},
		{"GET", recordsPath("here", 2, "follow=1"), ""},
		{"POST", "/api/v1/topics/here/records", `{"records":[{"value":"v","partition":2}]}`},
		{"GET", "/api/v1/nothing", ""},
	} {
		var body any
		if c.body != "" {
			body = c.body
		}
		e.errorOf(http.StatusNotFound, c.method, c.path, body)
	}
	status, b := e.do("PUT", "/api/v1/topics/here", nil)
	if status != http.StatusMethodNotAllowed || !json.Valid(b) {
		t.Errorf("PUT topic: %d %s", status, b)
	}
}

func TestCreateTopicConfig(t *testing.T) {
	e := newEnv(t, spoollog.Options{}, nil)
	var d topicJSON
	e.must(http.StatusCreated, "POST", "/api/v1/topics",
		"{\n\t\"name\": \"cfg\",\n\t\"config\": {\"partitions\": 3, \"retention\": \"7d\", \"retention_bytes\": \"512KiB\",\n\t\t\"on_full\": \"drop_oldest\", \"timestamp_type\": \"log_append_time\", \"sync\": \"interval\", \"sync_interval\": \"2s\"}\n}", &d)
	c := d.Config
	if d.Name != "cfg" || c.Partitions != 3 || c.Retention.D() != 7*24*time.Hour || c.RetentionBytes != 512<<10 ||
		c.OnFull != "drop_oldest" || c.TimestampType != "log_append_time" || c.Sync != "interval" || c.SyncInterval.D() != 2*time.Second {
		t.Fatalf("created config %+v", c)
	}
	// Unset keys come from Options.DefaultTopic.
	if c.SegmentBytes != 256<<10 {
		t.Errorf("segment_bytes %v, want the default topic's 256KiB", c.SegmentBytes)
	}
	// The described config posts back as is.
	b, _ := json.Marshal(map[string]any{"name": "copy", "config": d.Config})
	var d2 topicJSON
	e.must(http.StatusCreated, "POST", "/api/v1/topics", strings.Replace(string(b), `"copy"`, `"co.py"`, 1), &d2)
	if d2.Config != d.Config {
		t.Errorf("round trip: %+v != %+v", d2.Config, d.Config)
	}

	for _, c := range []struct {
		body   string
		status int
		want   string
	}{
		{`{"name":"x","config":{"retention_byts":5}}`, 400, `"config.retention_byts"`},
		{`{"name":"x","config":{"partitions":2,"zz":1}}`, 400, `"config.zz"`},
		{`{"name":"x","confg":{}}`, 400, `"confg"`},
		{`{"name":"x","config":{"retention":"7x"}}`, 400, "config.retention"},
		{`{"name":"x","config":{"partitions":"two"}}`, 400, "config.partitions"},
		{`{"name":"x","config":{"on_full":"explode"}}`, 400, "on_full"},
		{`{"name":"x","config":{"name":"y"}}`, 400, "config.name"},
		{`{"name":"bad/name"}`, 400, "not allowed"},
		{`{"config":{}}`, 400, "name"},
		{`{"name":"cfg"}`, 409, "exists"},
		{`{"name":"co_py"}`, 409, "collides"},
	} {
		msg := e.errorOf(c.status, "POST", "/api/v1/topics", c.body)
		if !strings.Contains(msg, c.want) {
			t.Errorf("%s: error %q lacks %q", c.body, msg, c.want)
		}
	}

	var list struct {
		Topics []topicJSON `json:"topics"`
	}
	e.must(http.StatusOK, "GET", "/api/v1/topics", nil, &list)
	if len(list.Topics) != 2 || list.Topics[0].Name != "cfg" || list.Topics[1].Name != "co.py" || len(list.Topics[0].Partitions) != 3 {
		t.Errorf("list: %+v", list)
	}
}

func TestHealthAndReady(t *testing.T) {
	var notReady error = errors.New("log recovering")
	var mu sync.Mutex
	e := newEnv(t, spoollog.Options{}, func(o *Options) {
		o.Ready = func() error { mu.Lock(); defer mu.Unlock(); return notReady }
	})
	if status, b := e.do("GET", "/healthz", nil); status != 200 || string(b) != "ok\n" {
		t.Errorf("healthz: %d %q", status, b)
	}
	if status, b := e.do("GET", "/readyz", nil); status != 503 || !strings.Contains(string(b), "log recovering") {
		t.Errorf("readyz not ready: %d %q", status, b)
	}
	mu.Lock()
	notReady = nil
	mu.Unlock()
	if status, _ := e.do("GET", "/readyz", nil); status != 200 {
		t.Errorf("readyz ready: %d", status)
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t, spoollog.Options{}, nil)
	e.reg.NewCounter("spool_other_total", "Another component's counter.").Add(7)
	e.createTopic("m.a", map[string]any{"partitions": 2})
	e.createTopic("m-b", nil)
	for i := range 5 {
		e.must(http.StatusOK, "POST", "/api/v1/topics/m.a/records",
			fmt.Sprintf(`{"records":[{"key":"k%d","value":"v"},{"key":"k%d","value":"w"}]}`, i, i), nil)
	}
	e.errorOf(http.StatusNotFound, "GET", "/api/v1/topics/none", nil)

	resp := e.send(context.Background(), "GET", "/metrics", nil)
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != metrics.ContentType {
		t.Errorf("content type %q", ct)
	}
	fams, err := metricstest.Parse(resp.Body)
	if err != nil {
		t.Fatalf("metrics do not parse: %v", err)
	}
	value := func(family, sample string, labels ...string) float64 {
		t.Helper()
		f := metricstest.Find(fams, family)
		if f == nil {
			t.Fatalf("family %s missing", family)
		}
		v, ok := f.Value(sample, labels...)
		if !ok {
			t.Fatalf("%s%v missing or ambiguous", sample, labels)
		}
		return v
	}
	if v := value("spool_topic_ingested_records_total", "spool_topic_ingested_records_total", "topic", "m.a"); v != 10 {
		t.Errorf("ingested records %v, want 10", v)
	}
	if v := value("spool_topic_ingested_bytes_total", "spool_topic_ingested_bytes_total", "topic", "m.a"); v <= 0 {
		t.Errorf("ingested bytes %v", v)
	}
	if v := value("spool_topic_dropped_records_total", "spool_topic_dropped_records_total", "topic", "m-b"); v != 0 {
		t.Errorf("dropped %v", v)
	}
	var hw float64
	for p := range 2 {
		ps := strconv.Itoa(p)
		hw += value("spool_partition_high_watermark", "spool_partition_high_watermark", "topic", "m.a", "partition", ps)
		value("spool_partition_log_start_offset", "spool_partition_log_start_offset", "topic", "m.a", "partition", ps)
		if v := value("spool_partition_failed", "spool_partition_failed", "topic", "m.a", "partition", ps); v != 0 {
			t.Errorf("partition %d failed = %v", p, v)
		}
	}
	if hw != 10 {
		t.Errorf("high watermarks sum to %v, want 10", hw)
	}
	if v := value("spool_partition_size_bytes", "spool_partition_size_bytes", "topic", "m-b", "partition", "0"); v < 0 {
		t.Errorf("size %v", v)
	}
	if v := value("spool_disk_used_bytes", "spool_disk_used_bytes"); v <= 0 {
		t.Errorf("disk used %v", v)
	}
	if v := value("spool_segments_recycled_total", "spool_segments_recycled_total"); v != 0 {
		t.Errorf("segments recycled %v with nothing retained away", v)
	}
	fsyncs := value("spool_fsyncs_total", "spool_fsyncs_total")
	if fsyncs < 5 { // sync: always, five acknowledged produce requests
		t.Errorf("fsyncs %v, want at least 5", fsyncs)
	}
	h := metricstest.Find(fams, "spool_fsync_duration_seconds")
	if h == nil || h.Type != "histogram" {
		t.Fatal("fsync histogram missing")
	}
	if n, _ := h.Value("spool_fsync_duration_seconds_count"); n != fsyncs {
		t.Errorf("fsync histogram count %v != fsyncs %v", n, fsyncs)
	}
	if n, _ := h.Value("spool_fsync_duration_seconds_bucket", "le", "+Inf"); n != fsyncs {
		t.Errorf("+Inf bucket %v", n)
	}
	if got := len(h.Samples); got != len(spoollog.FsyncBuckets)+3 {
		t.Errorf("%d fsync histogram samples, want %d buckets + +Inf + sum + count", got, len(spoollog.FsyncBuckets))
	}
	if v := value("spool_topics", "spool_topics"); v != 2 {
		t.Errorf("topics %v", v)
	}
	if v := value("spool_other_total", "spool_other_total"); v != 7 {
		t.Errorf("other component's counter %v", v)
	}
	if v := value("spool_http_requests_total", "spool_http_requests_total", "route", "produce", "code", "2xx"); v != 5 {
		t.Errorf("produce requests %v", v)
	}
	if v := value("spool_http_requests_total", "spool_http_requests_total", "route", "topic", "code", "4xx"); v != 1 {
		t.Errorf("404s %v", v)
	}
}

func TestConcurrentProduce(t *testing.T) {
	e := newEnv(t, spoollog.Options{}, nil)
	e.createTopic("c", map[string]any{"partitions": 2})
	const workers, each = 8, 10
	var mu sync.Mutex
	seen := map[[2]int64]bool{}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				status, b := e.do("POST", "/api/v1/topics/c/records",
					fmt.Sprintf(`{"records":[{"key":"w%d-%d","value":"v"}]}`, w, i))
				var out produced
				if status != http.StatusOK || json.Unmarshal(b, &out) != nil {
					t.Errorf("produce: %d %s", status, b)
					return
				}
				mu.Lock()
				k := [2]int64{int64(out.Offsets[0].Partition), *out.Offsets[0].Offset}
				if seen[k] {
					t.Errorf("offset %v given twice", k)
				}
				seen[k] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	var total int
	for p := range int32(2) {
		var rr readResp
		e.must(http.StatusOK, "GET", recordsPath("c", p, "limit=1000"), nil, &rr)
		total += len(rr.Records)
	}
	if total != workers*each || len(seen) != workers*each {
		t.Errorf("%d records read, %d acknowledged, want %d", total, len(seen), workers*each)
	}
}

func TestAppendString(t *testing.T) {
	for _, s := range []string{"", "plain", "quote\" back\\slash", "ctl \x00\x01\x1f\x7f", "nl\n cr\r tab\t", "é ü 日本", "\u2028\u2029", "<>&"} {
		b := appendString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil || got != s {
			t.Errorf("%q encoded as %s: decoded %q, %v", s, b, got, err)
		}
		if bytes.ContainsAny(b, "\n\r") {
			t.Errorf("%q encoded with a raw line break: %s", s, b)
		}
	}
}
