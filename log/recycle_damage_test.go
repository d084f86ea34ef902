package log

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"math/bits"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Regression (found in review): the rule that a valid batch whose offsets all lie below the
// segment's base is a recycled file's old content, the end of the data
// recovery.go "case h.LastOffset() < base", verify.go
// "if active && h.LastOffset() < base"), applies to every
// active segment at every position, so it also swallows plain damage. The
// base offset is the one header field the CRC does not cover; one bit
// cleared in the last acknowledged batch's base offset makes it such a
// batch. Before the feature Verify reported it (offsets out of order) and
// Open logged the truncation ("truncated torn tail"); now Verify calls the
// directory clean and Open cuts the acknowledged batch off without a word.
// The segment here was never recycled, and in a recycled one the writer
// puts the end mark after every write, so an old batch can only be met
// where nothing was written yet (position 0) or right after a write a
// crash cut before its end mark (never acknowledged).
//
// Fixed: a batch below the base ends the data only at position 0 (before
// the first write); elsewhere it is reported as before (a torn tail when
// nothing valid follows).
func TestDamagedBaseOffsetTakenForRecycledContent(t *testing.T) {
	e := newFaultEnv(t, faultConfig(true))
	for e.numSegments() < 3 {
		e.mustAppend(3, 100)
	}
	for range 5 {
		e.mustAppend(3, 100)
	}
	act := e.p.active()
	if err := e.l.Close(); err != nil {
		t.Fatal(err)
	}
	batches, _, _ := scanSegmentFile(t, act.path)
	last := batches[len(batches)-1]
	// Clear the highest set bit of its base offset: now it lies below the
	// segment's base.
	damaged := last.base &^ (1 << (63 - bits.LeadingZeros64(uint64(last.base))))
	if damaged+(last.last-last.base) >= act.base {
		t.Fatalf("damaged base %d not below the segment's base %d", damaged, act.base)
	}
	f, err := os.OpenFile(act.path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(damaged))
	if _, err := f.WriteAt(b[:], last.pos+batchBaseOffsetPos); err != nil {
		t.Fatal(err)
	}
	f.Close()

	probs, err := Verify(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	if !hasProblem(probs, ProblemOffsetOrder, act.path) && !hasProblem(probs, ProblemTornTail, act.path) {
		t.Errorf("Verify does not report the damaged base offset of acknowledged batch %d..%d (now %d) in %s: %v",
			last.base, last.last, damaged, filepath.Base(act.path), probs)
	}

	var logs bytes.Buffer
	l2 := openTestLog(t, e.dir, Options{Now: e.clock.Now, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	defer l2.Close()
	tp, err := l2.Topic(faultTopic)
	if err != nil {
		t.Fatal(err)
	}
	p2, _ := tp.Partition(0)
	if hw := p2.HighWatermark(); hw <= last.last && !strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("Open cut acknowledged offsets %d..%d off (high watermark %d) and logged nothing:\n%s", last.base, last.last, hw, logs.String())
	}
}
