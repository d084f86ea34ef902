package log

import "encoding/binary"

// Index entry sizes are part of the on-disk format (see the package doc).
const (
	offsetEntrySize = 8
	timeEntrySize   = 12
)

// offsetEntry maps a batch's base offset, relative to the segment base, to
// its byte position in the segment.
type offsetEntry struct{ rel, pos uint32 }

// timeEntry records that the segment's max timestamp reached ts at the
// batch with relative base offset rel.
type timeEntry struct {
	ts  int64
	rel uint32
}

func appendOffsetEntry(dst []byte, e offsetEntry) []byte {
	dst = binary.BigEndian.AppendUint32(dst, e.rel)
	return binary.BigEndian.AppendUint32(dst, e.pos)
}

func appendTimeEntry(dst []byte, e timeEntry) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.ts))
	return binary.BigEndian.AppendUint32(dst, e.rel)
}

// decodeOffsetIndex returns the longest valid prefix of an offset index
// file and whether the whole file was valid. Valid entries strictly grow in
// both fields and point inside the segment's data (size bytes).
func decodeOffsetIndex(b []byte, size int64) ([]offsetEntry, bool) {
	ok := len(b)%offsetEntrySize == 0
	n := len(b) / offsetEntrySize
	entries := make([]offsetEntry, 0, n)
	for i := range n {
		e := offsetEntry{
			rel: binary.BigEndian.Uint32(b[i*offsetEntrySize:]),
			pos: binary.BigEndian.Uint32(b[i*offsetEntrySize+4:]),
		}
		if int64(e.pos) >= size || (len(entries) > 0 && (e.rel <= entries[len(entries)-1].rel || e.pos <= entries[len(entries)-1].pos)) {
			return entries, false
		}
		entries = append(entries, e)
	}
	return entries, ok
}

// decodeTimeIndex returns the longest valid prefix of a time index file
// and whether the whole file was valid. Valid entries never decrease in
// either field, and their offsets lie below maxRel.
func decodeTimeIndex(b []byte, maxRel uint32) ([]timeEntry, bool) {
	ok := len(b)%timeEntrySize == 0
	n := len(b) / timeEntrySize
	entries := make([]timeEntry, 0, n)
	for i := range n {
		e := timeEntry{
			ts:  int64(binary.BigEndian.Uint64(b[i*timeEntrySize:])),
			rel: binary.BigEndian.Uint32(b[i*timeEntrySize+8:]),
		}
		if e.rel > maxRel || (len(entries) > 0 && (e.ts < entries[len(entries)-1].ts || e.rel < entries[len(entries)-1].rel)) {
			return entries, false
		}
		entries = append(entries, e)
	}
	return entries, ok
}
