package bridge

// Exactly-once mirroring. A transactional producer, one per link, writes
// each round as one transaction: the records read from every partition
// with new data, and one cursor record per such partition in the offsets
// topic (key "site/link/topic/partition", value the next local offset).
// The transaction commits the records and the cursors together, so the
// cursors committed upstream always say exactly what read_committed
// consumers can see. Local cursors are stored after the commit, as a pin
// for retention and a start for Health; they are not trusted for resuming.
//
// A session (one kgo client) starts by fencing: InitProducerID under the
// link's transactional id bumps the epoch, so a producer of an earlier
// run, even one still alive behind a partition, can no longer commit, and
// the transaction it left open is aborted. The session then commits a
// marker record with a fresh nonce to the offsets topic and reads that
// topic read_committed until it sees its marker: everything committed
// before is then known, and each partition resumes at its committed
// cursor. Any failure ends the session; the next one fences and reloads.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	spoollog "github.com/spoolmq/spool/log"
)

// DefaultOffsetsTopic is where exactly-once links keep their cursors.
const DefaultOffsetsTopic = "spool-bridge-offsets"

func (k *KafkaLink) transactionalID() string { return "spool-" + k.opts.Site + "-" + k.opts.Name }

func (k *KafkaLink) cursorRecordKey(m *mirror) string {
	return k.opts.Site + "/" + k.opts.Name + "/" + m.topic + "/" + strconv.Itoa(int(m.p.ID()))
}

// runExactlyOnce mirrors in transactions until ctx ends, one session after
// another.
func (k *KafkaLink) runExactlyOnce(ctx context.Context) error {
	bo := backoff{min: k.opts.BackoffMin, max: k.opts.BackoffMax}
	for _, m := range k.mirrorList() {
		m.markStart()
	}
	for ctx.Err() == nil {
		cl, err := kgo.NewClient(append(k.clientOpts(),
			kgo.TransactionalID(k.transactionalID()),
			kgo.TransactionTimeout(k.opts.DeliveryTimeout+10*time.Second),
		)...)
		if err != nil {
			return fmt.Errorf("bridge link %s: %w", k.opts.Name, err)
		}
		err = k.stoppableSession(ctx, cl)
		cl.Close()
		if err == nil || ctx.Err() != nil {
			return nil
		}
		for _, m := range k.mirrorList() {
			m.fail(err)
		}
		wait := bo.next()
		k.lg.Warn("exactly-once session failed; fencing and reloading the cursors", "err", err, "retry_in", wait)
		if !sleep(ctx, wait) {
			return nil
		}
	}
	return nil
}

