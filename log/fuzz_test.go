package log

// Fuzz targets for the batch codec and for recovery. Seed corpora live in
// testdata/fuzz/<FuzzName>/ and run with every `go test`; regenerate the
// generated ones with
//
//	SPOOL_GEN_FUZZ_CORPUS=1 go test -run '^TestGenerateFuzzCorpus$' ./log/
//
// Fuzz one target with e.g.
//
//	go test -run '^$' -fuzz '^FuzzRecovery$' -fuzztime 30s ./log/

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"unsafe"
)

// fuzzInput hands out the fuzz input as structured values; once the input
// is used up it returns zeros.
type fuzzInput struct{ b []byte }

func (in *fuzzInput) byte() byte {
	if len(in.b) == 0 {
		return 0
	}
	c := in.b[0]
	in.b = in.b[1:]
	return c
}

func (in *fuzzInput) uint64() uint64 {
	var buf [8]byte
	n := copy(buf[:], in.b)
	in.b = in.b[n:]
	return binary.LittleEndian.Uint64(buf[:])
}

func (in *fuzzInput) bytes(n int) []byte {
	n = min(n, len(in.b))
	b := in.b[:n:n]
	in.b = in.b[n:]
	return b
}

// blob returns nil, an empty slice or some input bytes (copied, so that
// results cannot alias the input).
func (in *fuzzInput) blob() []byte {
	switch c := in.byte(); c % 4 {
	case 0:
		return nil
	case 1:
		return []byte{}
	default:
		return append([]byte{}, in.bytes(int(c/4))...)
	}
}

// records builds 1..8 records from the input: keys, values and header
// values each nil, empty or arbitrary, arbitrary header keys and
// timestamps (deltas that may wrap around).
func (in *fuzzInput) records() []Record {
	n := 1 + int(in.byte()%8)
	recs := make([]Record, n)
	base := int64(in.uint64())
	for i := range recs {
		r := &recs[i]
		switch in.byte() % 4 {
		case 0:
			r.Timestamp = base
		case 1:
			r.Timestamp = base + int64(in.byte())
		case 2:
			r.Timestamp = base - int64(in.byte())
		default:
			r.Timestamp = int64(in.uint64())
		}
		r.Key = in.blob()
		r.Value = in.blob()
		for range in.byte() % 4 {
			r.Headers = append(r.Headers, Header{Key: string(in.blob()), Value: in.blob()})
		}
	}
	return recs
}

func (in *fuzzInput) batchOptions() BatchOptions {
	return BatchOptions{
		Codec:         Codec(in.byte() % 5),
		ProducerID:    int64(in.uint64()),
		ProducerEpoch: int16(in.uint64()),
		BaseSequence:  int32(in.uint64()),
	}
}

// fuzzFixBatch makes b (at least a header long) a well-formed batch as far as
// the header goes: its length field covers b, magic is 2 and the CRC is
// right. Record count and contents stay as they are.
func fuzzFixBatch(b []byte) {
	binary.BigEndian.PutUint32(b[batchLengthPos:], uint32(len(b)-batchLogOverhead))
	b[batchMagicPos] = batchMagic
	binary.BigEndian.PutUint32(b[batchCRCPos:], crc32.Checksum(b[batchAttributesPos:], crc32c))
}

// fuzzCheckHeader checks what a successful ParseBatchHeader promises about b.
func fuzzCheckHeader(t *testing.T, h BatchHeader, b []byte) {
	t.Helper()
	switch {
	case h.Size() > len(b):
		t.Fatalf("header of a %d-byte batch accepted from %d bytes", h.Size(), len(b))
	case h.Size() < batchHeaderSize:
		t.Fatalf("batch size %d is smaller than a header", h.Size())
	case h.Magic != batchMagic:
		t.Fatalf("magic %d accepted", h.Magic)
	case h.CRC != crc32.Checksum(b[batchAttributesPos:h.Size()], crc32c):
		t.Fatalf("CRC %08x accepted for data whose CRC is %08x", h.CRC, crc32.Checksum(b[batchAttributesPos:h.Size()], crc32c))
	case h.NumRecords < 0 || h.LastOffsetDelta < 0 || int64(h.NumRecords) > int64(h.LastOffsetDelta)+1:
		t.Fatalf("%d records with last offset delta %d accepted", h.NumRecords, h.LastOffsetDelta)
	case h != parseBatchHeader(b):
		t.Fatalf("returned header %+v differs from the bytes' %+v", h, parseBatchHeader(b))
	}
}

