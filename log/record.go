package log

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"sync"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Record is one record of a batch, decoded.
type Record struct {
	// Offset is set when decoding; it is ignored when encoding.
	Offset int64
	// Timestamp in milliseconds since the epoch.
	Timestamp int64
	// Key and Value may be nil. A nil Value is a tombstone for compaction.
	Key, Value []byte
	Headers    []Header
}

// Header is a record header. It is kmsg's own type, so that encoding a
// record hands its headers over without copying them.
type Header = kmsg.Header

// Codec is a batch compression codec; its values are the attribute bits.
type Codec int8

const (
	CodecNone   Codec = 0
	CodecGzip   Codec = 1
	CodecSnappy Codec = 2
	CodecLz4    Codec = 3
	CodecZstd   Codec = 4
)

var codecNames = [...]string{"none", "gzip", "snappy", "lz4", "zstd"}

func (c Codec) String() string {
	if c >= 0 && int(c) < len(codecNames) {
		return codecNames[c]
	}
	return fmt.Sprintf("codec(%d)", int8(c))
}

// MarshalText and UnmarshalText store a codec by name (topic configs in
// meta.db).
func (c Codec) MarshalText() ([]byte, error) {
	if c < 0 || int(c) >= len(codecNames) {
		return nil, fmt.Errorf("unknown compression codec %d", int8(c))
	}
	return []byte(codecNames[c]), nil
}

func (c *Codec) UnmarshalText(b []byte) error {
	v, err := ParseCodec(string(b))
	if err == nil {
		*c = v
	}
	return err
}

// ParseCodec parses a codec name as Kafka's compression.type spells it.
func ParseCodec(s string) (Codec, error) {
	for i, n := range codecNames {
		if n == s {
			return Codec(i), nil
		}
	}
	return 0, fmt.Errorf("unknown compression codec %q (none, gzip, snappy, lz4, zstd)", s)
}

// BatchOptions are the producer fields of a batch built by AppendBatch.
type BatchOptions struct {
	Codec         Codec
	ProducerID    int64 // -1 when not idempotent
	ProducerEpoch int16
	BaseSequence  int32
}

// DefaultBatchOptions is an uncompressed, non-idempotent batch.
var DefaultBatchOptions = BatchOptions{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}

// compressors are built once per codec: kgo's compressors pool their
// encoders (zstd with concurrency 1 and a 64 KiB window, fit for a small board).
var compressors struct {
	once sync.Once
	byID [5]kgo.Compressor
	err  error
}

