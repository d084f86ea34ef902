package log

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Dump prints the batches of a segment file, or of every segment of a
// partition directory, in the format of Kafka's kafka-dump-log; with
// records it prints every record too (keys and values quoted). It stops at
// the first damaged batch with a *CorruptionError, naming the topic and
// partition when path lies in a data directory (see PartitionOf). Zeros
// end the data only when nothing but zeros follows them; a recycled
// segment file's old content ends it too (recycle.go).
func Dump(w io.Writer, path string, records bool) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return dumpSegment(w, path, records)
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return err
	}
	n := 0
	for _, e := range entries {
		if _, ok := parseSegmentName(e.Name()); ok {
			if err := dumpSegment(w, filepath.Join(path, e.Name()), records); err != nil {
				return err
			}
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("%s holds no segment files (*.log); give a partition directory such as DATA/topics/<topic>/0 or a .log file", path)
	}
	return nil
}

func dumpSegment(w io.Writer, path string, records bool) error {
	f, r, size, err := openSegmentFile(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprintf(w, "Dumping %s\n", path)
	base, named := parseSegmentName(filepath.Base(path))
	for pos := int64(0); pos < size; {
		h, b, err := r.batch(pos)
		if errors.Is(err, errEndOfData) {
			if zeroFrom(r, pos, size) {
				fmt.Fprintf(w, "end of data at position %d (%d preallocated bytes follow)\n", pos, size-pos)
				return nil
			}
			if endMarkAt(r, pos) {
				fmt.Fprintf(w, "end of data at position %d (%d bytes of a recycled segment file follow)\n", pos, size-pos)
				return nil
			}
			// Zeros where a batch should start, with data after them: a
			// zeroed sector, not the end (as Verify sees it).
			err = fmt.Errorf("zeroed bytes where a batch should start, with data after them: %w", err)
		}
		if err != nil {
			return dumpCorruption(path, pos, err)
		}
		if named && pos == 0 && h.LastOffset() < base {
			fmt.Fprintf(w, "end of data at position %d (%d bytes of a recycled segment file follow)\n", pos, size-pos)
			return nil
		}
		tsType := "CreateTime"
		if h.LogAppendTime() {
			tsType = "LogAppendTime"
		}
		lastSeq := int32(-1)
		if h.BaseSequence >= 0 {
			lastSeq = h.BaseSequence + h.LastOffsetDelta
		}
		fmt.Fprintf(w, "baseOffset: %d lastOffset: %d count: %d baseSequence: %d lastSequence: %d producerId: %d producerEpoch: %d partitionLeaderEpoch: %d isTransactional: %t isControl: %t position: %d %s: %d size: %d magic: %d compresscodec: %s crc: %d isvalid: true\n",
			h.BaseOffset, h.LastOffset(), h.NumRecords, h.BaseSequence, lastSeq, h.ProducerID, h.ProducerEpoch,
			h.PartitionLeaderEpoch, h.Transactional(), h.Control(), pos, tsType, h.MaxTimestamp, h.Size(), h.Magic, h.Codec(), h.CRC)
		marker := false
		if records && h.Control() {
			// A transaction marker, as kafka-dump-log shows it (another
			// control record is shown as a record).
			if commit, coordEpoch, err := DecodeMarker(b); err == nil {
				typ := "ABORT"
				if commit {
					typ = "COMMIT"
				}
				fmt.Fprintf(w, "| offset: %d %s: %d keySize: 4 valueSize: 6 endTxnMarker: %s coordinatorEpoch: %d\n",
					h.BaseOffset, tsType, h.BaseTimestamp, typ, coordEpoch)
				marker = true
			}
		}
		if records && !marker {
			_, recs, err := DecodeRecords(b)
			if err != nil {
				return dumpCorruption(path, pos, err)
			}
			for _, rec := range recs {
				keys := make([]string, len(rec.Headers))
				for i, hd := range rec.Headers {
					keys[i] = hd.Key
				}
				fmt.Fprintf(w, "| offset: %d %s: %d keySize: %d valueSize: %d headerKeys: [%s] key: %s payload: %s\n",
					rec.Offset, tsType, rec.Timestamp, sizeOf(rec.Key), sizeOf(rec.Value), strings.Join(keys, ","), quote(rec.Key), quote(rec.Value))
			}
		}
		pos += int64(h.Size())
	}
	return nil
}

// dumpCorruption reports damage at pos in the segment file path, naming
// its topic and partition when the path lies in a data directory.
func dumpCorruption(path string, pos int64, err error) error {
	ce := &CorruptionError{Segment: path, Position: pos, Err: err}
	if _, topic, id, ok := PartitionOf(filepath.Dir(path)); ok {
		ce.Topic, ce.Partition = topic, id
	}
	return ce
}

// PartitionOf returns the data directory, topic and partition of a
// partition directory DATA/topics/<topic>/<partition>; ok is false when
// dir does not lie so (a segment copied elsewhere, say).
func PartitionOf(dir string) (data, topic string, partition int32, ok bool) {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	topicDir := filepath.Dir(dir)
	topics := filepath.Dir(topicDir)
	id, err := strconv.ParseInt(filepath.Base(dir), 10, 32)
	if err != nil || id < 0 || filepath.Base(topics) != topicsDir {
		return "", "", 0, false
	}
	return filepath.Dir(topics), filepath.Base(topicDir), int32(id), true
}

func sizeOf(b []byte) int {
	if b == nil {
		return -1
	}
	return len(b)
}

func quote(b []byte) string {
	if b == nil {
		return "null"
	}
	return strconv.Quote(string(b))
}
