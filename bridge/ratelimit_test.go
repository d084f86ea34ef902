package bridge

import (
	"bytes"
	"context"
	"slices"
	"sync"
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

// TestLimiterOrder: once the bucket's debt is paid, the waiting round of
// the highest class goes first, whatever the order they came in; within a
// class, the first come. A round whose context ends stops waiting and
// takes nothing.
func TestLimiterOrder(t *testing.T) {
	const rate = 10 << 20
	l := newLimiter(rate)
	ctx := t.Context()
	begin := time.Now()
	if !l.wait(ctx, 2*rate, roundClass(0, false)) { // the full bucket and 1 s of debt
		t.Fatal("first round refused")
	}
	order := make(chan string, 4)
	var wg sync.WaitGroup
	start := func(name string, class int) {
		want := l.waitingCount() + 1
		wg.Add(1)
		go func() {
			defer wg.Done()
			if l.wait(ctx, rate/10, class) { // 100 ms apart: they report in grant order
				order <- name
			}
		}()
		// Each waits before the next comes: the arrival order is known.
		waitFor(t, name+" waiting", func() bool { return l.waitingCount() == want })
	}
	cancelled, cancel := context.WithCancel(ctx)
	gone := make(chan bool, 1)
	go func() { gone <- l.wait(cancelled, 1, roundClass(9, true)) }()
	waitFor(t, "the cancelled round waiting", func() bool { return l.waitingCount() == 1 })
	cancel()
	if <-gone {
		t.Fatal("a cancelled round was granted while the bucket was in debt")
	}
	start("backlog-1", roundClass(0, false))
	start("backlog-2", roundClass(0, false))
	start("live", roundClass(0, true))
	start("alarm", roundClass(10, false))
	if time.Since(begin) > 900*time.Millisecond {
		t.Skip("this machine took most of the debt's second to queue four rounds; the order is not tested")
	}
	wg.Wait()
	close(order)
	var got []string
	for name := range order {
		got = append(got, name)
	}
	if want := []string{"alarm", "live", "backlog-1", "backlog-2"}; !slices.Equal(got, want) {
		t.Errorf("granted in order %v, want %v", got, want)
	}
}

func (l *limiter) waitingCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.waiting.Len()
}
