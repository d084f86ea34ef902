package log

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// ctConfig rolls segments by age only: ctPart.seal advances the clock by
// SegmentAge, and the next append starts a new segment.
func ctConfig(policy CleanupPolicy) TopicConfig {
	cfg := hkConfig()
	cfg.CleanupPolicy = policy
	cfg.SegmentBytes = 1 << 20
	cfg.MaxMessageBytes = 64 << 10
	cfg.SegmentAge = time.Hour
	return cfg
}

// ctPart appends batches to a partition, remembering their sizes.
type ctPart struct {
	t     *testing.T
	r     *hkRig
	tp    *Topic
	p     *Partition
	sizes map[int64]int64 // batch base offset -> bytes
}

func newCTPart(t *testing.T, r *hkRig, name string, cfg TopicConfig) *ctPart {
	tp := r.create(name, cfg)
	return &ctPart{t: t, r: r, tp: tp, p: hkPart(t, tp, 0), sizes: map[int64]int64{}}
}

func (c *ctPart) batch(opts BatchOptions, recs ...Record) AppendResult {
	c.t.Helper()
	b, err := AppendBatch(nil, recs, opts)
	if err != nil {
		c.t.Fatal(err)
	}
	res, err := c.p.Append(b)
	if err != nil {
		c.t.Fatalf("append: %v", err)
	}
	c.sizes[res.BaseOffset] = int64(len(b))
	return res
}

// one appends each record as its own uncompressed batch.
func (c *ctPart) one(recs ...Record) {
	c.t.Helper()
	for _, r := range recs {
		c.batch(DefaultBatchOptions, r)
	}
}

// seal makes the next append start a new segment.
func (c *ctPart) seal() { c.r.clock.Advance(time.Hour) }

func kv(k, v string, ts int64) Record {
	r := Record{Timestamp: ts, Value: []byte(v)}
	if k != "" {
		r.Key = []byte(k)
	}
	return r
}

func tomb(k string, ts int64) Record {
	r := kv(k, "", ts)
	r.Value = nil
	return r
}

func ctShow(b []byte) string {
	if b == nil {
		return "nil"
	}
	return string(b)
}

// ctDump renders records as "offset:key=value".
func ctDump(recs []Record) []string {
	out := []string{}
	for _, r := range recs {
		out = append(out, fmt.Sprintf("%d:%s=%s", r.Offset, ctShow(r.Key), ctShow(r.Value)))
	}
	return out
}

func ctExpect(t testing.TB, p *Partition, want ...string) {
	t.Helper()
	got := ctDump(readAll(t, p))
	if !slices.Equal(got, want) {
		t.Errorf("records\n got %q\nwant %q", got, want)
	}
}

