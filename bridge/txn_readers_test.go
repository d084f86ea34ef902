package bridge

import (
	"context"
	"encoding/binary"
	"hash/crc32"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	spoollog "github.com/spoolmq/spool/log"
)

// txnTestBatch encodes recs as one transactional batch of producer pid, as
// a Kafka transactional producer sends it.
func txnTestBatch(t testing.TB, pid int64, recs ...spoollog.Record) []byte {
	t.Helper()
	b, err := spoollog.AppendBatch(nil, recs, spoollog.BatchOptions{ProducerID: pid, ProducerEpoch: 0, BaseSequence: 0})
	if err != nil {
		t.Fatal(err)
	}
	// attributes (offset 21): the transactional bit; the CRC-32C (offset
	// 17) covers everything from the attributes on.
	binary.BigEndian.PutUint16(b[21:], binary.BigEndian.Uint16(b[21:])|0x10)
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	if h, err := spoollog.ParseBatchHeader(b); err != nil || !h.Transactional() {
		t.Fatalf("txnTestBatch: %+v %v", h, err)
	}
	return b
}

// txnTxn appends a transactional batch of pid (its transaction begun) and
// tells the partition, as edge/kafka's produce path does.
func txnAppend(t testing.TB, p *spoollog.Partition, pid int64, recs ...spoollog.Record) int64 {
	t.Helper()
	res, err := p.Append(txnTestBatch(t, pid, recs...))
	if err != nil {
		t.Fatal(err)
	}
	p.TxnAppended(pid, res.BaseOffset)
	return res.BaseOffset
}

func txnRec(key, value string) spoollog.Record {
	return spoollog.Record{Timestamp: time.Now().UnixMilli(), Key: []byte(key), Value: []byte(value)}
}

func txnBegin(t testing.TB, p *spoollog.Partition, pid int64) {
	t.Helper()
	if err := p.BeginTxn(pid); err != nil {
		t.Fatal(err)
	}
}

func txnEnd(t testing.TB, p *spoollog.Partition, pid int64, commit bool) int64 {
	t.Helper()
	off, err := p.EndTxn(pid, 0, commit, 0)
	if err != nil {
		t.Fatal(err)
	}
	return off
}

// txnClock is a settable clock for the log (segment ages).
type txnClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *txnClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *txnClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

// txnTurns is how many transactions the exactly-once loop has started.
func txnTurns(k *KafkaLink) uint64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.txnTurn
}

