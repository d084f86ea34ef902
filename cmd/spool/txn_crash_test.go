package main

// Crash test of Kafka transactions with real processes: two franz-go
// transactional producers commit most of their transactions and abort
// some while a plain idempotent producer writes to the same partitions, and
// `spool serve` is SIGKILLed at random moments, over and over on the same
// data directory and port. A pending transaction survives each restart
// (its producer's sequences rebuilt from the log), an end the crash
// interrupted is finished at start, and the idempotent producers' state is
// rebuilt from the log tail.
//
// Afterwards a read_committed consumer must see every record of every
// transaction whose commit the client saw succeed exactly once, nothing of
// an aborted one, each transaction whose outcome the client could not
// know (a crash in the middle) whole or not at all, and every
// acknowledged idempotent record once. A read_uncommitted consumer finds
// the aborted records in the log.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	txnCrashTopic = "txn-crash"
	// txnCrashProducers is how many transactional producers run at once,
	// each with its own transactional id: their pending transactions
	// interleave in both partitions.
	txnCrashProducers = 2
	// txnCrashRecs is how many records each transaction writes,
	// alternating between the two partitions, two at a time (a batch for
	// each partition): the sequences of a pending transaction rebuilt
	// after a crash span several batches.
	txnCrashRecs = 6
	// txnCrashTimeout is the transactions' timeout: the one the last
	// crash left pending is aborted that long after it began.
	txnCrashTimeout = 3 * time.Second
	// txnCrashIdemWriters produce through the one idempotent client at
	// once, txnCrashIdemBatch records at a time each: the client keeps
	// several requests in flight (up to 5), whose retries after a crash
	// must each be recognised.
	txnCrashIdemWriters = 4
	txnCrashIdemBatch   = 8
	// txnCrashOp bounds each produce and end of a transaction.
	txnCrashOp = 10 * time.Second
)

// txnFate is what the transactional client saw of a transaction.
type txnFate int

const (
	// fateUnknown: something failed (a crash in the middle): the
	// transaction committed or aborted, as a whole.
	fateUnknown txnFate = iota
	// fateCommitted: every record acknowledged, EndTransaction(commit)
	// returned nil.
	fateCommitted
	// fateAborted: every record acknowledged, EndTransaction(abort)
	// returned nil (every 4th transaction).
	fateAborted
	// fateAbortedAfterError: a produce failed, no commit was attempted,
	// and EndTransaction(abort) returned nil.
	fateAbortedAfterError
)

func (f txnFate) String() string {
	return [...]string{"unknown", "committed", "aborted", "aborted after a produce error"}[f]
}

// txnCrashLedger is what the idempotent producer saw.
type txnCrashLedger struct {
	mu         sync.Mutex
	acked      map[string]bool
	failed     int
	errs       map[string]int // error text -> count
	ackedSoFar atomic.Int64
}

// txnCrashClient is a producer client of the test topic with the
// partitions chosen by the test, retrying fast (a restart takes a moment)
// and within bounds.
func txnCrashClient(addr string, logs *syncBuffer, opts ...kgo.Opt) (*kgo.Client, error) {
	return kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(addr),
		kgo.DefaultProduceTopic(txnCrashTopic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordDeliveryTimeout(8 * time.Second),
		kgo.RetryTimeout(8 * time.Second),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
		kgo.DialTimeout(time.Second),
		// A client that first asked while the process was down asks
		// again soon, not after the default 5s.
		kgo.MetadataMinAge(100 * time.Millisecond),
		kgo.WithLogger(kgo.BasicLogger(logs, kgo.LogLevelInfo, func() string { return time.Now().Format("15:04:05.000 ") })),
	}, opts...)...)
}

// txnCrashProducer runs transactions until ctx ends: every 4th is
// aborted, the others committed. A client in a state it cannot recover
// from is replaced, and so is one the test abandons; the new one fences
// the old and aborts what it left pending.
type txnCrashProducer struct {
	idx  int // its transactional id is txn-crash-<idx>, its values txn<idx>-...
	addr string
	logs *syncBuffer

	mu        sync.Mutex
	fates     []txnFate // by transaction number
	why       []string  // what failed, for unknown transactions
	decided   atomic.Int64
	cur       *txnCrashConn // the client in use
	recreated int           // clients replaced
	abandoned int           // of them, by abandon
	err       error         // NewClient's, which ends run
}

// begin adds a transaction, unknown until it ends, and returns its number.
func (tp *txnCrashProducer) begin() int {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	tp.fates = append(tp.fates, fateUnknown)
	tp.why = append(tp.why, "")
	return len(tp.fates) - 1
}

