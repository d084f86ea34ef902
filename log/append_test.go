package log

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"
)

// TestAppendRefusesBadBatches: a malformed or oversized batch is refused
// with a clear error, nothing of it is stored, and the next good append
// takes the next offset.
func TestAppendRefusesBadBatches(t *testing.T) {
	l := openTestLog(t, t.TempDir(), Options{})
	defer l.Close()
	cfg := testConfig()
	cfg.MaxMessageBytes = 1024
	tp, err := l.CreateTopic("in", cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := tp.Partition(0)
	good, err := AppendBatch(nil, []Record{rec(0, 1, 1)}, DefaultBatchOptions)
	if err != nil {
		t.Fatal(err)
	}
	recrc := func(b []byte) []byte {
		binary.BigEndian.PutUint32(b[batchCRCPos:], crc32.Checksum(b[batchAttributesPos:], crc32c))
		return b
	}
	mutate := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	big, _ := AppendBatch(nil, []Record{{Value: make([]byte, 2000)}}, DefaultBatchOptions)
	cases := []struct {
		name  string
		batch []byte
		want  error
	}{
		{"empty input", nil, ErrBatchTruncated},
		{"truncated", good[:len(good)-1], ErrBatchTruncated},
		{"bad CRC", mutate(func(b []byte) []byte { b[len(b)-1] ^= 0xff; return b }), ErrBatchCRC},
		{"bad magic", mutate(func(b []byte) []byte { b[batchMagicPos] = 1; return b }), ErrBatchMagic},
		{"bad length", mutate(func(b []byte) []byte { binary.BigEndian.PutUint32(b[batchLengthPos:], 10); return b }), ErrBatchLength},
		{"trailing bytes", append(append([]byte(nil), good...), 0, 0, 0), ErrBatchLength},
		{"zero records", mutate(func(b []byte) []byte { binary.BigEndian.PutUint32(b[batchRecordCountPos:], 0); return recrc(b) }), ErrBatchRecords},
		{"more records than offsets", mutate(func(b []byte) []byte { binary.BigEndian.PutUint32(b[batchRecordCountPos:], 5); return recrc(b) }), ErrBatchRecords},
		{"over max_message_bytes", big, ErrTooLarge},
	}
	for _, c := range cases {
		_, err := p.Append(c.batch)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
		var be *BatchError
		if c.want != ErrTooLarge && !errors.As(err, &be) {
			t.Errorf("%s: %v is not a *BatchError", c.name, err)
		}
		if p.HighWatermark() != 0 || p.Err() != nil {
			t.Fatalf("%s: high watermark %d, sticky error %v after a refused append", c.name, p.HighWatermark(), p.Err())
		}
	}
	res, err := p.Append(good)
	if err != nil || res.BaseOffset != 0 {
		t.Fatalf("good append after refusals: %+v %v", res, err)
	}
	if got := readAll(t, p); len(got) != 1 || string(got[0].Value) != string(rec(0, 1, 1).Value) {
		t.Fatalf("log holds %d records after refusals, want the one good record", len(got))
	}
}
