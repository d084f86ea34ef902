package log

import "testing"

// DeleteRecords that moves the log start into the middle of a kept segment
// removes the records between the old start and the new one; those at or
// after a pin were never read by the pinned reader and are counted, like
// any retention past a pin. Each removed record is counted exactly once,
// however many DeleteRecords calls remove it.
func TestDeleteRecordsCountsPinnedRecordsOfTheKeptSegment(t *testing.T) {
	r := newHKRig(t, 0)
	tp := r.create("del", hkConfig())
	p := hkPart(t, tp, 0)
	hkFill(t, p, 23, hkAt(hkT0)) // sealed [0,5) [5,10) [10,15) [15,20), active [20,23)
	p.Pin("bridge", 2)

	// Start moves to 4 inside the kept segment [0,5): offsets 2 and 3 are
	// gone for the pinned reader.
	if start, err := p.DeleteRecords(4); err != nil || start != 4 {
		t.Fatalf("DeleteRecords(4) = %d, %v", start, err)
	}
	if got := tp.DroppedRecords(); got != 2 {
		t.Errorf("after DeleteRecords(4) with a pin at 2: %d records counted as dropped, want 2 (offsets 2,3)", got)
	}

	// Start moves to 12: offsets 4..11 go too (segments [0,5) and [5,10)
	// as files, 10 and 11 inside the kept [10,15)). In all, 2..11 = 10.
	if start, err := p.DeleteRecords(12); err != nil || start != 12 {
		t.Fatalf("DeleteRecords(12) = %d, %v", start, err)
	}
	if got := tp.DroppedRecords(); got != 10 {
		t.Errorf("after DeleteRecords(12) with a pin at 2: %d records counted as dropped, want 10 (offsets 2..11, each once)", got)
	}
}

// recordsFrom, meeting an unreadable batch header, counts the offsets after
// the batches it read, never those it already counted (a garbage header's
// base offset must not restart the span at the pin).
func TestRecordsFromCountsOnceAcrossADamagedHeader(t *testing.T) {
	r := newHKRig(t, 0)
	tp := r.create("dmg", hkConfig())
	p := hkPart(t, tp, 0)
	hkFill(t, p, 12, hkAt(hkT0)) // sealed [0,5) [5,10), active [10,12)
	s := p.segments[0]
	ff := make([]byte, batchHeaderSize)
	for i := range ff {
		ff[i] = 0xff
	}
	if _, err := s.f.WriteAt(ff, 3*hkBatch); err != nil { // the batch at offset 3
		t.Fatal(err)
	}
	// Offsets 2, 3, 4 are at or after 2; at most 3 records can be there.
	if got := recordsFrom(s, 2); got > 3 {
		t.Errorf("recordsFrom(segment [0,5), 2) = %d with the header of offset 3 damaged, want at most 3", got)
	}
}