func FuzzParseBatchHeader(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		orig := bytes.Clone(data)
		h, err := ParseBatchHeader(data)
		if !bytes.Equal(data, orig) {
			t.Fatal("ParseBatchHeader modified its input")
		}
		if err == nil {
			fuzzCheckHeader(t, h, data)
			// The batch alone parses the same; one byte less does not;
			// what follows it does not matter.
			if h2, err := ParseBatchHeader(data[:h.Size()]); err != nil || h2 != h {
				t.Fatalf("the batch alone: %+v, %v; with what follows: %+v", h2, err, h)
			}
			if _, err := ParseBatchHeader(data[:h.Size()-1]); !errors.Is(err, ErrBatchTruncated) {
				t.Fatalf("batch minus its last byte: %v, want ErrBatchTruncated", err)
			}
			more := append(bytes.Clone(data[:h.Size()]), 0xff, 0, 1)
			if h2, err := ParseBatchHeader(more); err != nil || h2 != h {
				t.Fatalf("batch with trailing bytes: %+v, %v; alone: %+v", h2, err, h)
			}
			// The base offset is not covered by the CRC: the log rewrites it.
			moved := bytes.Clone(data)
			setBaseOffset(moved, h.BaseOffset^0x5a5a)
			if h2, err := ParseBatchHeader(moved); err != nil || h2.BaseOffset != h.BaseOffset^0x5a5a {
				t.Fatalf("after rewriting the base offset: %+v, %v", h2, err)
			}
		} else if len(data) >= batchHeaderSize && h != parseBatchHeader(data) {
			t.Fatalf("header returned with error %v differs from the bytes", err)
		}

		// The same bytes with a right length, magic and CRC: only the
		// record count and last offset delta can still be refused.
		if len(data) < batchHeaderSize {
			return
		}
		fixed := bytes.Clone(data)
		fuzzFixBatch(fixed)
		h, err = ParseBatchHeader(fixed)
		sane := h.NumRecords >= 0 && h.LastOffsetDelta >= 0 && int64(h.NumRecords) <= int64(h.LastOffsetDelta)+1
		switch {
		case err == nil && !sane:
			t.Fatalf("accepted %d records with last offset delta %d", h.NumRecords, h.LastOffsetDelta)
		case err == nil:
			fuzzCheckHeader(t, h, fixed)
			if h.Size() != len(fixed) {
				t.Fatalf("size %d, want %d", h.Size(), len(fixed))
			}
		case sane:
			t.Fatalf("well-formed header refused: %v", err)
		case !errors.Is(err, ErrBatchRecords):
			t.Fatalf("bad record count refused with %v, want ErrBatchRecords", err)
		}
	})
}

// fuzzSameRecord compares records exactly: nil and empty differ.
func fuzzSameRecord(a, b Record) error {
	sameBytes := func(x, y []byte) bool { return (x == nil) == (y == nil) && bytes.Equal(x, y) }
	switch {
	case a.Offset != b.Offset:
		return fmt.Errorf("offset %d, want %d", a.Offset, b.Offset)
	case a.Timestamp != b.Timestamp:
		return fmt.Errorf("timestamp %d, want %d", a.Timestamp, b.Timestamp)
	case !sameBytes(a.Key, b.Key):
		return fmt.Errorf("key %q (nil %v), want %q (nil %v)", a.Key, a.Key == nil, b.Key, b.Key == nil)
	case !sameBytes(a.Value, b.Value):
		return fmt.Errorf("value %q (nil %v), want %q (nil %v)", a.Value, a.Value == nil, b.Value, b.Value == nil)
	case len(a.Headers) != len(b.Headers):
		return fmt.Errorf("%d headers, want %d", len(a.Headers), len(b.Headers))
	}
	for i := range a.Headers {
		if a.Headers[i].Key != b.Headers[i].Key || !sameBytes(a.Headers[i].Value, b.Headers[i].Value) {
			return fmt.Errorf("header %d: %q=%q (nil %v), want %q=%q (nil %v)", i,
				a.Headers[i].Key, a.Headers[i].Value, a.Headers[i].Value == nil,
				b.Headers[i].Key, b.Headers[i].Value, b.Headers[i].Value == nil)
		}
	}
	return nil
}

// fuzzCheckDecoded checks what a successful DecodeRecords promises.
func fuzzCheckDecoded(t *testing.T, h BatchHeader, recs []Record, batch []byte) {
	t.Helper()
	fuzzCheckHeader(t, h, batch)
	if h.Size() != len(batch) {
		t.Fatalf("decoded a %d-byte batch from %d bytes", h.Size(), len(batch))
	}
	if len(recs) != int(h.NumRecords) {
		t.Fatalf("%d records decoded, header says %d", len(recs), h.NumRecords)
	}
	for i, r := range recs {
		if h.LogAppendTime() && r.Timestamp != h.MaxTimestamp {
			t.Fatalf("record %d of a LogAppendTime batch has timestamp %d, want %d", i, r.Timestamp, h.MaxTimestamp)
		}
	}
}