// TestTxnExactlyOnceWaitsAtGapBeforePendingTxn: an exactly-once link
// whose cursor is below the last stable offset with nothing readable in
// between (compaction dropped an aborted batch there) sleeps until the
// pending transaction at the LSO ends, as the plain link does: it does
// not start empty transaction rounds in a loop for as long as it is
// pending.
func TestTxnExactlyOnceWaitsAtGapBeforePendingTxn(t *testing.T) {
	clock := &txnClock{}
	l := newTestLog(t, spoollog.Options{Now: clock.Now})
	tp := createTopic(t, l, "state", 1, func(c *spoollog.TopicConfig) {
		c.CleanupPolicy = spoollog.CleanupCompact
		c.SegmentAge = time.Hour
	})
	p := partition(t, tp, 0)
	if _, err := p.AppendRecords([]spoollog.Record{txnRec("k0", "v0")}, spoollog.DefaultBatchOptions); err != nil { // 0
		t.Fatal(err)
	}
	c := newCluster(t)
	k := eosLink(t, c.ListenAddrs(), l, []string{"state"})
	stop := runLink(t, k)
	waitFor(t, "offset 0 mirrored", func() bool { return k.Health().Partitions[0].Cursor == 1 })
	stop()
	k.Close()

	const aborted, pending = 1001, 1002
	txnBegin(t, p, aborted)
	txnAppend(t, p, aborted, txnRec("a", "x")) // 1, aborted below
	clock.Advance(2 * time.Hour)               // the next append rolls: [0, 2) is sealed
	txnBegin(t, p, pending)
	txnAppend(t, p, pending, txnRec("b", "y")) // 2, pending
	txnEnd(t, p, aborted, false)               // 3: abort marker
	if err := l.Maintain(); err != nil {       // compaction drops the aborted batch at 1
		t.Fatal(err)
	}
	if lso := p.LastStableOffset(); lso != 2 {
		t.Fatalf("LSO %d, want 2", lso)
	}
	data, err := p.Read(1, 1<<20)
	if err != nil || len(data) == 0 {
		t.Fatalf("Read(1): %d bytes, %v", len(data), err)
	}
	if h, _ := spoollog.ParseBatchHeader(data); h.BaseOffset != 2 {
		t.Fatalf("precondition: offset 1 should be a gap before the pending batch at 2, read a batch at %d", h.BaseOffset)
	}

	k2 := eosLink(t, c.ListenAddrs(), l, []string{"state"})
	runLink(t, k2)
	waitFor(t, "the session started at cursor 1", func() bool { return txnTurns(k2) > 0 && k2.Health().Partitions[0].Cursor == 1 })
	time.Sleep(200 * time.Millisecond)
	before := txnTurns(k2)
	time.Sleep(time.Second)
	if n := txnTurns(k2) - before; n > 50 {
		t.Errorf("the exactly-once loop ran %d transactions in one second with nothing to mirror (a pending transaction at the LSO): it spins instead of waiting", n)
	}

	// Once the transaction commits, the link goes on.
	txnEnd(t, p, pending, true)
	waitFor(t, "mirrored to the end after the commit", func() bool { return k2.Health().Partitions[0].Cursor == p.HighWatermark() })
}

