package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	spoollog "github.com/spoolmq/spool/log"
)

// Read limits.
const (
	defaultLimit    = 100
	maxLimit        = 10000
	defaultMaxBytes = 1 << 20
	maxMaxBytes     = 64 << 20
	maxWait         = 5 * time.Minute
	// heartbeat is how often an idle event stream sends a comment, so that
	// proxies keep it open and a vanished client is noticed.
	heartbeat = 15 * time.Second
)

// readParams are the query parameters of the records endpoint.
type readParams struct {
	offset   string // "", "earliest", "latest" or a number
	limit    int
	maxBytes int
	wait     time.Duration
	follow   bool
}

func parseReadParams(r *http.Request) (readParams, error) {
	q := r.URL.Query()
	p := readParams{offset: q.Get("offset"), limit: defaultLimit, maxBytes: defaultMaxBytes}
	var err error
	if s := q.Get("limit"); s != "" {
		if p.limit, err = strconv.Atoi(s); err != nil || p.limit < 1 || p.limit > maxLimit {
			return p, badRequest(fmt.Sprintf("limit: %q is not a number between 1 and %d", s, maxLimit))
		}
	}
	if s := q.Get("max_bytes"); s != "" {
		if p.maxBytes, err = strconv.Atoi(s); err != nil || p.maxBytes < 1 || p.maxBytes > maxMaxBytes {
			return p, badRequest(fmt.Sprintf("max_bytes: %q is not a number between 1 and %d", s, maxMaxBytes))
		}
	}
	if s := q.Get("wait"); s != "" {
		if p.wait, err = time.ParseDuration(s); err != nil || p.wait < 0 || p.wait > maxWait {
			return p, badRequest(fmt.Sprintf("wait: %q is not a duration between 0s and %v", s, maxWait))
		}
	}
	switch s := q.Get("follow"); s {
	case "", "0", "false":
	case "1", "true":
		p.follow = true
	default:
		return p, badRequest(fmt.Sprintf("follow: %q is not 1 or 0", s))
	}
	for _, a := range r.Header.Values("Accept") {
		if strings.Contains(a, "text/event-stream") {
			p.follow = true
		}
	}
	return p, nil
}

// resolveOffset turns the offset parameter into an offset: the log start
// when empty or "earliest", the last stable offset for "latest" (the high
// watermark unless a transaction is pending: its records come once it
// commits).
func resolveOffset(s string, p *spoollog.Partition) (int64, error) {
	switch s {
	case "", "earliest":
		return p.LogStartOffset(), nil
	case "latest":
		return p.LastStableOffset(), nil
	}
	o, err := strconv.ParseInt(s, 10, 64)
	if err != nil || o < 0 {
		return 0, badRequest(fmt.Sprintf("offset: %q is not earliest, latest or an offset", s))
	}
	return o, nil
}

