package kafka_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/spoolmq/spool/edge/kafka"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestOffsetsByTimestamp: ListOffsets finds the first record at or after
// a timestamp, the earliest and the latest offsets, and nothing past the
// newest record.
func TestOffsetsByTimestamp(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	tb.createTopic("times", 1)
	p := tb.client(kgo.DefaultProduceTopic("times"), kgo.ProducerLinger(0))
	base := time.UnixMilli(1_700_000_000_000)
	for i := range 10 {
		// One batch per record, so that the lookup has batches to skip.
		r := &kgo.Record{Value: []byte(strconv.Itoa(i)), Timestamp: base.Add(time.Duration(i) * time.Second)}
		if err := p.ProduceSync(ctx(t), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	adm := tb.admin()
	for _, tc := range []struct {
		ms   int64
		want int64
	}{
		{base.UnixMilli() - 1, 0},
		{base.UnixMilli(), 0},
		{base.Add(3 * time.Second).UnixMilli(), 3},
		{base.Add(3*time.Second).UnixMilli() + 1, 4},
		{base.Add(9 * time.Second).UnixMilli(), 9},
	} {
		lo, err := adm.ListOffsetsAfterMilli(ctx(t), tc.ms, "times")
		if err != nil {
			t.Fatal(err)
		}
		o, _ := lo.Lookup("times", 0)
		if o.Err != nil || o.Offset != tc.want {
			t.Errorf("offset after %d: %d (%v), want %d", tc.ms, o.Offset, o.Err, tc.want)
		}
		if want := base.Add(time.Duration(tc.want) * time.Second).UnixMilli(); o.Timestamp != want {
			t.Errorf("timestamp after %d: %d, want the record's own %d", tc.ms, o.Timestamp, want)
		}
	}
	lo, err := adm.ListOffsetsAfterMilli(ctx(t), base.Add(time.Hour).UnixMilli(), "times")
	if err != nil {
		t.Fatal(err)
	}
	// Past the newest record the broker answers -1, which kadm turns into
	// the end offset.
	if o, _ := lo.Lookup("times", 0); o.Err != nil || o.Offset != 10 {
		t.Errorf("offset after the newest record: %d (%v)", o.Offset, o.Err)
	}
	start, err := adm.ListStartOffsets(ctx(t), "times")
	if err != nil {
		t.Fatal(err)
	}
	end, err := adm.ListEndOffsets(ctx(t), "times")
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := start.Lookup("times", 0); s.Offset != 0 {
		t.Errorf("start offset %d", s.Offset)
	}
	if e, _ := end.Lookup("times", 0); e.Offset != 10 {
		t.Errorf("end offset %d", e.Offset)
	}
}