// stoppableSession runs a session and, once ctx ended, gives it
// FlushTimeout to finish before closing the client. A transactional client
// never fails a record whose outcome it does not know, whatever the
// context says, so only Close ends commit's wait on a silent upstream. The
// open transaction is lost safely: the broker aborts it, or the next
// session's InitProducerID fences it.
func (k *KafkaLink) stoppableSession(ctx context.Context, cl *kgo.Client) error {
	done := make(chan error, 1)
	go func() { done <- k.session(ctx, cl) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	t := time.NewTimer(k.opts.FlushTimeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		k.lg.Warn("upstream did not finish the transaction in time; it is aborted and will be resent", "flush_timeout", k.opts.FlushTimeout)
		cl.Close()
		return <-done
	}
}

// session fences, loads the committed cursors and mirrors until ctx ends
// (nil) or something fails.
func (k *KafkaLink) session(ctx context.Context, cl *kgo.Client) error {
	if !k.setup(ctx, cl) {
		return nil
	}
	if err := k.loadUpstreamCursors(ctx, cl); err != nil {
		return err
	}
	var retry <-chan time.Time
	if k.anyUnready() {
		retry = time.After(k.opts.BackoffMax) // setup left some topics not ready
	}
	for ctx.Err() == nil {
		select {
		case <-k.added:
			retry = k.prepareNew(ctx, cl)
		case <-retry:
			retry = k.prepareNew(ctx, cl)
		default:
		}
		if ctx.Err() != nil {
			return nil
		}
		idle, err := k.transaction(ctx, cl)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if idle && k.waitForData(ctx, retry) {
			retry = k.prepareNew(ctx, cl) // retry fired while waiting
		}
	}
	return nil
}

// prepareNew checks the upstream topics of mirrors added by AddTopics. A
// failure (keep, and too few upstream partitions) holds back only the new
// mirrors, which stay out of the transactions until a retry succeeds (the
// returned channel says when to retry; nil when nothing failed).
func (k *KafkaLink) prepareNew(ctx context.Context, cl *kgo.Client) <-chan time.Time {
	notReady, err := k.ensureTopics(ctx, cl)
	if err == nil && notReady == nil {
		return nil
	}
	if err == nil {
		err = notReady
	}
	k.mu.Lock()
	k.setupErr, k.setupErrAt = err, time.Now()
	k.mu.Unlock()
	k.lg.Warn("upstream not ready for new partitions", "err", err)
	return time.After(k.opts.BackoffMax)
}

// loadUpstreamCursors fences earlier producers and sets every mirror's
// cursor to the one committed upstream, where there is one.
func (k *KafkaLink) loadUpstreamCursors(ctx context.Context, cl *kgo.Client) error {
	nonce := make([]byte, 16)
	rand.Read(nonce)
	// One key per link, so compaction keeps only the latest marker; the
	// nonce in its value tells this session's from an earlier one's.
	markerKey, marker := k.opts.Site+"/"+k.opts.Name+"/start", hex.EncodeToString(nonce)
	// Committing the marker fences (InitProducerID) and proves that the
	// producer may write; reading up to it reads every earlier commit.
	if err := k.commit(ctx, cl, []*kgo.Record{{Topic: k.opts.OffsetsTopic, Key: []byte(markerKey), Value: []byte(marker)}}); err != nil {
		return fmt.Errorf("commit the start marker: %w", err)
	}
	rd, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(k.opts.Seeds...), kgo.ClientID("spool-bridge-" + k.opts.Name + "-cursors"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{k.opts.OffsetsTopic: {0: kgo.NewOffset().AtStart()}}),
		kgo.WithLogger(kgoLogger{k.lg})}, k.opts.ClientOpts...)...) // TLS, SASL, dialer
	if err != nil {
		return err
	}
	defer rd.Close()
	rctx, cancel := context.WithTimeout(ctx, k.opts.DeliveryTimeout)
	defer cancel()
	committed := map[string]int64{}
	for found := false; !found; {
		fs := rd.PollFetches(rctx)
		if err := rctx.Err(); err != nil {
			return fmt.Errorf("read the committed cursors in %s: %w", k.opts.OffsetsTopic, err)
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil && !errors.Is(ferr, context.Canceled) {
			return fmt.Errorf("read the committed cursors in %s: %w", k.opts.OffsetsTopic, ferr)
		}
		fs.EachRecord(func(r *kgo.Record) {
			key := string(r.Key)
			if key == markerKey {
				found = found || string(r.Value) == marker
				return
			}
			if off, err := strconv.ParseInt(string(r.Value), 10, 64); err == nil {
				committed[key] = off
			}
		})
	}
	for _, m := range k.mirrorList() {
		c, ok := committed[k.cursorRecordKey(m)]
		local, hw := m.getCursor(), m.p.HighWatermark()
		switch {
		case !ok || c == local:
			continue // never mirrored exactly-once, or in agreement
		case m.fresh:
			// The partition replaces a deleted one of the same name,
			// whose cursor this is until the new one commits its own.
			m.lg.Info("cursor committed upstream is a deleted partition's; ignored", "upstream", c, "local", local)
			continue
		case c > hw:
			// Not this log's: a replaced data directory, or a topic
			// deleted and created again. Resuming there would skip
			// records never sent; the local cursor loses nothing.
			m.lg.Warn("cursor committed upstream is past the local log's end; ignored, the local one is used", "upstream", c, "local", local, "high_watermark", hw)
			continue
		case c < local:
			// Records below local went up outside a transaction (the
			// link ran without exactly_once meanwhile): not again.
			m.lg.Info("cursor committed upstream is behind the local one; the local one is used", "upstream", c, "local", local)
			continue
		}
		m.lg.Info("resuming from the cursor committed upstream", "upstream", c, "local", local)
		if err := m.advance(c, 0, 0, false); err != nil {
			return err
		}
	}
	k.lg.Info("exactly-once session started", "transactional_id", k.transactionalID(), "cursors", len(committed))
	return nil
}

