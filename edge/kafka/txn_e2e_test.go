package kafka_test

// End-to-end tests of Kafka transactions with franz-go (kgo): exactly-once
// consume-transform-produce in a group, fencing, the last stable offset,
// restarts and timeouts, OffsetFetch require_stable, and the protocol's
// error answers to raw requests.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolmq/spool/edge/kafka"
	spoollog "github.com/spoolmq/spool/log"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// ---- helpers ----

// e2eRawClient is a client whose requests of the given keys go at most at
// the given versions (the broker's own maximum still applies).
func e2eRawClient(t *testing.T, tb *testBroker, caps map[kmsg.Key]int16) *kgo.Client {
	t.Helper()
	v := kversion.Stable()
	for k, max := range caps {
		v.SetMaxKeyVersion(k.Int16(), max)
	}
	return tb.client(kgo.MaxVersions(v))
}

// e2eRaw sends req as it is to the broker the client was seeded with: no
// sharding, no coordinator lookup, no retries. It checks that the answer
// came at version want (-1: any).
func e2eRaw[R kmsg.Response](t *testing.T, cl *kgo.Client, req kmsg.Request, want int16) R {
	t.Helper()
	resp, err := cl.SeedBrokers()[0].Request(ctx(t), req)
	if err != nil {
		t.Fatalf("%T: %v", req, err)
	}
	if want >= 0 && resp.GetVersion() != want {
		t.Fatalf("%T answered at v%d, want v%d", resp, resp.GetVersion(), want)
	}
	return resp.(R)
}

// e2eInit gets a producer id and epoch for a transactional id.
func e2eInit(t *testing.T, cl *kgo.Client, txnID string, timeoutMs int32) (int64, int16) {
	t.Helper()
	req := kmsg.NewPtrInitProducerIDRequest()
	req.TransactionalID, req.TransactionTimeoutMillis = &txnID, timeoutMs
	resp := e2eRaw[*kmsg.InitProducerIDResponse](t, cl, req, -1)
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		t.Fatalf("InitProducerId %q: %v", txnID, err)
	}
	return resp.ProducerID, resp.ProducerEpoch
}

// e2eAddPartitions is AddPartitionsToTxn (v0-3 layout); it returns each
// partition's error code by "topic/partition".
func e2eAddPartitions(t *testing.T, cl *kgo.Client, txnID string, pid int64, epoch int16, want int16, topics map[string][]int32) map[string]int16 {
	t.Helper()
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.TransactionalID, req.ProducerID, req.ProducerEpoch = txnID, pid, epoch
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range topics {
			if !yield(k) {
				return
			}
		}
	}) {
		rt := kmsg.NewAddPartitionsToTxnRequestTopic()
		rt.Topic, rt.Partitions = name, topics[name]
		req.Topics = append(req.Topics, rt)
	}
	resp := e2eRaw[*kmsg.AddPartitionsToTxnResponse](t, cl, req, want)
	out := map[string]int16{}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			out[fmt.Sprintf("%s/%d", rt.Topic, rp.Partition)] = rp.ErrorCode
		}
	}
	return out
}

func e2eEndTxn(t *testing.T, cl *kgo.Client, txnID string, pid int64, epoch int16, commit bool, want int16) int16 {
	t.Helper()
	req := kmsg.NewPtrEndTxnRequest()
	req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = txnID, pid, epoch, commit
	return e2eRaw[*kmsg.EndTxnResponse](t, cl, req, want).ErrorCode
}

func e2eAddOffsets(t *testing.T, cl *kgo.Client, txnID string, pid int64, epoch int16, group string) int16 {
	t.Helper()
	req := kmsg.NewPtrAddOffsetsToTxnRequest()
	req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group = txnID, pid, epoch, group
	return e2eRaw[*kmsg.AddOffsetsToTxnResponse](t, cl, req, -1).ErrorCode
}

// e2eTxnOffsetCommit commits offset for topic/partition in the transaction,
// as member at generation (v3); it returns the partition's code.
func e2eTxnOffsetCommit(t *testing.T, cl *kgo.Client, txnID string, pid int64, epoch int16, group, member string, generation int32, topic string, partition int32, offset int64, metadata string, want int16) int16 {
	t.Helper()
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group = txnID, pid, epoch, group
	req.MemberID, req.Generation = member, generation
	rt := kmsg.NewTxnOffsetCommitRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata = partition, offset, -1, &metadata
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := e2eRaw[*kmsg.TxnOffsetCommitResponse](t, cl, req, want)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("TxnOffsetCommit answer %+v: want one partition", resp.Topics)
	}
	return resp.Topics[0].Partitions[0].ErrorCode
}

// e2eListOffset answers ListOffsets latest for one partition at an
// isolation level (0 read_uncommitted, 1 read_committed).
func e2eListOffset(t *testing.T, cl *kgo.Client, topic string, partition int32, isolation int8) int64 {
	t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID, req.IsolationLevel = -1, isolation
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition, rp.Timestamp = partition, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := e2eRaw[*kmsg.ListOffsetsResponse](t, cl, req, -1)
	sp := resp.Topics[0].Partitions[0]
	if err := kerr.ErrorForCode(sp.ErrorCode); err != nil {
		t.Fatalf("ListOffsets %s/%d: %v", topic, partition, err)
	}
	return sp.Offset
}

// e2eFetch is one Fetch of a partition from offset, answered at once.
func e2eFetch(t *testing.T, cl *kgo.Client, topic string, partition int32, offset int64, isolation int8) kmsg.FetchResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes, req.IsolationLevel = -1, 0, 1, 1<<20, isolation
	req.SessionEpoch = -1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch, rp.LogStartOffset = partition, offset, 1<<20, -1, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := e2eRaw[*kmsg.FetchResponse](t, cl, req, -1)
	sp := resp.Topics[0].Partitions[0]
	if err := kerr.ErrorForCode(sp.ErrorCode); err != nil {
		t.Fatalf("Fetch %s/%d at %d: %v", topic, partition, offset, err)
	}
	return sp
}

// e2eBatch is one batch of a Fetch answer, decoded.
type e2eBatch struct {
	first, last  int64
	pid          int64
	epoch        int16
	txn, control bool
	values       []string
	commitMarker bool // of a control batch: commit, else abort
}

func e2eBatches(t *testing.T, data []byte) []e2eBatch {
	t.Helper()
	var out []e2eBatch
	for len(data) > 0 {
		var b kmsg.RecordBatch
		if err := b.ReadFrom(data); err != nil {
			t.Fatalf("decoding a fetched batch: %v", err)
		}
		n := 12 + int(b.Length)
		eb := e2eBatch{
			first: b.FirstOffset, last: b.FirstOffset + int64(b.LastOffsetDelta), pid: b.ProducerID, epoch: b.ProducerEpoch,
			txn: b.Attributes&0x10 != 0, control: b.Attributes&0x20 != 0,
		}
		_, recs, err := spoollog.DecodeRecords(data[:n])
		if err != nil {
			t.Fatalf("decoding the records of a fetched batch: %v", err)
		}
		if eb.control {
			if eb.commitMarker, err = spoollog.ControlMarker(data[:n]); err != nil {
				t.Fatal(err)
			}
		} else {
			for _, r := range recs {
				eb.values = append(eb.values, string(r.Value))
			}
		}
		out = append(out, eb)
		data = data[n:]
	}
	return out
}

// e2eTxnBatch encodes a batch of values from producer pid at epoch and
// sequence seq, with the transactional attribute (and control, if asked).
func e2eTxnBatch(t *testing.T, pid int64, epoch int16, seq int32, control bool, values ...string) []byte {
	t.Helper()
	recs := make([]spoollog.Record, len(values))
	for i, v := range values {
		recs[i] = spoollog.Record{Timestamp: time.Now().UnixMilli(), Value: []byte(v)}
	}
	b, err := spoollog.AppendBatch(nil, recs, spoollog.BatchOptions{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq})
	if err != nil {
		t.Fatal(err)
	}
	// RecordBatch v2: attributes at 21, the CRC-32C at 17 covers 21 on.
	attrs := binary.BigEndian.Uint16(b[21:]) | 0x10
	if control {
		attrs |= 0x20
	}
	binary.BigEndian.PutUint16(b[21:], attrs)
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

// e2eProduce sends one batch to topic/partition; txnID may be nil.
func e2eProduce(t *testing.T, cl *kgo.Client, txnID *string, topic string, partition int32, batch []byte) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis, req.TransactionID = -1, 10000, txnID
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition, rp.Records = partition, batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return e2eRaw[*kmsg.ProduceResponse](t, cl, req, -1).Topics[0].Partitions[0]
}

// e2eConsumeAll reads topic from its start at an isolation level until n
// records came, then makes sure no more come within quiet.
func e2eConsumeAll(t *testing.T, tb *testBroker, topic string, committed bool, n int, quiet time.Duration) []*kgo.Record {
	t.Helper()
	iso := kgo.ReadUncommitted()
	if committed {
		iso = kgo.ReadCommitted()
	}
	c := tb.client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(iso), kgo.FetchMaxWait(200*time.Millisecond))
	defer c.Close()
	var got []*kgo.Record
	if n > 0 {
		got = consumeN(t, c, n)
	}
	e2eQuiet(t, c, quiet, fmt.Sprintf("%s (committed %v) after %d records", topic, committed, n))
	return got
}

