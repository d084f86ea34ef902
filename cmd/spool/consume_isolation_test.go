package main

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestConsumeIsolation: `spool consume` prints committed records only and
// stops at the last stable offset while a transaction is pending;
// --isolation uncommitted prints the aborted and pending records too.
func TestConsumeIsolation(t *testing.T) {
	_, addr := newKafka(t)
	ctx := testCtx(t, time.Minute)
	mustKafka(t, ctx, addr, "topic", "create", "iso", "--partitions", "1")
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.TransactionalID("iso-writer"), kgo.DefaultProduceTopic("iso"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, step := range []struct {
		value       string
		end, commit bool // end false: left pending
	}{{"committed", true, true}, {"aborted", true, false}, {"pending", false, false}} {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(step.value)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if step.end {
			if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(step.commit)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if out := mustKafka(t, ctx, addr, "consume", "iso"); out != "committed\n" {
		t.Errorf("consume printed %q, want only the committed record", out)
	}
	if out := mustKafka(t, ctx, addr, "consume", "iso", "--isolation", "uncommitted"); out != "committed\naborted\npending\n" {
		t.Errorf("consume --isolation uncommitted printed %q", out)
	}
	if code, _, _ := kafkaCmd(t, ctx, addr, "consume", "iso", "--isolation", "dirty"); code != 2 {
		t.Errorf("--isolation dirty: exit %d, want 2", code)
	}
}

// TestConsumeEndsAfterAbortedBatchesAtLSO: against Spool, the last
// records below the last stable offset belong to a transaction aborted
// while another was already pending, so its abort marker lies past the
// LSO and a read_committed client is never given an offset there. A
// consume without --follow still ends at once: it finds that only
// aborted batches are left.
func TestConsumeEndsAfterAbortedBatchesAtLSO(t *testing.T) {
	addr := startPlainSpoolKafka(t)
	ctx := testCtx(t, time.Minute)
	mustKafka(t, ctx, addr, "topic", "create", "lso", "--partitions", "1")
	second := abortBeforePending(t, ctx, addr, "lso", [2]string{"first", "second"})
	start := time.Now()
	code, out, stderr := kafkaCmd(t, ctx, addr, "consume", "lso")
	if code != 0 || out != "" {
		t.Errorf("consume: exit %d, printed %q: %s", code, out, stderr)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("consume took %v to find only aborted records below the last stable offset", d)
	}
	if err := second.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	if out := mustKafka(t, ctx, addr, "consume", "lso"); out != "pending\n" {
		t.Errorf("consume after the commit printed %q, want the committed record", out)
	}
}