// transaction mirrors one round of every partition with new data as one
// transaction; idle when none had any.
func (k *KafkaLink) transaction(ctx context.Context, cl *kgo.Client) (idle bool, err error) {
	var parts []txnPart
	var total int64
	class := roundClass(-1<<20, false)
	budget := k.txnBudget()
	for _, m := range k.txnOrder() {
		if !k.isReady(m) {
			continue
		}
		if total >= budget {
			break // the others go in the next transaction
		}
		cursor := m.getCursor()
		if start := m.p.LogStartOffset(); cursor < start {
			if err := m.skipGap(cursor, start); err != nil {
				return false, err
			}
			cursor = start
		}
		if m.refused == cursor+1 {
			// Refused on its own as too large: the transaction moves
			// the cursor past it (see txnTooLarge).
			parts = append(parts, txnPart{m: m, end: cursor + 1, skip: true})
			continue
		}
		data, err := m.p.ReadCommitted(cursor, int(min(int64(k.opts.ReadBytes), budget-total)))
		if errors.Is(err, spoollog.ErrOffsetOutOfRange) && cursor < m.p.LogStartOffset() {
			continue // retention moved the start meanwhile: the next round counts the gap
		}
		if errors.Is(err, spoollog.ErrClosed) && m.deleted(k.opts.Log) {
			// Its topic was deleted: the others go on without it.
			k.set().retire(m)
			continue
		}
		if err != nil {
			return false, fmt.Errorf("read local log %s/%d at %d: %w", m.topic, m.p.ID(), cursor, err)
		}
		if len(data) == 0 {
			continue
		}
		recs, sizes, end, err := m.decode(data, cursor)
		if err != nil {
			return false, err
		}
		recs, sizes, end = m.fit(recs, sizes, end)
		for _, sz := range sizes {
			total += sz
		}
		class = max(class, roundClass(m.priority, end >= m.p.LastStableOffset()))
		parts = append(parts, txnPart{m: m, recs: recs, sizes: sizes, end: end})
	}
	if len(parts) == 0 {
		return true, nil
	}
	if !k.limit.wait(ctx, total, class) {
		return false, ctx.Err()
	}
	var out []*kgo.Record
	for _, p := range parts {
		for _, r := range p.recs {
			out = append(out, r.rec)
		}
		out = append(out, &kgo.Record{Topic: k.opts.OffsetsTopic, Key: []byte(k.cursorRecordKey(p.m)),
			Value: strconv.AppendInt(nil, p.end, 10)})
	}
	if err := k.commit(ctx, cl, out); err != nil {
		var aborted *abortedError
		if errors.As(err, &aborted) && len(aborted.tooLarge) > 0 && txnTooLarge(parts, aborted) {
			return false, nil // aborted cleanly: retried at once, smaller
		}
		if errors.Is(err, context.DeadlineExceeded) {
			// The uplink did not carry this much within DeliveryTimeout:
			// the next transactions are smaller, or a slow link would
			// retry the same too-large round forever.
			k.shrinkTxnBudget()
		}
		return false, err
	}
	k.growTxnBudget()
	for _, p := range parts {
		if p.skip {
			p.m.refused = 0
			if err := p.m.skipTooLarge(p.end-1, p.m.refusedErr); err != nil {
				p.m.lg.Warn("storing the local cursor failed", "err", err)
			}
			continue
		}
		var b int64
		for _, sz := range p.sizes {
			b += sz
		}
		if err := p.m.advance(p.end, int64(len(p.recs)), b, true); err != nil {
			// Committed upstream: the next session's cursors come from
			// there, so a failed local store loses nothing.
			p.m.lg.Warn("storing the local cursor failed", "err", err)
		}
	}
	return false, nil
}

