package log

import (
	"fmt"
	"testing"
)

// DataBytes counts the batches appended, not the active segment's
// preallocation nor anything but whole batches, across a roll.
func TestDataBytes(t *testing.T) {
	cfg := testConfig()
	cfg.Preallocate = true
	cfg.SegmentBytes, cfg.MaxMessageBytes = 4096, 1024
	r := newTxnRig(t, cfg)
	var want int64
	for i := range 100 {
		b, err := AppendBatch(nil, []Record{{Timestamp: r.ts(), Value: []byte(fmt.Sprintf("value-%03d", i))}}, DefaultBatchOptions)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.p.Append(b); err != nil {
			t.Fatal(err)
		}
		want += int64(len(b))
	}
	if got := r.p.DataBytes(); got != want {
		t.Errorf("DataBytes %d, want %d (segment files: %d bytes)", got, want, r.p.Size())
	}
	r.p.segMu.RLock()
	segs := len(r.p.segments)
	r.p.segMu.RUnlock()
	if segs < 2 || r.p.Size() <= want {
		t.Errorf("%d segments, %d bytes of segment files: the test wants a roll and a preallocated active segment", segs, r.p.Size())
	}
}