// e2eQuiet fails if the consumer gets any record within d.
func e2eQuiet(t *testing.T, c *kgo.Client, d time.Duration, what string) {
	t.Helper()
	cx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for cx.Err() == nil {
		fs := c.PollFetches(cx)
		if recs := fs.Records(); len(recs) > 0 {
			var vs []string
			for _, r := range recs {
				vs = append(vs, fmt.Sprintf("%d:%s", r.Offset, r.Value))
			}
			t.Fatalf("%s: %d more records %v", what, len(recs), vs)
		}
	}
}

func e2eValues(recs []*kgo.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Value)
	}
	return out
}

func e2eProduceSync(t *testing.T, c *kgo.Client, values ...string) []*kgo.Record {
	t.Helper()
	recs := make([]*kgo.Record, len(values))
	for i, v := range values {
		recs[i] = &kgo.Record{Value: []byte(v)}
	}
	if err := c.ProduceSync(ctx(t), recs...).FirstErr(); err != nil {
		t.Fatalf("produce %v: %v", values, err)
	}
	return recs
}

// e2eProxy forwards connections to a broker whose address changes when it
// restarts: advertised as the broker's address, it lets clients follow.
type e2eProxy struct {
	ln     net.Listener
	target atomic.Pointer[string]
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

func newE2EProxy(t *testing.T) *e2eProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	px := &e2eProxy{ln: ln, conns: map[net.Conn]struct{}{}}
	px.wg.Add(1)
	go func() {
		defer px.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			px.wg.Add(1)
			go px.serve(c)
		}
	}()
	t.Cleanup(func() { ln.Close(); px.cutAll(); px.wg.Wait() })
	return px
}

func (px *e2eProxy) addr() string { return px.ln.Addr().String() }

func (px *e2eProxy) track(cs ...net.Conn) {
	px.mu.Lock()
	defer px.mu.Unlock()
	for _, c := range cs {
		px.conns[c] = struct{}{}
	}
}

// cutAll closes every forwarded connection.
func (px *e2eProxy) cutAll() {
	px.mu.Lock()
	defer px.mu.Unlock()
	for c := range px.conns {
		c.Close()
		delete(px.conns, c)
	}
}

func (px *e2eProxy) serve(c net.Conn) {
	defer px.wg.Done()
	target := px.target.Load()
	if target == nil {
		c.Close()
		return
	}
	s, err := net.DialTimeout("tcp", *target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	px.track(c, s)
	done := make(chan struct{})
	go func() {
		io.Copy(s, c)
		s.Close()
		close(done)
	}()
	io.Copy(c, s)
	c.Close()
	<-done
}

// ---- 1. exactly-once consume-transform-produce ----

type eosRun struct {
	name          string
	commits       int
	aborts        int
	produced      int            // records produced, committed or not
	parts         map[int32]bool // input partitions of committed rounds
	partsAfter    map[int32]bool // ... of rounds committed after the other session left
	committedVals map[string]int // input values committed
}

// runEOSSession runs a GroupTransactSession that reads in and writes each
// record, its value prefixed with "x", to out, PollRecords(25) per
// transaction. Its abortAt'th transaction with records is aborted on
// purpose; after leaveAfter commits (0: never) it leaves the group.
func runEOSSession(tb *testBroker, name, group, in, out string, abortAt, leaveAfter int, stop, otherLeft *atomic.Bool, res *eosRun, errs chan<- error) {
	res.name, res.parts, res.partsAfter, res.committedVals = name, map[int32]bool{}, map[int32]bool{}, map[string]int{}
	fail := func(format string, args ...any) {
		select {
		case errs <- fmt.Errorf(name+": "+format, args...):
		default:
		}
	}
	s, err := kgo.NewGroupTransactSession(
		kgo.SeedBrokers(tb.addr()), kgo.RetryTimeout(testTimeout),
		kgo.TransactionalID(name), kgo.TransactionTimeout(20*time.Second),
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(in),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.RequireStableFetchOffsets(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(4*time.Second), kgo.HeartbeatInterval(200*time.Millisecond), kgo.RebalanceTimeout(8*time.Second),
		kgo.FetchMaxWait(200*time.Millisecond),
		kgo.DefaultProduceTopic(out),
	)
	if err != nil {
		fail("new session: %v", err)
		return
	}
	defer s.Close()
	rounds := 0
	for !stop.Load() {
		pctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		fs := s.PollRecords(pctx, 25)
		cancel()
		if fs.IsClientClosed() {
			return
		}
		fs.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				fail("fetch %s/%d: %v", topic, p, err)
			}
		})
		recs := fs.Records()
		if len(recs) == 0 {
			continue
		}
		if err := s.Begin(); err != nil {
			fail("begin: %v", err)
			return
		}
		rounds++
		abort := rounds == abortAt
		outs := make([]*kgo.Record, len(recs))
		for i, r := range recs {
			outs[i] = &kgo.Record{Key: r.Key, Value: append([]byte("x"), r.Value...)}
		}
		ectx, cancel := context.WithTimeout(context.Background(), testTimeout)
		// Synchronously: the records of a round aborted on purpose are
		// on the broker before it aborts, not dropped from the buffer.
		if err := s.ProduceSync(ectx, outs...).FirstErr(); err != nil {
			cancel()
			fail("produce: %v", err)
			return
		}
		res.produced += len(outs)
		committed, err := s.End(ectx, kgo.TransactionEndTry(!abort))
		cancel()
		if err != nil {
			fail("end (commit %v): %v", !abort, err)
			return
		}
		if abort && committed {
			fail("the transaction ended with TryAbort committed")
			return
		}
		if !committed {
			res.aborts++
			continue
		}
		res.commits++
		after := otherLeft != nil && otherLeft.Load()
		for _, r := range recs {
			res.parts[r.Partition] = true
			if after {
				res.partsAfter[r.Partition] = true
			}
			res.committedVals[string(r.Value)]++
		}
		if leaveAfter > 0 && res.commits >= leaveAfter {
			return
		}
	}
}