func (tp *txnCrashProducer) end(n int, f txnFate, why string) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	tp.fates[n], tp.why[n] = f, why
	if f == fateCommitted || f == fateAborted {
		tp.decided.Add(1)
	}
}

// value is the value of record m of transaction n.
func (tp *txnCrashProducer) value(n, m int) string {
	return fmt.Sprintf("txn%d-%d-rec-%d", tp.idx, n, m)
}

// txnCrashConn is one instance of the transactional client.
type txnCrashConn struct {
	cl        *kgo.Client
	once      sync.Once
	abandoned atomic.Bool
}

func (c *txnCrashConn) close() { c.once.Do(c.cl.Close) }

// abandon closes the client in use at once, as if its application died
// with the broker: what it had in flight fails, and the transaction it
// had pending is left for its successor to fence.
func (tp *txnCrashProducer) abandon() {
	tp.mu.Lock()
	c := tp.cur
	if c != nil {
		tp.abandoned++
	}
	tp.mu.Unlock()
	if c != nil {
		c.abandoned.Store(true)
		c.close()
	}
}

func (tp *txnCrashProducer) client() (*kgo.Client, error) {
	return txnCrashClient(tp.addr, tp.logs, kgo.TransactionalID(fmt.Sprintf("txn-crash-%d", tp.idx)), kgo.TransactionTimeout(txnCrashTimeout))
}

func (tp *txnCrashProducer) run(ctx context.Context) {
	for ctx.Err() == nil {
		cl, err := tp.client()
		if err != nil {
			tp.mu.Lock()
			tp.err = err
			tp.mu.Unlock()
			return
		}
		c := &txnCrashConn{cl: cl}
		tp.mu.Lock()
		tp.cur = c
		tp.mu.Unlock()
		for ctx.Err() == nil && !c.abandoned.Load() && tp.one(ctx, cl, true) {
		}
		c.close()
		if ctx.Err() == nil {
			tp.mu.Lock()
			tp.recreated++
			tp.mu.Unlock()
		}
	}
}

// one runs a transaction, aborted if it is a 4th and mayAbort, else
// committed; false when the client must be replaced.
func (tp *txnCrashProducer) one(ctx context.Context, cl *kgo.Client, mayAbort bool) bool {
	if err := cl.BeginTransaction(); err != nil {
		return false // nothing produced: no transaction to account for
	}
	n := tp.begin()
	opCtx, cancel := context.WithTimeout(ctx, txnCrashOp)
	defer cancel()
	recs := make([]*kgo.Record, txnCrashRecs)
	for m := range recs {
		recs[m] = &kgo.Record{Partition: int32(m % 2), Value: []byte(tp.value(n, m))}
	}
	var perr error
	for r := 0; r < len(recs) && perr == nil; r += 2 {
		perr = cl.ProduceSync(opCtx, recs[r:r+2]...).FirstErr()
	}
	if perr != nil {
		// No commit is attempted: an abort that succeeds leaves none of
		// the records committed.
		if err := cl.EndTransaction(opCtx, kgo.TryAbort); err != nil {
			tp.end(n, fateUnknown, fmt.Sprintf("produce: %v; abort: %v", perr, err))
			return false
		}
		tp.end(n, fateAbortedAfterError, fmt.Sprintf("produce: %v", perr))
		return true
	}
	commit := !mayAbort || n%4 != 3
	err := cl.EndTransaction(opCtx, kgo.TransactionEndTry(commit))
	if err == nil {
		fate := fateCommitted
		if !commit {
			fate = fateAborted
		}
		tp.end(n, fate, "")
		return true
	}
	// The end's outcome is unknown (its answer lost in a crash, or the
	// transaction timed out meanwhile): abort whatever is left, as
	// franz-go documents.
	why := fmt.Sprintf("end (commit %v): %v", commit, err)
	if aerr := cl.EndTransaction(opCtx, kgo.TryAbort); aerr != nil {
		tp.end(n, fateUnknown, why+"; abort: "+aerr.Error())
		return false
	}
	tp.end(n, fateUnknown, why)
	return true
}