// GET /api/v1/topics/{topic}/partitions/{partition}/records
//
// Reads records from offset (default: the log start) on, at most limit
// of them and about max_bytes of stored batches. The answer is
//
//	{"records": [{"offset", "timestamp", "key", "value", "headers"}],
//	 "next_offset": N, "high_watermark": H, "last_stable_offset": L,
//	 "log_start_offset": S}
//
// where next_offset is where the next read continues. Reads return
// committed records only: the last stable offset is where they stop, the
// high watermark unless a Kafka transaction is pending. An offset at or
// beyond it gives an empty list (after waiting, with wait, for a record at
// that offset to become readable). With wait=D the request
// long-polls: it returns as soon as there is at least one record, or with
// an empty list (200) when D has passed.
//
// An offset below the log start (deleted by retention) is 416 Range Not
// Satisfiable, with the bounds in the body so the client can resume:
//
//	{"error": "...", "log_start_offset": S, "high_watermark": H}
//
// With "Accept: text/event-stream" or follow=1 the response is an event
// stream instead: see stream.
func (a *api) read(w http.ResponseWriter, r *http.Request) {
	t, p, err := a.partition(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	params, err := parseReadParams(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if params.follow {
		a.stream(w, r, t, p, params)
		return
	}
	from, err := resolveOffset(params.offset, p)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if from < p.LogStartOffset() {
		outOfRange(w, p, from)
		return
	}

	var timer <-chan time.Time
	if params.wait > 0 {
		tm := time.NewTimer(params.wait)
		defer tm.Stop()
		timer = tm.C
	}
	for {
		notify := p.Notify() // before the read that may find nothing
		recs, next, err := fetch(p, from, params.limit, params.maxBytes)
		if errors.Is(err, spoollog.ErrOffsetOutOfRange) {
			outOfRange(w, p, from) // retention passed us while we waited
			return
		}
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if len(recs) > 0 || timer == nil {
			a.writeRecords(w, p, recs, next)
			return
		}
		if a.pollWaiting != nil {
			a.pollWaiting()
		}
		select {
		case <-notify:
			if cur, err := a.l.Topic(t.Name()); err != nil || cur != t {
				a.fail(w, r, fmt.Errorf("%w: %q was deleted", spoollog.ErrUnknownTopic, t.Name()))
				return
			}
		case <-timer:
			timer = nil // one more read, then answer
		case <-a.opts.Context.Done():
			timer = nil
		case <-r.Context().Done():
			return // the client is gone
		}
	}
}

// partition finds the path's topic and partition.
func (a *api) partition(r *http.Request) (*spoollog.Topic, *spoollog.Partition, error) {
	t, err := a.l.Topic(r.PathValue("topic"))
	if err != nil {
		return nil, nil, err
	}
	s := r.PathValue("partition")
	id, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return nil, nil, badRequest(fmt.Sprintf("partition: %q is not a number", s))
	}
	p, err := t.Partition(int32(id))
	if err != nil {
		return nil, nil, err
	}
	return t, p, nil
}

func outOfRange(w http.ResponseWriter, p *spoollog.Partition, from int64) {
	start, hw := p.LogStartOffset(), p.HighWatermark()
	writeJSON(w, http.StatusRequestedRangeNotSatisfiable, struct {
		Error          string `json:"error"`
		LogStartOffset int64  `json:"log_start_offset"`
		HighWatermark  int64  `json:"high_watermark"`
	}{fmt.Sprintf("offset %d is below the log start offset %d (older records were deleted by retention); read from %d", from, start, start), start, hw})
}

func (a *api) writeRecords(w http.ResponseWriter, p *spoollog.Partition, recs []spoollog.Record, next int64) {
	b := make([]byte, 0, 256+len(recs)*128)
	b = append(b, `{"records":[`...)
	for i := range recs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendRecordJSON(b, &recs[i])
	}
	b = append(b, `],"next_offset":`...)
	b = strconv.AppendInt(b, next, 10)
	lso := p.LastStableOffset() // before the high watermark, which only grows: never above it
	b = append(b, `,"high_watermark":`...)
	b = strconv.AppendInt(b, p.HighWatermark(), 10)
	b = append(b, `,"last_stable_offset":`...)
	b = strconv.AppendInt(b, lso, 10)
	b = append(b, `,"log_start_offset":`...)
	b = strconv.AppendInt(b, p.LogStartOffset(), 10)
	b = append(b, '}')
	writeRawJSON(w, http.StatusOK, b)
}

// errEnough stops SplitBatches once the limit is reached.
var errEnough = errors.New("enough records")

// fetch reads up to limit records at or after from, reading about
// maxBytes of batches (always at least one batch). Records before from in
// the first batch, control batches (transaction markers) and aborted
// transactions are skipped. next is the offset to continue from: after the last record
// returned, or past the batches skipped.
func fetch(p *spoollog.Partition, from int64, limit, maxBytes int) ([]spoollog.Record, int64, error) {
	var recs []spoollog.Record
	next := from
	// Committed records only: nothing past the last stable offset, nothing
	// of aborted transactions.
	for budget := maxBytes; len(recs) < limit && budget > 0 && next < p.LastStableOffset(); {
		data, err := p.ReadCommitted(next, budget)
		if err != nil {
			if len(recs) > 0 && errors.Is(err, spoollog.ErrOffsetOutOfRange) {
				break // what was read stays valid
			}
			return nil, from, err
		}
		if len(data) == 0 {
			break
		}
		budget -= len(data)
		before := next
		err = spoollog.SplitBatches(data, func(h spoollog.BatchHeader, batch []byte) error {
			if h.LastOffset() < next {
				return nil
			}
			if !h.Control() && !p.Aborted(h) {
				_, rs, err := spoollog.DecodeRecords(batch)
				if err != nil {
					return fmt.Errorf("stored batch at offset %d: %w", h.BaseOffset, err)
				}
				for _, rec := range rs {
					if rec.Offset < next {
						continue
					}
					if len(recs) == limit {
						return errEnough
					}
					recs = append(recs, rec)
					next = rec.Offset + 1
				}
			}
			// The whole batch is consumed (compaction may have removed its
			// last records, or it is a control batch).
			next = max(next, h.LastOffset()+1)
			return nil
		})
		if err != nil && err != errEnough {
			return nil, from, err
		}
		if next == before {
			break // no progress: never spin
		}
	}
	return recs, next, nil
}