// ctBatches reads every batch header from the log start.
func ctBatches(t testing.TB, p *Partition) []BatchHeader {
	t.Helper()
	var hs []BatchHeader
	for off := p.LogStartOffset(); off < p.HighWatermark(); {
		data, err := p.Read(off, 1<<20)
		if err != nil || len(data) == 0 {
			t.Fatalf("read at %d: %d bytes, %v", off, len(data), err)
		}
		err = SplitBatches(data, func(h BatchHeader, _ []byte) error {
			if h.LastOffset() >= off {
				hs = append(hs, h)
				off = h.LastOffset() + 1
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return hs
}

func TestCompactKeepsLatestPerKeyInSealedSegments(t *testing.T) {
	ts := hkMs(hkT0)
	cases := []struct {
		policy        CleanupPolicy
		first, second []string
	}{
		{CleanupCompact,
			[]string{"2:nil=n2", "4:k3=c4", "5:k2=b5", "6:k1=a6", "7:k4=d7", "8:nil=n8", "9:k3=c9", "10:k1=a10", "11:k1=a11"},
			[]string{"2:nil=n2", "5:k2=b5", "7:k4=d7", "8:nil=n8", "9:k3=c9", "11:k1=a11", "12:k5=e12"}},
		{CleanupCompactDelete,
			[]string{"2:nil=n2", "4:k3=c4", "5:k2=b5", "6:k1=a6", "7:k4=d7", "8:nil=n8", "9:k3=c9", "10:k1=a10", "11:k1=a11"},
			[]string{"2:nil=n2", "5:k2=b5", "7:k4=d7", "8:nil=n8", "9:k3=c9", "11:k1=a11", "12:k5=e12"}},
		{CleanupDelete,
			[]string{"0:k1=a0", "1:k2=b1", "2:nil=n2", "3:k1=a3", "4:k3=c4", "5:k2=b5", "6:k1=a6", "7:k4=d7", "8:nil=n8", "9:k3=c9", "10:k1=a10", "11:k1=a11"},
			[]string{"0:k1=a0", "1:k2=b1", "2:nil=n2", "3:k1=a3", "4:k3=c4", "5:k2=b5", "6:k1=a6", "7:k4=d7", "8:nil=n8", "9:k3=c9", "10:k1=a10", "11:k1=a11", "12:k5=e12"}},
	}
	for _, tc := range cases {
		t.Run(string(tc.policy), func(t *testing.T) {
			r := newHKRig(t, 0)
			c := newCTPart(t, r, "latest", ctConfig(tc.policy))
			// Sealed [0,6) and [6,9); the active [9,12) repeats k1.
			c.one(kv("k1", "a0", ts), kv("k2", "b1", ts), kv("", "n2", ts), kv("k1", "a3", ts), kv("k3", "c4", ts), kv("k2", "b5", ts))
			c.seal()
			c.one(kv("k1", "a6", ts), kv("k4", "d7", ts), kv("", "n8", ts))
			c.seal()
			c.one(kv("k3", "c9", ts), kv("k1", "a10", ts), kv("k1", "a11", ts))
			if got := hkSegBases(t, c.p); !slices.Equal(got, []int64{0, 6, 9}) {
				t.Fatalf("segments %v, want [0 6 9]", got)
			}

			check := func(want []string) {
				t.Helper()
				ctExpect(t, c.p, want...)
				var size int64
				for _, s := range want {
					var off int64
					fmt.Sscanf(s, "%d:", &off)
					size += c.sizes[off]
				}
				if c.p.Size() != size || r.l.UsedBytes() != size {
					t.Errorf("size %d, used bytes %d, want %d (the surviving batches)", c.p.Size(), r.l.UsedBytes(), size)
				}
				if c.p.LogStartOffset() != 0 {
					t.Errorf("log start %d, want 0: compaction keeps offsets", c.p.LogStartOffset())
				}
				// Reading from a removed offset returns the next survivor.
				for _, off := range []int64{0, 1, 3} {
					if _, err := c.p.Read(off, 1<<20); err != nil {
						t.Errorf("read at compacted-away offset %d: %v", off, err)
					}
				}
			}
			r.maintain()
			check(tc.first)
			r.maintain() // nothing new sealed: no change
			check(tc.first)

			// Sealing [9,12) makes k1@11 and k3@9 the latest.
			c.seal()
			c.one(kv("k5", "e12", ts))
			r.maintain()
			check(tc.second)
			if c.p.HighWatermark() != 13 {
				t.Errorf("high watermark %d, want 13", c.p.HighWatermark())
			}
			if got := hkSegBases(t, c.p); !slices.Equal(got, []int64{0, 6, 9, 12}) {
				t.Errorf("segments %v, want [0 6 9 12]", got)
			}
		})
	}
}

func TestCompactTombstonesKeptUntilDeleteRetention(t *testing.T) {
	r := newHKRig(t, 0)
	cfg := ctConfig(CleanupCompact)
	cfg.DeleteRetention = time.Hour
	c := newCTPart(t, r, "tombs", cfg)
	// Records are stamped from tr, after the clock the appends run at.
	tr := hkT0.Add(2 * time.Hour)
	at := func(d time.Duration) int64 { return hkMs(tr.Add(d)) }
	c.one(kv("k1", "v0", at(0)), kv("k2", "v1", at(0)), tomb("k1", at(0)), tomb("k3", at(10*time.Minute)), tomb("", at(0)))
	c.seal()
	c.one(tomb("k2", at(30*time.Minute)), kv("k5", "v6", at(30*time.Minute)))
	c.seal()
	c.one(tomb("k6", at(0))) // a tombstone in the active segment

	steps := []struct {
		now  time.Duration // after tr
		want []string
	}{
		{time.Hour, []string{"2:k1=nil", "3:k3=nil", "4:nil=nil", "5:k2=nil", "6:k5=v6", "7:k6=nil"}},
		{time.Hour + time.Millisecond, []string{"3:k3=nil", "4:nil=nil", "5:k2=nil", "6:k5=v6", "7:k6=nil"}},
		{time.Hour + 5*time.Minute, []string{"3:k3=nil", "4:nil=nil", "5:k2=nil", "6:k5=v6", "7:k6=nil"}},
		{time.Hour + 10*time.Minute, []string{"3:k3=nil", "4:nil=nil", "5:k2=nil", "6:k5=v6", "7:k6=nil"}},
		{time.Hour + 10*time.Minute + time.Millisecond, []string{"4:nil=nil", "5:k2=nil", "6:k5=v6", "7:k6=nil"}},
		{time.Hour + 30*time.Minute + time.Millisecond, []string{"4:nil=nil", "6:k5=v6", "7:k6=nil"}},
		{1000 * time.Hour, []string{"4:nil=nil", "6:k5=v6", "7:k6=nil"}},
	}
	for _, st := range steps {
		r.set(tr.Add(st.now))
		r.maintain()
		t.Run(fmt.Sprintf("at +%v", st.now), func(t *testing.T) { ctExpect(t, c.p, st.want...) })
	}
	want := c.sizes[4] + c.sizes[6] + c.sizes[7]
	if c.p.Size() != want || r.l.UsedBytes() != want {
		t.Errorf("size %d, used bytes %d, want %d", c.p.Size(), r.l.UsedBytes(), want)
	}
	if c.p.LogStartOffset() != 0 || c.p.HighWatermark() != 8 {
		t.Errorf("log start %d high watermark %d, want 0 and 8", c.p.LogStartOffset(), c.p.HighWatermark())
	}
}

func TestCompactCompressedMultiRecordBatches(t *testing.T) {
	for _, codec := range []Codec{CodecNone, CodecGzip, CodecSnappy, CodecLz4, CodecZstd} {
		t.Run(codec.String(), func(t *testing.T) {
			r := newHKRig(t, 0)
			c := newCTPart(t, r, "batches", ctConfig(CleanupCompact))
			opts := BatchOptions{Codec: codec, ProducerID: 42, ProducerEpoch: 3, BaseSequence: 100}
			base := hkMs(hkT0)
			rec := func(off int64, k, v string) Record {
				r := kv(k, v, base+off*1000)
				r.Headers = []Header{{Key: "h", Value: []byte(v)}}
				return r
			}
			// Sealed [0,10): A [0,5), B [5,8), Z [8,10); sealed [10,14):
			// C [10,12), Y [12,14); active D [14,16).
			c.batch(opts, rec(0, "k1", "a0"), rec(1, "k2", "b1"), rec(2, "k3", "c2"), rec(3, "k1", "a3"), rec(4, "", "n4"))
			c.batch(opts, rec(5, "k2", "b5"), rec(6, "k4", "d6"), rec(7, "k5", "e7"))
			c.batch(opts, rec(8, "k6", "f8"), rec(9, "k6", "f9"))
			c.seal()
			c.batch(opts, rec(10, "k1", "a10"), rec(11, "k4", "d11"))
			c.batch(opts, rec(12, "k6", "f12"), rec(13, "k7", "g13"))
			c.seal()
			c.batch(opts, rec(14, "k2", "b14"), rec(15, "k1", "a15"))
			before := c.p.Size()

			r.maintain()
			want := []string{"2:k3=c2", "4:nil=n4", "5:k2=b5", "7:k5=e7", "10:k1=a10", "11:k4=d11", "12:k6=f12", "13:k7=g13", "14:k2=b14", "15:k1=a15"}
			ctExpect(t, c.p, want...)
			for _, rc := range readAll(t, c.p) {
				if rc.Timestamp != base+rc.Offset*1000 || len(rc.Headers) != 1 || !bytes.Equal(rc.Headers[0].Value, rc.Value) {
					t.Errorf("offset %d: timestamp %d headers %+v changed by compaction", rc.Offset, rc.Timestamp, rc.Headers)
				}
			}
			// Rewritten batches keep their offsets, codec and producer
			// fields; Z lost every record and is gone.
			type shape struct {
				base, last int64
				n          int32
			}
			var got []shape
			var stored int64
			sizes := map[int64]int64{}
			for _, h := range ctBatches(t, c.p) {
				got = append(got, shape{h.BaseOffset, h.LastOffset(), h.NumRecords})
				stored += int64(h.Size())
				sizes[h.BaseOffset] = int64(h.Size())
				if h.Codec() != codec || h.ProducerID != 42 || h.ProducerEpoch != 3 || h.BaseSequence != 100 {
					t.Errorf("batch %d: codec %v producer %d/%d/%d, want %v 42/3/100",
						h.BaseOffset, h.Codec(), h.ProducerID, h.ProducerEpoch, h.BaseSequence, codec)
				}
				if h.MaxTimestamp != base+h.LastOffset()*1000 || h.BaseTimestamp != base+h.BaseOffset*1000 {
					t.Errorf("batch %d: timestamps %d..%d changed", h.BaseOffset, h.BaseTimestamp, h.MaxTimestamp)
				}
			}
			wantShapes := []shape{{0, 4, 2}, {5, 7, 2}, {10, 11, 2}, {12, 13, 2}, {14, 15, 2}}
			if !slices.Equal(got, wantShapes) {
				t.Errorf("batches %v, want %v", got, wantShapes)
			}
			// The accounted size is the bytes of the batches stored.
			if c.p.Size() >= before || c.p.Size() != stored || r.l.UsedBytes() != stored {
				t.Errorf("size %d (before %d), used bytes %d, stored batches %d bytes", c.p.Size(), before, r.l.UsedBytes(), stored)
			}
			// Batches that lost nothing are stored as appended.
			for _, base := range []int64{10, 12, 14} {
				if sizes[base] != c.sizes[base] {
					t.Errorf("untouched batch %d is %d bytes, appended %d", base, sizes[base], c.sizes[base])
				}
			}
		})
	}
}

// ctModel is the expected content of a partition: every appended record,
// and which of them compaction keeps.
type ctModel struct {
	recs       []Record
	activeBase int64
}

func (m *ctModel) compacted() []Record {
	latest := map[string]int64{}
	for _, r := range m.recs {
		if r.Offset < m.activeBase && r.Key != nil {
			latest[string(r.Key)] = r.Offset
		}
	}
	var out []Record
	for _, r := range m.recs {
		if r.Offset >= m.activeBase || r.Key == nil || latest[string(r.Key)] == r.Offset {
			out = append(out, r)
		}
	}
	return out
}

// ctVerify checks a partition against the records it should hold: a full
// read, a read from every offset, and OffsetForTime at every timestamp.
func ctVerify(t *testing.T, p *Partition, want []Record) {
	t.Helper()
	got := readAll(t, p)
	if !slices.Equal(ctDump(got), ctDump(want)) {
		t.Fatalf("records\n got %q\nwant %q", ctDump(got), ctDump(want))
	}
	for i := range got {
		if got[i].Timestamp != want[i].Timestamp {
			t.Fatalf("offset %d: timestamp %d, want %d", got[i].Offset, got[i].Timestamp, want[i].Timestamp)
		}
	}
	// A consumer starting anywhere gets the first record at or after it.
	for off := int64(0); off < p.HighWatermark(); off++ {
		i, _ := slices.BinarySearchFunc(want, off, func(r Record, o int64) int { return int(r.Offset - o) })
		first := int64(-1)
		for o := off; first < 0 && o < p.HighWatermark(); {
			data, err := p.Read(o, 1)
			if err != nil || len(data) == 0 {
				t.Fatalf("read at %d: %d bytes, %v", o, len(data), err)
			}
			SplitBatches(data, func(h BatchHeader, b []byte) error {
				_, recs, err := DecodeRecords(b)
				if err != nil {
					t.Fatalf("decode at %d: %v", o, err)
				}
				for _, r := range recs {
					if r.Offset >= off && first < 0 {
						first = r.Offset
					}
				}
				o = h.LastOffset() + 1
				return nil
			})
		}
		if first != want[i].Offset {
			t.Fatalf("consuming from %d starts at %d, want %d", off, first, want[i].Offset)
		}
	}
	// Timestamps grow with offsets.
	lo, hi := want[0].Timestamp-3, want[len(want)-1].Timestamp+3
	for ts := lo; ts <= hi; ts++ {
		i, _ := slices.BinarySearchFunc(want, ts, func(r Record, x int64) int { return int(r.Timestamp - x) })
		off, ok, err := p.OffsetForTime(ts)
		switch {
		case err != nil:
			t.Fatalf("OffsetForTime(%d): %v", ts, err)
		case i == len(want) && ok:
			t.Fatalf("OffsetForTime(%d) = %d, want none", ts, off)
		case i < len(want) && (!ok || off != want[i].Offset):
			t.Fatalf("OffsetForTime(%d) = %d %v, want %d", ts, off, ok, want[i].Offset)
		}
	}
}

func TestCompactSurvivesReopen(t *testing.T) {
	r := newHKRig(t, 0)
	cfg := ctConfig(CleanupCompact)
	cfg.DeleteRetention = 1000 * time.Hour // tombstones stay
	c := newCTPart(t, r, "reopen", cfg)
	rng := rand.New(rand.NewPCG(1, 2))
	codecs := []Codec{CodecNone, CodecGzip, CodecSnappy, CodecLz4, CodecZstd}
	m := &ctModel{}
	ts := hkMs(hkT0)
	for seg := range 8 {
		if seg > 0 {
			c.seal()
		}
		if seg == 7 {
			m.activeBase = c.p.HighWatermark()
		}
		for b := range 25 {
			var recs []Record
			for range 1 + rng.IntN(4) {
				ts += 1 + rng.Int64N(3)
				k := fmt.Sprintf("key-%02d", rng.IntN(15))
				var rc Record
				switch rng.IntN(10) {
				case 0:
					rc = kv("", fmt.Sprintf("nokey-%d", ts), ts)
				case 1:
					rc = tomb(k, ts)
				default:
					rc = kv(k, fmt.Sprintf("%s@%d:%s", k, ts, strings.Repeat("v", rng.IntN(40))), ts)
				}
				recs = append(recs, rc)
			}
			opts := DefaultBatchOptions
			opts.Codec = codecs[(seg+b)%len(codecs)]
			res := c.batch(opts, recs...)
			for i := range recs {
				recs[i].Offset = res.BaseOffset + int64(i)
			}
			m.recs = append(m.recs, recs...)
		}
	}
	if got := len(hkSegBases(t, c.p)); got != 8 {
		t.Fatalf("%d segments, want 8", got)
	}
	ctVerify(t, c.p, m.recs)

	r.maintain()
	want := m.compacted()
	if len(want) >= len(m.recs) {
		t.Fatalf("the test data leaves nothing to compact")
	}
	ctVerify(t, c.p, want)
	size, used := c.p.Size(), r.l.UsedBytes()

	reopen := func(dropIndexes bool) *Partition {
		t.Helper()
		dir := c.p.dir
		r.l.Close()
		if dropIndexes {
			for _, pat := range []string{"*" + indexSuffix, "*" + timeIndexSuffix} {
				files, _ := filepath.Glob(filepath.Join(dir, pat))
				for _, f := range files {
					if err := os.Remove(f); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		r.l = openTestLog(t, r.dir, r.opts)
		tp, err := r.l.Topic("reopen")
		if err != nil {
			t.Fatal(err)
		}
		return hkPart(t, tp, 0)
	}
	for _, drop := range []bool{false, true} {
		p := reopen(drop)
		ctVerify(t, p, want)
		if p.Size() != size || r.l.UsedBytes() != used {
			t.Errorf("after reopen (indexes dropped: %v): size %d used %d, want %d %d", drop, p.Size(), r.l.UsedBytes(), size, used)
		}
		for _, base := range hkSegBases(t, p) {
			for _, suf := range []string{indexSuffix, timeIndexSuffix} {
				if _, err := os.Stat(filepath.Join(p.dir, segmentName(base)+suf)); err != nil {
					t.Errorf("index not rebuilt: %v", err)
				}
			}
		}
		// Compacting again from scratch changes nothing.
		r.maintain()
		ctVerify(t, p, want)
		if p.Size() != size {
			t.Errorf("recompaction after reopen changed size %d to %d", size, p.Size())
		}
		c.p = p
	}
}

func TestCompactWithSizeRetention(t *testing.T) {
	// Fixed 200-byte batches, five per segment: sealed [0,5) [5,10)
	// [10,15), active [15,17): 3400 bytes.
	keys := []string{"k9", "k9", "k9", "k9", "k9", "k0", "k1", "k0", "k1", "k0", "k2", "k3", "k2", "k0", "k3", "k0", "k2"}
	fill := func(t *testing.T, r *hkRig, policy CleanupPolicy) *Partition {
		cfg := hkConfig()
		cfg.CleanupPolicy = policy
		tp := r.create("both", cfg)
		p := hkPart(t, tp, 0)
		for i, k := range keys {
			res, err := p.AppendRecords(hkSized(t, hkBatch, hkMs(hkT0), k), DefaultBatchOptions)
			if err != nil || res.BaseOffset != int64(i) {
				t.Fatalf("append %d: %+v %v", i, res, err)
			}
		}
		return p
	}
	offsets := func(t *testing.T, p *Partition) []int64 { return hkOffsets(readAll(t, p)) }
	alter := func(t *testing.T, r *hkRig, mod func(*TopicConfig)) {
		tp, _ := r.l.Topic("both")
		cfg := tp.Config()
		mod(&cfg)
		if err := r.l.AlterTopic("both", cfg); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("compact,delete", func(t *testing.T) {
		r := newHKRig(t, 0)
		p := fill(t, r, CleanupCompactDelete)
		// Retention runs first: deleting [0,5) leaves 2400 bytes. Then
		// compaction keeps k1@8, k2@12, k0@13, k3@14 of what is left.
		alter(t, r, func(c *TopicConfig) { c.RetentionBytes = 2400 })
		r.maintain()
		if got, want := offsets(t, p), []int64{8, 12, 13, 14, 15, 16}; !slices.Equal(got, want) {
			t.Errorf("offsets %v, want %v", got, want)
		}
		if p.LogStartOffset() != 5 || p.Size() != 1200 || r.l.UsedBytes() != 1200 {
			t.Errorf("log start %d size %d used %d, want 5 1200 1200", p.LogStartOffset(), p.Size(), r.l.UsedBytes())
		}
		// [5,10) now holds one 200-byte batch: deleting it leaves 1000.
		alter(t, r, func(c *TopicConfig) { c.RetentionBytes = 1000 })
		r.maintain()
		if got, want := offsets(t, p), []int64{12, 13, 14, 15, 16}; !slices.Equal(got, want) {
			t.Errorf("offsets %v, want %v", got, want)
		}
		if p.LogStartOffset() != 10 || p.Size() != 1000 {
			t.Errorf("log start %d size %d, want 10 1000", p.LogStartOffset(), p.Size())
		}
		if got := hkSegBases(t, p); !slices.Equal(got, []int64{10, 15}) {
			t.Errorf("segments %v, want [10 15]", got)
		}
	})

	t.Run("compact alone ignores retention", func(t *testing.T) {
		r := newHKRig(t, 0)
		p := fill(t, r, CleanupCompact)
		alter(t, r, func(c *TopicConfig) { c.RetentionBytes = 0; c.Retention = time.Millisecond })
		r.set(hkT0.Add(1000 * time.Hour))
		r.maintain()
		if got, want := offsets(t, p), []int64{4, 8, 12, 13, 14, 15, 16}; !slices.Equal(got, want) {
			t.Errorf("offsets %v, want %v", got, want)
		}
		if p.LogStartOffset() != 0 || p.Size() != 1400 {
			t.Errorf("log start %d size %d, want 0 1400", p.LogStartOffset(), p.Size())
		}
		// Nor does retention_bytes refuse appends.
		if _, err := p.AppendRecords(hkSized(t, hkBatch, hkMs(hkT0), "k0"), DefaultBatchOptions); err != nil {
			t.Errorf("append to a compacted topic with retention_bytes 0: %v", err)
		}
	})
}

func TestCompactedBatchDropOldestCountsOnlySurvivors(t *testing.T) {
	// Batch [0,10) holds keys k0..k9; k1..k8 are rewritten in the next
	// segment, so compaction leaves offsets 0 and 9 in it. When
	// drop_oldest deletes that segment, the records lost to a reader
	// pinned at pin are the survivors at or after pin.
	cases := []struct{ pin, dropped int64 }{
		{0, 2},
		{1, 1},
		{5, 1},
		{9, 1},
		{10, 0},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("pin %d", tc.pin), func(t *testing.T) {
			r := newHKRig(t, 0)
			cfg := ctConfig(CleanupCompactDelete)
			cfg.OnFull = OnFullDropOldest
			c := newCTPart(t, r, "lossy", cfg)
			ts := hkMs(hkT0)
			var first []Record
			for i := range 10 {
				v := ""
				if i == 0 {
					v = strings.Repeat("v", 300) // makes dropping [0,10) free enough room
				}
				first = append(first, kv(fmt.Sprintf("k%d", i), v, ts))
			}
			c.batch(DefaultBatchOptions, first...)
			c.seal()
			var second []Record
			for i := 1; i <= 8; i++ {
				second = append(second, kv(fmt.Sprintf("k%d", i), "new", ts))
			}
			c.batch(DefaultBatchOptions, second...)
			c.seal()
			c.one(kv("z", "", ts))
			r.maintain()
			ctExpect(t, c.p, "0:k0="+strings.Repeat("v", 300), "9:k9=",
				"10:k1=new", "11:k2=new", "12:k3=new", "13:k4=new", "14:k5=new", "15:k6=new", "16:k7=new", "17:k8=new", "18:z=")

			// Reopen with the disk full: the next append drops [0,10).
			r.opts.DiskBudget = r.l.UsedBytes()
			r.reopen()
			tp, err := r.l.Topic("lossy")
			if err != nil {
				t.Fatal(err)
			}
			p := hkPart(t, tp, 0)
			p.Pin("bridge", tc.pin)
			if _, err := p.AppendRecords([]Record{kv("y", "", ts)}, DefaultBatchOptions); err != nil {
				t.Fatal(err)
			}
			if p.LogStartOffset() != 10 {
				t.Errorf("log start %d, want 10", p.LogStartOffset())
			}
			if got := tp.DroppedRecords(); got != tc.dropped {
				t.Errorf("%d dropped records, want %d (survivors of the compacted batch at or after the pin)", got, tc.dropped)
			}
		})
	}
}
