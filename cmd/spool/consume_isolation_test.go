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