func FuzzDecodeRecords(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		// Arbitrary bytes: no panic, and only well-formed batches decode.
		orig := bytes.Clone(data)
		if h, recs, err := DecodeRecords(data); err == nil {
			fuzzCheckDecoded(t, h, recs, data)
		}
		if !bytes.Equal(data, orig) {
			t.Fatal("DecodeRecords modified its input")
		}
		// The same bytes with a right header length and CRC, so that the
		// record decoding is reached.
		if len(data) >= batchHeaderSize {
			fixed := bytes.Clone(data)
			fuzzFixBatch(fixed)
			if h, recs, err := DecodeRecords(fixed); err == nil {
				fuzzCheckDecoded(t, h, recs, fixed)
			}
		}

		// Records derived from the input round-trip exactly.
		in := &fuzzInput{b: data}
		recs := in.records()
		opts := in.batchOptions()
		prefix := in.bytes(int(in.byte() % 16)) // AppendBatch appends
		batch, err := AppendBatch(bytes.Clone(prefix), recs, opts)
		if err != nil {
			t.Fatalf("AppendBatch(%d records, %+v): %v", len(recs), opts, err)
		}
		if !bytes.Equal(batch[:len(prefix)], prefix) {
			t.Fatal("AppendBatch changed the bytes before the batch")
		}
		batch = batch[len(prefix):]
		base := int64(in.uint64() >> 1)
		setBaseOffset(batch, base)

		h, got, err := DecodeRecords(batch)
		if err != nil {
			t.Fatalf("decode a batch of %d records built by AppendBatch (%+v): %v", len(recs), opts, err)
		}
		fuzzCheckDecoded(t, h, got, batch)
		maxTs := recs[0].Timestamp
		for _, r := range recs {
			maxTs = max(maxTs, r.Timestamp)
		}
		wantH := BatchHeader{
			BaseOffset: base, Length: int32(len(batch) - batchLogOverhead), Magic: batchMagic, CRC: h.CRC,
			Attributes: int16(opts.Codec), LastOffsetDelta: int32(len(recs) - 1),
			BaseTimestamp: recs[0].Timestamp, MaxTimestamp: maxTs,
			ProducerID: opts.ProducerID, ProducerEpoch: opts.ProducerEpoch, BaseSequence: opts.BaseSequence,
			NumRecords: int32(len(recs)),
		}
		if h != wantH {
			t.Fatalf("header %+v, want %+v", h, wantH)
		}
		for i := range recs {
			want := recs[i]
			want.Offset = base + int64(i)
			if err := fuzzSameRecord(got[i], want); err != nil {
				t.Fatalf("record %d of %d (codec %v): %v", i, len(recs), opts.Codec, err)
			}
		}
		// SplitBatches sees the same one batch.
		n := 0
		if err := SplitBatches(batch, func(h2 BatchHeader, b []byte) error {
			n++
			if h2 != h || len(b) != len(batch) {
				return fmt.Errorf("split %+v (%d bytes), want %+v (%d bytes)", h2, len(b), h, len(batch))
			}
			return nil
		}); err != nil || n != 1 {
			t.Fatalf("SplitBatches of one batch: %d batches, %v", n, err)
		}

		// LogAppendTime, as the log sets it: every record gets the time.
		lat := bytes.Clone(batch)
		ms := int64(in.uint64())
		setLogAppendTime(lat, ms)
		h, got, err = DecodeRecords(lat)
		if err != nil || !h.LogAppendTime() || h.MaxTimestamp != ms || len(got) != len(recs) {
			t.Fatalf("LogAppendTime batch: %+v, %d records, %v", h, len(got), err)
		}
		for i := range got {
			want := recs[i]
			want.Offset, want.Timestamp = base+int64(i), ms
			if err := fuzzSameRecord(got[i], want); err != nil {
				t.Fatalf("LogAppendTime record %d: %v", i, err)
			}
		}

		// Damage: changing one byte is caught, except in the base
		// offset and the leader epoch, which the CRC does not cover.
		pos := int(in.uint64() % uint64(len(batch)))
		delta := in.byte() | 1
		bad := bytes.Clone(batch)
		bad[pos] ^= delta
		h, got, err = DecodeRecords(bad)
		uncovered := pos < batchLengthPos || (pos >= batchLeaderEpochPos && pos < batchMagicPos)
		switch {
		case uncovered && err != nil:
			t.Fatalf("byte %d changed (not covered by the CRC): %v", pos, err)
		case uncovered && pos < batchLengthPos && got[0].Offset != h.BaseOffset:
			t.Fatalf("byte %d changed: first record at %d, base offset %d", pos, got[0].Offset, h.BaseOffset)
		case !uncovered && err == nil:
			t.Fatalf("byte %d of %d changed (^%#x) and the batch still decodes", pos, len(batch), delta)
		}
	})
}

