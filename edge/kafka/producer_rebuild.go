package kafka

import (
	"fmt"
	"time"

	spoollog "github.com/spoolmq/spool/log"
)

// After a crash there is no producer snapshot (producer_snapshot.go): the
// idempotent producers' last batches are read back from the tail of each
// partition instead, so that a client retrying a batch that was stored
// just before the crash (its answer lost) is answered with the original
// offsets rather than stored twice. A client retries only requests it
// sent recently (within its delivery timeout: 2 minutes for the Java
// client), so the tail read is bounded by age and by size.
const (
	rebuildAge   = 5 * time.Minute
	rebuildBytes = 2 << 20 // per partition, about: a start after a crash reads this much more
)

// rebuildFromLog restores the sequence state of every producer found in
// the recent tail of each partition.
func (ps *producers) rebuildFromLog(l *spoollog.Log, now time.Time) {
	for _, name := range l.Topics() {
		t, err := l.Topic(name)
		if err != nil {
			continue
		}
		for _, p := range t.Partitions() {
			for pid, batches := range producerTail(p, now) {
				ps.rebuild(pid, p, batches)
				ps.known(pid, batches[len(batches)-1].ProducerEpoch, true)
			}
		}
	}
}

// producerTail returns the idempotent batches of the recent tail of p by
// producer id, oldest first.
func producerTail(p *spoollog.Partition, now time.Time) map[int64][]spoollog.BatchHeader {
	hw, start := p.HighWatermark(), p.LogStartOffset()
	if hw <= start {
		return nil
	}
	from, found, err := p.OffsetForTime(now.Add(-rebuildAge).UnixMilli())
	if err != nil || !found {
		return nil // nothing that recent (by the producers' clocks)
	}
	// Not more than about rebuildBytes before the end, by the partition's
	// average bytes per offset.
	if perOffset := p.DataBytes() / (hw - start); perOffset > 0 {
		from = max(from, hw-rebuildBytes/perOffset)
	}
	out := map[int64][]spoollog.BatchHeader{}
	_ = eachBatchFrom(p, max(from, start), func(h spoollog.BatchHeader) {
		if h.ProducerID >= 0 && !h.Control() && h.BaseSequence >= 0 {
			bs := append(out[h.ProducerID], h)
			if len(bs) > recentBatches {
				bs = bs[1:]
			}
			out[h.ProducerID] = bs
		}
	})
	return out
}

// eachBatchFrom calls fn with the header of each batch of p that starts at
// or after from, up to the high watermark.
func eachBatchFrom(p *spoollog.Partition, from int64, fn func(spoollog.BatchHeader)) error {
	for off := from; off < p.HighWatermark(); {
		data, err := p.Read(off, 1<<20)
		if err != nil || len(data) == 0 {
			return err
		}
		next := off
		err = spoollog.SplitBatches(data, func(h spoollog.BatchHeader, _ []byte) error {
			next = max(next, h.LastOffset()+1)
			if h.BaseOffset >= off {
				fn(h)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if next <= off {
			return fmt.Errorf("no whole batch at offset %d", off)
		}
		off = next
	}
	return nil
}
