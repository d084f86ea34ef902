package bridge

import (
	"bytes"
	"testing"
	"time"

	spoollog "github.com/spoolmq/spool/log"
)

// TestBandwidthLimit: with a limit, a backlog drains no faster than the
// limit allows (after the first second's worth), and all of it arrives.
func TestBandwidthLimit(t *testing.T) {
	l := newTestLog(t, spoollog.Options{})
	tp := createTopic(t, l, "bulk", 2, nil)
	const perRecord, records = 1000, 100 // 100 kB per partition, 200 kB in all
	for i := range int32(2) {
		recs := make([]spoollog.Record, records)
		for j := range recs {
			recs[j] = spoollog.Record{Value: bytes.Repeat([]byte{'v'}, perRecord)}
		}
		if _, err := partition(t, tp, i).AppendRecords(recs[:50], spoollog.DefaultBatchOptions); err != nil {
			t.Fatal(err)
		}
		if _, err := partition(t, tp, i).AppendRecords(recs[50:], spoollog.DefaultBatchOptions); err != nil {
			t.Fatal(err)
		}
	}
	c := newCluster(t)
	const rate = 100_000 // bytes per second: 200 kB take at least 1 s beyond the first second's worth
	k, err := NewKafkaLink(KafkaLinkOptions{Name: "slow", Site: "s", Seeds: c.ListenAddrs(), Log: l, Topics: []string{"bulk"},
		BandwidthBytesPerSec: rate, ReadBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	runLink(t, k)
	h := waitState(t, k, StateCaughtUp)
	elapsed := time.Since(start)
	if h.Records != 2*records {
		t.Fatalf("mirrored %d records, want %d", h.Records, 2*records)
	}
	// The bucket starts full (1 s worth), so the remaining 100 kB need at
	// least 1 s; a slower machine only makes it longer.
	if min := 900 * time.Millisecond; elapsed < min {
		t.Errorf("200 kB at %d B/s took %v, less than %v: the limit was not applied", rate, elapsed, min)
	}
}