func FuzzSplitBatches(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzCheckSplit(t, data)
		// The same input with the CRC of every batch-shaped chunk fixed,
		// so that the checks behind the CRC are reached.
		fixed := bytes.Clone(data)
		for b := fixed; len(b) >= batchHeaderSize; {
			h := parseBatchHeader(b)
			if h.Length <= 0 || h.Size() > len(b) || h.Size() < batchHeaderSize {
				break
			}
			binary.BigEndian.PutUint32(b[batchCRCPos:], crc32.Checksum(b[batchAttributesPos:h.Size()], crc32c))
			b = b[h.Size():]
		}
		fuzzCheckSplit(t, fixed)
	})
}

type fuzzSplitBatch struct {
	h   BatchHeader
	pos int
	b   []byte
}

func fuzzCheckSplit(t *testing.T, data []byte) {
	t.Helper()
	orig := bytes.Clone(data)
	split := func(b []byte) ([]fuzzSplitBatch, error) {
		var out []fuzzSplitBatch
		err := SplitBatches(b, func(h BatchHeader, batch []byte) error {
			pos := 0
			if len(batch) > 0 {
				pos = int(uintptr(unsafe.Pointer(unsafe.SliceData(batch))) - uintptr(unsafe.Pointer(unsafe.SliceData(b))))
			}
			out = append(out, fuzzSplitBatch{h, pos, batch})
			return nil
		})
		return out, err
	}
	batches, err := split(data)
	if !bytes.Equal(data, orig) {
		t.Fatal("SplitBatches modified its input")
	}

	// Whole, valid batches, one after the other from the start.
	consumed := 0
	for i, sb := range batches {
		if sb.pos != consumed {
			t.Fatalf("batch %d at byte %d, want %d", i, sb.pos, consumed)
		}
		if len(sb.b) != sb.h.Size() {
			t.Fatalf("batch %d: %d bytes, header says %d", i, len(sb.b), sb.h.Size())
		}
		h, perr := ParseBatchHeader(sb.b)
		if perr != nil || h != sb.h {
			t.Fatalf("batch %d: ParseBatchHeader: %+v %v; SplitBatches gave %+v", i, h, perr, sb.h)
		}
		fuzzCheckHeader(t, h, sb.b)
		consumed += len(sb.b)
	}
	if consumed > len(data) {
		t.Fatalf("consumed %d of %d bytes", consumed, len(data))
	}

	// Why it stopped: an incomplete batch (or zeros), or an error that is
	// the next batch's.
	rest := data[consumed:]
	if err == nil {
		if len(rest) >= batchHeaderSize {
			if h := parseBatchHeader(rest); h.Length > 0 && h.Size() <= len(rest) {
				t.Fatalf("stopped without error before a complete %d-byte batch at byte %d", h.Size(), consumed)
			}
		}
	} else {
		if _, perr := ParseBatchHeader(rest); perr == nil || perr.Error() != err.Error() {
			t.Fatalf("SplitBatches error %v at byte %d, but the batch there parses with %v", err, consumed, perr)
		}
	}

	// The valid prefix splits the same, alone and followed by a batch.
	again, err := split(data[:consumed])
	if err != nil || len(again) != len(batches) {
		t.Fatalf("valid prefix: %d batches, %v; first pass %d", len(again), err, len(batches))
	}
	for i := range again {
		if again[i].h != batches[i].h || again[i].pos != batches[i].pos {
			t.Fatalf("valid prefix batch %d: %+v, first pass %+v", i, again[i].h, batches[i].h)
		}
	}
	extra, aerr := AppendBatch(nil, []Record{{Key: []byte("k"), Value: rest[:min(len(rest), 32)]}}, DefaultBatchOptions)
	if aerr != nil {
		t.Fatal(aerr)
	}
	more, err := split(append(bytes.Clone(data[:consumed]), extra...))
	if err != nil || len(more) != len(batches)+1 || more[len(batches)].pos != consumed {
		t.Fatalf("valid prefix and one more batch: %d batches, %v; want %d", len(more), err, len(batches)+1)
	}

	// An error from fn stops the split and is returned.
	if len(batches) > 0 {
		stop := errors.New("stop")
		calls := 0
		k := len(data) % len(batches)
		if err := SplitBatches(data, func(BatchHeader, []byte) error {
			calls++
			if calls > k {
				return stop
			}
			return nil
		}); err != stop || calls != k+1 {
			t.Fatalf("fn failing at call %d: %d calls, %v", k+1, calls, err)
		}
	}
}

// fuzzNoSyncFS is OSFS without fsyncs: recovery fuzzing has no crashes to
// survive, only files to read.
type fuzzNoSyncFS struct{ OSFS }

func (n fuzzNoSyncFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := n.OSFS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return fuzzNoSyncFile{f}, nil
}

