package log

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestDeleteRecords: the log start moves to the asked offset, inside a
// segment too; sealed segments wholly below it go; reads below it are out
// of range; the start survives a reopen; it never moves back and never
// past the high watermark; records a pin still needed are counted.
func TestDeleteRecords(t *testing.T) {
	r := newHKRig(t, 0)
	tp := r.create("del", hkConfig())
	p := hkPart(t, tp, 0)
	hkFill(t, p, 23, hkAt(hkT0)) // sealed [0,5) [5,10) [10,15) [15,20), active [20,23)
	p.Pin("bridge", 4)

	start, err := p.DeleteRecords(12)
	if err != nil || start != 12 {
		t.Fatalf("DeleteRecords(12) = %d, %v", start, err)
	}
	check := func(start int64, bases []int64) {
		t.Helper()
		if got := p.LogStartOffset(); got != start {
			t.Errorf("log start %d, want %d", got, start)
		}
		if got := hkSegBases(t, p); !slices.Equal(got, bases) {
			t.Errorf("segments %v, want %v", got, bases)
		}
		if _, err := p.Read(start-1, 1<<20); !errors.Is(err, ErrOffsetOutOfRange) {
			t.Errorf("read at %d below the log start: %v", start-1, err)
		}
		recs := readAll(t, p)
		var offs []int64
		for _, rec := range recs {
			if rec.Offset >= start {
				offs = append(offs, rec.Offset)
			}
		}
		if !slices.Equal(offs, hkRange(start, 23)) {
			t.Errorf("readable offsets %v, want %v", offs, hkRange(start, 23))
		}
	}
	check(12, []int64{10, 15, 20})
	// The pin at 4 had not read offsets 4..11: 4..9 in the deleted segments,
	// 10 and 11 in the kept one.
	if got := tp.DroppedRecords(); got != 8 {
		t.Errorf("%d records counted as dropped past the pin, want 8", got)
	}

	if start, err := p.DeleteRecords(3); err != nil || start != 12 {
		t.Errorf("DeleteRecords(3) after 12 = %d, %v: the start must not move back", start, err)
	}
	if _, err := p.DeleteRecords(24); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Errorf("DeleteRecords past the high watermark: %v", err)
	}

	r.reopen()
	tp, _ = r.l.Topic("del")
	p = hkPart(t, tp, 0)
	check(12, []int64{10, 15, 20})

	// -1 is the high watermark: everything goes but the active segment.
	if start, err := p.DeleteRecords(-1); err != nil || start != 23 {
		t.Fatalf("DeleteRecords(-1) = %d, %v", start, err)
	}
	if got := hkSegBases(t, p); !slices.Equal(got, []int64{20}) {
		t.Errorf("segments %v, want [20]", got)
	}
	res, err := p.AppendRecords(hkSized(t, hkBatch, hkMs(hkT0), hkKey(23)), DefaultBatchOptions)
	if err != nil || res.BaseOffset != 23 {
		t.Fatalf("append after deleting everything: %+v %v", res, err)
	}
}

// TestDeleteRecordsBadStartFile: an unreadable stored start is ignored
// (the segments' own start is the floor), never an open failure.
func TestDeleteRecordsBadStartFile(t *testing.T) {
	r := newHKRig(t, 0)
	tp := r.create("del", hkConfig())
	p := hkPart(t, tp, 0)
	hkFill(t, p, 12, hkAt(hkT0))
	if _, err := p.DeleteRecords(7); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p.dir, logStartFile), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.reopen()
	tp, _ = r.l.Topic("del")
	if got := hkPart(t, tp, 0).LogStartOffset(); got != 5 {
		t.Errorf("log start %d with a damaged file, want the first segment's base 5", got)
	}
}
