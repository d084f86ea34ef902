// Package log is Spool's storage engine: a Kafka-style partitioned commit log
// on local disk.
//
// # Layout
//
//	DATA/meta.db                                   bbolt: topic configs, committed offsets, cursors
//	DATA/topics/<topic>/<partition>/<base>.log      record batches, <base> = 20-digit base offset
//	DATA/topics/<topic>/<partition>/<base>.index    sparse offset index (cache)
//	DATA/topics/<topic>/<partition>/<base>.timeindex time index (cache)
//
// # Segment files (.log)
//
// A segment is a sequence of Kafka RecordBatch v2 batches, stored as the
// bytes a Kafka producer sends: only the base offset and the partition
// leader epoch (which the CRC does not cover) are rewritten at append (and,
// for LogAppendTime topics, the max timestamp, the timestamp-type bit and
// therefore the CRC). Batches Spool encodes itself (AppendRecords,
// AppendOwnAsync) may be merged with their neighbours of the same flush
// into one batch, records and offsets unchanged (merge.go). All integers
// are big-endian.
//
//	offset size field
//	0      8    base offset             first offset in the batch (rewritten at append)
//	8      4    batch length            bytes that follow this field (total size - 12)
//	12     4    partition leader epoch  set to 0 at append (single node)
//	16     1    magic                   2
//	17     4    crc                     CRC-32C (Castagnoli) of bytes 21..end
//	21     2    attributes              bits 0-2 codec (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd),
//	                                    bit 3 timestamp type (1 = LogAppendTime),
//	                                    bit 4 transactional, bit 5 control
//	23     4    last offset delta       offset of the last record minus base offset
//	27     8    base timestamp          ms since the epoch
//	35     8    max timestamp           ms since the epoch
//	43     8    producer id             -1 when not idempotent
//	51     2    producer epoch
//	53     4    base sequence
//	57     4    record count
//	61     ...  records                 compressed as a whole when the codec is not none
//
// Each record is: length (varint), attributes (int8), timestamp delta
// (varlong), offset delta (varint), key length (varint, -1 = null), key,
// value length (varint, -1 = null, a tombstone), value, header count
// (varint), then per header key length, key, value length, value.
//
// The active segment may be preallocated: zero-filled ahead of the write
// position so that synced appends overwrite allocated blocks. A batch
// length of zero therefore marks the end of the data. Sealed segments are
// trimmed to their data.
//
// The active segment may also be a recycled file: a segment retention
// deleted, renamed to <20-digit offset after its last batch>.spare and later
// to the new segment's name (recycle.go). Its old batches follow the data.
// While they do, every write is followed by an end mark: 17 bytes, a base
// offset of 0x53504f4f4c454e44 ("SPOOLEND"), a zero length and a zero
// magic. Before the first write, the data ends at the first batch whose
// offsets all lie below the segment's base offset: a spare only becomes a
// segment whose base is at or past the offset in its name.
//
// # Index files
//
// Both indexes are caches, rebuilt from the segment when missing or invalid.
// Entries are fixed width and relative to the segment's base offset:
//
//	.index      8 bytes per entry: relative offset (uint32), file position (uint32)
//	            one entry per index interval bytes of log, pointing at a batch start
//	.timeindex 12 bytes per entry: max timestamp so far (int64), relative offset (uint32)
//	            appended when the max timestamp grows; the last entry of a sealed
//	            segment holds its largest timestamp (used by time retention)
//
// # Durability
//
// Appends are queued and written by one flusher per partition; with sync
// "always" the flusher fdatasyncs after each write and every append queued in
// that cycle is acknowledged by the one fsync (group commit). Readers only
// see data up to the last acknowledged batch. A failed fsync is sticky: the
// partition refuses appends until it is recovered from disk.
//
// On open, only the tail of the active segment is scanned (from the last
// trustworthy index entry): every batch's length and CRC are checked, and the
// file is truncated after the last whole batch, like Kafka does for segments
// after its recovery point. Damage found anywhere else is a *CorruptionError
// naming topic, partition, segment and byte position; Repair salvages the
// whole batches around it.
package log
