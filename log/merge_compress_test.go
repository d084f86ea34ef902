package log

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"testing"
)

// mergeInput builds n adjacent one-record batches with offsets 0..n-1, as
// the flusher holds them in a cycle, from values made by value.
func mergeInput(t *testing.T, n int, value func(i int) []byte) ([]byte, []batchMeta, []Record) {
	t.Helper()
	var buf []byte
	var metas []batchMeta
	var recs []Record
	for i := range n {
		r := Record{Timestamp: 1_700_000_000_000 + int64(i%7), Key: fmt.Appendf(nil, "devices/%d/telemetry", i%5), Value: value(i),
			Headers: []Header{{Key: "mqtt.topic", Value: fmt.Appendf(nil, "devices/%d/telemetry", i%5)}, {Key: "mqtt.qos", Value: []byte("1")}}}
		b, err := AppendBatch(nil, []Record{r}, DefaultBatchOptions)
		if err != nil {
			t.Fatal(err)
		}
		setBaseOffset(b, int64(i))
		metas = append(metas, batchMeta{base: int64(i), last: int64(i), maxTs: r.Timestamp, size: len(b), records: 1, mergeable: mergeable(parseBatchHeader(b))})
		buf = append(buf, b...)
		r.Offset = int64(i)
		recs = append(recs, r)
	}
	return buf, metas, recs
}

func jsonish(i int) []byte {
	return fmt.Appendf(nil, `{"device":"sensor-%d","temperature":%d.%d,"humidity":%d,"ok":true}`, i%5, 20+i%10, i%10, 40+i%20)
}

// A merged run is compressed with each codec, smaller than it was, and
// decodes to the same records (offsets, timestamps, keys, values,
// headers) with a valid CRC.
func TestMergedRunCompressed(t *testing.T) {
	buf, metas, want := mergeInput(t, 100, jsonish)
	plain, _, ok := mergeCycle(nil, nil, buf, metas, 1<<20, CodecNone)
	if !ok {
		t.Fatal("nothing merged")
	}
	for _, c := range []Codec{CodecGzip, CodecSnappy, CodecLz4, CodecZstd} {
		t.Run(c.String(), func(t *testing.T) {
			out, ms, ok := mergeCycle(nil, nil, buf, metas, 1<<20, c)
			if !ok || len(ms) != 1 {
				t.Fatalf("merged %v into %d batches", ok, len(ms))
			}
			if ms[0].size != len(out) || len(out) >= len(plain) {
				t.Errorf("%d bytes (meta says %d), uncompressed %d", len(out), ms[0].size, len(plain))
			}
			h, recs, err := DecodeRecords(out)
			if err != nil {
				t.Fatal(err)
			}
			if h.Codec() != c || h.NumRecords != 100 || h.LastOffsetDelta != 99 {
				t.Errorf("header %+v, want codec %v and 100 records", h, c)
			}
			if _, err := ParseBatchHeader(out); err != nil { // length and CRC
				t.Error(err)
			}
			for i, r := range recs {
				w := want[i]
				if r.Offset != w.Offset || r.Timestamp != w.Timestamp || !bytes.Equal(r.Key, w.Key) || !bytes.Equal(r.Value, w.Value) ||
					len(r.Headers) != 2 || !bytes.Equal(r.Headers[0].Value, w.Headers[0].Value) || !bytes.Equal(r.Headers[1].Value, w.Headers[1].Value) {
					t.Fatalf("record %d: %+v, want %+v", i, r, w)
				}
			}
		})
	}
}

// Records that do not compress are stored uncompressed: a reader would
// only pay for decompressing them.
func TestMergedRunIncompressibleStaysPlain(t *testing.T) {
	buf, metas, _ := mergeInput(t, 20, func(int) []byte {
		v := make([]byte, 4000)
		rand.Read(v)
		return v
	})
	out, ms, ok := mergeCycle(nil, nil, buf, metas, 1<<20, CodecZstd)
	if !ok || len(ms) != 1 {
		t.Fatalf("merged %v into %d batches", ok, len(ms))
	}
	if h := parseBatchHeader(out); h.Codec() != CodecNone {
		t.Errorf("random values stored with %v", h.Codec())
	}
}

// Spool's own appends to a topic are stored compressed with the topic's
// codec (zstd by default), read back the same after a reopen, and pass
// Verify; with compression none they are stored plain.
func TestOwnAppendsCompressedByTopicCodec(t *testing.T) {
	for _, c := range []Codec{CodecZstd, CodecNone} {
		t.Run(c.String(), func(t *testing.T) {
			dir := t.TempDir()
			l, err := Open(dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			cfg := DefaultTopicConfig()
			if cfg.Compression != CodecZstd {
				t.Fatalf("default compression %v, want zstd", cfg.Compression)
			}
			cfg.Compression = c
			tp, err := l.CreateTopic("c", cfg)
			if err != nil {
				t.Fatal(err)
			}
			p, _ := tp.Partition(0)
			_, _, want := mergeInput(t, 300, jsonish)
			done := make(chan error, len(want))
			for i := range want {
				b, _ := AppendBatch(nil, []Record{{Timestamp: want[i].Timestamp, Key: want[i].Key, Value: want[i].Value, Headers: want[i].Headers}}, DefaultBatchOptions)
				if err := p.AppendOwnAsync(b, func(_ AppendResult, err error) { done <- err }); err != nil {
					t.Fatal(err)
				}
			}
			for range want {
				if err := <-done; err != nil {
					t.Fatal(err)
				}
			}
			check := func(p *Partition) {
				t.Helper()
				got := readAll(t, p)
				if len(got) != len(want) {
					t.Fatalf("%d records, want %d", len(got), len(want))
				}
				for i, r := range got {
					if r.Offset != int64(i) || !bytes.Equal(r.Value, want[i].Value) || !bytes.Equal(r.Key, want[i].Key) {
						t.Fatalf("record %d: %+v", i, r)
					}
				}
				compressed := 0
				for _, h := range batchesOf(t, p) {
					if h.Codec() == c && h.NumRecords > 1 {
						compressed++
					}
					if h.Codec() != CodecNone && h.Codec() != c {
						t.Errorf("a batch stored with %v, topic codec %v", h.Codec(), c)
					}
				}
				if compressed == 0 {
					t.Errorf("no merged batch stored with %v", c)
				}
			}
			check(p)
			l = closeVerifyReopen(t, l, dir)
			defer l.Close()
			tp, _ = l.Topic("c")
			if tp.Config().Compression != c {
				t.Errorf("compression %v after reopen, want %v", tp.Config().Compression, c)
			}
			p, _ = tp.Partition(0)
			check(p)
		})
	}
}

// A topic config names its codec in meta.db, and an unknown name or
// number is refused.
func TestCompressionConfig(t *testing.T) {
	cfg := DefaultTopicConfig()
	b, err := cfg.Compression.MarshalText()
	if err != nil || string(b) != "zstd" {
		t.Fatalf("%q %v", b, err)
	}
	var c Codec
	if err := c.UnmarshalText([]byte("brotli")); err == nil {
		t.Error("brotli accepted")
	}
	cfg.Compression = 9
	if err := cfg.Validate(); err == nil {
		t.Error("codec 9 accepted")
	}
}

// closeVerifyReopen closes l, checks its directory with Verify, and opens
// it again.
func closeVerifyReopen(t *testing.T, l *Log, dir string) *Log {
	t.Helper()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if problems, err := Verify(dir); err != nil || len(problems) > 0 {
		t.Fatalf("verify: %v %v", problems, err)
	}
	l, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return l
}