// runIdempotent produces unique values "idem<w>-N" as writer w of the
// plain idempotent producer, alternating between the partitions, until
// ctx ends. It is paced so as to stay well within the tail that a restart
// reads the producers' state back from (about 2 MiB a partition): the
// transactional producers' last batches are always in it.
func runIdempotent(ctx context.Context, cl *kgo.Client, w int, l *txnCrashLedger) {
	for i := 0; ctx.Err() == nil; i += txnCrashIdemBatch {
		recs := make([]*kgo.Record, txnCrashIdemBatch)
		for j := range recs {
			recs[j] = &kgo.Record{Partition: int32((i + j) % 2), Value: fmt.Appendf(nil, "idem%d-%d", w, i+j)}
		}
		opCtx, cancel := context.WithTimeout(ctx, txnCrashOp)
		res := cl.ProduceSync(opCtx, recs...)
		cancel()
		time.Sleep(2 * time.Millisecond)
		l.mu.Lock()
		for _, r := range res {
			if r.Err == nil {
				l.acked[string(r.Record.Value)] = true
				l.ackedSoFar.Add(1)
			} else {
				l.failed++
				l.errs[r.Err.Error()]++
			}
		}
		l.mu.Unlock()
	}
}

// txnCrashRecord is a record read back through the Kafka listener.
type txnCrashRecord struct {
	partition int32
	offset    int64
	value     string
}

// consumeUntil reads both partitions from their start with the isolation
// level until it has read the value end of each partition, and returns
// the records in offset order per partition.
func consumeUntil(t *testing.T, addr string, level kgo.IsolationLevel, ends map[int32]string) map[int32][]txnCrashRecord {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{txnCrashTopic: {0: kgo.NewOffset().AtStart(), 1: kgo.NewOffset().AtStart()}}),
		kgo.FetchIsolationLevel(level), kgo.FetchMaxWait(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out := map[int32][]txnCrashRecord{}
	done := map[int32]bool{}
	for len(done) < len(ends) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consuming: the last records %v not reached within 20s (read %d and %d records)", ends, len(out[0]), len(out[1]))
		}
		fs.EachError(func(topic string, p int32, err error) {
			t.Errorf("fetch %s/%d: %v", topic, p, err)
		})
		fs.EachRecord(func(r *kgo.Record) {
			out[r.Partition] = append(out[r.Partition], txnCrashRecord{r.Partition, r.Offset, string(r.Value)})
			if string(r.Value) == ends[r.Partition] {
				done[r.Partition] = true
			}
		})
	}
	return out
}