func (fuzzNoSyncFS) SyncDir(string) error { return nil }

type fuzzNoSyncFile struct{ File }

func (fuzzNoSyncFile) Sync() error { return nil }

// Flags of FuzzRecovery.
const (
	fuzzRecPrealloc     = 1 << 0 // preallocated active segment
	fuzzRecSmall        = 1 << 1 // 1 KiB segments: most batches in sealed segments
	fuzzRecTruncate     = 1 << 2 // the file ends with the tail (no zeros after it)
	fuzzRecFixTail      = 1 << 3 // the tail's batch-shaped chunks get offsets and CRCs that fit
	fuzzRecIndex        = 1 << 4 // replace the active .index with the index input
	fuzzRecTimeIndex    = 1 << 5 // replace the active .timeindex with the timeindex input
	fuzzRecAppendIndex  = 1 << 6 // append to the index files instead of replacing them
	fuzzRecZerosBetween = 1 << 7 // zeros between the data and the tail
)

// fuzzRecBatch is a batch the fuzz harness appended.
type fuzzRecBatch struct {
	base, last int64
	ts         int64 // first record's timestamp
	stored     []byte
}

func fuzzRecRecords(i int) []Record {
	recs := make([]Record, 1+i%3)
	for j := range recs {
		recs[j] = Record{
			Timestamp: 1_700_000_000_000 + int64(i)*1000 + int64(j),
			Key:       fmt.Appendf(nil, "k%d", i%5),
			Value:     bytes.Repeat([]byte{byte('a' + i%26)}, 10+(i*37+j*11)%150),
			Headers:   []Header{{Key: "i", Value: fmt.Appendf(nil, "%d.%d", i, j)}},
		}
	}
	return recs
}

func fuzzRecConfig(flags uint8) TopicConfig {
	cfg := DefaultTopicConfig()
	cfg.Retention = -1
	cfg.IndexIntervalBytes = 64
	cfg.Preallocate = flags&fuzzRecPrealloc != 0
	cfg.SegmentBytes, cfg.MaxMessageBytes = 1<<20, 64<<10
	if flags&fuzzRecSmall != 0 {
		cfg.SegmentBytes, cfg.MaxMessageBytes = 1<<10, 1<<10
	}
	return cfg
}