// TestTxnHealthCaughtUpWhileTxnPending: a link that has mirrored
// everything committed (its cursor at the LSO, where a transaction is
// pending) is caught up: no lag, no oldest unmirrored record. The pending
// records cannot be mirrored yet; a committed reader's lag is measured to
// the LSO, as Kafka's read_committed consumer lag is.
func TestTxnHealthCaughtUpWhileTxnPending(t *testing.T) {
	l := newTestLog(t, spoollog.Options{})
	tp := createTopic(t, l, "telemetry", 1, nil)
	p := partition(t, tp, 0)
	appendBatch(t, p, 3, spoollog.CodecNone) // 0..2
	const pid = 2001
	txnBegin(t, p, pid)
	txnAppend(t, p, pid, txnRec("a", "p3"), txnRec("a", "p4")) // 3..4, pending

	c := newCluster(t)
	k, err := NewKafkaLink(KafkaLinkOptions{Name: "central", Site: "pi", Seeds: c.ListenAddrs(), Log: l,
		Topics: []string{"telemetry"}, BackoffMax: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runLink(t, k)
	waitFor(t, "the committed records mirrored", func() bool { return k.Health().Partitions[0].Cursor == 3 })
	time.Sleep(300 * time.Millisecond)
	h := k.Health()
	ph := h.Partitions[0]
	if h.State != StateCaughtUp || h.Lag != 0 || !h.OldestUnmirrored.IsZero() {
		t.Errorf("every committed record mirrored (cursor %d = LSO %d, high watermark %d): state %s, lag %d, oldest unmirrored %v; want caught_up, lag 0",
			ph.Cursor, p.LastStableOffset(), p.HighWatermark(), h.State, h.Lag, h.OldestUnmirrored)
	}
	txnEnd(t, p, pid, true)
	waitState(t, k, StateCaughtUp)
}

// TestTxnExactlyOnceNotStalledByPendingTxn: on an exactly-once link, a
// partition whose cursor waits at a pending transaction while another
// partition keeps the link busy is not reported stalled, nor the link
// failing: it mirrored everything it may.
func TestTxnExactlyOnceNotStalledByPendingTxn(t *testing.T) {
	l := newTestLog(t, spoollog.Options{})
	tp := createTopic(t, l, "telemetry", 2, nil)
	p0, p1 := partition(t, tp, 0), partition(t, tp, 1)
	appendBatch(t, p0, 2, spoollog.CodecNone)
	const pid = 3001
	txnBegin(t, p0, pid)
	txnAppend(t, p0, pid, txnRec("a", "pending"))
	for range 2000 { // partition 1: a backlog of small batches
		appendBatch(t, p1, 1, spoollog.CodecNone)
	}

	c := newCluster(t)
	k, err := NewKafkaLink(KafkaLinkOptions{Name: "central", Site: "pi", Seeds: c.ListenAddrs(), Log: l,
		Topics: []string{"telemetry"}, ExactlyOnce: true, ReadBytes: 256, BackoffMax: 500 * time.Millisecond,
		DeliveryTimeout: 5 * time.Second, StallTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runLink(t, k)
	waitFor(t, "partition 0's committed records mirrored", func() bool { return k.Health().Partitions[0].Cursor == 2 })
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		h := k.Health()
		if h.Partitions[1].Lag == 0 {
			break // the backlog is done
		}
		// Failing because partition 1 itself stalled (a loaded machine:
		// its first round took longer than the stall timeout) is not
		// partition 0's doing.
		p1Slow := h.Partitions[1].Stalled || h.Partitions[1].Failing
		if (h.State == StateFailing && !p1Slow) || h.Partitions[0].Stalled {
			t.Errorf("link reported %s (partition 0 stalled %v: %q; partition 1 lag %d, stalled %v) while partition 0 waits at a pending transaction with everything committed mirrored",
				h.State, h.Partitions[0].Stalled, h.Partitions[0].LastError, h.Partitions[1].Lag, h.Partitions[1].Stalled)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTxnDownstreamSkipsAbortedUpstream: a downstream copy reads the
// upstream topic read_committed: records of a transaction aborted upstream
// are not stored locally, where egress and actuators would take them for
// commands to deliver.
func TestTxnDownstreamSkipsAbortedUpstream(t *testing.T) {
	up := newCluster(t, kfake.SeedTopics(1, "dc.commands"))
	seeds := up.ListenAddrs()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	tx, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.TransactionalID("dc-writer"), kgo.DefaultProduceTopic("dc.commands"))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	for _, step := range []struct {
		value  string
		commit bool
	}{{"open-valve", false}, {"close-valve", true}} {
		if err := tx.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := tx.ProduceSync(ctx, &kgo.Record{Key: []byte("valve"), Value: []byte(step.value)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := tx.EndTransaction(ctx, kgo.TransactionEndTry(step.commit)); err != nil {
			t.Fatal(err)
		}
	}

	l := newTestLog(t, spoollog.Options{})
	local := createTopic(t, l, "commands", 1, nil)
	d, err := NewKafkaDownstream(KafkaDownstreamOptions{Name: "down", Site: "pi-1", Seeds: seeds, Log: l,
		Topics: map[string]string{"dc.commands": "commands"}, BackoffMin: 10 * time.Millisecond,
		ClientOpts: []kgo.Opt{kgo.FetchMaxWait(100 * time.Millisecond)}})
	if err != nil {
		t.Fatal(err)
	}
	runDownstream(t, d)
	waitFor(t, "the committed command copied", func() bool {
		for _, r := range allLocal(t, local) {
			if string(r.Value) == "close-valve" {
				return true
			}
		}
		return false
	})
	time.Sleep(300 * time.Millisecond)
	var got []string
	for _, r := range allLocal(t, local) {
		got = append(got, string(r.Value))
	}
	if !slices.Equal(got, []string{"close-valve"}) {
		t.Errorf("local copy holds %q, want only the committed [close-valve]: the aborted command is stored as a committed local record", got)
	}
}
