package log

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
)

// Many partitions of topics with every codec flush at once: the shared
// zstd encoder (one, taken in turns), kgo's compressors and the scratch pool are
// used by several flushers together, while each flusher reuses its
// mergeBuf. Every record must read back intact at its offset (run with
// -race).
func TestConcurrentFlushersCompress(t *testing.T) {
	dir := t.TempDir()
	l := openTestLog(t, dir, Options{})
	defer l.Close()
	codecs := []Codec{CodecZstd, CodecGzip, CodecSnappy, CodecLz4}
	const parts, n = 3, 400
	type pw struct {
		p    *Partition
		want [][]byte
	}
	var all []*pw
	for _, c := range codecs {
		cfg := DefaultTopicConfig()
		cfg.Partitions = parts
		cfg.Compression = c
		tp, err := l.CreateTopic("c-"+c.String(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		for i := range parts {
			p, _ := tp.Partition(int32(i))
			all = append(all, &pw{p: p})
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(all)*n)
	for k, w := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var inner sync.WaitGroup
			for i := range n {
				v := fmt.Appendf(nil, `{"p":%d,"i":%d,"pad":"%s"}`, k, i, bytes.Repeat([]byte{byte('a' + (i+k)%26)}, 50+i%300))
				w.want = append(w.want, v)
				b, err := AppendBatch(nil, []Record{{Timestamp: 1_700_000_000_000 + int64(i), Key: []byte("k"), Value: v}}, DefaultBatchOptions)
				if err != nil {
					errs <- err
					return
				}
				inner.Add(1)
				if err := w.p.AppendOwnAsync(b, func(_ AppendResult, err error) {
					if err != nil {
						errs <- err
					}
					inner.Done()
				}); err != nil {
					errs <- err
					inner.Done()
				}
			}
			inner.Wait()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for k, w := range all {
		want := w.p.topic.Config().Compression
		compressed := 0
		for _, h := range batchesOf(t, w.p) {
			if h.Codec() == want && h.NumRecords > 1 {
				compressed++
			}
		}
		if compressed == 0 {
			t.Errorf("partition set %d: no merged batch stored with %v", k, want)
		}
		got := readAll(t, w.p)
		if len(got) != n {
			t.Fatalf("partition set %d: %d records, want %d", k, len(got), n)
		}
		for i, r := range got {
			if r.Offset != int64(i) || !bytes.Equal(r.Value, w.want[i]) {
				t.Fatalf("partition set %d record %d: offset %d value %q, want %q", k, i, r.Offset, r.Value, w.want[i])
			}
		}
	}
}
