package bridge

// KafkaDownstream carries records from upstream Kafka topics into local
// topics: commands written in the data center reach the edge, where egress
// rules deliver them to devices. It is a consumer group member upstream and
// commits an upstream offset only after the records below it are durable
// in the local log, so a crash or outage resends (identifiable by the
// spool.upstream.* headers it adds), never skips.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	spoollog "github.com/spoolmq/spool/log"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Headers a downstream record carries: where it came from upstream.
const (
	HeaderUpstreamTopic     = "spool.upstream.topic"
	HeaderUpstreamPartition = "spool.upstream.partition"
	HeaderUpstreamOffset    = "spool.upstream.offset"
)

// KafkaDownstreamOptions configure a KafkaDownstream.
type KafkaDownstreamOptions struct {
	// Name identifies it; the upstream consumer group is Group, default
	// "spool-<site>-<name>".
	Name, Site, Group string
	Seeds             []string
	ClientOpts        []kgo.Opt
	// Topics maps an upstream topic to the local topic its records go to
	// (which must exist). Records keep their key, value, timestamp and
	// headers and are partitioned locally by their key (murmur2).
	Topics map[string]string
	// StartLatest makes a group that never committed start at the end of
	// the upstream topics; by default it starts at their beginning, so
	// nothing written before the edge first connected is missed.
	StartLatest bool
	Log         *spoollog.Log
	// BackoffMin and BackoffMax bound the retry after a failed local
	// append or upstream error; defaults 100 ms and 10 s.
	BackoffMin, BackoffMax time.Duration
	Logger                 *slog.Logger
}

// KafkaDownstream is a running downstream link.
type KafkaDownstream struct {
	opts   KafkaDownstreamOptions
	lg     *slog.Logger
	locals map[string]*spoollog.Topic

	downCounters
}

// downCounters are what a downstream link reports in its Health.
type downCounters struct {
	copied    atomic.Int64 // stored locally
	committed atomic.Int64 // stored and acknowledged (committed) upstream
	dropped   atomic.Int64 // too large for their local topic: counted, logged
	mu        sync.Mutex
	lastErr   string
	errAt     time.Time
}

func (c *downCounters) health(name string) DownstreamHealth {
	c.mu.Lock()
	defer c.mu.Unlock()
	return DownstreamHealth{Name: name, Copied: c.copied.Load(), Committed: c.committed.Load(), Dropped: c.dropped.Load(), LastError: c.lastErr, LastErrorAt: c.errAt}
}

func (c *downCounters) fail(err error) {
	c.mu.Lock()
	c.lastErr, c.errAt = err.Error(), time.Now()
	c.mu.Unlock()
}