// TestTxnCrash: see the top of the file. TXN_CRASH_SEED=n repeats a run's
// kill times (not its interleavings).
func TestTxnCrash(t *testing.T) {
	bin := buildSpool(t) // skipped with -short, as the other crash tests
	start := time.Now()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("TXN_CRASH_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("TXN_CRASH_SEED: %v", err)
		}
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	kills := 5 + rng.IntN(3)
	// After one of the kills the process stays down for longer than the
	// transaction timeout: the transactions it interrupted have timed out
	// when it comes back, while their clients are still retrying.
	longDown := 1 + rng.IntN(kills-1)
	t.Logf("seed %d (TXN_CRASH_SEED=%d repeats the kill times): %d kills, down for longer than the transaction timeout after kill %d", seed, seed, kills, longDown)

	dir := filepath.Join(t.TempDir(), "data")
	addr := freeAddr(t) // the same port for every run: the clients reconnect
	serve := func() *spoolProc {
		p := startServe(t, bin, nil, "--data", dir, "--kafka-addr", addr, "--mqtt-addr", "off", "--http-addr", "off", "--log-format", "json")
		p.waitTCP(addr, 15*time.Second)
		return p
	}
	var logs syncBuffer // the producers' franz-go logs
	var p *spoolProc
	failed := func(what string) {
		t.Helper()
		t.Fatalf("%s\nspool output (last lines):\n%s\nfranz-go (last lines):\n%s", what, lastLines(p.output(), 40), lastLines(logs.String(), 60))
	}

	p = serve()
	ctx := testCtx(t, 2*time.Minute)
	mustKafka(t, ctx, addr, "topic", "create", txnCrashTopic, "--partitions", "2")

	prodCtx, stopProducers := context.WithCancel(ctx)
	defer stopProducers()
	idem, err := txnCrashClient(addr, &logs)
	if err != nil {
		t.Fatal(err)
	}
	ledger := &txnCrashLedger{acked: map[string]bool{}, errs: map[string]int{}}
	tps := make([]*txnCrashProducer, txnCrashProducers)
	var wg sync.WaitGroup
	for i := range tps {
		tps[i] = &txnCrashProducer{idx: i, addr: addr, logs: &logs}
		wg.Go(func() { tps[i].run(prodCtx) })
	}
	for w := range txnCrashIdemWriters {
		wg.Go(func() { runIdempotent(prodCtx, idem, w, ledger) })
	}
	decided := func() (n []int64) {
		for _, tp := range tps {
			n = append(n, tp.decided.Load())
		}
		return n
	}

	for k := range kills {
		if k == longDown {
			time.Sleep(txnCrashTimeout + 500*time.Millisecond)
		}
		if k > 0 {
			p = serve()
		}
		// Traffic first: every producer makes progress on this run (a
		// restart one cannot get past is a hang), then the kill comes
		// at a random moment of it.
		before, acked, t0 := decided(), ledger.ackedSoFar.Load(), time.Now()
		p.poll(fmt.Sprintf("progress of every producer after start %d", k+1), 15*time.Second, func() bool {
			for i, n := range decided() {
				if n <= before[i] {
					return false
				}
			}
			return ledger.ackedSoFar.Load() > acked
		})
		resumed := time.Since(t0)
		delay := 200*time.Millisecond + time.Duration(rng.Int64N(int64(600*time.Millisecond)))
		abandon := rng.IntN(3) // 0: none, 1: one of the transactional clients, 2: all
		time.Sleep(delay)
		p.kill()
		switch abandon {
		case 1:
			tps[rng.IntN(len(tps))].abandon()
		case 2:
			for _, tp := range tps {
				tp.abandon()
			}
		}
		t.Logf("run %d: producers going after %v, killed %3dms later (transactional clients abandoned too: %v); transactions decided so far %v, idempotent records acknowledged %d",
			k+1, resumed.Round(time.Millisecond), delay.Milliseconds(), [...]string{"none", "one", "all"}[abandon], decided(), ledger.ackedSoFar.Load())
	}
	// The producers are told to stop while the last process is down, and
	// stop once it is back: franz-go does not give up a batch whose
	// answer it did not get, which only a broker can settle. The
	// transactional producers leave what they had pending (their end's
	// context is over): the coordinator aborts it at its timeout.
	stopProducers()
	p = serve()
	stopped := make(chan struct{})
	go func() { wg.Wait(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		failed("the producers did not stop within 30s of their context ending")
	}
	idem.Close()
	for _, tp := range tps {
		if tp.err != nil {
			t.Fatal(tp.err)
		}
	}

	// Once the transactions the last crash interrupted, if any, are
	// aborted at their timeout, nothing is pending.
	_, adm := adminClient(t, addr, kgo.RetryTimeout(5*time.Second))
	waitStable := func(within time.Duration) (hw kadm.ListedOffsets, took time.Duration) {
		t0 := time.Now()
		for {
			c, cancel := context.WithTimeout(ctx, 5*time.Second)
			lso, err1 := adm.ListCommittedOffsets(c, txnCrashTopic)
			hw, err2 := adm.ListEndOffsets(c, txnCrashTopic)
			cancel()
			if err1 == nil && err2 == nil && lso.Error() == nil && hw.Error() == nil {
				stable := true
				for part := range int32(2) {
					l, _ := lso.Lookup(txnCrashTopic, part)
					h, _ := hw.Lookup(txnCrashTopic, part)
					stable = stable && l.Offset == h.Offset
				}
				if stable {
					return hw, time.Since(t0)
				}
			}
			if time.Since(t0) > within {
				failed(fmt.Sprintf("a transaction is still pending %v after the last start (timeout %v): last stable offsets %v, high watermarks %v (errors %v, %v)",
					within, txnCrashTimeout, lso, hw, err1, err2))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	hw, took := waitStable(txnCrashTimeout + 10*time.Second)
	timedOut := p.findLog("transaction timed out: aborted, and its producer fenced") != nil
	t.Logf("after the last start: stable after %v (a pending transaction timed out: %v); end offsets %d and %d",
		took.Round(time.Millisecond), timedOut, hw[txnCrashTopic][0].Offset, hw[txnCrashTopic][1].Offset)

	// A transaction of each id after all the crashes commits, and a plain
	// record at the end of each partition marks where the consumers stop.
	for _, tp := range tps {
		cl, err := tp.client()
		if err != nil {
			t.Fatal(err)
		}
		if !tp.one(ctx, cl, false) || tp.fates[len(tp.fates)-1] != fateCommitted {
			n := len(tp.fates) - 1
			failed(fmt.Sprintf("producer %d: a transaction after the last start: %v (%s)", tp.idx, tp.fates[n], tp.why[n]))
		}
		cl.Close()
	}
	last, err := txnCrashClient(addr, &logs)
	if err != nil {
		t.Fatal(err)
	}
	ends := map[int32]string{0: "end-0", 1: "end-1"}
	c, cancel := context.WithTimeout(ctx, txnCrashOp)
	err = last.ProduceSync(c, &kgo.Record{Partition: 0, Value: []byte(ends[0])}, &kgo.Record{Partition: 1, Value: []byte(ends[1])}).FirstErr()
	cancel()
	last.Close()
	if err != nil {
		failed(fmt.Sprintf("producing the end records after the last start: %v", err))
	}
	hw, _ = waitStable(5 * time.Second)

	committed := consumeUntil(t, addr, kgo.ReadCommitted(), ends)
	uncommitted := consumeUntil(t, addr, kgo.ReadUncommitted(), ends)

	// Where each value is, per read; offsets increase in each partition.
	type place struct {
		partition int32
		offset    int64
	}
	index := func(what string, recs map[int32][]txnCrashRecord) map[string][]place {
		at := map[string][]place{}
		for part, rs := range recs {
			for i, r := range rs {
				if i > 0 && r.offset <= rs[i-1].offset {
					t.Errorf("%s: partition %d: offset %d (%q) after offset %d", what, part, r.offset, r.value, rs[i-1].offset)
				}
				at[r.value] = append(at[r.value], place{part, r.offset})
			}
			if n := len(rs); n > 0 {
				if end, _ := hw.Lookup(txnCrashTopic, part); rs[n-1].offset != end.Offset-1 {
					t.Errorf("%s: partition %d: the end record is at offset %d, the high watermark %d", what, part, rs[n-1].offset, end.Offset)
				}
			}
		}
		return at
	}
	inC, inU := index("read_committed", committed), index("read_uncommitted", uncommitted)

	// Every value read is one a producer wrote, in the partition it
	// wrote it to.
	for _, at := range []map[string][]place{inC, inU} {
		for v, ps := range at {
			var x, n, m, w, i int
			switch {
			case v == ends[0] || v == ends[1]:
			case strings.HasPrefix(v, "txn"):
				if _, err := fmt.Sscanf(v, "txn%d-%d-rec-%d", &x, &n, &m); err != nil || x < 0 || x >= len(tps) || n >= len(tps[x].fates) || m >= txnCrashRecs || int32(m%2) != ps[0].partition {
					t.Errorf("%q at partition %d offset %d was never produced (there)", v, ps[0].partition, ps[0].offset)
				}
			case strings.HasPrefix(v, "idem"):
				if _, err := fmt.Sscanf(v, "idem%d-%d", &w, &i); err != nil || w < 0 || w >= txnCrashIdemWriters || int32(i%2) != ps[0].partition {
					t.Errorf("%q at partition %d offset %d was never produced (there)", v, ps[0].partition, ps[0].offset)
				}
			default:
				t.Errorf("%q at partition %d offset %d was never produced", v, ps[0].partition, ps[0].offset)
			}
		}
	}
	// No value is stored twice: no producer ever sends a value again once
	// its record failed, so a second copy is a retry that was not
	// recognised.
	for _, read := range []struct {
		name string
		at   map[string][]place
	}{{"read_committed", inC}, {"read_uncommitted", inU}} {
		for v, ps := range read.at {
			if len(ps) > 1 {
				t.Errorf("%s: %q is stored %d times: %v", read.name, v, len(ps), ps)
			}
		}
	}
	// What is read committed is in the log.
	for v, ps := range inC {
		if len(inU[v]) == 0 {
			t.Errorf("%q (partition %d offset %d) is read committed but not read uncommitted", v, ps[0].partition, ps[0].offset)
		}
	}

	// Each transaction as its client saw it.
	count := map[txnFate]int{}
	unknownPresent, unknownAbsent, abortedInLog, recreated, abandoned := 0, 0, 0, 0, 0
	for _, tp := range tps {
		recreated += tp.recreated
		abandoned += tp.abandoned
		for n, fate := range tp.fates {
			count[fate]++
			var present, inLog []string
			for m := range txnCrashRecs {
				v := tp.value(n, m)
				if len(inC[v]) > 0 {
					present = append(present, v)
				}
				if len(inU[v]) > 0 {
					inLog = append(inLog, v)
				}
			}
			switch fate {
			case fateCommitted:
				if len(present) != txnCrashRecs {
					t.Errorf("producer %d transaction %d: committed (EndTransaction returned nil), but only %d of its %d records are read committed: %v (in the log: %v)",
						tp.idx, n, len(present), txnCrashRecs, present, inLog)
				}
			case fateAborted, fateAbortedAfterError:
				if len(present) > 0 {
					t.Errorf("producer %d transaction %d: %v, but its records %v are read committed (%s)", tp.idx, n, fate, present, tp.why[n])
				}
				if fate == fateAborted {
					// Every record was acknowledged: all are in the log.
					if len(inLog) != txnCrashRecs {
						t.Errorf("producer %d transaction %d: aborted after all its records were acknowledged, but only %v are in the log (read uncommitted)", tp.idx, n, inLog)
					} else {
						abortedInLog++
					}
				}
			case fateUnknown:
				switch len(present) {
				case 0:
					unknownAbsent++
				case txnCrashRecs:
					unknownPresent++
				default:
					t.Errorf("producer %d transaction %d (outcome unknown to the client: %s): %d of its %d records are read committed, not all or none: %v (in the log: %v)",
						tp.idx, n, tp.why[n], len(present), txnCrashRecs, present, inLog)
				}
			}
		}
	}
	if count[fateCommitted] == 0 || count[fateAborted] == 0 {
		t.Errorf("%d transactions committed and %d aborted: the test checked too little", count[fateCommitted], count[fateAborted])
	}
	if abortedInLog == 0 && count[fateAborted] > 0 {
		t.Errorf("no aborted transaction's records were found read uncommitted")
	}
	// In each partition each producer's records come in the order it
	// produced them (a transactional producer one transaction at a time).
	for part, rs := range committed {
		lastTxn, lastIdem := make([][2]int, len(tps)), make([]int, txnCrashIdemWriters)
		for i := range lastTxn {
			lastTxn[i] = [2]int{-1, -1}
		}
		for i := range lastIdem {
			lastIdem[i] = -1
		}
		for _, r := range rs {
			var x, n, m, w, i int
			if _, err := fmt.Sscanf(r.value, "txn%d-%d-rec-%d", &x, &n, &m); err == nil && x >= 0 && x < len(tps) {
				if cur := [2]int{n, m}; slices.Compare(cur[:], lastTxn[x][:]) <= 0 {
					t.Errorf("read_committed partition %d: %q at offset %d after producer %d's transaction %d record %d", part, r.value, r.offset, x, lastTxn[x][0], lastTxn[x][1])
				} else {
					lastTxn[x] = cur
				}
			} else if _, err := fmt.Sscanf(r.value, "idem%d-%d", &w, &i); err == nil && w >= 0 && w < txnCrashIdemWriters {
				if i <= lastIdem[w] {
					t.Errorf("read_committed partition %d: %q at offset %d after idem%d-%d", part, r.value, r.offset, w, lastIdem[w])
				}
				lastIdem[w] = i
			}
		}
	}

	// Every acknowledged idempotent record is read committed.
	var missing []string
	for v := range ledger.acked {
		if len(inC[v]) == 0 {
			missing = append(missing, v)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		t.Errorf("%d acknowledged idempotent records are not read committed, e.g. %v", len(missing), missing[:min(len(missing), 10)])
	}
	idemStored := 0
	for v := range inC {
		if strings.HasPrefix(v, "idem") {
			idemStored++
		}
	}

	if code := p.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Fatalf("spool exited %d after SIGTERM; output:\n%s", code, lastLines(p.output(), 30))
	}
	if code, out, errOut := spool(t, context.Background(), "log", "verify", dir); code != 0 {
		t.Errorf("spool log verify: exit %d:\n%s%s", code, out, errOut)
	}

	t.Logf("transactions: %d committed, %d aborted (%d of them found in the log read uncommitted), %d aborted after a produce error, %d unknown (%d read committed whole, %d absent); %d clients replaced (%d abandoned)",
		count[fateCommitted], count[fateAborted], abortedInLog, count[fateAbortedAfterError], count[fateUnknown], unknownPresent, unknownAbsent, recreated, abandoned)
	t.Logf("idempotent: %d acknowledged, %d failed %v, %d read committed; read committed %d+%d records, uncommitted %d+%d; %v in all",
		len(ledger.acked), ledger.failed, ledger.errs, idemStored, len(committed[0]), len(committed[1]), len(uncommitted[0]), len(uncommitted[1]), time.Since(start).Round(time.Millisecond))
	if t.Failed() {
		t.Logf("spool output (last lines):\n%s\nfranz-go (last lines):\n%s", lastLines(p.output(), 40), lastLines(logs.String(), 80))
	}
}