func compressor(c Codec) (kgo.Compressor, error) {
	compressors.once.Do(func() {
		for id, codec := range []kgo.CompressionCodec{kgo.GzipCompression(), kgo.SnappyCompression(), kgo.Lz4Compression(), kgo.ZstdCompression()} {
			cmp, err := kgo.DefaultCompressor(codec)
			if err != nil {
				compressors.err = err
				return
			}
			compressors.byID[id+1] = cmp
		}
	})
	if compressors.err != nil {
		return nil, compressors.err
	}
	if c <= CodecNone || int(c) >= len(compressors.byID) {
		return nil, fmt.Errorf("unknown compression codec %d", c)
	}
	return compressors.byID[c], nil
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// AppendBatch encodes recs as one RecordBatch v2 and appends it to dst. The
// base offset is 0 (the log assigns it); offset deltas are 0..n-1; the base
// timestamp is the first record's.
func AppendBatch(dst []byte, recs []Record, opts BatchOptions) ([]byte, error) {
	if len(recs) == 0 {
		return dst, errors.New("a batch needs at least one record")
	}
	h := BatchHeader{
		Attributes:      int16(opts.Codec),
		LastOffsetDelta: int32(len(recs) - 1),
		BaseTimestamp:   recs[0].Timestamp,
		MaxTimestamp:    recs[0].Timestamp,
		ProducerID:      opts.ProducerID,
		ProducerEpoch:   opts.ProducerEpoch,
		BaseSequence:    opts.BaseSequence,
	}
	for i := range recs {
		h.MaxTimestamp = max(h.MaxTimestamp, recs[i].Timestamp)
	}
	return appendBatch(dst, h, recs, false)
}

// appendBatch encodes recs under header h: base offset, attributes, last
// offset delta, timestamps and producer fields come from h, each record's
// offset delta is its index, or with keepOffsets its Offset minus
// h.BaseOffset: compaction rewrites a batch with fewer records and the
// same offsets.
func appendBatch(dst []byte, h BatchHeader, recs []Record, keepOffsets bool) ([]byte, error) {
	start := len(dst)
	dst = append(dst, make([]byte, batchHeaderSize)...)
	codec := Codec(h.Attributes & attrCodecMask)

	body := dst
	if codec != CodecNone {
		raw := bufPool.Get().(*bytes.Buffer)
		raw.Reset()
		defer bufPool.Put(raw)
		body = raw.Bytes()
	}
	for i := range recs {
		delta := int32(i)
		if keepOffsets {
			delta = int32(recs[i].Offset - h.BaseOffset)
		}
		body = appendRecord(body, &recs[i], h.BaseTimestamp, delta)
	}
	if codec != CodecNone {
		cmp, err := compressor(codec)
		if err != nil {
			return dst[:start], err
		}
		out := bufPool.Get().(*bytes.Buffer)
		out.Reset()
		defer bufPool.Put(out)
		compressed, used := cmp.Compress(out, body)
		if int8(used) != int8(codec) {
			return dst[:start], fmt.Errorf("compress with %v failed", codec)
		}
		dst = append(dst, compressed...)
	} else {
		dst = body
	}

	b := dst[start:]
	be := binary.BigEndian
	be.PutUint64(b[batchBaseOffsetPos:], uint64(h.BaseOffset))
	be.PutUint32(b[batchLengthPos:], uint32(len(b)-batchLogOverhead))
	be.PutUint32(b[batchLeaderEpochPos:], uint32(h.PartitionLeaderEpoch))
	b[batchMagicPos] = batchMagic
	be.PutUint16(b[batchAttributesPos:], uint16(h.Attributes))
	be.PutUint32(b[batchLastOffsetDeltaPos:], uint32(h.LastOffsetDelta))
	be.PutUint64(b[batchBaseTimestampPos:], uint64(h.BaseTimestamp))
	be.PutUint64(b[batchMaxTimestampPos:], uint64(h.MaxTimestamp))
	be.PutUint64(b[batchProducerIDPos:], uint64(h.ProducerID))
	be.PutUint16(b[batchProducerEpochPos:], uint16(h.ProducerEpoch))
	be.PutUint32(b[batchBaseSequencePos:], uint32(h.BaseSequence))
	be.PutUint32(b[batchRecordCountPos:], uint32(len(recs)))
	be.PutUint32(b[batchCRCPos:], crc32.Checksum(b[batchAttributesPos:], crc32c))
	return dst, nil
}

// appendRecord encodes one record with kmsg, after computing the length
// prefix kmsg expects to be filled in.
func appendRecord(dst []byte, r *Record, baseTs int64, offsetDelta int32) []byte {
	kr := kmsg.Record{
		TimestampDelta64: r.Timestamp - baseTs,
		OffsetDelta:      offsetDelta,
		Key:              r.Key,
		Value:            r.Value,
	}
	kr.Headers = r.Headers
	n := 1 + varlongLen(kr.TimestampDelta64) + kbin.VarintLen(offsetDelta) +
		bytesLen(r.Key) + bytesLen(r.Value) + kbin.VarintLen(int32(len(r.Headers)))
	for _, h := range r.Headers {
		n += kbin.VarintLen(int32(len(h.Key))) + len(h.Key) + bytesLen(h.Value)
	}
	kr.Length = int32(n)
	return kr.AppendTo(dst)
}

func bytesLen(b []byte) int {
	if b == nil {
		return kbin.VarintLen(-1)
	}
	return kbin.VarintLen(int32(len(b))) + len(b)
}

func varlongLen(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	n := 1
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}

// DecodeRecords checks a stored or received batch and returns its header and
// records with absolute offsets and timestamps. Keys, values and header
// values alias the batch (or the decompressed copy).
func DecodeRecords(batch []byte) (BatchHeader, []Record, error) {
	h, err := ParseBatchHeader(batch)
	if err != nil {
		return h, nil, err
	}
	if h.Size() != len(batch) {
		return h, nil, fmt.Errorf("%w: %d trailing bytes", ErrBatchLength, len(batch)-h.Size())
	}
	body := batch[batchHeaderSize:]
	if h.Codec() != CodecNone {
		if h.Codec() > CodecZstd {
			return h, nil, fmt.Errorf("unknown compression codec %d", h.Codec())
		}
		body, err = decompress(h.Codec(), body)
		if err != nil {
			return h, nil, fmt.Errorf("decompress %v batch: %w", h.Codec(), err)
		}
	}
	// A record is at least 7 bytes; refuse counts the body cannot hold
	// before allocating for them.
	if int(h.NumRecords) > len(body)/7+1 {
		return h, nil, fmt.Errorf("%w: %d records in %d bytes", ErrBatchRecords, h.NumRecords, len(body))
	}
	recs := make([]Record, 0, h.NumRecords)
	for i := int32(0); i < h.NumRecords; i++ {
		length, n := kbin.Varint(body)
		if n <= 0 || length < 0 || int(length) > len(body)-n {
			return h, nil, fmt.Errorf("%w: record %d length", ErrBatchRecords, i)
		}
		var kr kmsg.Record
		if err := kr.ReadFrom(body[:n+int(length)]); err != nil {
			return h, nil, fmt.Errorf("%w: record %d: %v", ErrBatchRecords, i, err)
		}
		body = body[n+int(length):]
		if kr.OffsetDelta < 0 || kr.OffsetDelta > h.LastOffsetDelta {
			return h, nil, fmt.Errorf("%w: record %d offset delta %d outside the batch (last %d)", ErrBatchRecords, i, kr.OffsetDelta, h.LastOffsetDelta)
		}
		r := Record{
			Offset:    h.BaseOffset + int64(kr.OffsetDelta),
			Timestamp: h.BaseTimestamp + kr.TimestampDelta64,
			Key:       kr.Key,
			Value:     kr.Value,
		}
		if h.LogAppendTime() {
			r.Timestamp = h.MaxTimestamp
		}
		if len(kr.Headers) > 0 {
			r.Headers = kr.Headers
		}
		recs = append(recs, r)
	}
	if len(body) != 0 {
		return h, nil, fmt.Errorf("%w: %d bytes after the last record", ErrBatchRecords, len(body))
	}
	return h, recs, nil
}