// TestTxnE2EGroupTransactSessionExactlyOnce: two kgo GroupTransactSessions
// of one group transform a three-partition topic; one leaves midway (the
// other takes its partitions over in a rebalance) and one round is
// aborted on purpose. The output, read_committed, has every input record
// transformed exactly once, in each key's order; the aborted records are
// in the log but invisible; the group's committed offsets are the input's
// end offsets.
func TestTxnE2EGroupTransactSessionExactlyOnce(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, kafka.Options{})
	const in, out, group, n = "eos-in", "eos-out", "eos-group", 300
	tb.createTopic(in, 3)
	tb.createTopic(out, 3)
	produceValues(t, tb, in, 0, n)
	adm := tb.admin()
	ends, err := adm.ListEndOffsets(ctx(t), in)
	if err != nil {
		t.Fatal(err)
	}

	var stop, bLeft atomic.Bool
	errs := make(chan error, 8)
	var a, b eosRun
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		runEOSSession(tb, "eos-tx-a", group, in, out, 2, 0, &stop, &bLeft, &a, errs)
	}()
	go func() {
		defer wg.Done()
		defer bLeft.Store(true) // Close (deferred in runEOSSession) has left the group
		runEOSSession(tb, "eos-tx-b", group, in, out, 0, 3, &stop, nil, &b, errs)
	}()

	// Done when the group committed the input's end offsets.
	deadline := time.Now().Add(30 * time.Second)
	for {
		offs, err := adm.FetchOffsets(ctx(t), group)
		done := err == nil
		for p := range int32(3) {
			o, ok := offs.Lookup(in, p)
			e, _ := ends.Lookup(in, p)
			done = done && ok && o.Err == nil && o.At == e.Offset
		}
		if done {
			break
		}
		select {
		case err := <-errs:
			stop.Store(true)
			wg.Wait()
			t.Fatal(err)
		default:
		}
		if time.Now().After(deadline) {
			stop.Store(true)
			wg.Wait()
			t.Fatalf("group offsets %v never reached the input's ends %v (a %+v, b %+v)", offs, ends, a, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	t.Logf("a: %d commits, %d aborts, %d produced, partitions %v (after b left %v); b: %d commits, %d aborts, %d produced, partitions %v",
		a.commits, a.aborts, a.produced, a.parts, a.partsAfter, b.commits, b.aborts, b.produced, b.parts)

	if b.commits != 3 {
		t.Errorf("b committed %d transactions before leaving, want 3", b.commits)
	}
	if a.aborts < 1 {
		t.Errorf("a aborted %d transactions, want at least the one on purpose", a.aborts)
	}
	for p := range b.parts {
		if !a.partsAfter[p] {
			t.Errorf("input partition %d of b was not taken over by a after b left (a's after: %v)", p, a.partsAfter)
		}
	}
	// The sessions' own account: each input value committed once.
	for i := range n {
		v := strconv.Itoa(i)
		if c := a.committedVals[v] + b.committedVals[v]; c != 1 {
			t.Errorf("input %s committed %d times by the sessions", v, c)
		}
	}

	// The output as a read_committed consumer sees it.
	got := e2eConsumeAll(t, tb, out, true, n, time.Second)
	seen := map[string]int{}
	lastOfKey := map[string]int{}
	for _, r := range got {
		seen[string(r.Value)]++
		v, err := strconv.Atoi(string(r.Value[1:]))
		if err != nil || r.Value[0] != 'x' {
			t.Fatalf("output record %q is not a transformed input", r.Value)
		}
		if prev, ok := lastOfKey[string(r.Key)]; ok && v <= prev {
			t.Errorf("key %s: output %d after %d", r.Key, v, prev)
		}
		lastOfKey[string(r.Key)] = v
	}
	for i := range n {
		if c := seen["x"+strconv.Itoa(i)]; c != 1 {
			t.Errorf("output x%d seen %d times by read_committed, want 1", i, c)
		}
	}
	// Everything produced is in the log, aborted rounds included.
	produced := a.produced + b.produced
	if produced <= n {
		t.Errorf("%d records produced for %d inputs: no aborted round wrote anything", produced, n)
	}
	if all := e2eConsumeAll(t, tb, out, false, produced, 500*time.Millisecond); len(all) != produced {
		t.Errorf("read_uncommitted: %d records, want the %d produced", len(all), produced)
	}
	// The committed offsets, read stable, are the input's ends.
	offs, err := adm.FetchOffsets(ctx(t), group)
	if err != nil {
		t.Fatal(err)
	}
	for p := range int32(3) {
		o, _ := offs.Lookup(in, p)
		e, _ := ends.Lookup(in, p)
		if o.Err != nil || o.At != e.Offset {
			t.Errorf("group offset of %s/%d: %d (%v), want the end %d", in, p, o.At, o.Err, e.Offset)
		}
	}
}

// ---- 2. fencing ----

// TestTxnE2EFencing: a producer with the same transactional id fences the
// one before it, whose pending transaction is aborted: the fenced
// producer's EndTxn and its produce fail, and read_committed never sees
// its records, though they are in the log.
func TestTxnE2EFencing(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, kafka.Options{})
	const topic, id = "fence", "fence-tx"
	tb.createTopic(topic, 1)
	newProducer := func() *kgo.Client {
		return tb.client(kgo.TransactionalID(id), kgo.DefaultProduceTopic(topic), kgo.TransactionTimeout(30*time.Second))
	}
	raw := tb.client()

	// p1's transaction is pending when p2 starts.
	p1 := newProducer()
	if err := p1.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	e2eProduceSync(t, p1, "p1-0", "p1-1", "p1-2")
	pid1, epoch1, err := p1.ProducerID(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if lso := e2eListOffset(t, raw, topic, 0, 1); lso != 0 {
		t.Fatalf("LSO %d with p1's transaction pending, want 0", lso)
	}
	p2 := newProducer()
	if err := p2.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	p2recs := e2eProduceSync(t, p2, "p2-0", "p2-1")
	pid2, epoch2, err := p2.ProducerID(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if pid2 != pid1 || epoch2 <= epoch1 {
		t.Fatalf("p2 has producer %d epoch %d, p1 %d epoch %d: want the same id at a later epoch", pid2, epoch2, pid1, epoch1)
	}
	// p1's transaction was aborted when p2 started: the LSO is p2's.
	if lso := e2eListOffset(t, raw, topic, 0, 1); lso != p2recs[0].Offset {
		t.Errorf("LSO %d with p2's transaction pending, want its first offset %d", lso, p2recs[0].Offset)
	}
	// p1 cannot commit: EndTxn with its epoch is fenced.
	err = p1.EndTransaction(ctx(t), kgo.TryCommit)
	if !errors.Is(err, kerr.ProducerFenced) {
		t.Errorf("p1's commit after p2 started: %v, want PRODUCER_FENCED", err)
	}
	if code := e2eEndTxn(t, raw, id, pid1, epoch1, true, -1); code != kerr.ProducerFenced.Code {
		t.Errorf("raw EndTxn with p1's epoch: %v, want PRODUCER_FENCED", kerr.ErrorForCode(code))
	}

	// p3 fences p2 while p2's transaction is pending: p2's next produce
	// fails, and so does its commit.
	p3 := newProducer()
	if err := p3.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	e2eProduceSync(t, p3, "p3-0", "p3-1")
	if err := p2.ProduceSync(ctx(t), &kgo.Record{Value: []byte("p2-late")}).FirstErr(); err == nil {
		t.Errorf("p2 produced after p3 fenced it")
	} else if !errors.Is(err, kerr.InvalidProducerEpoch) && !errors.Is(err, kerr.ProducerFenced) {
		t.Errorf("p2's produce after p3 started: %v, want INVALID_PRODUCER_EPOCH or PRODUCER_FENCED", err)
	}
	if err := p2.EndTransaction(ctx(t), kgo.TryCommit); err == nil {
		t.Errorf("p2 committed after p3 fenced it")
	}
	if err := p3.EndTransaction(ctx(t), kgo.TryCommit); err != nil {
		t.Fatalf("p3's commit: %v", err)
	}

	got := e2eValues(e2eConsumeAll(t, tb, topic, true, 2, time.Second))
	if !slices.Equal(got, []string{"p3-0", "p3-1"}) {
		t.Errorf("read_committed got %v, want only p3's records", got)
	}
	all := e2eValues(e2eConsumeAll(t, tb, topic, false, 7, 500*time.Millisecond))
	if !slices.Equal(all, []string{"p1-0", "p1-1", "p1-2", "p2-0", "p2-1", "p3-0", "p3-1"}) {
		t.Errorf("read_uncommitted got %v: the fenced records should be in the log, p2-late not", all)
	}
	// The log: p1's and p2's transactions ended with abort markers, p3's
	// with a commit.
	var markers []bool
	for _, b := range e2eBatches(t, e2eFetch(t, raw, topic, 0, 0, 0).RecordBatches) {
		if b.control {
			markers = append(markers, b.commitMarker)
		}
	}
	if !slices.Equal(markers, []bool{false, false, true}) {
		t.Errorf("markers (commit?) %v, want abort, abort, commit", markers)
	}
}

// ---- 3. the last stable offset ----

// TestTxnE2ELastStableOffset: a read_committed consumer stops at the first
// offset of a pending transaction, so it does not see later records of
// another, non-transactional producer of the partition either; ListOffsets
// read_committed answers that offset. Once committed, it sees everything in
// offset order. Around an aborted transaction it sees the other producer's
// records but none of the aborted ones, and Fetch lists the abort.
func TestTxnE2ELastStableOffset(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, kafka.Options{})
	const topic = "lso"
	tb.createTopic(topic, 1)
	plain := tb.client(kgo.DefaultProduceTopic(topic))
	txp := tb.client(kgo.TransactionalID("lso-tx"), kgo.DefaultProduceTopic(topic))
	raw := tb.client()
	adm := tb.admin()

	e2eProduceSync(t, plain, "n0", "n1") // 0, 1
	if err := txp.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	e2eProduceSync(t, txp, "t0", "t1", "t2") // 2-4
	e2eProduceSync(t, plain, "n2", "n3")     // 5, 6

	rc := tb.client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(200*time.Millisecond))
	if got := e2eValues(consumeN(t, rc, 2)); !slices.Equal(got, []string{"n0", "n1"}) {
		t.Fatalf("read_committed got %v, want n0 n1", got)
	}
	e2eQuiet(t, rc, time.Second, "read_committed with a transaction pending at offset 2")

	if lso, hw := e2eListOffset(t, raw, topic, 0, 1), e2eListOffset(t, raw, topic, 0, 0); lso != 2 || hw != 7 {
		t.Errorf("ListOffsets latest: read_committed %d, read_uncommitted %d; want 2 and 7", lso, hw)
	}
	if lo, err := adm.ListCommittedOffsets(ctx(t), topic); err != nil {
		t.Error(err)
	} else if o, _ := lo.Lookup(topic, 0); o.Offset != 2 {
		t.Errorf("kadm ListCommittedOffsets: %d, want 2", o.Offset)
	}
	// Fetch read_committed: the LSO answered, nothing past it returned.
	f := e2eFetch(t, raw, topic, 0, 0, 1)
	if f.LastStableOffset != 2 || f.HighWatermark != 7 {
		t.Errorf("fetch read_committed: LSO %d HW %d, want 2 and 7", f.LastStableOffset, f.HighWatermark)
	}
	for _, b := range e2eBatches(t, f.RecordBatches) {
		if b.last >= 2 {
			t.Errorf("fetch read_committed returned batch %d-%d past the LSO", b.first, b.last)
		}
	}
	// At the LSO: no data, but a record set (empty, not null).
	if f := e2eFetch(t, raw, topic, 0, 2, 1); len(f.RecordBatches) != 0 || f.RecordBatches == nil {
		t.Errorf("fetch read_committed at the LSO: %d bytes (nil %v), want an empty record set", len(f.RecordBatches), f.RecordBatches == nil)
	}
	// read_uncommitted sees it all.
	f = e2eFetch(t, raw, topic, 0, 0, 0)
	var vals []string
	for _, b := range e2eBatches(t, f.RecordBatches) {
		vals = append(vals, b.values...)
	}
	if f.LastStableOffset != 2 || !slices.Equal(vals, []string{"n0", "n1", "t0", "t1", "t2", "n2", "n3"}) {
		t.Errorf("fetch read_uncommitted: LSO %d, values %v; want 2 and all 7", f.LastStableOffset, vals)
	}

	if err := txp.EndTransaction(ctx(t), kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	next := consumeN(t, rc, 5)
	if got := e2eValues(next); !slices.Equal(got, []string{"t0", "t1", "t2", "n2", "n3"}) {
		t.Errorf("after the commit read_committed got %v, want t0 t1 t2 n2 n3", got)
	}
	for i, r := range next {
		if r.Offset != int64(2+i) {
			t.Errorf("record %s at offset %d, want %d", r.Value, r.Offset, 2+i)
		}
	}
	if lso := e2eListOffset(t, raw, topic, 0, 1); lso != 8 { // the marker is 7
		t.Errorf("LSO after the commit: %d, want the high watermark 8", lso)
	}

	// An aborted transaction between the other producer's records.
	if err := txp.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	aborted := e2eProduceSync(t, txp, "a0", "a1") // 8, 9
	e2eProduceSync(t, plain, "n4")                // 10
	if lso := e2eListOffset(t, raw, topic, 0, 1); lso != 8 {
		t.Errorf("LSO with the second transaction pending: %d, want 8", lso)
	}
	e2eQuiet(t, rc, 500*time.Millisecond, "read_committed with the second transaction pending")
	if err := txp.EndTransaction(ctx(t), kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
	e2eProduceSync(t, plain, "n5") // 12, after the marker at 11
	if got := e2eValues(consumeN(t, rc, 2)); !slices.Equal(got, []string{"n4", "n5"}) {
		t.Errorf("around the aborted transaction read_committed got %v, want n4 n5", got)
	}
	e2eQuiet(t, rc, 500*time.Millisecond, "read_committed after the abort")
	f = e2eFetch(t, raw, topic, 0, 8, 1)
	if len(f.AbortedTransactions) != 1 || f.AbortedTransactions[0].ProducerID != aborted[0].ProducerID || f.AbortedTransactions[0].FirstOffset != 8 {
		t.Errorf("fetch read_committed from 8: aborted transactions %+v, want producer %d from 8", f.AbortedTransactions, aborted[0].ProducerID)
	}
	if f.LastStableOffset != 13 || f.HighWatermark != 13 {
		t.Errorf("after the abort: LSO %d HW %d, want 13", f.LastStableOffset, f.HighWatermark)
	}
	if got := e2eValues(e2eConsumeAll(t, tb, topic, false, 11, 300*time.Millisecond)); len(got) != 11 {
		t.Errorf("read_uncommitted: %v, want 11 records", got)
	}
}

// ---- 4. restarts and timeouts ----

// TestTxnE2EPendingSurvivesRestart: a transaction pending across a restart
// is still pending after it (read_committed sees nothing, the LSO holds),
// the same client adds records to it and commits it, and all its records
// become visible.
func TestTxnE2EPendingSurvivesRestart(t *testing.T) {
	t.Parallel()
	px := newE2EProxy(t)
	tb := startBroker(t, kafka.Options{Advertised: px.addr()})
	px.target.Store(new(tb.addr()))
	const topic = "txn-restart"
	tb.createTopic(topic, 2)
	p := tb.client(kgo.SeedBrokers(px.addr()), kgo.TransactionalID("restart-tx"), kgo.DefaultProduceTopic(topic),
		kgo.TransactionTimeout(60*time.Second), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	var before []string
	for i := range 10 {
		before = append(before, "before-"+strconv.Itoa(i))
	}
	e2eProduceSync(t, p, before...)

	tb.restart()
	px.target.Store(new(tb.addr()))
	px.cutAll()

	raw := tb.client()
	for part := range int32(2) {
		if lso, hw := e2eListOffset(t, raw, topic, part, 1), e2eListOffset(t, raw, topic, part, 0); lso != 0 || hw != 5 {
			t.Errorf("after the restart partition %d: LSO %d HW %d, want 0 and 5", part, lso, hw)
		}
	}
	e2eConsumeAll(t, tb, topic, true, 0, 500*time.Millisecond)

	// The same client goes on with its transaction: more records, then
	// the commit (kgo retries over the connection the restart cut).
	e2eProduceSync(t, p, "after-0", "after-1")
	if err := p.EndTransaction(ctx(t), kgo.TryCommit); err != nil {
		t.Fatalf("commit after the restart: %v", err)
	}
	got := e2eValues(e2eConsumeAll(t, tb, topic, true, 12, 500*time.Millisecond))
	slices.Sort(got)
	want := append(append([]string{}, before...), "after-0", "after-1")
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("read_committed after the commit: %v, want %v", got, want)
	}
	for part := range int32(2) {
		if lso, hw := e2eListOffset(t, raw, topic, part, 1), e2eListOffset(t, raw, topic, part, 0); lso != hw {
			t.Errorf("partition %d after the commit: LSO %d HW %d, want equal", part, lso, hw)
		}
	}
	// The client's next transaction works too.
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	e2eProduceSync(t, p, "next")
	if err := p.EndTransaction(ctx(t), kgo.TryCommit); err != nil {
		t.Fatalf("next transaction: %v", err)
	}
}

// TestTxnE2ETimeoutAbortsAndFences: a transaction left pending past its
// timeout is aborted by the coordinator, not before; its producer is
// fenced (its commit fails, a raw EndTxn at its epoch is PRODUCER_FENCED)
// and its records are never visible to read_committed. The transactional
// id serves a new producer afterwards.
func TestTxnE2ETimeoutAbortsAndFences(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, kafka.Options{})
	const topic, id = "txn-timeout", "timeout-tx"
	tb.createTopic(topic, 1)
	raw := tb.client()
	// A transaction of offsets only times out too: they are dropped.
	const group, offID = "timeout-group", "timeout-offsets-tx"
	opid, oepoch := e2eInit(t, raw, offID, 1500)
	if code := e2eAddOffsets(t, raw, offID, opid, oepoch, group); code != 0 {
		t.Fatalf("AddOffsetsToTxn: %v", kerr.ErrorForCode(code))
	}
	if code := e2eTxnOffsetCommit(t, raw, offID, opid, oepoch, group, "", -1, topic, 0, 1, "", 3); code != 0 {
		t.Fatalf("TxnOffsetCommit: %v", kerr.ErrorForCode(code))
	}
	stableFetch := func() (int64, int16) {
		req := kmsg.NewPtrOffsetFetchRequest()
		req.RequireStable = true
		g := kmsg.NewOffsetFetchRequestGroup()
		g.Group = group
		gt := kmsg.NewOffsetFetchRequestGroupTopic()
		gt.Topic, gt.Partitions = topic, []int32{0}
		g.Topics = append(g.Topics, gt)
		req.Groups = append(req.Groups, g)
		p := e2eRaw[*kmsg.OffsetFetchResponse](t, raw, req, 8).Groups[0].Topics[0].Partitions[0]
		return p.Offset, p.ErrorCode
	}
	if _, code := stableFetch(); code != kerr.UnstableOffsetCommit.Code {
		t.Errorf("offsets pending: %v, want UNSTABLE_OFFSET_COMMIT", kerr.ErrorForCode(code))
	}

	p := tb.client(kgo.TransactionalID(id), kgo.DefaultProduceTopic(topic), kgo.TransactionTimeout(2*time.Second))
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	e2eProduceSync(t, p, "late-0", "late-1", "late-2")
	pid, epoch, err := p.ProducerID(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	// The abort comes between the timeout and a few ticks after.
	for e2eListOffset(t, raw, topic, 0, 1) != e2eListOffset(t, raw, topic, 0, 0) {
		if time.Since(start) > 8*time.Second {
			t.Fatalf("the transaction is still pending %v after it began with a 2s timeout", time.Since(start))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if d := time.Since(start); d < 1900*time.Millisecond {
		t.Errorf("the transaction was aborted %v after it began, before its 2s timeout", d)
	}
	if hw := e2eListOffset(t, raw, topic, 0, 0); hw != 4 {
		t.Errorf("high watermark %d after the timeout, want 4 (3 records and the abort marker)", hw)
	}
	if o, code := stableFetch(); code != 0 || o != -1 {
		t.Errorf("offsets of the timed-out transaction: %d (%v), want none and no error", o, kerr.ErrorForCode(code))
	}
	if code := e2eEndTxn(t, raw, offID, opid, oepoch, true, -1); code != kerr.ProducerFenced.Code {
		t.Errorf("EndTxn of the timed-out offsets transaction: %v, want PRODUCER_FENCED", kerr.ErrorForCode(code))
	}
	if err := p.EndTransaction(ctx(t), kgo.TryCommit); err == nil {
		t.Errorf("the producer committed a transaction that timed out")
	} else {
		t.Logf("commit after the timeout: %v", err)
	}
	if code := e2eEndTxn(t, raw, id, pid, epoch, true, -1); code != kerr.ProducerFenced.Code {
		t.Errorf("raw EndTxn at the timed-out epoch: %v, want PRODUCER_FENCED", kerr.ErrorForCode(code))
	}
	e2eConsumeAll(t, tb, topic, true, 0, 500*time.Millisecond)
	if got := e2eValues(e2eConsumeAll(t, tb, topic, false, 3, 300*time.Millisecond)); len(got) != 3 {
		t.Errorf("read_uncommitted %v, want the 3 aborted records", got)
	}

	// A new producer of the id: its transaction commits.
	p2 := tb.client(kgo.TransactionalID(id), kgo.DefaultProduceTopic(topic), kgo.TransactionTimeout(10*time.Second))
	if err := p2.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	e2eProduceSync(t, p2, "ok")
	if err := p2.EndTransaction(ctx(t), kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	if got := e2eValues(e2eConsumeAll(t, tb, topic, true, 1, 300*time.Millisecond)); !slices.Equal(got, []string{"ok"}) {
		t.Errorf("read_committed got %v, want ok", got)
	}
	if _, epoch2, err := p2.ProducerID(ctx(t)); err != nil || epoch2 <= epoch {
		t.Errorf("new producer's epoch %d (%v), want above the fenced %d", epoch2, err, epoch)
	}
}

// ---- 5. OffsetFetch require_stable ----

// TestTxnE2EOffsetFetchRequireStable: while a transaction will commit a
// group's offset, OffsetFetch with require_stable answers
// UNSTABLE_OFFSET_COMMIT for that partition (v7 and v8 layouts), and the
// plain fetch the offset before it; once committed both answer the new
// offset; an aborted transaction's offset is never seen.
func TestTxnE2EOffsetFetchRequireStable(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, kafka.Options{})
	const topic, group, id = "of-stable", "of-group", "of-tx"
	tb.createTopic(topic, 2)
	cl := tb.client()
	cl7 := e2eRawClient(t, tb, map[kmsg.Key]int16{kmsg.OffsetFetch: 7})

	type po struct {
		offset int64
		code   int16
		meta   string
	}
	fetch := func(stable bool, v int16) map[int32]po {
		t.Helper()
		req := kmsg.NewPtrOffsetFetchRequest()
		req.RequireStable = stable
		c := cl
		if v == 8 {
			g := kmsg.NewOffsetFetchRequestGroup()
			g.Group = group
			gt := kmsg.NewOffsetFetchRequestGroupTopic()
			gt.Topic, gt.Partitions = topic, []int32{0, 1}
			g.Topics = append(g.Topics, gt)
			req.Groups = append(req.Groups, g)
		} else {
			c = cl7
			req.Group = group
			rt := kmsg.NewOffsetFetchRequestTopic()
			rt.Topic, rt.Partitions = topic, []int32{0, 1}
			req.Topics = append(req.Topics, rt)
		}
		resp := e2eRaw[*kmsg.OffsetFetchResponse](t, c, req, v)
		out := map[int32]po{}
		if v == 8 {
			for _, g := range resp.Groups {
				for _, gt := range g.Topics {
					for _, p := range gt.Partitions {
						out[p.Partition] = po{p.Offset, p.ErrorCode, e2eDeref(p.Metadata)}
					}
				}
			}
		} else {
			for _, rt := range resp.Topics {
				for _, p := range rt.Partitions {
					out[p.Partition] = po{p.Offset, p.ErrorCode, e2eDeref(p.Metadata)}
				}
			}
		}
		return out
	}
	check := func(what string, stable bool, want0, want1 po) {
		t.Helper()
		for _, v := range []int16{7, 8} {
			got := fetch(stable, v)
			if got[0] != want0 || got[1] != want1 {
				t.Errorf("%s, OffsetFetch v%d require_stable %v: p0 %+v p1 %+v; want %+v and %+v", what, v, stable, got[0], got[1], want0, want1)
			}
		}
	}
	none := po{-1, 0, ""}
	unstable := kerr.UnstableOffsetCommit.Code

	pid, epoch := e2eInit(t, cl, id, 60000)
	if code := e2eAddOffsets(t, cl, id, pid, epoch, group); code != 0 {
		t.Fatalf("AddOffsetsToTxn: %v", kerr.ErrorForCode(code))
	}
	if code := e2eTxnOffsetCommit(t, cl, id, pid, epoch, group, "", -1, topic, 0, 5, "five", 3); code != 0 {
		t.Fatalf("TxnOffsetCommit: %v", kerr.ErrorForCode(code))
	}
	check("pending", true, po{-1, unstable, ""}, none)
	check("pending", false, none, none)
	if code := e2eEndTxn(t, cl, id, pid, epoch, true, -1); code != 0 {
		t.Fatalf("EndTxn commit: %v", kerr.ErrorForCode(code))
	}
	check("committed", true, po{5, 0, "five"}, none)
	check("committed", false, po{5, 0, "five"}, none)

	// A second transaction moves the offset, then aborts.
	if code := e2eAddOffsets(t, cl, id, pid, epoch, group); code != 0 {
		t.Fatalf("AddOffsetsToTxn: %v", kerr.ErrorForCode(code))
	}
	if code := e2eTxnOffsetCommit(t, cl, id, pid, epoch, group, "", -1, topic, 0, 9, "nine", 3); code != 0 {
		t.Fatalf("TxnOffsetCommit: %v", kerr.ErrorForCode(code))
	}
	// As Kafka: the error comes with no offset, not the one before.
	check("second pending", true, po{-1, unstable, ""}, none)
	check("second pending", false, po{5, 0, "five"}, none)
	if code := e2eEndTxn(t, cl, id, pid, epoch, false, -1); code != 0 {
		t.Fatalf("EndTxn abort: %v", kerr.ErrorForCode(code))
	}
	check("aborted", true, po{5, 0, "five"}, none)

	// A kgo group consumer asking for stable offsets waits while a
	// transaction will commit its group's offsets, then starts from them:
	// had it not waited, it would start partition 1 from its beginning.
	produceValues(t, tb, topic, 0, 40)
	ends, err := tb.admin().ListEndOffsets(ctx(t), topic)
	if err != nil {
		t.Fatal(err)
	}
	e0, _ := ends.Lookup(topic, 0)
	e1, _ := ends.Lookup(topic, 1)
	if e0.Offset < 2 || e1.Offset < 2 {
		t.Fatalf("end offsets %d and %d: too few records per partition", e0.Offset, e1.Offset)
	}
	o0, o1 := e0.Offset/2, e1.Offset/2
	if code := e2eAddOffsets(t, cl, id, pid, epoch, group); code != 0 {
		t.Fatalf("AddOffsetsToTxn: %v", kerr.ErrorForCode(code))
	}
	for p, o := range map[int32]int64{0: o0, 1: o1} {
		if code := e2eTxnOffsetCommit(t, cl, id, pid, epoch, group, "", -1, topic, p, o, "", 3); code != 0 {
			t.Fatalf("TxnOffsetCommit: %v", kerr.ErrorForCode(code))
		}
	}
	c := tb.client(kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.RequireStableFetchOffsets(), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.HeartbeatInterval(200*time.Millisecond))
	cx := ctx(t)
	for {
		pctx, cancel := context.WithTimeout(cx, 100*time.Millisecond)
		fs := c.PollFetches(pctx)
		cancel()
		if n := len(fs.Records()); n > 0 {
			t.Fatalf("the group consumer got %d records while its offsets were pending", n)
		}
		if _, gen := c.GroupMetadata(); gen > 0 {
			break
		}
		if cx.Err() != nil {
			t.Fatal("the group consumer never joined")
		}
	}
	e2eQuiet(t, c, 700*time.Millisecond, "the group consumer while its offsets are pending")
	if code := e2eEndTxn(t, cl, id, pid, epoch, true, -1); code != 0 {
		t.Fatalf("EndTxn commit: %v", kerr.ErrorForCode(code))
	}
	first := map[int32]int64{}
	count := map[int32]int64{}
	for _, r := range consumeN(t, c, int(e0.Offset-o0+e1.Offset-o1)) {
		if _, ok := first[r.Partition]; !ok {
			first[r.Partition] = r.Offset
		}
		count[r.Partition]++
	}
	if first[0] != o0 || first[1] != o1 || count[0] != e0.Offset-o0 || count[1] != e1.Offset-o1 {
		t.Errorf("the group consumer started at %v with %v records; want offsets %d and %d", first, count, o0, o1)
	}
}

func e2eDeref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// ---- 6. raw protocol errors ----

// TestTxnE2ERawErrors: the coordinator's answers to requests that are
// wrong, as Kafka gives them.
func TestTxnE2ERawErrors(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, kafka.Options{})
	const topic = "txn-raw"
	tb.createTopic(topic, 2)
	cl := tb.client()
	at := map[int16]*kgo.Client{}
	for v := range int16(4) {
		at[v] = e2eRawClient(t, tb, map[kmsg.Key]int16{kmsg.EndTxn: v, kmsg.AddPartitionsToTxn: v, kmsg.TxnOffsetCommit: v, kmsg.AddOffsetsToTxn: v})
	}
	codeIs := func(t *testing.T, what string, got, want int16) {
		t.Helper()
		if got != want {
			t.Errorf("%s: %v, want %v", what, kerr.ErrorForCode(got), kerr.ErrorForCode(want))
		}
	}

	t.Run("EndTxnUnknownID", func(t *testing.T) {
		codeIs(t, "EndTxn of an unknown transactional id", e2eEndTxn(t, at[3], "never-initialized", 12345, 0, true, 3), kerr.InvalidProducerIDMapping.Code)
	})

	t.Run("EndTxnWrongEpochOrID", func(t *testing.T) {
		const id = "raw-epoch"
		pid0, e0 := e2eInit(t, cl, id, 60000)
		pid, e1 := e2eInit(t, cl, id, 60000) // fences e0
		if pid != pid0 || e1 != e0+1 {
			t.Fatalf("second InitProducerId: producer %d epoch %d, want %d epoch %d", pid, e1, pid0, e0+1)
		}
		for _, v := range []int16{0, 1} {
			codeIs(t, fmt.Sprintf("EndTxn v%d at the fenced epoch", v), e2eEndTxn(t, at[v], id, pid, e0, true, v), kerr.InvalidProducerEpoch.Code)
		}
		for _, v := range []int16{2, 3} {
			codeIs(t, fmt.Sprintf("EndTxn v%d at the fenced epoch", v), e2eEndTxn(t, at[v], id, pid, e0, true, v), kerr.ProducerFenced.Code)
			codeIs(t, fmt.Sprintf("EndTxn v%d at a future epoch", v), e2eEndTxn(t, at[v], id, pid, e1+1, false, v), kerr.ProducerFenced.Code)
		}
		codeIs(t, "EndTxn of another producer id", e2eEndTxn(t, at[3], id, pid+100, e1, true, 3), kerr.InvalidProducerIDMapping.Code)
		codeIs(t, "EndTxn with no transaction pending", e2eEndTxn(t, at[3], id, pid, e1, true, 3), kerr.InvalidTxnState.Code)
		codeIs(t, "EndTxn abort with no transaction pending", e2eEndTxn(t, at[3], id, pid, e1, false, 3), kerr.InvalidTxnState.Code)
		// AddPartitionsToTxn at the fenced epoch, by version.
		for v, want := range map[int16]int16{0: kerr.InvalidProducerEpoch.Code, 1: kerr.InvalidProducerEpoch.Code, 2: kerr.ProducerFenced.Code, 3: kerr.ProducerFenced.Code} {
			got := e2eAddPartitions(t, at[v], id, pid, e0, v, map[string][]int32{topic: {0}})
			codeIs(t, fmt.Sprintf("AddPartitionsToTxn v%d at the fenced epoch", v), got[topic+"/0"], want)
		}
		if lso := e2eListOffset(t, cl, topic, 0, 1); lso != e2eListOffset(t, cl, topic, 0, 0) {
			t.Errorf("a refused AddPartitionsToTxn began a transaction: LSO %d", lso)
		}
	})

	t.Run("AddPartitionsUnknownTopic", func(t *testing.T) {
		const id = "raw-add"
		pid, e := e2eInit(t, cl, id, 60000)
		for _, v := range []int16{0, 3} {
			got := e2eAddPartitions(t, at[v], id, pid, e, v, map[string][]int32{topic: {0, 1, 7}, "no-such-topic": {0}})
			want := map[string]int16{
				topic + "/0": kerr.OperationNotAttempted.Code, topic + "/1": kerr.OperationNotAttempted.Code,
				topic + "/7": kerr.UnknownTopicOrPartition.Code, "no-such-topic/0": kerr.UnknownTopicOrPartition.Code,
			}
			for k, w := range want {
				codeIs(t, fmt.Sprintf("AddPartitionsToTxn v%d, %s", v, k), got[k], w)
			}
			if len(got) != len(want) {
				t.Errorf("AddPartitionsToTxn v%d answered %v", v, got)
			}
		}
		// Nothing began: no pending transaction, no LSO held.
		codeIs(t, "EndTxn after the refused AddPartitionsToTxn", e2eEndTxn(t, at[3], id, pid, e, true, 3), kerr.InvalidTxnState.Code)
		for part := range int32(2) {
			if lso, hw := e2eListOffset(t, cl, topic, part, 1), e2eListOffset(t, cl, topic, part, 0); lso != hw {
				t.Errorf("partition %d: LSO %d HW %d after a refused AddPartitionsToTxn", part, lso, hw)
			}
		}
		// The same partitions alone are taken.
		got := e2eAddPartitions(t, at[3], id, pid, e, 3, map[string][]int32{topic: {0, 1}})
		codeIs(t, "AddPartitionsToTxn of known partitions", got[topic+"/0"]|got[topic+"/1"], 0)
		codeIs(t, "EndTxn abort", e2eEndTxn(t, at[3], id, pid, e, false, 3), 0)
		codeIs(t, "EndTxn abort retried", e2eEndTxn(t, at[3], id, pid, e, false, 3), 0)
		codeIs(t, "EndTxn commit after the abort", e2eEndTxn(t, at[3], id, pid, e, true, 3), kerr.InvalidTxnState.Code)
	})

	t.Run("InitProducerIdTimeout", func(t *testing.T) {
		for _, ms := range []int32{0, -1, int32((15*time.Minute + time.Millisecond).Milliseconds()), 1 << 30} {
			id := "raw-timeout"
			req := kmsg.NewPtrInitProducerIDRequest()
			req.TransactionalID, req.TransactionTimeoutMillis = &id, ms
			resp := e2eRaw[*kmsg.InitProducerIDResponse](t, cl, req, -1)
			codeIs(t, fmt.Sprintf("InitProducerId with timeout %dms", ms), resp.ErrorCode, kerr.InvalidTransactionTimeout.Code)
			if resp.ProducerID != -1 {
				t.Errorf("InitProducerId with timeout %dms handed out producer %d", ms, resp.ProducerID)
			}
		}
		// Refused before it was known: the id is still unknown.
		codeIs(t, "EndTxn of the refused id", e2eEndTxn(t, at[3], "raw-timeout", 0, 0, true, 3), kerr.InvalidProducerIDMapping.Code)
		if _, e := e2eInit(t, cl, "raw-timeout", int32((15 * time.Minute).Milliseconds())); e != 0 {
			t.Errorf("InitProducerId with the maximum timeout: epoch %d, want 0", e)
		}
		empty := ""
		req := kmsg.NewPtrInitProducerIDRequest()
		req.TransactionalID, req.TransactionTimeoutMillis = &empty, 60000
		codeIs(t, "InitProducerId with an empty transactional id", e2eRaw[*kmsg.InitProducerIDResponse](t, cl, req, -1).ErrorCode, kerr.InvalidRequest.Code)
	})

	t.Run("ProduceNotAdded", func(t *testing.T) {
		id := "raw-produce"
		_, old := e2eInit(t, cl, id, 60000)
		pid, e := e2eInit(t, cl, id, 60000) // fences old
		got := e2eAddPartitions(t, at[3], id, pid, e, 3, map[string][]int32{topic: {0}})
		codeIs(t, "AddPartitionsToTxn", got[topic+"/0"], 0)
		hw1 := e2eListOffset(t, cl, topic, 1, 0)
		// Partition 1 was never added.
		r := e2eProduce(t, cl, &id, topic, 1, e2eTxnBatch(t, pid, e, 0, false, "not-added"))
		codeIs(t, "transactional produce to a partition not added", r.ErrorCode, kerr.InvalidTxnState.Code)
		// Without the transactional id in the request.
		r = e2eProduce(t, cl, nil, topic, 0, e2eTxnBatch(t, pid, e, 0, false, "no-id"))
		codeIs(t, "transactional batch without a transactional id", r.ErrorCode, kerr.InvalidTxnState.Code)
		// A control batch is the coordinator's to write.
		r = e2eProduce(t, cl, &id, topic, 0, e2eTxnBatch(t, pid, e, 0, true, "marker"))
		codeIs(t, "control batch from a producer", r.ErrorCode, kerr.InvalidRecord.Code)
		// At the fenced epoch.
		r = e2eProduce(t, cl, &id, topic, 0, e2eTxnBatch(t, pid, old, 0, false, "epoch"))
		if r.ErrorCode != kerr.InvalidProducerEpoch.Code && r.ErrorCode != kerr.ProducerFenced.Code {
			t.Errorf("transactional produce at the fenced epoch: %v", kerr.ErrorForCode(r.ErrorCode))
		}
		// The added partition takes it.
		r = e2eProduce(t, cl, &id, topic, 0, e2eTxnBatch(t, pid, e, 0, false, "added"))
		codeIs(t, "transactional produce to the added partition", r.ErrorCode, 0)
		if hw := e2eListOffset(t, cl, topic, 1, 0); hw != hw1 {
			t.Errorf("partition 1's high watermark moved from %d to %d: a refused batch was stored", hw1, hw)
		}
		codeIs(t, "EndTxn commit", e2eEndTxn(t, at[3], id, pid, e, true, 3), 0)
		// After the end the partition is no longer in a transaction.
		r = e2eProduce(t, cl, &id, topic, 0, e2eTxnBatch(t, pid, e, 1, false, "after-end"))
		codeIs(t, "transactional produce after the end", r.ErrorCode, kerr.InvalidTxnState.Code)
		var vals []string
		for _, b := range e2eBatches(t, e2eFetch(t, cl, topic, 0, 0, 1).RecordBatches) {
			vals = append(vals, b.values...)
		}
		if !slices.Equal(vals, []string{"added"}) {
			t.Errorf("partition 0 read_committed: %v, want only the added batch", vals)
		}
	})

	t.Run("OffsetsOutOfOrder", func(t *testing.T) {
		id := "raw-offsets"
		_, old := e2eInit(t, cl, id, 60000)
		pid, e := e2eInit(t, cl, id, 60000) // fences old
		codeIs(t, "TxnOffsetCommit before AddOffsetsToTxn", e2eTxnOffsetCommit(t, at[3], id, pid, e, "raw-g0", "", -1, topic, 0, 1, "", 3), kerr.InvalidTxnState.Code)
		codeIs(t, "AddOffsetsToTxn with an empty group", e2eAddOffsets(t, at[3], id, pid, e, ""), kerr.InvalidGroupID.Code)
		codeIs(t, "AddOffsetsToTxn at the fenced epoch v1", e2eAddOffsets(t, at[1], id, pid, old, "raw-g0"), kerr.InvalidProducerEpoch.Code)
		codeIs(t, "AddOffsetsToTxn at the fenced epoch v2", e2eAddOffsets(t, at[2], id, pid, old, "raw-g0"), kerr.ProducerFenced.Code)
		codeIs(t, "AddOffsetsToTxn", e2eAddOffsets(t, at[3], id, pid, e, "raw-g0"), 0)
		codeIs(t, "TxnOffsetCommit at the fenced epoch v2", e2eTxnOffsetCommit(t, at[2], id, pid, old, "raw-g0", "", -1, topic, 0, 1, "", 2), kerr.InvalidProducerEpoch.Code)
		codeIs(t, "TxnOffsetCommit at the fenced epoch v3", e2eTxnOffsetCommit(t, at[3], id, pid, old, "raw-g0", "", -1, topic, 0, 1, "", 3), kerr.ProducerFenced.Code)
		codeIs(t, "TxnOffsetCommit of an unknown partition", e2eTxnOffsetCommit(t, at[3], id, pid, e, "raw-g0", "", -1, topic, 9, 1, "", 3), kerr.UnknownTopicOrPartition.Code)
		codeIs(t, "TxnOffsetCommit of another group", e2eTxnOffsetCommit(t, at[3], id, pid, e, "raw-other", "", -1, topic, 0, 1, "", 3), kerr.InvalidTxnState.Code)
		codeIs(t, "TxnOffsetCommit", e2eTxnOffsetCommit(t, at[3], id, pid, e, "raw-g0", "", -1, topic, 0, 1, "", 3), 0)
		codeIs(t, "EndTxn", e2eEndTxn(t, at[3], id, pid, e, true, 3), 0)
	})

	t.Run("TxnOffsetCommitMember", func(t *testing.T) {
		const group, id = "raw-members", "raw-member-tx"
		m := tb.client(kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.HeartbeatInterval(200*time.Millisecond), kgo.DisableAutoCommit())
		cx := ctx(t)
		var member string
		var gen int32
		for member, gen = m.GroupMetadata(); gen <= 0; member, gen = m.GroupMetadata() {
			pctx, cancel := context.WithTimeout(cx, 100*time.Millisecond)
			m.PollFetches(pctx)
			cancel()
			if cx.Err() != nil {
				t.Fatal("the group member never joined")
			}
		}
		pid, e := e2eInit(t, cl, id, 60000)
		codeIs(t, "AddOffsetsToTxn", e2eAddOffsets(t, at[3], id, pid, e, group), 0)
		commit := func(v int16, member string, gen int32) int16 {
			return e2eTxnOffsetCommit(t, at[v], id, pid, e, group, member, gen, topic, 0, 3, "", v)
		}
		codeIs(t, "TxnOffsetCommit v3 of a wrong generation", commit(3, member, gen+1), kerr.IllegalGeneration.Code)
		codeIs(t, "TxnOffsetCommit v3 of an unknown member", commit(3, "someone-else", gen), kerr.UnknownMemberID.Code)
		// Kafka checks a member only when one is named: a producer that
		// knows only the group id commits while the group has members.
		codeIs(t, "TxnOffsetCommit v3 without a member, group not empty", commit(3, "", -1), 0)
		codeIs(t, "TxnOffsetCommit v3 of the member", commit(3, member, gen), 0)
		codeIs(t, "TxnOffsetCommit v2 (no member checks)", commit(2, "", -1), 0)
		codeIs(t, "EndTxn", e2eEndTxn(t, at[3], id, pid, e, true, 3), 0)
		offs, err := tb.admin().FetchOffsets(cx, group)
		if err != nil {
			t.Fatal(err)
		}
		if o, _ := offs.Lookup(topic, 0); o.At != 3 {
			t.Errorf("the group's offset after the commit: %d, want 3", o.At)
		}
	})
}

// ---- more: interrupted ends, concurrency, timestamps ----

// TestTxnE2EInterruptedEndFinishedAtStart: an end a crash interrupted
// (its decision stored, markers missing from some partitions) is finished
// when Spool starts, before any client comes: a commit's records become
// visible with one marker per partition (a partition marked before the
// crash is not marked again), and the producer's retried EndTxn succeeds;
// an abort's records stay invisible.
func TestTxnE2EInterruptedEndFinishedAtStart(t *testing.T) {
	t.Parallel()
	px := newE2EProxy(t)
	tb := startBroker(t, kafka.Options{Advertised: px.addr()})
	px.target.Store(new(tb.addr()))
	const topic = "txn-interrupted"
	tb.createTopic(topic, 2)
	newProducer := func(id string) *kgo.Client {
		return tb.client(kgo.SeedBrokers(px.addr()), kgo.TransactionalID(id), kgo.DefaultProduceTopic(topic),
			kgo.TransactionTimeout(60*time.Second), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	}
	pc, pa := newProducer("interrupted-commit"), newProducer("interrupted-abort")
	for _, p := range []*kgo.Client{pc, pa} {
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
	}
	e2eProduceSync(t, pc, "c-0", "c-1", "c-2", "c-3")
	e2eProduceSync(t, pa, "a-0", "a-1", "a-2", "a-3")
	pidC, epochC, err := pc.ProducerID(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	pidA, epochA, err := pa.ProducerID(ctx(t))
	if err != nil {
		t.Fatal(err)
	}

	// The crash, made by hand: both ends decided and stored, the commit's
	// marker written on partition 0 only, the abort's on none.
	tb.offline(func(l *spoollog.Log) {
		stored, err := l.Meta().Cursors("kafka_txn")
		if err != nil {
			t.Fatal(err)
		}
		for id, status := range map[string]string{"interrupted-commit": "prepare_commit", "interrupted-abort": "prepare_abort"} {
			var rec map[string]any
			if err := json.Unmarshal(stored[id], &rec); err != nil {
				t.Fatalf("stored state of %s: %v (%q)", id, err, stored[id])
			}
			if rec["status"] != "ongoing" {
				t.Fatalf("stored state of %s: %v, want ongoing", id, rec)
			}
			rec["status"] = status
			b, _ := json.Marshal(rec)
			if err := l.Meta().PutCursor("kafka_txn", id, b); err != nil {
				t.Fatal(err)
			}
		}
		lt, err := l.Topic(topic)
		if err != nil {
			t.Fatal(err)
		}
		p0, err := lt.Partition(0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p0.EndTxn(pidC, epochC, true, 0); err != nil {
			t.Fatal(err)
		}
	})
	px.target.Store(new(tb.addr()))
	px.cutAll()

	// Finished before any client asked.
	raw := tb.client()
	got := e2eValues(e2eConsumeAll(t, tb, topic, true, 4, 500*time.Millisecond))
	slices.Sort(got)
	if !slices.Equal(got, []string{"c-0", "c-1", "c-2", "c-3"}) {
		t.Errorf("read_committed after the start: %v, want the commit's 4 records only", got)
	}
	for part := range int32(2) {
		if lso, hw := e2eListOffset(t, raw, topic, part, 1), e2eListOffset(t, raw, topic, part, 0); lso != hw || hw != 6 {
			t.Errorf("partition %d: LSO %d HW %d, want both 6 (4 records, 2 markers)", part, lso, hw)
		}
		markers := map[int64][]bool{}
		for _, b := range e2eBatches(t, e2eFetch(t, raw, topic, part, 0, 0).RecordBatches) {
			if b.control {
				markers[b.pid] = append(markers[b.pid], b.commitMarker)
			}
		}
		if !slices.Equal(markers[pidC], []bool{true}) || !slices.Equal(markers[pidA], []bool{false}) {
			t.Errorf("partition %d markers by producer %v: want one commit of %d and one abort of %d", part, markers, pidC, pidA)
		}
	}
	// The producers' retries: the commit's succeeds; the abort's id
	// refuses a commit and takes the abort.
	if err := pc.EndTransaction(ctx(t), kgo.TryCommit); err != nil {
		t.Errorf("the committing producer's retried EndTxn: %v", err)
	}
	if code := e2eEndTxn(t, raw, "interrupted-abort", pidA, epochA, true, -1); code != kerr.InvalidTxnState.Code {
		t.Errorf("commit of the aborted transaction: %v, want INVALID_TXN_STATE", kerr.ErrorForCode(code))
	}
	if err := pa.EndTransaction(ctx(t), kgo.TryAbort); err != nil {
		t.Errorf("the aborting producer's retried EndTxn: %v", err)
	}
	e2eConsumeAll(t, tb, topic, true, 4, 300*time.Millisecond)
}

// TestTxnE2EConcurrentProducers: transactional producers commit and abort
// concurrently on the same partitions while a plain producer writes
// between them; read_committed gets exactly the committed and plain
// records, each producer's in its order, and the LSO comes back to the
// high watermark.
func TestTxnE2EConcurrentProducers(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, kafka.Options{})
	const topic, producers, txns, per = "txn-concurrent", 4, 8, 3
	tb.createTopic(topic, 2)
	var wg sync.WaitGroup
	errs := make(chan error, producers+1)
	var mu sync.Mutex
	want := map[string]bool{}
	for i := range producers {
		p := tb.client(kgo.TransactionalID(fmt.Sprintf("cc-%d", i)), kgo.DefaultProduceTopic(topic),
			kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range txns {
				if err := p.BeginTransaction(); err != nil {
					errs <- err
					return
				}
				var recs []*kgo.Record
				for k := range per {
					recs = append(recs, &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: fmt.Appendf(nil, "cc-%d-%02d-%d", i, j, k)})
				}
				if err := p.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
					errs <- err
					return
				}
				commit := j%3 != 2
				if err := p.EndTransaction(context.Background(), kgo.TransactionEndTry(commit)); err != nil {
					errs <- err
					return
				}
				if commit {
					mu.Lock()
					for _, r := range recs {
						want[string(r.Value)] = true
					}
					mu.Unlock()
				}
			}
		}()
	}
	plain := tb.client(kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	wg.Add(1)
	go func() {
		defer wg.Done()
		for k := range 40 {
			v := fmt.Sprintf("plain-%02d", k)
			if err := plain.ProduceSync(context.Background(), &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
				errs <- err
				return
			}
			mu.Lock()
			want[v] = true
			mu.Unlock()
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := e2eConsumeAll(t, tb, topic, true, len(want), time.Second)
	last := map[string]string{} // producer and partition -> last value
	for _, r := range got {
		v := string(r.Value)
		if !want[v] {
			t.Errorf("read_committed got %s at %d/%d, which was not committed", v, r.Partition, r.Offset)
		}
		delete(want, v)
		k := fmt.Sprintf("%s/%d", v[:4], r.Partition)
		if prev, ok := last[k]; ok && v <= prev {
			t.Errorf("%s after %s", v, prev)
		}
		last[k] = v
	}
	if len(want) > 0 {
		t.Errorf("read_committed missed %d records: %v", len(want), want)
	}
	raw := tb.client()
	for part := range int32(2) {
		if lso, hw := e2eListOffset(t, raw, topic, part, 1), e2eListOffset(t, raw, topic, part, 0); lso != hw {
			t.Errorf("partition %d: LSO %d, HW %d after every transaction ended", part, lso, hw)
		}
	}
	all := producers*txns*per + 40
	if n := len(e2eConsumeAll(t, tb, topic, false, all, 300*time.Millisecond)); n != all {
		t.Errorf("read_uncommitted: %d records, want %d", n, all)
	}
}

// TestTxnE2EListOffsetsByTimestamp: with read_committed, ListOffsets by
// timestamp (and max timestamp) answers no offset at or past the LSO, as
// Kafka does: the record found is not committed yet. read_uncommitted
// answers it; after the commit both do.
func TestTxnE2EListOffsetsByTimestamp(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, kafka.Options{})
	const topic = "txn-times"
	tb.createTopic(topic, 1)
	plain := tb.client(kgo.DefaultProduceTopic(topic))
	txp := tb.client(kgo.TransactionalID("times-tx"), kgo.DefaultProduceTopic(topic))
	raw := tb.client()
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	at := func(c *kgo.Client, v string, ts time.Time) {
		t.Helper()
		if err := c.ProduceSync(ctx(t), &kgo.Record{Value: []byte(v), Timestamp: ts}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	list := func(ts int64, isolation int8) (int64, int64) {
		t.Helper()
		req := kmsg.NewPtrListOffsetsRequest()
		req.ReplicaID, req.IsolationLevel = -1, isolation
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp = 0, ts
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		sp := e2eRaw[*kmsg.ListOffsetsResponse](t, raw, req, -1).Topics[0].Partitions[0]
		if err := kerr.ErrorForCode(sp.ErrorCode); err != nil {
			t.Fatal(err)
		}
		return sp.Offset, sp.Timestamp
	}
	at(plain, "n0", base) // 0
	if err := txp.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	at(txp, "t0", base.Add(time.Minute))     // 1, pending
	at(plain, "n1", base.Add(2*time.Minute)) // 2
	ms := func(d time.Duration) int64 { return base.Add(d).UnixMilli() }
	for _, c := range []struct {
		ts            int64
		isolation     int8
		offset, stamp int64
	}{
		{ms(0), 1, 0, ms(0)},
		{ms(0), 0, 0, ms(0)},
		{ms(time.Second), 0, 1, ms(time.Minute)},
		{ms(time.Second), 1, -1, -1},      // t0, pending
		{ms(90 * time.Second), 1, -1, -1}, // n1, past the LSO
		{ms(90 * time.Second), 0, 2, ms(2 * time.Minute)},
		{-3, 0, 2, ms(2 * time.Minute)}, // max timestamp
		{-3, 1, -1, -1},
	} {
		if o, s := list(c.ts, c.isolation); o != c.offset || s != c.stamp {
			t.Errorf("ListOffsets timestamp %d isolation %d: offset %d timestamp %d, want %d %d", c.ts, c.isolation, o, s, c.offset, c.stamp)
		}
	}
	if err := txp.EndTransaction(ctx(t), kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	if o, _ := list(ms(time.Second), 1); o != 1 {
		t.Errorf("after the commit, read_committed by timestamp: %d, want 1", o)
	}
	if o, _ := list(-3, 1); o != 2 {
		t.Errorf("after the commit, read_committed max timestamp: %d, want 2", o)
	}
}

// TestTxnE2EInitProducerIDBump: KIP-360, a transactional producer that
// knows its producer id and epoch asks InitProducerId for the next epoch:
// its pending transaction is aborted and it gets the epoch after; a retry
// of that request (its answer lost) gets the same epoch again, not a
// fencing error, as in Kafka; any other epoch is fenced, another producer
// id refused; after a new producer's plain InitProducerId the old epoch
// is fenced for good.
func TestTxnE2EInitProducerIDBump(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, kafka.Options{})
	const topic, id = "txn-kip360", "kip360-tx"
	tb.createTopic(topic, 1)
	cl := tb.client()
	cl3 := e2eRawClient(t, tb, map[kmsg.Key]int16{kmsg.InitProducerID: 3})
	init := func(c *kgo.Client, pid int64, epoch int16, v int16) *kmsg.InitProducerIDResponse {
		t.Helper()
		req := kmsg.NewPtrInitProducerIDRequest()
		txnID := id
		req.TransactionalID, req.TransactionTimeoutMillis, req.ProducerID, req.ProducerEpoch = &txnID, 60000, pid, epoch
		return e2eRaw[*kmsg.InitProducerIDResponse](t, c, req, v)
	}
	pid, e0 := e2eInit(t, cl, id, 60000)
	if got := e2eAddPartitions(t, cl, id, pid, e0, -1, map[string][]int32{topic: {0}}); got[topic+"/0"] != 0 {
		t.Fatalf("AddPartitionsToTxn: %v", kerr.ErrorForCode(got[topic+"/0"]))
	}
	if r := e2eProduce(t, cl, new(id), topic, 0, e2eTxnBatch(t, pid, e0, 0, false, "pending")); r.ErrorCode != 0 {
		t.Fatalf("produce: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	if lso := e2eListOffset(t, cl, topic, 0, 1); lso != 0 {
		t.Fatalf("LSO %d with the transaction pending, want 0", lso)
	}

	r := init(cl, pid, e0, 4)
	if r.ErrorCode != 0 || r.ProducerID != pid || r.ProducerEpoch != e0+1 {
		t.Fatalf("InitProducerId at the current epoch: producer %d epoch %d %v; want %d epoch %d", r.ProducerID, r.ProducerEpoch, kerr.ErrorForCode(r.ErrorCode), pid, e0+1)
	}
	e1 := r.ProducerEpoch
	if lso, hw := e2eListOffset(t, cl, topic, 0, 1), e2eListOffset(t, cl, topic, 0, 0); lso != 2 || hw != 2 {
		t.Errorf("after the bump: LSO %d HW %d, want 2 (the transaction aborted)", lso, hw)
	}
	e2eConsumeAll(t, tb, topic, true, 0, 300*time.Millisecond)

	// The same request again, as a client whose answer was lost sends it.
	for _, v := range []int16{3, 4} {
		c := cl
		if v == 3 {
			c = cl3
		}
		if r := init(c, pid, e0, v); r.ErrorCode != 0 || r.ProducerID != pid || r.ProducerEpoch != e1 {
			t.Errorf("InitProducerId v%d retried at the epoch before: producer %d epoch %d %v; want %d epoch %d", v, r.ProducerID, r.ProducerEpoch, kerr.ErrorForCode(r.ErrorCode), pid, e1)
		}
	}
	if r := init(cl, pid+1, e1, 4); r.ErrorCode != kerr.InvalidProducerIDMapping.Code {
		t.Errorf("InitProducerId of another producer id: %v, want INVALID_PRODUCER_ID_MAPPING", kerr.ErrorForCode(r.ErrorCode))
	}
	if r := init(cl, pid, e1+5, 4); r.ErrorCode != kerr.ProducerFenced.Code {
		t.Errorf("InitProducerId v4 at a wrong epoch: %v, want PRODUCER_FENCED", kerr.ErrorForCode(r.ErrorCode))
	}
	if r := init(cl3, pid, e1+5, 3); r.ErrorCode != kerr.InvalidProducerEpoch.Code {
		t.Errorf("InitProducerId v3 at a wrong epoch: %v, want INVALID_PRODUCER_EPOCH", kerr.ErrorForCode(r.ErrorCode))
	}

	// A new instance (no producer id known) fences everything before it.
	_, e2 := e2eInit(t, cl, id, 60000)
	if e2 != e1+1 {
		t.Fatalf("a new instance's epoch %d, want %d", e2, e1+1)
	}
	for _, old := range []int16{e0, e1} {
		if r := init(cl, pid, old, 4); r.ErrorCode != kerr.ProducerFenced.Code {
			t.Errorf("InitProducerId at epoch %d after a new instance took %d: %v (epoch %d), want PRODUCER_FENCED", old, e2, kerr.ErrorForCode(r.ErrorCode), r.ProducerEpoch)
		}
	}
	if code := e2eEndTxn(t, cl, id, pid, e1, false, -1); code != kerr.ProducerFenced.Code {
		t.Errorf("EndTxn at the fenced epoch: %v", kerr.ErrorForCode(code))
	}
}