// txnPart is one partition's share of a transaction: its records, and the
// cursor committed with them. skip: no records, the cursor moves past one
// the upstream refused on its own as too large.
type txnPart struct {
	m     *mirror
	recs  []pending
	sizes []int64
	end   int64
	skip  bool
}

// abortedError is a transaction commit aborted (cleanly) because records
// failed; tooLarge are those that failed with MESSAGE_TOO_LARGE.
type abortedError struct {
	err      error
	tooLarge []*kgo.Record
}

func (e *abortedError) Error() string { return e.err.Error() }
func (e *abortedError) Unwrap() error { return e.err }

// txnTooLarge handles MESSAGE_TOO_LARGE in an aborted transaction as the plain
// link does (mirror.tooLarge): a partition with several records refused
// sends rounds half the size; one refused on its own is skipped by the
// next transaction, counted and logged, rather than blocking every
// partition of the link for ever. It reports whether any partition of the
// transaction was refused (false: the offsets record was, which only a
// new session can help).
func txnTooLarge(parts []txnPart, aborted *abortedError) bool {
	found := false
	for _, p := range parts {
		if !slices.ContainsFunc(p.recs, func(r pending) bool { return slices.Contains(aborted.tooLarge, r.rec) }) {
			continue
		}
		found = true
		if len(p.recs) > 1 {
			var b int64
			for _, r := range p.recs {
				b += wireSize(r.rec)
			}
			p.m.roundBytes = max(b/2, 1)
			p.m.lg.Warn("upstream refused a batch as too large; sending smaller ones", "round_bytes", p.m.roundBytes, "err", aborted.err)
			continue
		}
		p.m.refused = p.recs[0].offset + 1
		p.m.refusedErr = fmt.Errorf("upstream %s: %w", p.m.dest, aborted.err)
	}
	return found
}

