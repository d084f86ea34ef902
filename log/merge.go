package log

// Merging: Spool's own appenders (MQTT ingest, HTTP produce, sensors, the
// bridge bringing records down) append one small batch per message. On
// disk each batch costs a 61-byte header, about a third of a small MQTT
// message, and readers pay for it again. So when the flusher takes a
// cycle, it rewrites each run of adjacent such batches as one batch: same
// offsets, same records, one header. Batches from Kafka producers are
// never touched (their CRC, producer id and sequence are the producer's).
//
// A merged batch is compressed with the topic's codec (compression,
// zstd by default): on an SD card every byte not written is wear saved,
// and a cycle's worth of records compresses far better than one message.

import (
	"encoding/binary"
	"hash/crc32"

	"github.com/twmb/franz-go/pkg/kbin"
)

// maxMergedBatch bounds a merged batch (and the topic's max_message_bytes
// does too), so that a reader's fetch of one batch stays small.
const maxMergedBatch = 1 << 20

// mergeable reports whether a batch with header h may be merged: records
// of its own, no producer id, no compression, CreateTime, not part of a
// transaction.
func mergeable(h BatchHeader) bool {
	return h.Attributes == 0 && h.ProducerID == -1 && h.NumRecords == h.LastOffsetDelta+1 && h.NumRecords > 0
}

// mergeCycle rewrites, into dst and dstMetas, the runs of two or more
// adjacent mergeable batches of buf (described by metas) as one batch
// each, and copies the other batches as they are. ok is false when there
// was nothing to merge: the caller writes buf as it is.
func mergeCycle(dst []byte, dstMetas []batchMeta, buf []byte, metas []batchMeta, limit int, codec Codec) ([]byte, []batchMeta, bool) {
	limit = min(limit, maxMergedBatch)
	if !anyRun(metas) {
		return dst, dstMetas, false
	}
	merged := false
	for i, pos := 0, 0; i < len(metas); {
		j, end := i, pos
		if metas[i].mergeable {
			for j < len(metas) && metas[j].mergeable && end+metas[j].size-pos <= limit {
				end += metas[j].size
				j++
			}
		}
		if j-i >= 2 {
			if out, m, ok := mergeRun(dst, buf[pos:end], metas[i:j], codec); ok {
				dst, dstMetas, merged = out, append(dstMetas, m), true
				i, pos = j, end
				continue
			}
		}
		// One batch, or a run that would not decode: as it is.
		if j <= i {
			j, end = i+1, pos+metas[i].size
		}
		dst = append(dst, buf[pos:end]...)
		dstMetas = append(dstMetas, metas[i:j]...)
		i, pos = j, end
	}
	return dst, dstMetas, merged
}

// anyRun reports whether two adjacent batches are mergeable.
func anyRun(metas []batchMeta) bool {
	for i := 1; i < len(metas); i++ {
		if metas[i].mergeable && metas[i-1].mergeable {
			return true
		}
	}
	return false
}

// mergeRun appends the batches of run (whole, adjacent, mergeable, with
// their base offsets assigned) to dst as one batch, and returns its meta.
// Each record keeps its offset and timestamp: only its deltas change,
// relative to the new batch's base. ok is false, and dst is unchanged, if
// a record does not decode.
func mergeRun(dst, run []byte, metas []batchMeta, codec Codec) ([]byte, batchMeta, bool) {
	start := len(dst)
	first := parseBatchHeader(run)
	base, baseTs := first.BaseOffset, first.BaseTimestamp
	m := batchMeta{base: base, last: metas[len(metas)-1].last, maxTs: first.MaxTimestamp}
	dst = append(dst, run[:batchHeaderSize]...)
	for _, bm := range metas {
		b := run[:bm.size]
		run = run[bm.size:]
		h := parseBatchHeader(b)
		body := b[batchHeaderSize:]
		for n := int32(0); n < h.NumRecords; n++ {
			var ok bool
			if dst, body, ok = rebaseRecord(dst, body, h.BaseOffset-base, h.BaseTimestamp-baseTs); !ok {
				return dst[:start], batchMeta{}, false
			}
		}
		if len(body) != 0 {
			return dst[:start], batchMeta{}, false
		}
		m.maxTs = max(m.maxTs, h.MaxTimestamp)
		m.records += h.NumRecords
	}
	dst = compressRun(dst, start, codec)
	b := dst[start:]
	be := binary.BigEndian
	be.PutUint32(b[batchLengthPos:], uint32(len(b)-batchLogOverhead))
	be.PutUint32(b[batchLastOffsetDeltaPos:], uint32(m.last-base))
	be.PutUint64(b[batchMaxTimestampPos:], uint64(m.maxTs))
	be.PutUint32(b[batchRecordCountPos:], uint32(m.records))
	be.PutUint32(b[batchCRCPos:], crc32.Checksum(b[batchAttributesPos:], crc32c))
	m.size = len(b)
	return dst, m, true
}

// rebaseRecord copies the first record of body to dst with its offset
// and timestamp deltas moved by offShift and tsShift (the distance from
// its old batch's base to the new one's), and returns the rest of body.
func rebaseRecord(dst, body []byte, offShift, tsShift int64) ([]byte, []byte, bool) {
	length, n := kbin.Varint(body)
	if n <= 0 || length < 1 || int(length) > len(body)-n {
		return dst, body, false
	}
	rec, rest := body[n:n+int(length)], body[n+int(length):]
	attrs, fields := rec[0], rec[1:]
	tsDelta, n1 := kbin.Varlong(fields)
	if n1 <= 0 {
		return dst, body, false
	}
	offDelta, n2 := kbin.Varint(fields[n1:])
	if n2 <= 0 {
		return dst, body, false
	}
	tail := fields[n1+n2:] // key, value, headers: unchanged
	newTs, newOff := tsDelta+tsShift, int64(offDelta)+offShift
	if newOff < 0 || newOff > 1<<31-1 {
		return dst, body, false
	}
	size := 1 + varlongLen(newTs) + kbin.VarintLen(int32(newOff)) + len(tail)
	dst = kbin.AppendVarint(dst, int32(size))
	dst = append(dst, attrs)
	dst = kbin.AppendVarlong(dst, newTs)
	dst = kbin.AppendVarint(dst, int32(newOff))
	dst = append(dst, tail...)
	return dst, rest, true
}
