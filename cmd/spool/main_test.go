package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	spoollog "github.com/spoolmq/spool/log"
)

// spool runs the CLI in-process and returns exit code, stdout and stderr.
func spool(t *testing.T, ctx context.Context, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(ctx, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// fillLog writes n records of topic "t" over several small segments.
func fillLog(t *testing.T, dir string, n int) {
	t.Helper()
	l, err := spoollog.Open(dir, spoollog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := spoollog.DefaultTopicConfig()
	cfg.SegmentBytes = 16 << 10
	cfg.MaxMessageBytes = 4 << 10
	tp, err := l.CreateTopic("t", cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := tp.Partition(0)
	for i := range n {
		r := spoollog.Record{Timestamp: int64(i), Key: fmt.Appendf(nil, "key-%d", i), Value: bytes.Repeat([]byte{'v'}, 100)}
		if _, err := p.AppendRecords([]spoollog.Record{r}, spoollog.DefaultBatchOptions); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestUnknownCommand(t *testing.T) {
	code, _, stderr := spool(t, context.Background(), "frobnicate")
	if code != 2 || !strings.Contains(stderr, `unknown command "frobnicate"`) {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

func TestLogVerifyRepair(t *testing.T) {
	dir := t.TempDir()
	fillLog(t, dir, 600)
	ctx := context.Background()
	if code, out, _ := spool(t, ctx, "log", "verify", dir); code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("verify of a clean log: exit %d, %s", code, out)
	}

	// Flip a byte inside the second batch of the first (sealed) segment.
	seg := filepath.Join(dir, "topics", "t", "0", "00000000000000000000.log")
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	first := spoollogBatchSize(t, b)
	pos := first + 70
	b[pos] ^= 0xff
	if err := os.WriteFile(seg, b, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ := spool(t, ctx, "log", "verify", dir)
	if code != 1 || !strings.Contains(out, seg) || !strings.Contains(out, fmt.Sprintf("at byte %d", first)) || !strings.Contains(out, "corrupt batch") {
		t.Fatalf("verify of a damaged log: exit %d, output:\n%s", code, out)
	}
	code, out, stderr := spool(t, ctx, "log", "repair", dir)
	if code != 0 || !strings.Contains(out, "offsets 1-1") {
		t.Fatalf("repair: exit %d, output:\n%s%s", code, out, stderr)
	}
	if code, out, _ := spool(t, ctx, "log", "verify", dir); code != 0 {
		t.Fatalf("verify after repair: exit %d, %s", code, out)
	}

	// Everything but offset 1 survives, with its offsets.
	l, err := spoollog.Open(dir, spoollog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	tp, _ := l.Topic("t")
	p, _ := tp.Partition(0)
	var got []int64
	for off := int64(0); off < p.HighWatermark(); {
		data, err := p.Read(off, 1<<20)
		if err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
		spoollog.SplitBatches(data, func(h spoollog.BatchHeader, batch []byte) error {
			_, recs, err := spoollog.DecodeRecords(batch)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				if want := fmt.Sprintf("key-%d", r.Offset); string(r.Key) != want {
					t.Fatalf("offset %d holds key %q", r.Offset, r.Key)
				}
				got = append(got, r.Offset)
			}
			off = h.LastOffset() + 1
			return nil
		})
	}
	if len(got) != 599 || got[0] != 0 || got[1] != 2 {
		t.Fatalf("after repair got %d records starting %v", len(got), got[:3])
	}
}

func spoollogBatchSize(t *testing.T, b []byte) int {
	h, err := spoollog.ParseBatchHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	return h.Size()
}

func TestLogDump(t *testing.T) {
	dir := t.TempDir()
	fillLog(t, dir, 3)
	code, out, stderr := spool(t, context.Background(), "log", "dump", "--records", filepath.Join(dir, "topics", "t", "0"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"baseOffset: 0 lastOffset: 0 count: 1", "baseOffset: 2", `| offset: 1 CreateTime: 1 keySize: 5 valueSize: 100 headerKeys: [] key: "key-1"`} {
		if !strings.Contains(out, want) {
			t.Errorf("dump lacks %q:\n%s", want, out)
		}
	}
	if code, _, stderr := spool(t, context.Background(), "log", "dump", dir); code != 1 || !strings.Contains(stderr, "no segment files") {
		t.Errorf("dump of a data dir: exit %d, %s", code, stderr)
	}
}

func TestServeStartsAndStops(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var errOut bytes.Buffer
	go func() {
		done <- run(ctx, []string{"serve", "--data", dir, "--mqtt-addr", "127.0.0.1:0", "--kafka-addr", "off", "--http-addr", "off", "--log-format", "json"}, &bytes.Buffer{}, &errOut)
	}()
	deadline := time.After(10 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, "meta.db")); err == nil {
			break
		}
		select {
		case <-deadline:
			t.Fatal("serve did not create meta.db")
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("serve exit %d: %s", code, errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
	sc := bufio.NewScanner(&errOut)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", sc.Text())
		}
	}
	if code, _, stderr := spool(t, context.Background(), "serve", "--disk-budget", "lots"); code != 1 || !strings.Contains(stderr, "--disk-budget") {
		t.Fatalf("bad budget: exit %d %s", code, stderr)
	}
}

func TestBenchLogSmoke(t *testing.T) {
	code, out, stderr := spool(t, context.Background(), "bench", "log", "--records", "3000", "--writers", "4", "--sync", "always,never", "--dir", t.TempDir())
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("want 2 results and a ratio, got:\n%s", out)
	}
	for i, sync := range []string{"always", "never"} {
		var r benchLogResult
		if err := json.Unmarshal([]byte(lines[i]), &r); err != nil {
			t.Fatal(err)
		}
		if r.Records != 3000 || r.Sync != sync || r.RecordsPerSec <= 0 {
			t.Errorf("result %d: %+v", i, r)
		}
		if (sync == "always") != (r.Fsyncs > 0) {
			t.Errorf("sync %s made %d fsyncs", sync, r.Fsyncs)
		}
	}
	if !strings.Contains(lines[2], `"ratio"`) {
		t.Errorf("no ratio line: %s", lines[2])
	}
}
