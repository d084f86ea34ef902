package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	spoollog "github.com/spoolmq/spool/log"
)

// KafkaLink mirrors local topics to an upstream Kafka cluster with one kgo
// idempotent producer (acks=all). Each mirrored partition has its own
// goroutine while Run runs, its own cursor and its own retention pin.
//
// Lifecycle: NewKafkaLink loads the cursors and pins retention at them, so
// nothing unmirrored is deleted from then on; Run mirrors until its context
// ends; Close stops a running Run and releases the pins.
type KafkaLink struct {
	opts  KafkaLinkOptions
	ns    string // cursor namespace and pin name
	lg    *slog.Logger
	limit *limiter // nil: no bandwidth limit
	rate  rateMeter
	// added is signalled when AddTopics made new mirrors, for a running
	// Run to start them.
	added chan struct{}

	// mu guards the fields below.
	mu         sync.Mutex
	mirrors    []*mirror
	txnTurn    uint64          // transactions begun, for their fill order (eos.go)
	txnBytes   int64           // exactly-once: the bytes a transaction may read
	connected  bool            // upstream topics checked at least once
	setupErr   error           // last failure to reach or prepare the upstream
	setupErrAt time.Time       // when setupErr happened
	upErr      error           // last failed exchange with the upstream (kgo hooks)
	upErrAt    time.Time       // when upErr happened
	upOKAt     time.Time       // last successful exchange
	gone       map[string]bool // destinations producing found missing (recheck)
	running    bool
	stop       context.CancelFunc // cancels a running Run
	stopped    chan struct{}      // closed when a running Run returns
	closed     bool

	// mirrored is mirrorSet.mirrored; msgLimits the max.message.bytes of
	// destinations, where known (upstream_topic.go).
	mirrored  map[string]*spoollog.Partition
	msgLimits map[string]int64
}

// NewKafkaLink checks opts, resolves the local topics (they must exist),
// loads the stored cursors and pins retention at them. A partition the link
// never mirrored starts at its log start.
func NewKafkaLink(opts KafkaLinkOptions) (*KafkaLink, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	k := &KafkaLink{
		opts:     opts,
		ns:       cursorNamespace(opts.Name),
		lg:       opts.Logger.With("link", opts.Name),
		limit:    newLimiter(opts.BandwidthBytesPerSec),
		added:    make(chan struct{}, 1),
		mirrored: map[string]*spoollog.Partition{},
	}
	seen := make(map[string]bool)
	for _, name := range opts.Topics {
		if seen[name] {
			return nil, fmt.Errorf("bridge link %s: topic %q listed twice", opts.Name, name)
		}
		seen[name] = true
	}
	if _, err := k.AddTopics(opts.Topics...); err != nil {
		k.unpin()
		return nil, err
	}
	select { // Run starts these itself
	case <-k.added:
	default:
	}
	return k, nil
}

// AddTopics starts mirroring more local topics, and partitions added to
// the topics already mirrored; what is mirrored already is left alone. A
// running link starts the new mirrors at once (creating their upstream
// topics first). It returns how many partitions were added.
//
// A topic deleted and created again under the same name while the link
// runs is a new topic: AddTopics mirrors it from its log start (edge's
// discovery offers every configured topic again periodically).
func (k *KafkaLink) AddTopics(names ...string) (int, error) {
	return k.set().add(k.opts.Log, k.opts.Name, names,
		func(topic string, _ int32) error {
			_, err := destination(k.opts.Destination, k.opts.Site, topic)
			return err
		},
		func(p *spoollog.Partition, topic string, fresh bool) (*mirror, error) {
			dest, _ := destination(k.opts.Destination, k.opts.Site, topic) // checked
			m, err := newMirror(k, p, topic, dest, fresh)
			if err == nil {
				m.markStart()
			}
			return m, err
		})
}

func (k *KafkaLink) set() mirrorSet[*mirror] {
	return mirrorSet[*mirror]{mu: &k.mu, mirrors: &k.mirrors, mirrored: k.mirrored, added: k.added}
}

// mirrorList is the mirrors now.
func (k *KafkaLink) mirrorList() []*mirror {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.mirrors)
}

