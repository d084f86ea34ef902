package bridge

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	spoollog "github.com/spoolmq/spool/log"
)

// Origin headers name where a mirrored record came from, so upstream
// consumers can recognise resends: (spool.edge, spool.topic,
// spool.partition, spool.offset) identifies one local record.
const (
	HeaderEdge      = "spool.edge"
	HeaderTopic     = "spool.topic"
	HeaderPartition = "spool.partition"
	HeaderOffset    = "spool.offset"
)

// mirror copies one local partition upstream. Its goroutine (run) owns the
// reading and producing; partState is shared with Health.
type mirror struct {
	partState
	link     *KafkaLink
	priority int  // of its topic, for the bandwidth limit
	ready    bool // its upstream topic was checked (KafkaLink.mu)

	// originTopic and originPartition are the header values every record
	// of this partition carries; built once.
	originTopic, originPartition []byte
}

func newMirror(k *KafkaLink, p *spoollog.Partition, topic, dest string) (*mirror, error) {
	m := &mirror{
		link:            k,
		priority:        k.opts.Priorities[topic],
		originTopic:     []byte(topic),
		originPartition: []byte(strconv.FormatInt(int64(p.ID()), 10)),
	}
	if err := m.init(k.opts.Log.Meta(), k.ns, p, topic, dest, k.lg); err != nil {
		return nil, fmt.Errorf("bridge link %s: %w", k.opts.Name, err)
	}
	return m, nil
}

// run mirrors until ctx ends. Each round reads up to ReadBytes of whole
// batches at the cursor, produces their records and waits for all of them
// to be acknowledged before moving the cursor: one round in flight per
// partition keeps the order and makes the cursor exact.
func (m *mirror) run(ctx context.Context, cl *kgo.Client) {
	o := &m.link.opts
	bo := backoff{min: o.BackoffMin, max: o.BackoffMax}
	m.markStart()
	for ctx.Err() == nil {
		idle, err := m.round(ctx, cl)
		switch {
		case err != nil && ctx.Err() != nil:
			// Stopping: Run closed the client under records still in
			// flight. Their cursor is stored; this is no failure.
			m.lg.Info("stopped with records unacknowledged; they will be resent", "cursor", m.getCursor(), "err", err)
		case err != nil:
			m.fail(err)
			wait := bo.next()
			m.lg.Warn("mirroring failed", "err", err, "retry_in", wait)
			sleep(ctx, wait)
		case idle != nil:
			bo.reset()
			m.setWaiting(true)
			select {
			case <-idle:
			case <-ctx.Done():
			}
			m.setWaiting(false)
		default:
			bo.reset()
		}
	}
}

// round does one read-produce-acknowledge step. It returns a channel to wait
// on when there was nothing to read, or the error of a failed step; a
// failed step has stored the cursor of whatever was acknowledged before the
// failure.
func (m *mirror) round(ctx context.Context, cl *kgo.Client) (<-chan struct{}, error) {
	cursor := m.getCursor()
	if start := m.p.LogStartOffset(); cursor < start {
		return nil, m.skipGap(cursor, start)
	}
	notify := m.p.Notify() // before the Read that may find nothing
	data, err := m.p.Read(cursor, m.link.opts.ReadBytes)
	if errors.Is(err, spoollog.ErrOffsetOutOfRange) && cursor < m.p.LogStartOffset() {
		return nil, nil // retention moved the start meanwhile: next round counts the gap
	}
	if err != nil {
		return nil, fmt.Errorf("read local log at %d: %w", cursor, err)
	}
	if len(data) == 0 {
		return notify, nil
	}
	recs, sizes, end, err := m.decode(data, cursor)
	if err != nil {
		return nil, err
	}
	if end <= cursor {
		// Never expected from Read; failing (with backoff) beats spinning.
		return nil, fmt.Errorf("read local log at %d: %d bytes but no whole batch", cursor, len(data))
	}
	var total int64
	for _, sz := range sizes {
		total += sz
	}
	live := end >= m.p.HighWatermark()
	if !m.link.limit.wait(ctx, total, roundClass(m.priority, live)) {
		return nil, ctx.Err()
	}
	next, perr := m.produce(cl, recs)
	if perr == nil {
		next = end // includes control batches and compacted-away offsets
	}
	var n, b int64
	for i, r := range recs {
		if r.offset >= next {
			break
		}
		n++
		b += sizes[i]
	}
	if err := m.advance(next, n, b, perr == nil || next > cursor); err != nil {
		return nil, err
	}
	if perr != nil {
		return nil, fmt.Errorf("upstream %s: %w", m.dest, perr)
	}
	return nil, nil
}

// pending is one record on its way upstream.
type pending struct {
	offset int64
	rec    *kgo.Record
}

// decode turns stored batches into upstream records at or after cursor and
// returns the offset after the last batch. Control batches (transaction
// markers) are not mirrored: they mean nothing outside this log.
func (m *mirror) decode(data []byte, cursor int64) ([]pending, []int64, int64, error) {
	var recs []pending
	var sizes []int64
	edge := []byte(m.link.opts.Site)
	end, err := spoollog.EachRecord(data, cursor, func(r spoollog.Record) error {
		hdrs := make([]kgo.RecordHeader, 0, len(r.Headers)+4)
		for _, h := range r.Headers {
			hdrs = append(hdrs, kgo.RecordHeader{Key: h.Key, Value: h.Value})
		}
		hdrs = append(hdrs,
			kgo.RecordHeader{Key: HeaderEdge, Value: edge},
			kgo.RecordHeader{Key: HeaderTopic, Value: m.originTopic},
			kgo.RecordHeader{Key: HeaderPartition, Value: m.originPartition},
			kgo.RecordHeader{Key: HeaderOffset, Value: strconv.AppendInt(nil, r.Offset, 10)},
		)
		recs = append(recs, pending{offset: r.Offset, rec: &kgo.Record{
			Topic:     m.dest,
			Partition: m.p.ID(), // used by the manual partitioner (keep) only
			Key:       r.Key,
			Value:     r.Value,
			Headers:   hdrs,
			Timestamp: time.UnixMilli(r.Timestamp),
		}})
		sizes = append(sizes, int64(len(r.Key)+len(r.Value)))
		return nil
	})
	if err != nil {
		return nil, nil, 0, fmt.Errorf("decode local batch at %d: %w", cursor, err)
	}
	return recs, sizes, end, nil
}

// produce hands recs to kgo in order and waits for every result. It returns
// the offset of the lowest record that failed, and its error; records after
// it may have been written upstream too, so the cursor must stay at that
// offset (a resend is allowed, a gap is not).
func (m *mirror) produce(cl *kgo.Client, recs []pending) (int64, error) {
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		failedAt  = int64(-1)
		failedErr error
	)
	// Not the run context: records already handed over should finish
	// (Run closes the client after FlushTimeout to end the wait). The
	// timeout fails records kgo has not sent yet (it never fails one whose
	// outcome it does not know), so a long outage turns into a reported
	// failure and resends after backoff rather than an endless wait.
	ctx, cancel := context.WithTimeout(context.Background(), m.link.opts.DeliveryTimeout)
	defer cancel()
	wg.Add(len(recs))
	for _, r := range recs {
		off := r.offset
		cl.Produce(ctx, r.rec, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				if failedAt < 0 || off < failedAt {
					failedAt, failedErr = off, err
				}
				mu.Unlock()
			}
			wg.Done()
		})
	}
	wg.Wait()
	return failedAt, failedErr
}