// commit produces recs in one transaction and commits it, or aborts it
// and returns why: an *abortedError when the abort succeeded.
func (k *KafkaLink) commit(ctx context.Context, cl *kgo.Client, recs []*kgo.Record) error {
	if err := cl.BeginTransaction(); err != nil {
		return err
	}
	// Not ctx: a round that was handed over finishes or times out, so
	// stopping does not abort a transaction that is about to commit.
	pctx, cancel := context.WithTimeout(context.Background(), k.opts.DeliveryTimeout)
	defer cancel()
	type result struct {
		rec *kgo.Record
		err error
	}
	results := make(chan result, len(recs))
	for _, r := range recs {
		cl.Produce(pctx, r, func(r *kgo.Record, err error) { results <- result{r, err} })
	}
	aborted := &abortedError{}
	for range recs {
		res := <-results
		if res.err != nil && aborted.err == nil {
			aborted.err = res.err
		}
		if errors.Is(res.err, kerr.MessageTooLarge) {
			aborted.tooLarge = append(aborted.tooLarge, res.rec)
		}
	}
	if aborted.err != nil {
		actx, acancel := context.WithTimeout(context.Background(), k.opts.DeliveryTimeout)
		defer acancel()
		_ = cl.AbortBufferedRecords(actx)
		if err := cl.EndTransaction(actx, kgo.TryAbort); err != nil {
			return fmt.Errorf("%w (and aborting: %v)", aborted.err, err)
		}
		return aborted
	}
	ectx, ecancel := context.WithTimeout(context.Background(), k.opts.DeliveryTimeout)
	defer ecancel()
	if err := cl.EndTransaction(ectx, kgo.TryCommit); err != nil {
		if errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) {
			return fmt.Errorf("fenced by another producer with transactional id %s: %w", k.transactionalID(), err)
		}
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// waitForData waits until a mirrored partition may have new data,
// mirrors were added (the signal is left for the session loop), retry
// fires (true), or ctx ends.
func (k *KafkaLink) waitForData(ctx context.Context, retry <-chan time.Time) (retried bool) {
	var mirrors []*mirror
	for _, m := range k.mirrorList() {
		if k.isReady(m) { // the others wait for retry
			mirrors = append(mirrors, m)
		}
	}
	cases := []reflect.SelectCase{
		{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())},
		{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(k.added)},
		{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(retry)}, // a nil channel never fires
	}
	for _, m := range mirrors {
		m.setWaiting(true)
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(m.p.Notify())})
	}
	defer func() {
		for _, m := range mirrors {
			m.setWaiting(false)
		}
	}()
	// A record appended between the round's read and Notify is not missed:
	// check once more before sleeping. What counts is a batch readable at
	// the cursor, not the cursor being below the LSO: offsets compaction
	// emptied can lie between the two while a transaction is pending, and
	// rounds would find nothing to read for as long as it is.
	for _, m := range mirrors {
		if data, err := m.p.ReadCommitted(m.getCursor(), 1); err != nil || len(data) > 0 {
			return false
		}
	}
	switch i, _, _ := reflect.Select(cases); i {
	case 1:
		select { // for the session loop to set them up
		case k.added <- struct{}{}:
		default:
		}
	case 2:
		return true
	}
	return false
}

// ensureOffsetsTopic creates the compacted offsets topic when missing.
func (k *KafkaLink) ensureOffsetsTopic(ctx context.Context, adm *kadm.Client) error {
	compact := "compact"
	resp, err := adm.CreateTopic(ctx, 1, -1, map[string]*string{"cleanup.policy": &compact}, k.opts.OffsetsTopic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create upstream topic %s: %w", k.opts.OffsetsTopic, err)
	}
	return nil
}

// The bytes one transaction may read, over all partitions: ReadBytes at
// most, halved after a commit that timed out (down to 16 KiB) and doubled
// back after each one that succeeded.
const minTxnBytes = 16 << 10

func (k *KafkaLink) txnBudget() int64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.txnBytes == 0 {
		k.txnBytes = int64(k.opts.ReadBytes)
	}
	return k.txnBytes
}

func (k *KafkaLink) shrinkTxnBudget() {
	k.mu.Lock()
	k.txnBytes = max(k.txnBytes/2, minTxnBytes)
	k.mu.Unlock()
}

// txnOrder is the order mirrors fill a transaction in: higher priorities
// first (an alarm goes ahead of a backlog), and within one priority a
// start that moves on by one each transaction, so that one partition's
// backlog, filling the budget by itself, does not starve those after it.
func (k *KafkaLink) txnOrder() []*mirror {
	ms := k.mirrorList()
	if len(ms) == 0 {
		return nil
	}
	k.mu.Lock()
	start := int(k.txnTurn % uint64(len(ms)))
	k.txnTurn++
	k.mu.Unlock()
	order := append(append(make([]*mirror, 0, len(ms)), ms[start:]...), ms[:start]...)
	slices.SortStableFunc(order, func(a, b *mirror) int { return b.priority - a.priority })
	return order
}

func (k *KafkaLink) growTxnBudget() {
	k.mu.Lock()
	k.txnBytes = min(2*k.txnBytes, int64(k.opts.ReadBytes))
	k.mu.Unlock()
}

func (k *KafkaLink) isReady(m *mirror) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return m.ready
}