// Run mirrors until ctx ends (or Close is called), then waits up to
// FlushTimeout for records already handed to the upstream, stores the
// cursors of everything acknowledged and returns nil. Upstream failures are
// retried with backoff and never end Run; only a client that cannot be built
// (bad options) returns an error. Run may be called again after it returned.
func (k *KafkaLink) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	k.mu.Lock()
	if k.closed || k.running {
		k.mu.Unlock()
		return fmt.Errorf("bridge link %s: closed or already running", k.opts.Name)
	}
	k.running, k.stop, k.stopped = true, cancel, make(chan struct{})
	stopped := k.stopped
	k.mu.Unlock()
	defer func() {
		k.mu.Lock()
		k.running = false
		k.mu.Unlock()
		close(stopped)
	}()

	if k.opts.ExactlyOnce {
		return k.runExactlyOnce(ctx)
	}
	cl, err := kgo.NewClient(k.clientOpts()...)
	if err != nil {
		return fmt.Errorf("bridge link %s: %w", k.opts.Name, err)
	}
	// Close is idempotent in kgo; the deferred one covers early returns.
	defer cl.Close()

	if !k.setup(ctx, cl) {
		return nil
	}
	var wg sync.WaitGroup
	started := map[*mirror]bool{}
	startNew := func() {
		for _, m := range k.mirrorList() {
			if !started[m] && k.isReady(m) {
				started[m] = true
				wg.Go(func() { m.run(ctx, cl) })
			}
		}
	}
	startNew()
	// Mirrors added while running, or whose upstream topic was not ready
	// (too few partitions for keep), start once their upstream topics are;
	// the others go on meanwhile.
	wg.Go(func() {
		for {
			var retry <-chan time.Time
			if k.anyUnready() {
				retry = time.After(k.opts.BackoffMax)
			}
			select {
			case <-ctx.Done():
				return
			case <-k.added:
			case <-retry:
			}
			if k.setup(ctx, cl) {
				startNew()
			}
		}
	})
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		// The mirrors stop reading at once but wait for the results of
		// what they produced; closing the client after the grace period
		// fails what is still unacknowledged, which ends those waits.
		t := time.NewTimer(k.opts.FlushTimeout)
		select {
		case <-done:
		case <-t.C:
			k.lg.Warn("upstream did not acknowledge in time; unacknowledged records will be resent", "flush_timeout", k.opts.FlushTimeout)
			cl.Close()
			<-done
		}
		t.Stop()
	}
	return nil
}

// Close stops a running Run, waits for it and releases the retention pins.
// After Close the cursors stay stored: a new link with the same name
// resumes from them.
func (k *KafkaLink) Close() error {
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return nil
	}
	k.closed = true
	running, stop, stopped := k.running, k.stop, k.stopped
	k.mu.Unlock()
	if running {
		stop()
		<-stopped
	}
	k.unpin()
	return nil
}

func (k *KafkaLink) unpin() {
	for _, m := range k.mirrorList() {
		m.p.Unpin(k.ns)
	}
}

