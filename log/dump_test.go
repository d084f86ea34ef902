package log

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// Zeros where a batch should start end the data only when nothing but
// zeros follows them: with whole batches after them, they are a zeroed
// sector, and Dump stops there with a *CorruptionError.
func TestDumpZeroedBatchesInSealedSegment(t *testing.T) {
	ts0 := time.Now().Add(-time.Hour).UnixMilli()
	cfg := smallSegmentsConfig()
	cfg.SegmentBytes = 16 << 10
	_, partDir := buildClosedLog(t, "t", cfg, 400, appendTimestamped(t, ts0))
	segs := atLeastThreeSegments(t, partDir)
	batches, _, size := scanSegmentFile(t, segs[1])
	b := batches[len(batches)/2]
	if b.pos+4096 >= size {
		t.Fatalf("setup: segment of %d bytes", size)
	}
	patchFile(t, segs[1], b.pos, make([]byte, 4096))
	var out bytes.Buffer
	err := Dump(&out, segs[1], false)
	var ce *CorruptionError
	if !errors.As(err, &ce) || ce.Position != b.pos {
		last := out.String()
		if i := strings.LastIndex(strings.TrimSuffix(last, "\n"), "\n"); i >= 0 {
			last = last[i+1:]
		}
		t.Errorf("Dump of a segment with 4096 zeroed bytes at %d, whole batches after them: err %v, want a *CorruptionError at %d; it printed %q", b.pos, err, b.pos, last)
	}
	if ce != nil && (ce.Topic != "t" || ce.Partition != 0) {
		t.Errorf("the error names topic %q partition %d, want \"t\" 0", ce.Topic, ce.Partition)
	}
}
