package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The corruption table, in the style of prometheus tsdb/wlog's tests: each
// case damages the files of a closed partition in one way and states what
// must survive. The partition has several sealed segments and an active
// one, with a dense offset index (an entry per batch).
//
// Segments are 16 KiB rather than 8 so that a sealed segment has a 4 KiB
// page that is neither its first nor its last.

const corruptTopic = "corrupt"

func corruptConfig(prealloc bool) TopicConfig {
	cfg := DefaultTopicConfig()
	cfg.SegmentBytes = 16 << 10
	cfg.MaxMessageBytes = 4 << 10
	cfg.IndexIntervalBytes = 256
	cfg.Preallocate = prealloc
	return cfg
}

// corruptLog is a closed partition with known contents.
type corruptLog struct {
	dir     string // data directory
	partDir string
	clock   *testClock
	lg      *ledger
	segs    [][]diskBatch // batches of each segment file, oldest first
	paths   []string      // segment files
	all     []diskBatch
	hw      int64
	records int
}

func (c *corruptLog) active() []diskBatch { return c.segs[len(c.segs)-1] }
func (c *corruptLog) activePath() string  { return c.paths[len(c.paths)-1] }

func indexPathOf(logPath string) string {
	return strings.TrimSuffix(logPath, logSuffix) + indexSuffix
}

func timeIndexPathOf(logPath string) string {
	return strings.TrimSuffix(logPath, logSuffix) + timeIndexSuffix
}

// buildCorruptLog appends batches of 3 records until there are at least
// four sealed segments and 6000 bytes in the active one, closes the log and
// maps every batch on disk.
func buildCorruptLog(t *testing.T, prealloc bool) *corruptLog {
	t.Helper()
	c := &corruptLog{dir: t.TempDir(), clock: newTestClock(), lg: newLedger()}
	l := openTestLog(t, c.dir, Options{Now: c.clock.Now})
	tp, err := l.CreateTopic(corruptTopic, corruptConfig(prealloc))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := tp.Partition(0)
	c.partDir = p.dir
	for i := 0; ; i++ {
		p.segMu.RLock()
		n, size := len(p.segments), p.segments[len(p.segments)-1].size
		p.segMu.RUnlock()
		if n >= 5 && size >= 6000 {
			break
		}
		recs := c.lg.fresh(3, 60+(i%5)*20)
		res, err := p.AppendRecords(recs, DefaultBatchOptions)
		if err != nil {
			t.Fatal(err)
		}
		c.lg.ack(res, recs)
	}
	c.hw = p.HighWatermark()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	c.paths = segmentFiles(t, c.partDir)
	next := int64(0)
	for i, path := range c.paths {
		batches, end, size := scanSegmentFile(t, path)
		if i < len(c.paths)-1 && end != size {
			t.Fatalf("setup: sealed segment %s has %d bytes after its data", path, size-end)
		}
		for j := range batches {
			b := &batches[j]
			b.seg, b.sealedSeg = i, i < len(c.paths)-1
			if b.base != next {
				t.Fatalf("setup: batch at %s:%d has offset %d, want %d", path, b.pos, b.base, next)
			}
			next = b.last + 1
			c.records += b.records
		}
		c.segs = append(c.segs, batches)
		c.all = append(c.all, batches...)
	}
	if next != c.hw {
		t.Fatalf("setup: batches end at offset %d, high watermark %d", next, c.hw)
	}
	return c
}

func (c *corruptLog) open(t *testing.T) (*Log, *Partition) {
	t.Helper()
	l, err := Open(c.dir, Options{Now: c.clock.Now})
	if err != nil {
		var ce *CorruptionError
		if errors.As(err, &ce) && (ce.Topic != corruptTopic || ce.Partition != 0) {
			t.Errorf("Open's *CorruptionError names topic %q partition %d, want %q partition 0", ce.Topic, ce.Partition, corruptTopic)
		}
		t.Fatalf("open: %v", err)
	}
	tp, err := l.Topic(corruptTopic)
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	p, err := tp.Partition(0)
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	return l, p
}

// Damage helpers.

func patchFile(t *testing.T, path string, pos int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, pos); err != nil {
		t.Fatal(err)
	}
}