func (k *KafkaLink) clientOpts() []kgo.Opt {
	codec, _ := compressionCodec(k.opts.Compression) // checked in withDefaults
	opts := []kgo.Opt{
		kgo.SeedBrokers(k.opts.Seeds...),
		kgo.ClientID("spool-bridge-" + k.opts.Name),
		// acks=all is what makes an acknowledgement mean "stored
		// upstream"; kgo's idempotent producer (its default) keeps the
		// per-partition order across its internal retries.
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(codec),
		// No kgo.RecordDeliveryTimeout: kgo measures it from the record's
		// Timestamp, which for a mirrored record is its original time, so
		// every backlog older than the timeout would fail at once. Each
		// round's context bounds delivery by the wall clock instead.
		kgo.WithLogger(kgoLogger{k.lg}),
		kgo.WithHooks(upstreamHooks{k}),
	}
	if k.opts.BatchBytes > 0 {
		opts = append(opts, kgo.ProducerBatchMaxBytes(k.opts.BatchBytes))
	}
	if k.opts.Partitioning == PartitionKeep {
		opts = append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	} else {
		opts = append(opts, kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
	}
	return append(opts, k.opts.ClientOpts...)
}

// setup makes sure the destination topics exist upstream, retrying with
// backoff while the upstream cannot be asked, until ctx ends (false). A
// destination that is not ready (keep, and too few upstream partitions)
// holds back only its own mirrors: setup reports it and returns true, and
// those mirrors stay unready for a later setup to check again.
func (k *KafkaLink) setup(ctx context.Context, cl *kgo.Client) bool {
	bo := backoff{min: k.opts.BackoffMin, max: k.opts.BackoffMax}
	for {
		notReady, err := k.ensureTopics(ctx, cl)
		k.mu.Lock()
		switch {
		case err == nil && notReady == nil:
			k.connected = true
		case err == nil:
			k.connected = true
			k.setupErr, k.setupErrAt = notReady, time.Now()
		case ctx.Err() == nil:
			k.setupErr, k.setupErrAt = err, time.Now()
		}
		k.mu.Unlock()
		if notReady != nil {
			k.lg.Warn("upstream not ready for some topics; the others go on", "err", notReady)
		}
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		wait := bo.next()
		k.lg.Warn("upstream not ready", "err", err, "retry_in", wait)
		if !sleep(ctx, wait) {
			return false
		}
	}
}

// ensureTopics creates missing destination topics with the local partition
// count and, for keep, grows an upstream topic the link created itself that
// has fewer partitions than the local one (partitions were added locally),
// and refuses one someone else created: records of the missing partitions
// would have nowhere to go. It marks ready the mirrors whose destination
// passed; notReady joins the destinations' own failures, err is a failure
// to ask at all.
func (k *KafkaLink) ensureTopics(ctx context.Context, cl *kgo.Client) (notReady, err error) {
	adm := kadm.NewClient(cl)
	want := make(map[string]int32) // destination -> local partitions
	checked := k.mirrorList()
	for _, m := range checked {
		want[m.dest] = max(want[m.dest], m.p.ID()+1)
	}
	names := make([]string, 0, len(want))
	for d := range want {
		names = append(names, d)
	}
	details, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("list upstream topics: %w", err)
	}
	if k.opts.ExactlyOnce {
		if err := k.ensureOffsetsTopic(ctx, adm); err != nil {
			return nil, err
		}
	}
	failed := map[string]error{}
	for _, d := range names {
		if err := k.ensureTopic(ctx, cl, adm, d, want[d], details); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			failed[d] = err
		}
	}
	// Every mirror checked whose destination passed is ready (those added
	// meanwhile wait for the next check).
	var errs []error
	for _, d := range names {
		if err := failed[d]; err != nil {
			errs = append(errs, err)
		}
	}
	k.mu.Lock()
	for _, m := range checked {
		if failed[m.dest] == nil {
			m.ready = true
		}
	}
	k.mu.Unlock()
	for _, m := range checked {
		if err := failed[m.dest]; err != nil {
			m.fail(err) // its health says why it waits
		}
	}
	return errors.Join(errs...), nil
}

// recheck has setup check m's upstream topic again: producing found it
// missing (deleted upstream while the link ran), and setup creates it
// again. m goes on retrying meanwhile.
func (k *KafkaLink) recheck(m *mirror) {
	k.mu.Lock()
	m.ready = false
	if k.gone == nil {
		k.gone = map[string]bool{}
	}
	k.gone[m.dest] = true
	k.mu.Unlock()
	select {
	case k.added <- struct{}{}:
	default:
	}
}

// anyUnready reports whether some mirror still waits for its upstream
// topic to be checked.
func (k *KafkaLink) anyUnready() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, m := range k.mirrors {
		if !m.ready {
			return true
		}
	}
	return false
}

// sleep waits d or until ctx ends; false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// kgoLogger routes kgo's own logging (connection failures, retries) to the
// link's logger, warnings and errors only.
type kgoLogger struct{ lg *slog.Logger }

func (l kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (l kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	switch level {
	case kgo.LogLevelError:
		l.lg.Error(msg, keyvals...)
	case kgo.LogLevelWarn:
		l.lg.Warn(msg, keyvals...)
	default:
		l.lg.Debug(msg, keyvals...)
	}
}
