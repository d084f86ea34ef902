package main

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestConsumeStopsAtSnapshotHighWatermark: `spool consume TOPIC` without
// --follow stops at the high watermarks it saw at start: records produced
// since, even when a fetch returns them with the others, are neither
// printed nor counted.
func TestConsumeStopsAtSnapshotHighWatermark(t *testing.T) {
	c, addr := newKafka(t)
	ctx := testCtx(t, time.Minute)
	mustKafka(t, ctx, addr, "topic", "create", "snap", "--partitions", "1")
	if code, stderr := produceInput(t, ctx, addr, "a\nb\nc\n", "snap"); code != 0 {
		t.Fatal(stderr)
	}
	// More records arrive after consume took its snapshot, just before its
	// first fetch is answered.
	var once atomic.Bool
	c.ControlKey(int16(kmsg.Fetch), func(kmsg.Request) (kmsg.Response, error, bool) {
		if once.Swap(true) {
			return nil, nil, false
		}
		c.SleepControl(func() {
			cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("snap"))
			if err != nil {
				t.Error(err)
				return
			}
			defer cl.Close()
			for _, v := range []string{"late1", "late2", "late3"} {
				if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
					t.Error(err)
				}
			}
		})
		return nil, nil, false
	})
	code, out, stderr := kafkaCmd(t, ctx, addr, "consume", "snap")
	if code != 0 {
		t.Fatalf("consume: exit %d: %s", code, stderr)
	}
	if out != "a\nb\nc\n" {
		t.Errorf("consume without --follow printed %q, want only the 3 records below the high watermark seen at start (%q); stderr %q", out, "a\nb\nc\n", strings.TrimSpace(stderr))
	}
}