func flipByte(t *testing.T, path string, pos int64) {
	t.Helper()
	b := make([]byte, 1)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadAt(b, pos); err != nil {
		t.Fatal(err)
	}
	f.Close()
	patchFile(t, path, pos, []byte{b[0] ^ 0x5a})
}

func truncateTo(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func setLength(t *testing.T, path string, b diskBatch, length uint32) {
	t.Helper()
	patchFile(t, path, b.pos+batchLengthPos, binary.BigEndian.AppendUint32(nil, length))
}

// overlapping returns the batches of seg that overlap [from, to).
func overlapping(seg []diskBatch, from, to int64) []diskBatch {
	var out []diskBatch
	for _, b := range seg {
		if b.pos < to && b.pos+b.size > from {
			out = append(out, b)
		}
	}
	return out
}

// readIndexEntries decodes an offset index file.
func readIndexEntries(t *testing.T, path string) []offsetEntry {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []offsetEntry
	for i := 0; i+offsetEntrySize <= len(b); i += offsetEntrySize {
		out = append(out, offsetEntry{rel: binary.BigEndian.Uint32(b[i:]), pos: binary.BigEndian.Uint32(b[i+4:])})
	}
	return out
}

// wantProblem is a problem Verify must report.
type wantProblem struct {
	kinds []string // any of them
	path  string
	pos   int64 // -1: the whole file; -2: any position
}

// corruptWant says what must survive a case's damage.
type corruptWant struct {
	// lost are the batches that do not survive: cut off the active
	// segment (truncated) or unreadable in place with a *CorruptionError.
	lost      []diskBatch
	truncated bool
	// lostRecords is how many records the case loses, stated by the case
	// and checked against lost.
	lostRecords int
	// repairLost are the batches Repair may drop: those overlapping the
	// damage. Nil means lost.
	repairLost []diskBatch
	// gone are files that opening the log must remove.
	gone []string
	// checkTime: OffsetForTime must find every surviving batch.
	checkTime bool
	// verify is what Verify must report; verifyAny lets it report more or
	// nothing (a repaired-on-open index of the active segment, say).
	verify    []wantProblem
	verifyAny bool
}

type corruptCase struct {
	name   string
	damage func(t *testing.T, c *corruptLog) corruptWant
}

var corruptCases = []corruptCase{
	{"no damage", func(t *testing.T, c *corruptLog) corruptWant {
		return corruptWant{checkTime: true}
	}},
	{"torn tail: active segment cut in the middle of its last batch", func(t *testing.T, c *corruptLog) corruptWant {
		last := c.active()[len(c.active())-1]
		truncateTo(t, c.activePath(), last.pos+last.size/2)
		return corruptWant{lost: []diskBatch{last}, truncated: true, lostRecords: 3, checkTime: true,
			verify: []wantProblem{{[]string{ProblemTornTail}, c.activePath(), last.pos}}}
	}},
	{"torn tail inside the batch header", func(t *testing.T, c *corruptLog) corruptWant {
		last := c.active()[len(c.active())-1]
		truncateTo(t, c.activePath(), last.pos+30)
		return corruptWant{lost: []diskBatch{last}, truncated: true, lostRecords: 3, checkTime: true,
			verify: []wantProblem{{[]string{ProblemTornTail}, c.activePath(), last.pos}}}
	}},
	{"bad CRC in the last batch of the active segment", func(t *testing.T, c *corruptLog) corruptWant {
		last := c.active()[len(c.active())-1]
		flipByte(t, c.activePath(), last.pos+last.size-5)
		return corruptWant{lost: []diskBatch{last}, truncated: true, lostRecords: 3, checkTime: true,
			verify: []wantProblem{{[]string{ProblemTornTail, ProblemCorrupt}, c.activePath(), last.pos}}}
	}},
	{"bad CRC in a batch in the middle of a sealed segment", func(t *testing.T, c *corruptLog) corruptWant {
		seg := c.segs[1]
		mid := seg[len(seg)/2]
		flipByte(t, mid.path, mid.pos+mid.size-3)
		return corruptWant{lost: []diskBatch{mid}, lostRecords: 3,
			verify: []wantProblem{{[]string{ProblemCorrupt}, mid.path, mid.pos}}}
	}},
	{"bad length field in a sealed segment (too large)", func(t *testing.T, c *corruptLog) corruptWant {
		seg := c.segs[2]
		mid := seg[len(seg)/2]
		setLength(t, mid.path, mid, 0x7fff0000)
		return corruptWant{lost: []diskBatch{mid}, lostRecords: 3,
			verify: []wantProblem{{[]string{ProblemCorrupt}, mid.path, mid.pos}}}
	}},
	{"bad length field in a sealed segment (100 too long)", func(t *testing.T, c *corruptLog) corruptWant {
		seg := c.segs[2]
		mid := seg[len(seg)/2]
		setLength(t, mid.path, mid, uint32(mid.size-batchLogOverhead+100))
		return corruptWant{lost: []diskBatch{mid}, lostRecords: 3,
			verify: []wantProblem{{[]string{ProblemCorrupt}, mid.path, mid.pos}}}
	}},
	{"bad length field in a sealed segment whose index files are missing", func(t *testing.T, c *corruptLog) corruptWant {
		// Without an index nothing can find the batches after the damage,
		// but opening must work and the batches before it must read.
		seg := c.segs[1]
		mid := seg[len(seg)/2]
		setLength(t, mid.path, mid, 0x7fff0000)
		os.Remove(indexPathOf(mid.path))
		os.Remove(timeIndexPathOf(mid.path))
		lost := seg[len(seg)/2:]
		return corruptWant{lost: lost, lostRecords: 3 * len(lost), repairLost: []diskBatch{mid},
			verify: []wantProblem{{[]string{ProblemCorrupt}, mid.path, mid.pos}}}
	}},
	{"truncated .index of a sealed segment", func(t *testing.T, c *corruptLog) corruptWant {
		path := indexPathOf(c.paths[1])
		truncateTo(t, path, fileSize(t, path)/2+3)
		return corruptWant{checkTime: true, verify: []wantProblem{{[]string{ProblemIndex}, path, -2}}}
	}},
	{"truncated .index of the active segment", func(t *testing.T, c *corruptLog) corruptWant {
		path := indexPathOf(c.activePath())
		truncateTo(t, path, fileSize(t, path)/2+3)
		return corruptWant{checkTime: true, verifyAny: true}
	}},
	{"missing .index and .timeindex (sealed and active segments)", func(t *testing.T, c *corruptLog) corruptWant {
		for _, path := range []string{c.paths[1], c.paths[3], c.activePath()} {
			if err := os.Remove(indexPathOf(path)); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(timeIndexPathOf(path)); err != nil {
				t.Fatal(err)
			}
		}
		return corruptWant{checkTime: true, verify: []wantProblem{
			{[]string{ProblemIndex}, indexPathOf(c.paths[1]), -1},
			{[]string{ProblemIndex}, indexPathOf(c.paths[3]), -1},
			{[]string{ProblemIndex}, indexPathOf(c.activePath()), -1},
		}}
	}},
	{"garbage .index entries (random bytes)", func(t *testing.T, c *corruptLog) corruptWant {
		rng := rand.New(rand.NewPCG(1, 2))
		for _, path := range []string{indexPathOf(c.paths[1]), indexPathOf(c.activePath())} {
			n := fileSize(t, path)
			junk := make([]byte, n/3)
			for i := range junk {
				junk[i] = byte(rng.Uint32())
			}
			patchFile(t, path, n/3/offsetEntrySize*offsetEntrySize, junk)
		}
		return corruptWant{checkTime: true, verify: []wantProblem{
			{[]string{ProblemIndex}, indexPathOf(c.paths[1]), -2},
		}, verifyAny: true}
	}},
	{"stale .index entries, each one batch late", func(t *testing.T, c *corruptLog) corruptWant {
		// Entries that are well formed (growing in both fields, inside the
		// file, the last one right) but in the middle point at the batch
		// after the one they name, as an index left from another version
		// of the segment could.
		for _, si := range []int{1, len(c.segs) - 1} {
			seg, path := c.segs[si], indexPathOf(c.paths[si])
			entries := readIndexEntries(t, path)
			if len(entries) < 9 {
				t.Fatalf("setup: %d index entries", len(entries))
			}
			nextPos := map[uint32]uint32{}
			for j := 0; j+1 < len(seg); j++ {
				nextPos[uint32(seg[j].pos)] = uint32(seg[j+1].pos)
			}
			from, to := len(entries)/3, 2*len(entries)/3 // shifted; to+1 dropped
			var b []byte
			for j, e := range entries {
				switch {
				case j >= from && j <= to:
					e.pos = nextPos[e.pos]
				case j == to+1:
					continue
				}
				b = appendOffsetEntry(b, e)
			}
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return corruptWant{checkTime: true, verify: []wantProblem{
			{[]string{ProblemIndex}, indexPathOf(c.paths[1]), -2},
			{[]string{ProblemIndex}, indexPathOf(c.activePath()), -2},
		}}
	}},
	{"zeroed 4 KiB page in the middle of a sealed segment", func(t *testing.T, c *corruptLog) corruptWant {
		seg, path := c.segs[2], c.paths[2]
		if fileSize(t, path) < 3*4096 {
			t.Fatalf("setup: sealed segment of %d bytes has no middle page", fileSize(t, path))
		}
		patchFile(t, path, 4096, make([]byte, 4096))
		lost := overlapping(seg, 4096, 8192)
		records := 0
		for _, b := range lost {
			records += b.records
		}
		return corruptWant{lost: lost, lostRecords: records,
			verify: []wantProblem{{[]string{ProblemCorrupt}, path, lost[0].pos}}}
	}},
	{"zeroed tail page of the active segment", func(t *testing.T, c *corruptLog) corruptWant {
		act, path := c.active(), c.activePath()
		last := act[len(act)-1]
		end := last.pos + last.size
		page := (end - 1) / 4096 * 4096
		if page == 0 {
			t.Fatalf("setup: active segment of %d bytes", end)
		}
		patchFile(t, path, page, make([]byte, min(4096, max(fileSize(t, path), end)-page)))
		lost := overlapping(act, page, end)
		records := 0
		for _, b := range lost {
			records += b.records
		}
		w := corruptWant{lost: lost, truncated: true, lostRecords: records, checkTime: true}
		if lost[0].pos == page {
			w.verifyAny = true // a zero batch length reads as the end of the data
		} else {
			w.verify = []wantProblem{{[]string{ProblemTornTail, ProblemCorrupt}, path, lost[0].pos}}
		}
		return w
	}},
	{"leftover .tmp and .cleaned files", func(t *testing.T, c *corruptLog) corruptWant {
		var gone []string
		for _, name := range []string{
			segmentName(c.segs[1][0].base) + logSuffix + cleanedSuffix,
			segmentName(c.segs[2][0].base) + indexSuffix + tmpSuffix,
			segmentName(c.active()[0].base) + timeIndexSuffix + tmpSuffix,
			segmentName(c.hw) + logSuffix + tmpSuffix,
		} {
			path := filepath.Join(c.partDir, name)
			if err := os.WriteFile(path, []byte("half-written junk"), 0o644); err != nil {
				t.Fatal(err)
			}
			gone = append(gone, path)
		}
		return corruptWant{gone: gone, checkTime: true, verifyAny: true}
	}},
}

// lostSet indexes a case's lost batches by base offset.
func (w corruptWant) lostSet() map[int64]diskBatch {
	m := map[int64]diskBatch{}
	for _, b := range w.lost {
		m[b.base] = b
	}
	return m
}

// readOneBatch reads the batch holding off with the smallest fetch.
func readOneBatch(p *Partition, off int64) (BatchHeader, []Record, error) {
	data, err := p.Read(off, 1)
	if err != nil {
		return BatchHeader{}, nil, err
	}
	var h BatchHeader
	var recs []Record
	found := false
	err = SplitBatches(data, func(bh BatchHeader, b []byte) error {
		if found {
			return nil
		}
		found = true
		h = bh
		var err error
		_, recs, err = DecodeRecords(b)
		return err
	})
	if err != nil {
		return h, nil, err
	}
	if !found {
		return h, nil, fmt.Errorf("read at %d returned %d bytes and no whole batch", off, len(data))
	}
	return h, recs, nil
}

// checkBatchReads checks every batch the case built: survivors read back
// whole at their offsets, lost ones are gone (truncated) or fail with a
// *CorruptionError naming their place.
func checkBatchReads(t *testing.T, c *corruptLog, p *Partition, w corruptWant) {
	t.Helper()
	lost := w.lostSet()
	survived, errs := 0, 0
	errorf := func(format string, args ...any) {
		t.Helper()
		if errs++; errs <= 6 {
			t.Errorf(format, args...)
		}
	}
	defer func() {
		if errs > 6 {
			t.Errorf("... and %d more read errors like these", errs-6)
		}
	}()
	for _, db := range c.all {
		lb, isLost := lost[db.base]
		if isLost && w.truncated {
			continue // the high watermark check covers it
		}
		h, recs, err := readOneBatch(p, db.base)
		if isLost {
			var ce *CorruptionError
			switch {
			case err == nil:
				errorf("read of damaged batch %d..%d (%s:%d) returned batch %d..%d instead of a *CorruptionError",
					db.base, db.last, filepath.Base(db.path), db.pos, h.BaseOffset, h.LastOffset())
			case !errors.As(err, &ce):
				errorf("read of damaged batch %d..%d: %v (%T), want a *CorruptionError", db.base, db.last, err, err)
			default:
				okPos := slices.ContainsFunc(w.lost, func(b diskBatch) bool { return b.path == ce.Segment && b.pos == ce.Position })
				if ce.Topic != corruptTopic || ce.Partition != 0 || ce.Segment != lb.path || !okPos {
					errorf("read of damaged batch %d..%d at %s:%d: CorruptionError names topic %q partition %d segment %s position %d",
						db.base, db.last, filepath.Base(db.path), db.pos, ce.Topic, ce.Partition, filepath.Base(ce.Segment), ce.Position)
				}
			}
			continue
		}
		if err != nil {
			errorf("read of intact batch %d..%d (%s:%d): %v", db.base, db.last, filepath.Base(db.path), db.pos, err)
			continue
		}
		if h.BaseOffset != db.base || h.LastOffset() != db.last {
			errorf("read at offset %d returned batch %d..%d, want %d..%d (wrong data)", db.base, h.BaseOffset, h.LastOffset(), db.base, db.last)
			continue
		}
		for _, r := range recs {
			if a, ok := c.lg.acked[r.Offset]; !ok || !sameRecord(a, r) {
				errorf("offset %d: read %q, appended %q", r.Offset, r.Value, a.Value)
			}
		}
		survived += len(recs)
	}
	if want := c.records - w.lostRecords; survived != want {
		t.Errorf("%d records survived, want %d (%d of %d lost)", survived, want, w.lostRecords, c.records)
	}
}

// checkForwardRead reads like a consumer: from the log start, with large
// fetches, to the high watermark. Damage may fail the fetch that starts at
// a damaged batch (the test then skips it, as an operator would), but not
// a fetch that starts at an intact batch.
func checkForwardRead(t *testing.T, c *corruptLog, p *Partition, w corruptWant, extra int64) {
	t.Helper()
	var lostBatches []diskBatch
	if !w.truncated {
		lostBatches = w.lost
	}
	off, n := p.LogStartOffset(), 0
	for off < p.HighWatermark() {
		data, err := p.Read(off, 64<<10)
		if err != nil {
			if i := slices.IndexFunc(lostBatches, func(b diskBatch) bool { return b.base <= off && off <= b.last }); i >= 0 {
				off = lostBatches[i].last + 1
				continue
			}
			t.Errorf("fetch at intact offset %d failed because of damage further on: %v", off, err)
			// Go on after the damage the error names.
			var ce *CorruptionError
			i := -1
			if errors.As(err, &ce) {
				i = slices.IndexFunc(lostBatches, func(b diskBatch) bool { return b.path == ce.Segment && b.pos == ce.Position })
			}
			if i < 0 || lostBatches[i].last < off {
				return // no way past it
			}
			off = lostBatches[i].last + 1
			continue
		}
		if len(data) == 0 {
			t.Errorf("fetch at %d below the high watermark %d returned nothing", off, p.HighWatermark())
			return
		}
		from := off
		var seen [][2]int64
		err = SplitBatches(data, func(h BatchHeader, b []byte) error {
			seen = append(seen, [2]int64{h.BaseOffset, h.LastOffset()})
			if h.LastOffset() < off {
				return nil
			}
			if h.BaseOffset > off {
				// Only offsets of lost batches may be skipped.
				for o := off; o < h.BaseOffset; o++ {
					if !slices.ContainsFunc(lostBatches, func(b diskBatch) bool { return b.base <= o && o <= b.last }) {
						return fmt.Errorf("fetch at %d skipped to batch %d..%d: offset %d silently missing", off, h.BaseOffset, h.LastOffset(), o)
					}
				}
			}
			_, recs, err := DecodeRecords(b)
			if err != nil {
				return err
			}
			n += len(recs)
			off = h.LastOffset() + 1
			return nil
		})
		if err != nil {
			t.Errorf("consumer read: %v", err)
			return
		}
		if off == from {
			t.Errorf("fetch at %d returned %d bytes holding only batches %v, none with offset %d or later", from, len(data), seen, from)
			return
		}
	}
	if want := int64(c.records-w.lostRecords) + extra; int64(n) != want {
		t.Errorf("a consumer reading forward got %d records, want %d", n, want)
	}
}

func checkOffsetForTime(t *testing.T, c *corruptLog, p *Partition, w corruptWant) {
	t.Helper()
	lost := w.lostSet()
	for _, db := range c.all {
		if _, l := lost[db.base]; l {
			continue
		}
		for i, ts := range []int64{db.firstTs, db.firstTs + 1} {
			off, ok, err := p.OffsetForTime(ts)
			if err != nil || !ok || off != db.base+int64(i) {
				t.Errorf("OffsetForTime(%d) = %d %v %v, want %d", ts, off, ok, err, db.base+int64(i))
			}
		}
	}
}

// checkCase runs every check of a case against an open partition.
func checkCase(t *testing.T, c *corruptLog, p *Partition, w corruptWant) {
	t.Helper()
	wantHW := c.hw
	if w.truncated {
		wantHW = w.lost[0].base
	}
	if got := p.HighWatermark(); got < wantHW {
		t.Fatalf("high watermark %d, want %d: acknowledged batches lost", got, wantHW)
	}
	checkBatchReads(t, c, p, w)
	if w.checkTime {
		checkOffsetForTime(t, c, p, w)
	}
}

func TestCorruption(t *testing.T) {
	for _, tc := range corruptCases {
		t.Run(tc.name, func(t *testing.T) {
			forPrealloc(t, func(t *testing.T, prealloc bool) {
				c := buildCorruptLog(t, prealloc)
				w := tc.damage(t, c)
				if n := 0; len(w.lost) > 0 {
					for _, b := range w.lost {
						n += b.records
					}
					if n != w.lostRecords {
						t.Fatalf("case states %d lost records, its lost batches hold %d", w.lostRecords, n)
					}
				}

				l, p := c.open(t)
				defer func() { l.Close() }()
				for _, path := range w.gone {
					if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
						t.Errorf("%s still there after open (%v)", filepath.Base(path), err)
					}
				}
				wantHW := c.hw
				if w.truncated {
					wantHW = w.lost[0].base
				}
				if got := p.HighWatermark(); got != wantHW {
					t.Fatalf("high watermark after reopen %d, want %d", got, wantHW)
				}
				checkCase(t, c, p, w)
				checkForwardRead(t, c, p, w, 0)

				// Appends go on at the high watermark and read back.
				var appended []diskBatch
				for i := range 5 {
					recs := c.lg.fresh(2, 50)
					res, err := p.AppendRecords(recs, DefaultBatchOptions)
					if err != nil {
						t.Fatalf("append after reopen: %v", err)
					}
					if want := wantHW + int64(2*i); res.BaseOffset != want {
						t.Fatalf("append after reopen got offset %d, want %d", res.BaseOffset, want)
					}
					c.lg.ack(res, recs)
					appended = append(appended, diskBatch{base: res.BaseOffset, last: res.LastOffset, records: 2})
				}
				checkAppended := func(p *Partition) {
					t.Helper()
					for _, b := range appended {
						h, recs, err := readOneBatch(p, b.base)
						if err != nil || h.BaseOffset != b.base || len(recs) != 2 {
							t.Fatalf("read of appended batch %d: %v (batch %d..%d)", b.base, err, h.BaseOffset, h.LastOffset())
						}
						for _, r := range recs {
							if !sameRecord(c.lg.acked[r.Offset], r) {
								t.Fatalf("appended offset %d: read %q", r.Offset, r.Value)
							}
						}
					}
					if got, want := p.HighWatermark(), wantHW+10; got != want {
						t.Fatalf("high watermark %d, want %d", got, want)
					}
				}
				checkAppended(p)
				checkForwardRead(t, c, p, w, 10)
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}

				// And a second open changes nothing.
				l, p = c.open(t)
				checkCase(t, c, p, w)
				checkAppended(p)
				checkForwardRead(t, c, p, w, 10)
			})
		})
	}
}

