package log

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
)

// batchesOf returns the headers of every stored batch of p.
func batchesOf(t *testing.T, p *Partition) []BatchHeader {
	t.Helper()
	data, err := p.Read(p.LogStartOffset(), 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	var hs []BatchHeader
	if err := SplitBatches(data, func(h BatchHeader, _ []byte) error { hs = append(hs, h); return nil }); err != nil {
		t.Fatal(err)
	}
	return hs
}

// Spool's own one-record batches appended together are stored as fewer,
// larger batches, with every record's offset, timestamp (here going
// backwards too), key, value and headers as appended; a producer's batch
// queued among them is stored byte for byte. It all reads the same after
// a reopen, and Verify finds nothing wrong.
func TestOwnBatchesMerge(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tp, err := l.CreateTopic("m", DefaultTopicConfig())
	if err != nil {
		t.Fatal(err)
	}
	p, _ := tp.Partition(0)

	const n = 200
	want := make([]Record, n)
	raw := map[int64][]byte{} // offset → a producer's batch, as sent
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range n {
		want[i] = Record{
			Timestamp: 1_700_000_000_000 + int64((i*7919)%1000) - 500, // not in order
			Key:       fmt.Appendf(nil, "k%d", i%13),
			Value:     bytes.Repeat([]byte{byte(i)}, i%50),
			Headers:   []Header{{Key: "mqtt.topic", Value: fmt.Appendf(nil, "devices/%d", i)}},
		}
		opts := DefaultBatchOptions
		if i%50 == 25 {
			opts.ProducerID, opts.ProducerEpoch, opts.BaseSequence = 7, 0, int32(i) // a producer's: kept whole
		}
		b, err := AppendBatch(nil, want[i:i+1], opts)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		done := func(res AppendResult, err error) {
			if err != nil {
				t.Errorf("append: %v", err)
			}
			wg.Done()
		}
		mu.Lock() // offsets in the order of want
		if opts.ProducerID >= 0 {
			err = p.AppendAsync(b, func(res AppendResult, err error) {
				mu.Lock()
				raw[res.BaseOffset] = b
				mu.Unlock()
				done(res, err)
			})
		} else {
			err = p.AppendOwnAsync(b, done)
		}
		mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()

	check := func(p *Partition) {
		t.Helper()
		got := readAll(t, p)
		if len(got) != n {
			t.Fatalf("%d records, want %d", len(got), n)
		}
		for i, r := range got {
			w := want[i]
			if r.Offset != int64(i) || r.Timestamp != w.Timestamp || !bytes.Equal(r.Key, w.Key) || !bytes.Equal(r.Value, w.Value) ||
				len(r.Headers) != 1 || !bytes.Equal(r.Headers[0].Value, w.Headers[0].Value) {
				t.Fatalf("record %d: %+v, want %+v", i, r, w)
			}
		}
		hs := batchesOf(t, p)
		t.Logf("%d records in %d batches", n, len(hs))
		if len(hs) >= n {
			t.Errorf("%d batches for %d one-record appends: nothing merged", len(hs), n)
		}
		data, err := p.Read(0, 64<<20)
		if err != nil {
			t.Fatal(err)
		}
		kept := 0
		SplitBatches(data, func(h BatchHeader, b []byte) error {
			if h.ProducerID >= 0 {
				sent := raw[h.BaseOffset]
				if h.NumRecords != 1 || !bytes.Equal(b[batchAttributesPos:], sent[batchAttributesPos:]) {
					t.Errorf("the producer's batch at %d was changed", h.BaseOffset)
				}
				kept++
			}
			return nil
		})
		if kept != len(raw) {
			t.Errorf("%d producer batches stored whole, want %d", kept, len(raw))
		}
	}
	check(p)
	l = closeVerifyReopen(t, l, dir)
	defer l.Close()
	tp, _ = l.Topic("m")
	p, _ = tp.Partition(0)
	check(p)
}

// A run with a record that does not decode is written as it came.
func TestMergeRunKeepsUndecodableBatches(t *testing.T) {
	var buf []byte
	var metas []batchMeta
	for i := range 3 {
		b, err := AppendBatch(nil, []Record{{Timestamp: 1, Value: []byte("v")}}, DefaultBatchOptions)
		if err != nil {
			t.Fatal(err)
		}
		setBaseOffset(b, int64(i))
		metas = append(metas, batchMeta{base: int64(i), last: int64(i), maxTs: 1, size: len(b), records: 1, mergeable: mergeable(parseBatchHeader(b))})
		buf = append(buf, b...)
	}
	good, _, ok := mergeCycle(nil, nil, buf, metas, 1<<20, CodecNone)
	if !ok || len(good) >= len(buf) {
		t.Fatalf("three mergeable batches: merged %v into %d bytes (from %d)", ok, len(good), len(buf))
	}
	// The second batch's record length says more bytes than there are.
	buf[metas[0].size+batchHeaderSize] = 0x7e
	if _, _, ok := mergeCycle(nil, nil, buf, metas, 1<<20, CodecNone); ok {
		t.Errorf("a run with an undecodable record was merged")
	}
}