// fuzzWriteRecLog creates a log in dir holding n batches and closes it.
func fuzzWriteRecLog(t testing.TB, dir string, n int, flags uint8) []fuzzRecBatch {
	t.Helper()
	l, err := Open(dir, Options{FS: fuzzNoSyncFS{}})
	if err != nil {
		t.Fatal(err)
	}
	tp, err := l.CreateTopic("f", fuzzRecConfig(flags))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := tp.Partition(0)
	var batches []fuzzRecBatch
	for i := range n {
		recs := fuzzRecRecords(i)
		b, err := AppendBatch(nil, recs, DefaultBatchOptions)
		if err != nil {
			t.Fatal(err)
		}
		res, err := p.Append(b)
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		setBaseOffset(b, res.BaseOffset)
		batches = append(batches, fuzzRecBatch{base: res.BaseOffset, last: res.LastOffset, ts: recs[0].Timestamp, stored: b})
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return batches
}

// fuzzActiveSegment returns the path of the partition's last segment.
func fuzzActiveSegment(t testing.TB, pdir string) (string, int64) {
	t.Helper()
	entries, err := os.ReadDir(pdir)
	if err != nil {
		t.Fatal(err)
	}
	var bases []int64
	for _, e := range entries {
		if base, ok := parseSegmentName(e.Name()); ok {
			bases = append(bases, base)
		}
	}
	if len(bases) == 0 {
		t.Fatalf("no segment in %s", pdir)
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	base := bases[len(bases)-1]
	return filepath.Join(pdir, segmentName(base)+logSuffix), base
}

func FuzzRecovery(f *testing.F) {
	f.Fuzz(func(t *testing.T, n uint8, flags uint8, tail, index, timeindex []byte) {
		dir := t.TempDir()
		batches := fuzzWriteRecLog(t, dir, int(n%24), flags)
		pdir := filepath.Join(dir, topicsDir, "f", "0")
		segPath, segBase := fuzzActiveSegment(t, pdir)

		// Where the data of the active segment ends, and the offset
		// that follows it.
		dataEnd, next := int64(0), int64(0)
		for _, b := range batches {
			if b.base >= segBase {
				dataEnd += int64(len(b.stored))
			}
			next = b.last + 1
		}
		validEnd := next

		// The garbage tail.
		tail = bytes.Clone(tail)
		if flags&fuzzRecFixTail != 0 {
			// Give batch-shaped chunks the next offset, magic 2 and a
			// right CRC: recovery has to judge them by more than that.
			for b, off := tail, next; len(b) >= batchHeaderSize; {
				h := parseBatchHeader(b)
				if h.Length < batchHeaderSize-batchLogOverhead || h.Size() > len(b) {
					break
				}
				setBaseOffset(b, off)
				b[batchMagicPos] = batchMagic
				binary.BigEndian.PutUint32(b[batchCRCPos:], crc32.Checksum(b[batchAttributesPos:h.Size()], crc32c))
				off += int64(max(h.LastOffsetDelta, 0)) + 1
				b = b[h.Size():]
			}
		}
		sf, err := os.OpenFile(segPath, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		at := dataEnd
		if flags&fuzzRecZerosBetween != 0 {
			at += int64(1 + len(tail)%97)
		}
		if flags&fuzzRecTruncate != 0 {
			if err := sf.Truncate(dataEnd); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := sf.WriteAt(tail, at); err != nil {
			t.Fatal(err)
		}
		sf.Close()
		stem := strings.TrimSuffix(segPath, logSuffix)
		for _, ix := range []struct {
			flag uint8
			path string
			data []byte
		}{{fuzzRecIndex, stem + indexSuffix, index}, {fuzzRecTimeIndex, stem + timeIndexSuffix, timeindex}} {
			if flags&ix.flag == 0 {
				continue
			}
			data := ix.data
			if flags&fuzzRecAppendIndex != 0 {
				old, _ := os.ReadFile(ix.path)
				data = append(old, data...)
			}
			if err := os.WriteFile(ix.path, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}

		// Recover.
		l, err := Open(dir, Options{FS: fuzzNoSyncFS{}})
		if err != nil {
			// Only the active segment's tail and its caches were touched:
			// recovery must cope with that.
			t.Fatalf("open after writing %d garbage bytes at %d of the active segment (flags %08b): %v", len(tail), at, flags, err)
		}
		defer func() { l.Close() }()
		hw := fuzzCheckRecovered(t, l, batches, validEnd, "after recovery")

		// Appending works and reads back, then a second recovery (of a
		// log closed cleanly) keeps everything.
		tp, _ := l.Topic("f")
		p, _ := tp.Partition(0)
		extra := []Record{{Timestamp: 1_800_000_000_000, Key: []byte("after"), Value: []byte("recovery")}}
		res, err := p.AppendRecords(extra, DefaultBatchOptions)
		if err != nil {
			t.Fatalf("append after recovery: %v", err)
		}
		if res.BaseOffset != hw || p.HighWatermark() != hw+1 {
			t.Fatalf("append after recovery at %d (high watermark then %d), want at %d", res.BaseOffset, p.HighWatermark(), hw)
		}
		fuzzCheckAppended(t, p, hw, extra[0])
		if err := l.Close(); err != nil {
			t.Fatalf("close after recovery: %v", err)
		}
		l, err = Open(dir, Options{FS: fuzzNoSyncFS{}})
		if err != nil {
			t.Fatalf("second open: %v", err)
		}
		if hw2 := fuzzCheckRecovered(t, l, batches, validEnd, "after a second open"); hw2 != hw+1 {
			t.Fatalf("high watermark %d after a second open, want %d", hw2, hw+1)
		}
		tp, _ = l.Topic("f")
		p, _ = tp.Partition(0)
		fuzzCheckAppended(t, p, hw, extra[0])
	})
}

// fuzzCheckRecovered checks that every batch the harness appended reads back
// at its offsets, that batches chain without gaps up to the high
// watermark, and that time lookups find the appended records.
func fuzzCheckRecovered(t *testing.T, l *Log, batches []fuzzRecBatch, validEnd int64, when string) int64 {
	t.Helper()
	tp, err := l.Topic("f")
	if err != nil {
		t.Fatalf("%s: %v", when, err)
	}
	p, err := tp.Partition(0)
	if err != nil {
		t.Fatalf("%s: %v", when, err)
	}
	hw := p.HighWatermark()
	if hw < validEnd {
		t.Fatalf("%s: high watermark %d, below the %d offsets appended", when, hw, validEnd)
	}
	if p.LogStartOffset() != 0 {
		t.Fatalf("%s: log start %d", when, p.LogStartOffset())
	}
	for i, b := range batches {
		data, err := p.Read(b.base, 1)
		if err != nil {
			t.Fatalf("%s: read batch %d at offset %d: %v", when, i, b.base, err)
		}
		if !bytes.HasPrefix(data, b.stored) {
			h, _ := ParseBatchHeader(data)
			t.Fatalf("%s: read at offset %d returned %d bytes starting with the batch at %d, not the %d-byte batch %d appended there",
				when, b.base, len(data), h.BaseOffset, len(b.stored), i)
		}
		_, recs, err := DecodeRecords(data[:len(b.stored)])
		if err != nil {
			t.Fatalf("%s: decode batch %d: %v", when, i, err)
		}
		want := fuzzRecRecords(i)
		for j := range want {
			want[j].Offset = b.base + int64(j)
			if err := fuzzSameRecord(recs[j], want[j]); err != nil {
				t.Fatalf("%s: batch %d record %d: %v", when, i, j, err)
			}
		}
		// A time lookup finds the batch's first record.
		if off, ok, err := p.OffsetForTime(b.ts); err != nil || !ok || off != b.base {
			t.Fatalf("%s: OffsetForTime(%d) = %d %v %v, want %d", when, b.ts, off, ok, err, b.base)
		}
	}
	// Batches chain from the log start to the high watermark, and
	// nothing is readable past it.
	for off := int64(0); off < hw; {
		data, err := p.Read(off, 1)
		if err != nil {
			t.Fatalf("%s: read at %d (high watermark %d): %v", when, off, hw, err)
		}
		h, err := ParseBatchHeader(data)
		if err != nil || h.BaseOffset != off {
			t.Fatalf("%s: read at %d (high watermark %d): batch at %d, %v", when, off, hw, h.BaseOffset, err)
		}
		off = h.LastOffset() + 1
		if off > hw {
			t.Fatalf("%s: batch at %d ends at %d, past the high watermark %d", when, h.BaseOffset, off, hw)
		}
	}
	if data, err := p.Read(hw, 1<<10); err != nil || len(data) != 0 {
		t.Fatalf("%s: read at the high watermark: %d bytes, %v", when, len(data), err)
	}
	return hw
}

func fuzzCheckAppended(t *testing.T, p *Partition, off int64, want Record) {
	t.Helper()
	data, err := p.Read(off, 1)
	if err != nil {
		t.Fatalf("read back %d: %v", off, err)
	}
	_, recs, err := DecodeRecords(data)
	if err != nil || len(recs) != 1 {
		t.Fatalf("read back %d: %d records, %v", off, len(recs), err)
	}
	want.Offset = off
	if err := fuzzSameRecord(recs[0], want); err != nil {
		t.Fatalf("read back %d: %v", off, err)
	}
}

// TestGenerateFuzzCorpus writes the seed corpora of the fuzz targets.
func TestGenerateFuzzCorpus(t *testing.T) {
	if os.Getenv("SPOOL_GEN_FUZZ_CORPUS") == "" {
		t.Skip("set SPOOL_GEN_FUZZ_CORPUS=1 to regenerate testdata/fuzz")
	}
	write := func(target, name string, args ...any) {
		t.Helper()
		var b strings.Builder
		b.WriteString("go test fuzz v1\n")
		for _, a := range args {
			switch v := a.(type) {
			case []byte:
				fmt.Fprintf(&b, "[]byte(%q)\n", v)
			case uint8:
				fmt.Fprintf(&b, "byte(%d)\n", v)
			default:
				t.Fatalf("corpus value of type %T", a)
			}
		}
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	batch := func(recs []Record, opts BatchOptions) []byte {
		b, err := AppendBatch(nil, recs, opts)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	plain := batch(fuzzRecRecords(4), DefaultBatchOptions)
	setBaseOffset(plain, 42)
	var codecs [][]byte
	for c := CodecNone; c <= CodecZstd; c++ {
		opts := DefaultBatchOptions
		opts.Codec = c
		codecs = append(codecs, batch(append(fuzzRecRecords(2), Record{Timestamp: 5, Value: []byte{}}, Record{Timestamp: 7, Key: []byte{}}), opts))
	}
	badMagic := bytes.Clone(plain)
	badMagic[batchMagicPos] = 1
	badCRC := bytes.Clone(plain)
	badCRC[len(badCRC)-1] ^= 1
	zeros := make([]byte, batchHeaderSize)

	for name, data := range map[string][]byte{
		"empty": {}, "zeros": zeros, "plain": plain, "plain-trailing": append(bytes.Clone(plain), 1, 2, 3),
		"truncated": plain[:len(plain)-1], "header-only": plain[:batchHeaderSize], "bad-magic": badMagic, "bad-crc": badCRC,
		"none": codecs[0], "gzip": codecs[1], "snappy": codecs[2], "lz4": codecs[3], "zstd": codecs[4],
	} {
		write("FuzzParseBatchHeader", name, data)
		write("FuzzDecodeRecords", name, data)
	}
	// Inputs shaped for the record builder of FuzzDecodeRecords: record
	// count, base timestamp, then per record a timestamp choice, key,
	// value and headers (nil, empty or bytes), then the batch options.
	write("FuzzDecodeRecords", "records-nil-empty", []byte("\x03\x10\x20\x30\x40\x50\x60\x70\x80"+
		"\x00\x00\x01\x02"+"\x01\x0aab\x09xy\x03\x0ehdr\x00"+"\x03\xff\xff\xff\xff\xff\xff\xff\x7f\x01\x00\x00"+
		"\x04\x01\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00"))
	write("FuzzDecodeRecords", "records-zstd-headers", []byte("\x07\x00\x00\x00\x00\x00\x00\x00\x01"+
		strings.Repeat("\x02\x05\x11hello\x0dvalue\x02\x0ak1\x0av1\x09\x01", 8)+"\x04\xff\xff\xff\xff\xff\xff\xff\xff"))

	var three []byte
	for i := range 3 {
		b := batch(fuzzRecRecords(i), DefaultBatchOptions)
		setBaseOffset(b, int64(i*3))
		three = append(three, b...)
	}
	corruptMiddle := bytes.Clone(three)
	corruptMiddle[len(plain)+batchHeaderSize+3] ^= 0x40
	for name, data := range map[string][]byte{
		"empty": {}, "one": plain, "three": three, "three-zeros": append(bytes.Clone(three), make([]byte, 100)...),
		"three-torn": three[:len(three)-7], "three-garbage": append(bytes.Clone(three), "garbage that is long enough to hold a batch header, or nearly so"...),
		"corrupt-middle": corruptMiddle, "codecs": bytes.Join(codecs, nil),
	} {
		write("FuzzSplitBatches", name, data)
	}

	// Recovery: the index files a real log has, to mutate.
	dir := t.TempDir()
	fuzzWriteRecLog(t, dir, 12, 0)
	seg, _ := fuzzActiveSegment(t, filepath.Join(dir, topicsDir, "f", "0"))
	stem := strings.TrimSuffix(seg, logSuffix)
	realIndex, err := os.ReadFile(stem + indexSuffix)
	if err != nil {
		t.Fatal(err)
	}
	realTime, err := os.ReadFile(stem + timeIndexSuffix)
	if err != nil {
		t.Fatal(err)
	}
	tornBatch := batch(fuzzRecRecords(30), DefaultBatchOptions)
	nextBatch := bytes.Clone(tornBatch) // fixed up to the next offset by the harness
	tornBatch = tornBatch[:len(tornBatch)/2]
	type recSeed struct {
		n, flags               uint8
		tail, index, timeindex []byte
	}
	for name, s := range map[string]recSeed{
		"clean":                {5, 0, nil, nil, nil},
		"clean-prealloc":       {5, fuzzRecPrealloc, nil, nil, nil},
		"empty-log-garbage":    {0, fuzzRecPrealloc, []byte("garbage"), nil, nil},
		"torn-batch":           {9, fuzzRecPrealloc, tornBatch, nil, nil},
		"torn-batch-truncated": {9, fuzzRecTruncate, tornBatch, nil, nil},
		"torn-small-segments":  {20, fuzzRecSmall | fuzzRecPrealloc, tornBatch, nil, nil},
		"next-batch-fixed":     {7, fuzzRecFixTail, nextBatch, nil, nil},
		"two-batches-fixed":    {7, fuzzRecFixTail | fuzzRecTruncate, append(bytes.Clone(nextBatch), nextBatch...), nil, nil},
		"zeros-then-batch":     {7, fuzzRecFixTail | fuzzRecZerosBetween | fuzzRecPrealloc, nextBatch, nil, nil},
		"header-garbage":       {3, 0, append(bytes.Clone(plain[:batchHeaderSize]), 0xde, 0xad), nil, nil},
		"real-indexes":         {12, fuzzRecIndex | fuzzRecTimeIndex, nil, realIndex, realTime},
		"real-indexes-torn":    {12, fuzzRecIndex | fuzzRecTimeIndex | fuzzRecPrealloc, tornBatch, realIndex, realTime},
		"index-garbage":        {12, fuzzRecIndex, nil, []byte("\x00\x00\x00\x05\x00\x00\x01\x00\xff\xff"), nil},
		"index-appended":       {12, fuzzRecIndex | fuzzRecTimeIndex | fuzzRecAppendIndex, nil, []byte("\x00\x00\x10\x00\x00\x00\x20\x00"), []byte("\x7f\xff\xff\xff\xff\xff\xff\xff\x00\x00\x00\x01")},
		"timeindex-garbage":    {12, fuzzRecTimeIndex, nil, nil, []byte("\x00\x00\x01\x8b\xcf\xe5\x68\x00\x00\x00\x00\x02")},
		"small-index-garbage":  {20, fuzzRecSmall | fuzzRecIndex | fuzzRecTimeIndex, []byte{1, 2, 3}, realIndex[:min(len(realIndex), 16)], realTime},
	} {
		write("FuzzRecovery", name, s.n, s.flags, s.tail, s.index, s.timeindex)
	}
}
