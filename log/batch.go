package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Byte positions of the RecordBatch v2 header fields. They are part of the
// on-disk format (see the package doc).
const (
	batchBaseOffsetPos      = 0
	batchLengthPos          = 8
	batchLeaderEpochPos     = 12
	batchMagicPos           = 16
	batchCRCPos             = 17
	batchAttributesPos      = 21
	batchLastOffsetDeltaPos = 23
	batchBaseTimestampPos   = 27
	batchMaxTimestampPos    = 35
	batchProducerIDPos      = 43
	batchProducerEpochPos   = 51
	batchBaseSequencePos    = 53
	batchRecordCountPos     = 57
	batchHeaderSize         = 61

	// batchLogOverhead is the part of the header not counted by the
	// length field (base offset and length).
	batchLogOverhead = 12
	batchMagic       = 2

	attrCodecMask     = 0x07
	attrLogAppendTime = 0x08
	attrTransactional = 0x10
	attrControl       = 0x20
)

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// BatchHeader is the fixed header of a RecordBatch v2.
type BatchHeader struct {
	BaseOffset           int64
	Length               int32
	PartitionLeaderEpoch int32
	Magic                int8
	CRC                  uint32
	Attributes           int16
	LastOffsetDelta      int32
	BaseTimestamp        int64
	MaxTimestamp         int64
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
	NumRecords           int32
}

// Size is the whole batch's size in bytes.
func (h BatchHeader) Size() int { return batchLogOverhead + int(h.Length) }

// LastOffset is the offset of the batch's last record.
func (h BatchHeader) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// Codec is the batch's compression codec.
func (h BatchHeader) Codec() Codec { return Codec(h.Attributes & attrCodecMask) }

// LogAppendTime reports whether the timestamps are the broker's.
func (h BatchHeader) LogAppendTime() bool { return h.Attributes&attrLogAppendTime != 0 }

// Transactional reports the transactional attribute.
func (h BatchHeader) Transactional() bool { return h.Attributes&attrTransactional != 0 }

// Control reports whether this is a control batch (transaction marker).
func (h BatchHeader) Control() bool { return h.Attributes&attrControl != 0 }

// Errors describing a malformed batch. They are returned wrapped in a
// *BatchError (for appended input) or a *CorruptionError (for stored data).
var (
	ErrBatchTruncated = errors.New("batch truncated")
	ErrBatchLength    = errors.New("bad batch length")
	ErrBatchMagic     = errors.New("unsupported batch magic")
	ErrBatchCRC       = errors.New("batch CRC mismatch")
	ErrBatchRecords   = errors.New("bad record count")
)

// parseBatchHeader decodes the header at the start of b without checking
// the CRC. b must hold at least batchHeaderSize bytes.
func parseBatchHeader(b []byte) BatchHeader {
	be := binary.BigEndian
	return BatchHeader{
		BaseOffset:           int64(be.Uint64(b[batchBaseOffsetPos:])),
		Length:               int32(be.Uint32(b[batchLengthPos:])),
		PartitionLeaderEpoch: int32(be.Uint32(b[batchLeaderEpochPos:])),
		Magic:                int8(b[batchMagicPos]),
		CRC:                  be.Uint32(b[batchCRCPos:]),
		Attributes:           int16(be.Uint16(b[batchAttributesPos:])),
		LastOffsetDelta:      int32(be.Uint32(b[batchLastOffsetDeltaPos:])),
		BaseTimestamp:        int64(be.Uint64(b[batchBaseTimestampPos:])),
		MaxTimestamp:         int64(be.Uint64(b[batchMaxTimestampPos:])),
		ProducerID:           int64(be.Uint64(b[batchProducerIDPos:])),
		ProducerEpoch:        int16(be.Uint16(b[batchProducerEpochPos:])),
		BaseSequence:         int32(be.Uint32(b[batchBaseSequencePos:])),
		NumRecords:           int32(be.Uint32(b[batchRecordCountPos:])),
	}
}

// ParseBatchHeader decodes and checks the batch at the start of b: enough
// bytes for the header and the stated length, magic 2, a sane record count,
// and the CRC. It does not look inside the records.
func ParseBatchHeader(b []byte) (BatchHeader, error) {
	if len(b) < batchHeaderSize {
		return BatchHeader{}, ErrBatchTruncated
	}
	h := parseBatchHeader(b)
	if h.Length < batchHeaderSize-batchLogOverhead {
		return h, fmt.Errorf("%w: %d", ErrBatchLength, h.Length)
	}
	if h.Magic != batchMagic {
		return h, fmt.Errorf("%w: %d", ErrBatchMagic, h.Magic)
	}
	if h.Size() > len(b) {
		return h, fmt.Errorf("%w: length %d but %d bytes", ErrBatchTruncated, h.Size(), len(b))
	}
	if got := crc32.Checksum(b[batchAttributesPos:h.Size()], crc32c); got != h.CRC {
		return h, fmt.Errorf("%w: stored %08x, computed %08x", ErrBatchCRC, h.CRC, got)
	}
	if h.NumRecords < 0 || h.LastOffsetDelta < 0 || (h.NumRecords > 0 && int64(h.NumRecords) > int64(h.LastOffsetDelta)+1) {
		return h, fmt.Errorf("%w: %d records, last offset delta %d", ErrBatchRecords, h.NumRecords, h.LastOffsetDelta)
	}
	return h, nil
}

// setBaseOffset rewrites the base offset in place. The CRC does not cover it.
func setBaseOffset(b []byte, base int64) {
	binary.BigEndian.PutUint64(b[batchBaseOffsetPos:], uint64(base))
}

// setLeaderEpoch stamps the partition leader epoch in place, as a Kafka
// leader does on append: consumers commit it and check it against the
// epoch Metadata gives (Spool's only one, 0). The CRC does not cover it.
func setLeaderEpoch(b []byte, epoch int32) {
	binary.BigEndian.PutUint32(b[batchLeaderEpochPos:], uint32(epoch))
}

// setLogAppendTime marks the batch's timestamps as the broker's append time
// (Kafka sets the max timestamp and the timestamp-type bit) and recomputes
// the CRC, which covers both.
func setLogAppendTime(b []byte, ms int64) {
	be := binary.BigEndian
	attrs := be.Uint16(b[batchAttributesPos:]) | attrLogAppendTime
	be.PutUint16(b[batchAttributesPos:], attrs)
	be.PutUint64(b[batchMaxTimestampPos:], uint64(ms))
	be.PutUint32(b[batchCRCPos:], crc32.Checksum(b[batchAttributesPos:], crc32c))
}

// BatchError says why an appended batch was refused.
type BatchError struct{ Err error }

func (e *BatchError) Error() string { return "invalid record batch: " + e.Err.Error() }
func (e *BatchError) Unwrap() error { return e.Err }

// SplitBatches calls fn for each whole batch at the start of b, in order,
// checking each one's header and CRC. It stops at the first batch that is
// incomplete (a partial batch at the end of a fetch response is normal) and
// returns an error for a batch that is complete but invalid.
func SplitBatches(b []byte, fn func(h BatchHeader, batch []byte) error) error {
	for len(b) >= batchHeaderSize {
		h := parseBatchHeader(b)
		if h.Length <= 0 {
			return nil // zero-filled preallocation: end of data
		}
		if h.Size() > len(b) {
			return nil
		}
		h, err := ParseBatchHeader(b)
		if err != nil {
			return err
		}
		if err := fn(h, b[:h.Size()]); err != nil {
			return err
		}
		b = b[h.Size():]
	}
	return nil
}
