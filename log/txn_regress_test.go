package log

// Regression tests of the per-partition transaction state (txn.go).

import (
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// TestTxnBeginDuringFailedCycleHidesPending: a transaction begins while
// another producer's batch is queued but not yet written, and that write
// fails (here a full disk, which leaves the partition usable): failLocked
// hands the queued offsets out again, so the transaction's own first batch
// lands at an offset that was already assigned when BeginTxn ran. The LSO
// is then at most the first offset of that batch, and read_committed
// readers see the pending record neither while the transaction is pending
// nor after it aborts (the aborted range covers it). Kafka's LSO is
// likewise the first offset of the producer's first batch actually
// appended (ProducerStateManager's firstUnstableOffset), whatever was
// queued.
func TestTxnBeginDuringFailedCycleHidesPending(t *testing.T) {
	ffs := newFaultFS()
	r := newTxnRigFS(t, txnTestConfig(), ffs)
	const pid = 77
	r.plain("a") // offset 0

	// Another producer's batch is queued (offset 1) and its write fails
	// with ENOSPC; the transaction begins while it is in flight.
	blocked, release := ffs.blockNextWrite(isDataWrite)
	ffs.shortWrite(1, isDataWrite)
	errc := make(chan error, 1)
	go func() {
		_, err := r.p.AppendRecords([]Record{{Timestamp: r.ts(), Value: []byte("lost")}}, DefaultBatchOptions)
		errc <- err
	}()
	select {
	case <-blocked:
	case <-time.After(10 * time.Second):
		t.Fatal("the write was never reached")
	}
	r.begin(pid)
	close(release)
	select {
	case err := <-errc:
		if !errors.Is(err, ErrFull) {
			t.Fatalf("the in-flight append: %v, want ErrFull", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the in-flight append never finished")
	}
	if err := r.p.Err(); err != nil {
		t.Fatalf("partition sticky after a full disk: %v", err)
	}

	res := r.txn(pid, "pending") // the transaction's first batch
	r.plain("c")
	if lso := r.p.LastStableOffset(); lso > res.BaseOffset {
		t.Errorf("LSO %d is past the pending transaction's first batch at %d (high watermark %d)", lso, res.BaseOffset, r.p.HighWatermark())
	}
	if got := txnCommitted(t, r.p, 0, 1<<20); slices.Contains(got, "1:pending") {
		t.Errorf("committed readers see the pending record: %v", got)
	}
	r.end(pid, false)
	if got := txnCommitted(t, r.p, 0, 1<<20); slices.Contains(got, "1:pending") {
		t.Errorf("committed readers see the aborted record: %v (aborted %+v)", got, r.p.AbortedTxns(0, 100))
	}
}

// TestTxnEndStoreFailureRetryStoresEnd: EndTxn writes
// the marker, ends the transaction in memory, then stores the end in
// meta.db. If that store fails, EndTxn returns an error, and the
// coordinator (edge/kafka txn.go complete) retries the end at once (and
// its timer every second). The retry finds nothing pending in memory, so
// it stores the end again, and succeeds only once meta.db has it; the
// coordinator then records the transaction complete and forgets its
// partitions. After a restart the partition has no pending transaction and
// its LSO is the high watermark: a transaction pending in meta.db alone
// would never be ended by any coordinator, and its LSO would stop
// read_committed consumers and Spool's own readers for good. Here
// meta.db's writes fail for one EndTxn, as they would on a full disk.
func TestTxnEndStoreFailureRetryStoresEnd(t *testing.T) {
	r := newTxnRig(t, txnTestConfig())
	const pid = 88
	r.plain("a")
	r.begin(pid)
	r.txn(pid, "t")

	// meta.db refuses writes: a read-only handle stands in for a full disk.
	path := filepath.Join(t.TempDir(), "ro.db")
	scratch, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	scratch.Close()
	ro, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	orig := r.l.meta.db
	r.l.meta.db = ro
	_, err = r.p.EndTxn(pid, 0, true, 0)
	r.l.meta.db = orig
	if err == nil {
		t.Fatal("EndTxn succeeded with meta.db refusing writes")
	}
	t.Logf("first EndTxn: %v", err)

	// The coordinator's retry, with meta.db writable again: -1, nil means
	// "already ended", and the end must now be stored.
	off, err := r.p.EndTxn(pid, 0, true, 0)
	if err != nil {
		t.Fatalf("retried EndTxn: %v", err)
	}
	t.Logf("retried EndTxn: marker %d, nil", off)
	hw := r.p.HighWatermark()
	r.wantLSO(hw)

	r.reopen()
	if lso := r.p.LastStableOffset(); lso != r.p.HighWatermark() {
		t.Errorf("after a restart the LSO is %d, want the high watermark %d: the committed transaction is pending again",
			lso, r.p.HighWatermark())
	}
	if r.p.TxnPending(pid) {
		t.Errorf("producer %d has a transaction pending after the restart", pid)
	}
}

// TestTxnBeginRacingDeleteTopicLeavesNoState: BeginTxn checks that the partition
// is not gone, then stores the partition's transactions in meta.db
// (putTxns, which creates the topic's bucket if missing). A DeleteTopic in
// between removes the topic's transactions from meta.db, and the store
// does not write them back under the deleted topic's name: the next topic
// created with that name opens its partition with no transaction pending
// and its LSO at the high watermark. (A transaction inherited that way
// would keep the LSO at offset 0 for good unless the coordinator still
// listed the partition.) This matches Kafka, whose partitions are
// identified by topic id: a new topic never inherits a deleted one's
// producer state.
func TestTxnBeginRacingDeleteTopicLeavesNoState(t *testing.T) {
	r := newTxnRig(t, txnTestConfig())
	const pid = 99
	r.plain("a")

	r.p.txn.saveMu.Lock() // BeginTxn passes its gone check, then waits here
	done := make(chan error, 1)
	go func() { done <- r.p.BeginTxn(pid) }()
	time.Sleep(200 * time.Millisecond)
	deleted := make(chan error, 1)
	go func() { deleted <- r.l.DeleteTopic(r.name) }()
	for !r.p.gone.Load() { // DeleteTopic closed the partition, and waits for the save under way
		time.Sleep(time.Millisecond)
	}
	r.p.txn.saveMu.Unlock()
	if err := <-deleted; err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Logf("BeginTxn racing DeleteTopic: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("BeginTxn never returned")
	}

	tp, err := r.l.CreateTopic(r.name, r.cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := hkPart(t, tp, 0)
	txnPlain(t, p, r.ts(), "new-1", "new-2")
	if p.TxnPending(pid) {
		t.Errorf("the new topic %q has producer %d's transaction pending, inherited from the deleted one", r.name, pid)
	}
	if lso, hw := p.LastStableOffset(), p.HighWatermark(); lso != hw {
		t.Errorf("new topic: LSO %d, want the high watermark %d", lso, hw)
	}
}
