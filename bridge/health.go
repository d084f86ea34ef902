package bridge

import (
	"sync"
	"time"
)

// State is a link's condition as an operator sees it.
type State string

const (
	// StateConnecting: the upstream has not yet been reached (topics not
	// checked or created), and nothing failed so far.
	StateConnecting State = "connecting"
	// StateDraining: connected, records are waiting and moving.
	StateDraining State = "draining"
	// StateCaughtUp: every partition is mirrored up to its high watermark.
	StateCaughtUp State = "caught_up"
	// StateFailing: the last attempt failed, or a partition with lag has
	// made no progress for StallTimeout although nothing reported an error
	// (connected but not moving).
	StateFailing State = "failing"
)

// Health is a snapshot of a link.
type Health struct {
	Link  string `json:"link"`
	State State  `json:"state"`
	// Lag is the sum of the partitions' lags, in records; LagBytes their
	// estimated stored size.
	Lag      int64 `json:"lag"`
	LagBytes int64 `json:"lag_bytes"`
	// OldestUnmirrored is the time of the oldest record not yet
	// acknowledged upstream, over all partitions (zero when caught up).
	OldestUnmirrored time.Time `json:"oldest_unmirrored,omitzero"`
	// RecordsPerSec and BytesPerSec are the recent upstream throughput:
	// acknowledged records and key+value bytes per second over the last
	// half minute or so (between Health calls).
	RecordsPerSec float64 `json:"records_per_sec"`
	BytesPerSec   float64 `json:"bytes_per_sec"`
	// Records and Bytes (keys plus values) acknowledged by the upstream
	// since the link was built.
	Records int64 `json:"records"`
	Bytes   int64 `json:"bytes"`
	// Gaps counts local offsets the link never mirrored because they were
	// deleted (drop_oldest, DeleteRecords) before it got to them.
	Gaps int64 `json:"gaps"`
	// Skipped counts records the link did not mirror because the upstream
	// refused each of them, on its own, as too large (MESSAGE_TOO_LARGE;
	// MQTT: PUBACK 0x95, or over the broker's or the link's packet limit):
	// never sendable, they would block their partition for ever. Each is
	// logged with its offset; they stay in the local log.
	Skipped int64 `json:"skipped"`
	// LastError and LastErrorAt are the most recent failure, kept after
	// recovery so an operator sees what happened.
	LastError   string            `json:"last_error,omitempty"`
	LastErrorAt time.Time         `json:"last_error_at,omitzero"`
	Partitions  []PartitionHealth `json:"partitions"`
}

// PartitionHealth is one mirrored partition.
type PartitionHealth struct {
	Topic       string `json:"topic"`
	Partition   int32  `json:"partition"`
	Destination string `json:"destination"`
	// Cursor is the next local offset to mirror; everything below it was
	// acknowledged upstream.
	Cursor        int64 `json:"cursor"`
	HighWatermark int64 `json:"high_watermark"`
	// LastStableOffset is where the link may read up to: the high
	// watermark, or the start of a transaction still pending.
	LastStableOffset int64 `json:"last_stable_offset"`
	// Lag is LastStableOffset - Cursor, in offsets: what the link could
	// mirror now. LagBytes estimates their stored size: Lag times the
	// partition's average stored record size.
	Lag      int64 `json:"lag"`
	LagBytes int64 `json:"lag_bytes"`
	// OldestUnmirrored is the timestamp of the batch holding the cursor:
	// the oldest record not yet acknowledged upstream (zero without lag).
	OldestUnmirrored time.Time `json:"oldest_unmirrored,omitzero"`
	Records          int64     `json:"records"`
	Bytes            int64     `json:"bytes"`
	Gaps             int64     `json:"gaps"`
	Skipped          int64     `json:"skipped"`
	// Failing is set from a failed attempt until the next acknowledged one.
	Failing bool `json:"failing"`
	// Stalled: lag and no progress for StallTimeout.
	Stalled      bool      `json:"stalled"`
	LastProgress time.Time `json:"last_progress,omitzero"`
	LastError    string    `json:"last_error,omitempty"`
	LastErrorAt  time.Time `json:"last_error_at,omitzero"`
}

// Health returns the link's current state. It is safe to call at any time,
// including before Run and after it returned.
func (k *KafkaLink) Health() Health {
	mirrors := k.mirrorList()
	parts := make([]*partState, len(mirrors))
	for i, m := range mirrors {
		parts[i] = &m.partState
	}
	h, failing, draining := sumPartitions(k.opts.Name, parts, time.Now(), k.opts.StallTimeout)
	h.RecordsPerSec, h.BytesPerSec = k.rate.update(time.Now(), h.Records, h.Bytes)
	k.mu.Lock()
	connected, setupErr, setupErrAt := k.connected, k.setupErr, k.setupErrAt
	upErr, upErrAt, upOKAt := k.upErr, k.upErrAt, k.upOKAt
	k.mu.Unlock()
	if setupErr != nil && setupErrAt.After(h.LastErrorAt) {
		h.LastError, h.LastErrorAt = setupErr.Error(), setupErrAt
	}
	// The upstream failed its last exchange: while records wait, that is
	// an outage, whatever kgo is still retrying.
	if upErr != nil && upErrAt.After(upOKAt) && (draining || !connected) {
		failing = true
	}
	if upErr != nil && upErrAt.After(h.LastErrorAt) {
		h.LastError, h.LastErrorAt = "upstream: "+upErr.Error(), upErrAt
	}
	switch {
	case !connected && (setupErr != nil || failing):
		h.State = StateFailing
	case !connected:
		h.State = StateConnecting
	case failing:
		h.State = StateFailing
	case draining:
		h.State = StateDraining
	default:
		h.State = StateCaughtUp
	}
	return h
}

// rateMeter turns the acknowledged totals into a recent rate: it keeps a
// few samples of them, taken when Health is called (at most one per
// second), and measures over the last 30 s of them.
type rateMeter struct {
	mu      sync.Mutex
	samples []rateSample
}

type rateSample struct {
	at             time.Time
	records, bytes int64
}

const rateWindow = 30 * time.Second

func (r *rateMeter) update(now time.Time, records, bytes int64) (recordsPerSec, bytesPerSec float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.samples); n == 0 || now.Sub(r.samples[n-1].at) >= time.Second {
		r.samples = append(r.samples, rateSample{now, records, bytes})
	}
	for len(r.samples) > 2 && now.Sub(r.samples[1].at) >= rateWindow {
		r.samples = r.samples[1:]
	}
	first := r.samples[0]
	dt := now.Sub(first.at).Seconds()
	if dt < 0.5 {
		return 0, 0
	}
	// The totals drop when a deleted topic's mirror retires: no negative
	// rates.
	return max(float64(records-first.records), 0) / dt, max(float64(bytes-first.bytes), 0) / dt
}