// DownstreamHealth is a snapshot of a downstream link.
type DownstreamHealth struct {
	Name        string    `json:"name"`
	Copied      int64     `json:"copied"`
	Committed   int64     `json:"committed"`
	Dropped     int64     `json:"dropped"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// NewKafkaDownstream checks the options; the local topics must exist.
func NewKafkaDownstream(opts KafkaDownstreamOptions) (*KafkaDownstream, error) {
	switch {
	case opts.Name == "":
		return nil, errors.New("bridge downstream: name is empty")
	case len(opts.Seeds) == 0:
		return nil, fmt.Errorf("bridge downstream %s: no seed brokers", opts.Name)
	case len(opts.Topics) == 0:
		return nil, fmt.Errorf("bridge downstream %s: no topics", opts.Name)
	case opts.Log == nil:
		return nil, fmt.Errorf("bridge downstream %s: no local log", opts.Name)
	}
	if opts.Group == "" {
		opts.Group = "spool-" + opts.Site + "-" + opts.Name
	}
	if opts.BackoffMin <= 0 {
		opts.BackoffMin = 100 * time.Millisecond
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	d := &KafkaDownstream{opts: opts, lg: opts.Logger.With("downstream", opts.Name), locals: map[string]*spoollog.Topic{}}
	for up, local := range opts.Topics {
		t, err := opts.Log.Topic(local)
		if err != nil {
			return nil, fmt.Errorf("bridge downstream %s: local topic for %s: %w", opts.Name, up, err)
		}
		d.locals[up] = t
	}
	return d, nil
}

// Health returns the link's counters and last error.
func (d *KafkaDownstream) Health() DownstreamHealth { return d.health(d.opts.Name) }

// Run consumes until ctx ends.
func (d *KafkaDownstream) Run(ctx context.Context) error {
	topics := make([]string, 0, len(d.opts.Topics))
	for up := range d.opts.Topics {
		topics = append(topics, up)
	}
	start := kgo.NewOffset().AtStart()
	if d.opts.StartLatest {
		start = kgo.NewOffset().AtEnd()
	}
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(d.opts.Seeds...),
		kgo.ClientID("spool-downstream-" + d.opts.Name),
		kgo.ConsumerGroup(d.opts.Group),
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(start),
		// Only committed records come down: a command in a transaction
		// the data center aborted must never reach a device.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Offsets are committed by hand, after the local append is durable.
		kgo.DisableAutoCommit(),
		// No rebalance while a polled batch is being stored: its offsets
		// are committed before the partitions can move.
		kgo.BlockRebalanceOnPoll(),
		kgo.WithLogger(kgoLogger{d.lg}),
	}, d.opts.ClientOpts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer func() {
		// Leaving the group waits for a blocked rebalance: allow it first.
		cl.AllowRebalance()
		cl.Close()
	}()
	bo := backoff{min: d.opts.BackoffMin, max: d.opts.BackoffMax}
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			break
		}
		fs.EachError(func(topic string, p int32, err error) {
			d.fail(fmt.Errorf("fetch %s/%d: %w", topic, p, err))
			d.lg.Warn("downstream fetch failed", "topic", topic, "partition", p, "error", err)
		})
		recs := fs.Records()
		if len(recs) > 0 {
			if !d.store(ctx, recs, &bo) {
				break // shutting down: not committed, fetched again next time
			}
			// Stored: commit even while stopping, or a restart would copy
			// these again. The commit is bounded on its own.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			err := cl.CommitRecords(cctx, recs...)
			cancel()
			if err != nil {
				// Stored but not committed: resent after a restart.
				d.fail(fmt.Errorf("commit upstream offsets: %w", err))
				d.lg.Warn("committing downstream offsets failed", "error", err)
			} else {
				d.committed.Add(int64(len(recs)))
			}
		}
		cl.AllowRebalance()
	}
	// A clean stop leaves the group at once, so another member (or this
	// one after a restart) takes over without waiting for the session.
	return nil
}

// store appends records to their local topics, retrying with backoff until
// they are durable or ctx ends (false).
func (d *KafkaDownstream) store(ctx context.Context, recs []*kgo.Record, bo *backoff) bool {
	type key struct {
		t *spoollog.Topic
		p int32
	}
	groups := map[key][]spoollog.Record{}
	var order []key
	for _, r := range recs {
		t := d.locals[r.Topic]
		k := key{t, t.PartitionFor(r.Key, len(r.Value))}
		hdrs := make([]spoollog.Header, 0, len(r.Headers)+3)
		for _, h := range r.Headers {
			hdrs = append(hdrs, spoollog.Header{Key: h.Key, Value: h.Value})
		}
		hdrs = append(hdrs,
			spoollog.Header{Key: HeaderUpstreamTopic, Value: []byte(r.Topic)},
			spoollog.Header{Key: HeaderUpstreamPartition, Value: []byte(strconv.Itoa(int(r.Partition)))},
			spoollog.Header{Key: HeaderUpstreamOffset, Value: []byte(strconv.FormatInt(r.Offset, 10))})
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], spoollog.Record{Timestamp: r.Timestamp.UnixMilli(), Key: r.Key, Value: r.Value, Headers: hdrs})
	}
	for _, k := range order {
		for _, chunk := range chunks(groups[k], chunkBytes) {
			if !d.append(ctx, k.t, k.p, chunk, bo) {
				return false
			}
		}
	}
	return true
}

// chunkBytes bounds one local append, well below the default
// max_message_bytes (1 MiB).
const chunkBytes = 256 << 10

// chunks splits records into runs of at most about max bytes (one record
// larger than max is a run of its own).
func chunks(recs []spoollog.Record, max int) [][]spoollog.Record {
	var out [][]spoollog.Record
	start, size := 0, 0
	for i, r := range recs {
		n := len(r.Key) + len(r.Value) + 64
		for _, h := range r.Headers {
			n += len(h.Key) + len(h.Value)
		}
		if i > start && size+n > max {
			out = append(out, recs[start:i])
			start, size = i, 0
		}
		size += n
	}
	return append(out, recs[start:])
}

// append stores one run durably, retrying until it is or ctx ends. A
// single record too large for the local topic can never be stored: it is
// counted, logged and passed over, not retried for ever.
func (d *KafkaDownstream) append(ctx context.Context, t *spoollog.Topic, part int32, recs []spoollog.Record, bo *backoff) bool {
	for {
		p, err := t.Partition(part)
		if err == nil {
			_, err = p.AppendRecords(recs, spoollog.DefaultBatchOptions)
		}
		switch {
		case err == nil:
			d.copied.Add(int64(len(recs)))
			bo.reset()
			return true
		case errors.Is(err, spoollog.ErrTooLarge) && len(recs) > 1:
			half := len(recs) / 2
			return d.append(ctx, t, part, recs[:half], bo) && d.append(ctx, t, part, recs[half:], bo)
		case errors.Is(err, spoollog.ErrTooLarge):
			d.dropped.Add(1)
			d.fail(fmt.Errorf("a record larger than %s's max_message_bytes was not stored", t.Name()))
			d.lg.Error("downstream record too large for the local topic: dropped", "topic", t.Name(), "bytes", len(recs[0].Value))
			return true
		}
		d.fail(fmt.Errorf("append to %s/%d: %w", t.Name(), part, err))
		wait := bo.next()
		d.lg.Warn("downstream append failed; retrying", "topic", t.Name(), "partition", part, "error", err, "retry_in", wait)
		if !sleep(ctx, wait) {
			return false
		}
	}
}
