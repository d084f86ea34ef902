package bridge

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
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
	// roundBytes bounds the records of one round (wireSize), learned
	// from MESSAGE_TOO_LARGE; 0 until then. Owned by the goroutine that
	// mirrors the partition.
	roundBytes int64
	// refused is, on an exactly-once link, the offset+1 of a record the
	// upstream refused on its own as too large, for the next transaction
	// to skip, and refusedErr why; 0 when none. Owned by the session.
	refused    int64
	refusedErr error

	// originTopic and originPartition are the header values every record
	// of this partition carries; built once.
	originTopic, originPartition []byte
}

func newMirror(k *KafkaLink, p *spoollog.Partition, topic, dest string, fresh bool) (*mirror, error) {
	m := &mirror{
		link:            k,
		priority:        k.opts.Priorities[topic],
		originTopic:     []byte(topic),
		originPartition: []byte(strconv.FormatInt(int64(p.ID()), 10)),
	}
	if err := m.init(k.opts.Log.Meta(), k.ns, p, topic, dest, k.lg, fresh); err != nil {
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
		case errors.Is(err, spoollog.ErrClosed) && m.deleted(o.Log):
			// The topic was deleted: nothing is left to mirror, and
			// AddTopics mirrors a topic created again under its name.
			m.link.set().retire(m)
			return
		case err != nil:
			m.fail(err)
			if upstreamTopicGone(err) {
				m.link.recheck(m)
			}
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
	data, err := m.p.ReadCommitted(cursor, m.link.opts.ReadBytes)
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
	recs, sizes, end = m.fit(recs, sizes, end)
	var total int64
	for _, sz := range sizes {
		total += sz
	}
	live := end >= m.p.LastStableOffset()
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
	if errors.Is(perr, kerr.MessageTooLarge) {
		return nil, m.tooLarge(recs, next, perr)
	}
	if perr != nil {
		return nil, fmt.Errorf("upstream %s: %w", m.dest, perr)
	}
	return nil, nil
}

// Sizes of the record batch format, for staying below max.message.bytes
// (without compression, which only makes a batch smaller).
const (
	batchOverhead  = 61 // RecordBatch header
	recordOverhead = 32 // a record's varints, at most
)

// wireSize is what r takes in a record batch, at most.
func wireSize(r *kgo.Record) int64 {
	n := int64(recordOverhead + len(r.Key) + len(r.Value))
	for _, h := range r.Headers {
		n += int64(len(h.Key)+len(h.Value)) + 10
	}
	return n
}

// fit cuts a round down to what one upstream batch may carry: one round in
// flight per partition makes its records one batch (or several), and a
// batch over the destination's max.message.bytes is refused whole. It keeps
// at least one record; end becomes the offset of the first one cut.
func (m *mirror) fit(recs []pending, sizes []int64, end int64) ([]pending, []int64, int64) {
	limit := m.roundBytes
	if ml := m.link.messageLimit(m.dest) - batchOverhead; ml > 0 && (limit == 0 || ml < limit) {
		limit = ml
	}
	if limit <= 0 {
		return recs, sizes, end
	}
	var total int64
	for i, r := range recs {
		total += wireSize(r.rec)
		if i > 0 && total > limit {
			return recs[:i], sizes[:i], r.offset
		}
	}
	return recs, sizes, end
}

// tooLarge handles MESSAGE_TOO_LARGE on the records of a round from
// failedAt: several are retried at once, in rounds half the size; one
// refused on its own can never go upstream, and is skipped, counted and
// logged rather than blocking its partition for ever.
func (m *mirror) tooLarge(recs []pending, failedAt int64, err error) error {
	var rest int64
	n := 0
	for _, r := range recs {
		if r.offset >= failedAt {
			rest += wireSize(r.rec)
			n++
		}
	}
	if n > 1 {
		m.roundBytes = max(rest/2, 1)
		m.lg.Warn("upstream refused a batch as too large; sending smaller ones", "round_bytes", m.roundBytes, "err", err)
		return nil
	}
	return m.skipTooLarge(failedAt, fmt.Errorf("upstream %s: %w", m.dest, err))
}

// upstreamTopicGone reports whether a produce error says the upstream topic
// does not exist (by name, or by the id of the topic it was before it was
// deleted and perhaps created again).
func upstreamTopicGone(err error) bool {
	return errors.Is(err, kerr.UnknownTopicOrPartition) || errors.Is(err, kerr.UnknownTopicID)
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
	end, err := m.p.EachCommitted(data, cursor, func(r spoollog.Record) error {
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
