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
// the first damaged batch with a positional error.
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
	for pos := int64(0); pos < size; {
		h, b, err := r.batch(pos)
		if errors.Is(err, errEndOfData) {
			fmt.Fprintf(w, "end of data at position %d (%d preallocated bytes follow)\n", pos, size-pos)
			return nil
		}
		if err != nil {
			return &CorruptionError{Segment: path, Position: pos, Err: err}
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
		if records {
			_, recs, err := DecodeRecords(b)
			if err != nil {
				return &CorruptionError{Segment: path, Position: pos, Err: err}
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
