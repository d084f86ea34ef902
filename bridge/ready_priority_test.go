package bridge

import (
	"bytes"
	"testing"
	"time"

	spoollog "github.com/spoolmq/spool/log"
)

// waitUntil polls cond for up to d; false when it never held.
func waitUntil(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

func partRecords(h Health, topic string) int64 {
	var n int64
	for _, p := range h.Partitions {
		if p.Topic == topic {
			n += p.Records
		}
	}
	return n
}

// TestKeepNotReadyHoldsOnlyItselfAtStart: with partitioning keep, a topic
// whose upstream copy has fewer partitions than the local one holds back
// only itself when the link starts (after a restart of spool): the link's
// other topics are mirrored.
func TestKeepNotReadyHoldsOnlyItselfAtStart(t *testing.T) {
	l := newTestLog(t, spoollog.Options{})
	a := createTopic(t, l, "a", 1, nil)
	createTopic(t, l, "b", 2, nil)
	appendBatch(t, partition(t, a, 0), 10, spoollog.CodecNone)
	c := newCluster(t)
	createUpstream(t, c.ListenAddrs(), "s.b", 1) // one partition short
	k, err := NewKafkaLink(KafkaLinkOptions{Name: "x", Site: "s", Seeds: c.ListenAddrs(), Log: l,
		Topics: []string{"a", "b"}, BackoffMax: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runLink(t, k)
	if !waitUntil(5*time.Second, func() bool { return partRecords(k.Health(), "a") == 10 }) {
		t.Fatalf("topic a never mirrored while b waits for its upstream partitions; health %+v", k.Health())
	}
}

// TestKeepNotReadyHoldsOnlyItselfLater: a running link gets a topic whose
// upstream is one partition short (held back), then a healthy topic, which
// is mirrored.
func TestKeepNotReadyHoldsOnlyItselfLater(t *testing.T) {
	l := newTestLog(t, spoollog.Options{})
	a := createTopic(t, l, "a", 1, nil)
	appendBatch(t, partition(t, a, 0), 5, spoollog.CodecNone)
	c := newCluster(t)
	createUpstream(t, c.ListenAddrs(), "s.b", 1)
	k, err := NewKafkaLink(KafkaLinkOptions{Name: "x", Site: "s", Seeds: c.ListenAddrs(), Log: l,
		Topics: []string{"a"}, BackoffMax: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runLink(t, k)
	waitFor(t, "a mirrored", func() bool { return k.Health().Records == 5 })
	createTopic(t, l, "b", 2, nil)
	if _, err := k.AddTopics("b"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	later := createTopic(t, l, "later", 1, nil)
	appendBatch(t, partition(t, later, 0), 7, spoollog.CodecNone)
	if _, err := k.AddTopics("later"); err != nil {
		t.Fatal(err)
	}
	if !waitUntil(5*time.Second, func() bool { return partRecords(k.Health(), "later") == 7 }) {
		t.Fatalf("topic added after a not-ready one never mirrored; health %+v", k.Health())
	}
}

// TestExactlyOnceNotReadyHoldsOnlyItselfLater: the same on an
// exactly-once link: a topic added after the not-ready one is mirrored.
func TestExactlyOnceNotReadyHoldsOnlyItselfLater(t *testing.T) {
	l := newTestLog(t, spoollog.Options{})
	a := createTopic(t, l, "a", 1, nil)
	createTopic(t, l, "b", 2, nil)
	c := newCluster(t)
	createUpstream(t, c.ListenAddrs(), "pi.b", 1)
	k := eosLink(t, c.ListenAddrs(), l, []string{"a"})
	runLink(t, k)
	appendBatch(t, partition(t, a, 0), 5, spoollog.CodecNone)
	waitFor(t, "a mirrored", func() bool { return k.Health().Records == 5 })
	if _, err := k.AddTopics("b"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	later := createTopic(t, l, "later", 1, nil)
	appendBatch(t, partition(t, later, 0), 7, spoollog.CodecNone)
	if _, err := k.AddTopics("later"); err != nil {
		t.Fatal(err)
	}
	if !waitUntil(5*time.Second, func() bool { return partRecords(k.Health(), "later") == 7 }) {
		t.Fatalf("topic added after a not-ready one never mirrored; health %+v", k.Health())
	}
}

// TestExactlyOncePriorityGoesFirst: an exactly-once link with a bandwidth
// limit and priorities, a backlog on the low-priority topic "bulk" (listed
// first, each batch alone past the transaction budget) and then one alarm
// on the high-priority topic: the alarm is mirrored within a few
// transactions, ahead of the backlog.
func TestExactlyOncePriorityGoesFirst(t *testing.T) {
	l := newTestLog(t, spoollog.Options{})
	bulk := createTopic(t, l, "bulk", 1, nil)
	alarm := createTopic(t, l, "alarm", 1, nil)
	bp := partition(t, bulk, 0)
	// 100 uncompressed batches of 20 kB of values each, larger than the
	// 16 KiB a transaction reads: 2 MB to carry at 200 kB/s, about 10 s.
	for range 100 {
		recs := make([]spoollog.Record, 20)
		for j := range recs {
			recs[j] = spoollog.Record{Timestamp: time.Now().UnixMilli(), Value: bytes.Repeat([]byte{'v'}, 1000)}
		}
		if _, err := bp.AppendRecords(recs, spoollog.DefaultBatchOptions); err != nil {
			t.Fatal(err)
		}
	}
	c := newCluster(t)
	k, err := NewKafkaLink(KafkaLinkOptions{Name: "central", Site: "pi", Seeds: c.ListenAddrs(), Log: l,
		Topics: []string{"bulk", "alarm"}, ExactlyOnce: true, ReadBytes: 16 << 10,
		BandwidthBytesPerSec: 200_000, Priorities: map[string]int{"alarm": 10},
		BackoffMax: 500 * time.Millisecond, DeliveryTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	runLink(t, k)
	waitFor(t, "the backlog draining", func() bool { return partRecords(k.Health(), "bulk") > 0 })
	appendBatch(t, partition(t, alarm, 0), 1, spoollog.CodecNone)
	start := time.Now()
	if !waitUntil(4*time.Second, func() bool { return partRecords(k.Health(), "alarm") == 1 }) {
		h := k.Health()
		t.Fatalf("the alarm waited %v behind the low-priority backlog (bulk mirrored %d of %d)",
			time.Since(start).Round(time.Millisecond), partRecords(h, "bulk"), bp.HighWatermark())
	}
}