// TestCorruptionVerifyRepair: Verify finds each case's damage where it is;
// Repair fixes it so that Verify is clean, the log opens, and every batch
// not overlapping the damage survives with its original offsets.
func TestCorruptionVerifyRepair(t *testing.T) {
	for _, tc := range corruptCases {
		t.Run(tc.name, func(t *testing.T) {
			forPrealloc(t, func(t *testing.T, prealloc bool) {
				c := buildCorruptLog(t, prealloc)
				w := tc.damage(t, c)

				probs, err := Verify(c.dir)
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				for _, wp := range w.verify {
					found := slices.ContainsFunc(probs, func(p Problem) bool {
						return slices.Contains(wp.kinds, p.Kind) && p.Path == wp.path &&
							(p.Position == wp.pos || wp.pos == -2) && p.Topic == corruptTopic && p.Partition == 0
					})
					if !found {
						t.Errorf("Verify did not report %v in %s at %d; it reported:\n%s", wp.kinds, filepath.Base(wp.path), wp.pos, problemList(probs))
					}
				}
				if len(w.verify) == 0 && !w.verifyAny && len(probs) > 0 {
					t.Errorf("Verify reported problems on a sound log:\n%s", problemList(probs))
				}

				if _, err := Repair(c.dir); err != nil {
					t.Fatalf("Repair: %v", err)
				}
				if probs, err := Verify(c.dir); err != nil || len(probs) > 0 {
					t.Fatalf("Verify after Repair: %v\n%s", err, problemList(probs))
				}

				l, p := c.open(t)
				defer func() { l.Close() }()
				wantHW := c.hw
				if w.truncated {
					wantHW = w.lost[0].base
				}
				if got := p.HighWatermark(); got != wantHW {
					t.Fatalf("high watermark after repair %d, want %d", got, wantHW)
				}
				// Every batch not overlapping the damage reads back with its
				// original offsets; the damaged ones are gone, never replaced.
				lostRecords := w.lostRecords
				if w.repairLost != nil {
					w.lost, lostRecords = w.repairLost, 0
					for _, b := range w.repairLost {
						lostRecords += b.records
					}
				}
				lost := w.lostSet()
				n := 0
				for _, db := range c.all {
					h, recs, err := readOneBatch(p, db.base)
					if _, l := lost[db.base]; l {
						if err == nil && h.BaseOffset <= db.last {
							t.Errorf("damaged batch %d..%d: a read after repair returned batch %d..%d", db.base, db.last, h.BaseOffset, h.LastOffset())
						}
						continue
					}
					if err != nil || h.BaseOffset != db.base || h.LastOffset() != db.last {
						t.Errorf("batch %d..%d after repair: %v (read batch %d..%d)", db.base, db.last, err, h.BaseOffset, h.LastOffset())
						continue
					}
					for _, r := range recs {
						if !sameRecord(c.lg.acked[r.Offset], r) {
							t.Errorf("offset %d after repair: read %q", r.Offset, r.Value)
						}
					}
					n += len(recs)
				}
				if want := c.records - lostRecords; n != want {
					t.Errorf("%d records survived the repair, want %d", n, want)
				}
				if w.checkTime {
					checkOffsetForTime(t, c, p, w)
				}
				res, err := p.AppendRecords(c.lg.fresh(2, 50), DefaultBatchOptions)
				if err != nil || res.BaseOffset != wantHW {
					t.Fatalf("append after repair: %+v %v, want offset %d", res, err, wantHW)
				}
			})
		})
	}
}

func problemList(probs []Problem) string {
	var b strings.Builder
	for _, p := range probs {
		fmt.Fprintf(&b, "\t%s\n", p)
	}
	if len(probs) == 0 {
		b.WriteString("\t(nothing)\n")
	}
	return b.String()
}
