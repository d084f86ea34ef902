package kafka_test

// Regression tests of the transaction coordinator against Apache Kafka's
// behaviour. Each test's comment names what Kafka does, and where it helps
// the Kafka source that does it.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"testing"
	"time"

	"github.com/spoolmq/spool/edge/kafka"
	spoollog "github.com/spoolmq/spool/log"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Helpers.

// txnRaw sends req to the seed broker as it is: no retries, no sharding.
func txnRaw[R kmsg.Response](t *testing.T, cl *kgo.Client, req kmsg.Request) R {
	t.Helper()
	resp, err := cl.SeedBrokers()[0].Request(ctx(t), req)
	if err != nil {
		t.Fatalf("%T: %v", req, err)
	}
	return resp.(R)
}

// txnInitProducerID is InitProducerId for a transactional id; pid/epoch -1
// for a first initialization, else the KIP-360 form.
func txnInitProducerID(t *testing.T, cl *kgo.Client, txnID string, pid int64, epoch int16) *kmsg.InitProducerIDResponse {
	t.Helper()
	req := kmsg.NewPtrInitProducerIDRequest()
	req.TransactionalID, req.TransactionTimeoutMillis = &txnID, 60000
	req.ProducerID, req.ProducerEpoch = pid, epoch
	return txnRaw[*kmsg.InitProducerIDResponse](t, cl, req)
}

// txnInit initializes a transactional id and returns its producer id and
// epoch.
func txnInit(t *testing.T, cl *kgo.Client, txnID string) (int64, int16) {
	t.Helper()
	resp := txnInitProducerID(t, cl, txnID, -1, -1)
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		t.Fatalf("InitProducerId %q: %v", txnID, err)
	}
	return resp.ProducerID, resp.ProducerEpoch
}

func txnAddPartition(t *testing.T, cl *kgo.Client, txnID string, pid int64, epoch int16, topic string, partition int32) {
	t.Helper()
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.TransactionalID, req.ProducerID, req.ProducerEpoch = txnID, pid, epoch
	rt := kmsg.NewAddPartitionsToTxnRequestTopic()
	rt.Topic, rt.Partitions = topic, []int32{partition}
	req.Topics = append(req.Topics, rt)
	resp := txnRaw[*kmsg.AddPartitionsToTxnResponse](t, cl, req)
	if err := kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode); err != nil {
		t.Fatalf("AddPartitionsToTxn: %v", err)
	}
}

func txnAddOffsets(t *testing.T, cl *kgo.Client, txnID string, pid int64, epoch int16, group string) {
	t.Helper()
	req := kmsg.NewPtrAddOffsetsToTxnRequest()
	req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group = txnID, pid, epoch, group
	if err := kerr.ErrorForCode(txnRaw[*kmsg.AddOffsetsToTxnResponse](t, cl, req).ErrorCode); err != nil {
		t.Fatalf("AddOffsetsToTxn: %v", err)
	}
}

func txnEnd(t *testing.T, cl *kgo.Client, txnID string, pid int64, epoch int16, commit bool) {
	t.Helper()
	req := kmsg.NewPtrEndTxnRequest()
	req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = txnID, pid, epoch, commit
	if err := kerr.ErrorForCode(txnRaw[*kmsg.EndTxnResponse](t, cl, req).ErrorCode); err != nil {
		t.Fatalf("EndTxn: %v", err)
	}
}

// txnCommitOffset commits offset 1 of topic/0 for group in the transaction, as member at generation; it returns the answer's version
// and the partition's error code.
func txnCommitOffset(t *testing.T, cl *kgo.Client, txnID string, pid int64, epoch int16, group, member string, generation int32, topic string) (int16, int16) {
	t.Helper()
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group = txnID, pid, epoch, group
	req.MemberID, req.Generation = member, generation
	rt := kmsg.NewTxnOffsetCommitRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset, rp.LeaderEpoch = 0, 1, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := txnRaw[*kmsg.TxnOffsetCommitResponse](t, cl, req)
	return resp.GetVersion(), resp.Topics[0].Partitions[0].ErrorCode
}

// txnRecordBatch encodes a transactional batch of one record per value, of
// producer pid at epoch from sequence seq, with record timestamp ts.
func txnRecordBatch(t *testing.T, pid int64, epoch int16, seq int32, ts int64, values ...string) []byte {
	t.Helper()
	recs := make([]spoollog.Record, len(values))
	for i, v := range values {
		recs[i] = spoollog.Record{Timestamp: ts, Value: []byte(v)}
	}
	b, err := spoollog.AppendBatch(nil, recs, spoollog.BatchOptions{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq})
	if err != nil {
		t.Fatal(err)
	}
	// RecordBatch v2: attributes at 21 (0x10 transactional); the CRC-32C
	// at 17 covers everything from 21 on.
	binary.BigEndian.PutUint16(b[21:], binary.BigEndian.Uint16(b[21:])|0x10)
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

// produceBatch produces batch to topic/0 (in transaction txnID unless nil)
// and returns the partition's answer.
func produceBatch(t *testing.T, cl *kgo.Client, txnID *string, topic string, batch []byte) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis, req.TransactionID = -1, 10000, txnID
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition, rp.Records = 0, batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return txnRaw[*kmsg.ProduceResponse](t, cl, req).Topics[0].Partitions[0]
}

// txnJoin joins group as its only member (KIP-394 two-step join) and
// returns the member id, generation and protocol; the group is then in
// CompletingRebalance until txnSync.
func txnJoin(t *testing.T, cl *kgo.Client, group, topic string) (string, int32, string) {
	t.Helper()
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Topics = []string{topic}
	join := func(member string) *kmsg.JoinGroupResponse {
		req := kmsg.NewPtrJoinGroupRequest()
		req.Group, req.MemberID, req.ProtocolType = group, member, "consumer"
		req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = 30000, 30000
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name, p.Metadata = "range", meta.AppendTo(nil)
		req.Protocols = append(req.Protocols, p)
		return txnRaw[*kmsg.JoinGroupResponse](t, cl, req)
	}
	resp := join("")
	if resp.ErrorCode == kerr.MemberIDRequired.Code {
		resp = join(resp.MemberID)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		t.Fatalf("JoinGroup: %v", err)
	}
	proto := ""
	if resp.Protocol != nil {
		proto = *resp.Protocol
	}
	return resp.MemberID, resp.Generation, proto
}

// txnSync ends the rebalance txnJoin began, assigning topic/0 to member.
func txnSync(t *testing.T, cl *kgo.Client, group, member string, generation int32, protocol, topic string) {
	t.Helper()
	asg := kmsg.NewConsumerMemberAssignment()
	at := kmsg.NewConsumerMemberAssignmentTopic()
	at.Topic, at.Partitions = topic, []int32{0}
	asg.Topics = append(asg.Topics, at)
	req := kmsg.NewPtrSyncGroupRequest()
	req.Group, req.Generation, req.MemberID = group, generation, member
	pt := "consumer"
	req.ProtocolType, req.Protocol = &pt, &protocol
	ga := kmsg.NewSyncGroupRequestGroupAssignment()
	ga.MemberID, ga.MemberAssignment = member, asg.AppendTo(nil)
	req.GroupAssignment = append(req.GroupAssignment, ga)
	if err := kerr.ErrorForCode(txnRaw[*kmsg.SyncGroupResponse](t, cl, req).ErrorCode); err != nil {
		t.Fatalf("SyncGroup: %v", err)
	}
}

// KIP-360: a retried InitProducerId.

// TestTxnInitProducerIDRetryIsNotFenced: a producer that asks for its next
// epoch (InitProducerId with its producer id and epoch E, KIP-360) and does
// not get the answer (a lost connection) asks again with E. Spool answers
// the retry with the same producer id at E+1 rather than fencing the
// producer, so a lost response to a KIP-360 recovery is not fatal to it.
// This is what Kafka does: it remembers the epoch it bumped from
// (TransactionMetadata.lastProducerEpoch) and answers the retry with the
// same E+1 (prepareIncrementProducerEpoch: "If the expected epoch matches
// the previous epoch, it is a retry of a successful call, so just return
// the current epoch without bumping").
func TestTxnInitProducerIDRetryIsNotFenced(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	cl := tb.client()
	const id = "rg-kip360-retry"
	pid, e0 := txnInit(t, cl, id)

	first := txnInitProducerID(t, cl, id, pid, e0)
	if err := kerr.ErrorForCode(first.ErrorCode); err != nil {
		t.Fatalf("KIP-360 InitProducerId(%d, %d): %v", pid, e0, err)
	}
	if first.ProducerID != pid || first.ProducerEpoch != e0+1 {
		t.Fatalf("KIP-360 bump: producer %d epoch %d, want %d epoch %d", first.ProducerID, first.ProducerEpoch, pid, e0+1)
	}
	// The same request again, as a client that lost the answer sends it.
	retry := txnInitProducerID(t, cl, id, pid, e0)
	if err := kerr.ErrorForCode(retry.ErrorCode); err != nil {
		t.Fatalf("retried KIP-360 InitProducerId(%d, %d): %v, want producer %d epoch %d again",
			pid, e0, err, pid, e0+1)
	}
	if retry.ProducerID != pid || retry.ProducerEpoch != e0+1 {
		t.Errorf("retried KIP-360 bump: producer %d epoch %d, want the same %d epoch %d", retry.ProducerID, retry.ProducerEpoch, pid, e0+1)
	}
}

// editTxnState rewrites a transactional id's stored state while the
// broker is down, then starts it again.
func editTxnState(t *testing.T, tb *testBroker, id string, edit func(rec map[string]any)) {
	t.Helper()
	tb.offline(func(l *spoollog.Log) {
		b, ok, err := l.Meta().GetCursor("kafka_txn", id)
		if err != nil || !ok {
			t.Fatalf("stored state of %q: %v (found %v)", id, err, ok)
		}
		var rec map[string]any
		if err := json.Unmarshal(b, &rec); err != nil {
			t.Fatal(err)
		}
		edit(rec)
		if b, err = json.Marshal(rec); err != nil {
			t.Fatal(err)
		}
		if err := l.Meta().PutCursor("kafka_txn", id, b); err != nil {
			t.Fatal(err)
		}
	})
}

// TestTxnInitProducerIDRetryAfterRotationIsNotRefused: the same retry
// when the bump ran out of epochs and the coordinator rotated to a new
// producer id. Spool recognises the retry and answers the new producer id
// at epoch 0 again, as Kafka does (isValidProducerId case 3: "The expected
// producer ID matches the previous one and the expected epoch is
// exhausted, in which case this could be a retry after a valid epoch bump
// that the producer never received the response for"; the rotation
// recorded lastProducerEpoch). (The epoch is brought to 32766 by editing
// the stored state: 32766 real bumps take too long.)
func TestTxnInitProducerIDRetryAfterRotationIsNotRefused(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	const id = "rg-rotation-retry"
	pid, _ := txnInit(t, tb.client(), id)
	editTxnState(t, tb, id, func(rec map[string]any) { rec["epoch"] = 32766 })
	cl := tb.client()

	first := txnInitProducerID(t, cl, id, pid, 32766)
	if err := kerr.ErrorForCode(first.ErrorCode); err != nil {
		t.Fatalf("KIP-360 InitProducerId(%d, 32766): %v", pid, err)
	}
	if first.ProducerID == pid || first.ProducerEpoch != 0 {
		t.Fatalf("bump at an exhausted epoch: producer %d epoch %d, want a new producer id at epoch 0", first.ProducerID, first.ProducerEpoch)
	}
	retry := txnInitProducerID(t, cl, id, pid, 32766)
	if err := kerr.ErrorForCode(retry.ErrorCode); err != nil {
		t.Fatalf("retried KIP-360 InitProducerId(%d, 32766) after the rotation: %v, want the rotated producer %d epoch 0 again",
			pid, err, first.ProducerID)
	}
	if retry.ProducerID != first.ProducerID || retry.ProducerEpoch != 0 {
		t.Errorf("retry answered producer %d epoch %d, want %d epoch 0", retry.ProducerID, retry.ProducerEpoch, first.ProducerID)
	}
}

// KIP-360: InitProducerId with a producer id for an unknown id.

// TestTxnInitProducerIDAfterExpiryRecovers: a transactional id unused for
// transactional.id.expiration.ms is forgotten. Its producer, coming back,
// gets INVALID_PRODUCER_ID_MAPPING and (kgo, Java: KIP-360) sends
// InitProducerId with its old producer id and epoch. Spool takes such a
// request and answers a new producer id at epoch 0; answering
// INVALID_PRODUCER_ID_MAPPING again would be fatal to the clients. Kafka
// does the same: it creates the id's state afresh with epoch -1 and takes
// the request (TransactionCoordinator.prepareInitProducerIdTransit,
// isValidProducerId case 1: "The producer epoch is equal to -1, which
// implies that the metadata was just created ... safe to return the
// newly-generated producer ID").
func TestTxnInitProducerIDAfterExpiryRecovers(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	const id = "rg-expired"
	pid, epoch := txnInit(t, tb.client(), id)

	// Age the id past the 7-day expiry while the broker is down.
	editTxnState(t, tb, id, func(rec map[string]any) {
		rec["updated_ms"] = time.Now().Add(-8 * 24 * time.Hour).UnixMilli()
	})
	cl := tb.client()

	// Wait for the coordinator's expiry pass (once a second).
	deadline := time.Now().Add(10 * time.Second)
	for {
		req := kmsg.NewPtrDescribeTransactionsRequest()
		req.TransactionalIDs = []string{id}
		st := txnRaw[*kmsg.DescribeTransactionsResponse](t, cl, req).TransactionStates[0]
		if st.ErrorCode == kerr.TransactionalIDNotFound.Code {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("transactional id %q not expired: %+v", id, st)
		}
		time.Sleep(100 * time.Millisecond)
	}

	resp := txnInitProducerID(t, cl, id, pid, epoch)
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		t.Fatalf("KIP-360 InitProducerId(%d, %d) of the expired id: %v, want a new producer id at epoch 0", pid, epoch, err)
	}
	if resp.ProducerEpoch != 0 || resp.ProducerID < 0 {
		t.Errorf("producer %d epoch %d, want a new producer id at epoch 0", resp.ProducerID, resp.ProducerEpoch)
	}
}

// TxnOffsetCommit v3 without member information, and during a rebalance.

// TestTxnOffsetCommitWithoutMemberInActiveGroup: TxnOffsetCommit v3 from a
// producer that only knows the group id (Java's deprecated
// sendOffsetsToTransaction(offsets, String groupId), librdkafka's
// rd_kafka_consumer_group_metadata_new(group_id)): generation -1, no member
// id, while the group has members. Spool takes it, as Kafka does:
// validateOffsetCommit answers UNKNOWN_MEMBER_ID only "if (!isTransactional
// && !group.is(Empty))" ("This does not apply to transactional offset
// commits, since the older versions of this protocol do not require
// memberId and generationId"; GroupCoordinator.scala, and
// ClassicGroup.validateOffsetCommit in the new group coordinator). The
// OffsetCommit member check does not apply to transactional commits.
func TestTxnOffsetCommitWithoutMemberInActiveGroup(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	const topic, group, id = "rg-in", "rg-group", "rg-offsets-only"
	tb.createTopic(topic, 1)
	cl := tb.client()
	member, gen, proto := txnJoin(t, cl, group, topic)
	txnSync(t, cl, group, member, gen, proto, topic)

	pid, epoch := txnInit(t, cl, id)
	txnAddOffsets(t, cl, id, pid, epoch, group)
	v, code := txnCommitOffset(t, cl, id, pid, epoch, group, "", -1, topic)
	if v < 3 {
		t.Fatalf("TxnOffsetCommit answered at v%d, want v3", v)
	}
	if code != 0 {
		t.Fatalf("TxnOffsetCommit v3 without member id and generation -1 to a group with a member: %v, want it taken",
			kerr.ErrorForCode(code))
	}
}

// TestTxnOffsetCommitDuringCompletingRebalance: a member of the current
// generation commits offsets in a transaction while the group waits for
// the leader's SyncGroup. Spool checks the member and generation only and
// takes the commit, as Kafka does: "if (!isTransactional &&
// isInState(COMPLETING_REBALANCE)) ... This does not apply to
// transactional offset commits, since the group state is not enforced for
// those" (ClassicGroup.validateOffsetCommit).
func TestTxnOffsetCommitDuringCompletingRebalance(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	const topic, group, id = "rg-in2", "rg-group2", "rg-eos-rebalancing"
	tb.createTopic(topic, 1)
	cl := tb.client()
	member, gen, _ := txnJoin(t, cl, group, topic) // no SyncGroup: CompletingRebalance

	pid, epoch := txnInit(t, cl, id)
	txnAddOffsets(t, cl, id, pid, epoch, group)
	if _, code := txnCommitOffset(t, cl, id, pid, epoch, group, member, gen, topic); code != 0 {
		t.Fatalf("TxnOffsetCommit v3 of member %s generation %d while the group completes its rebalance: %v, want it taken (the group state is not enforced for transactional commits)",
			member, gen, kerr.ErrorForCode(code))
	}
}

// ListOffsets by timestamp under read_committed.

// TestTxnListOffsetsByTimestampReadCommitted: ListOffsets with isolation
// read_committed looks records up by timestamp (and v7's max timestamp)
// only below the last stable offset, and answers offset -1 when the record
// found is at or past it: it never answers the offset of a pending (maybe
// later aborted) record. This is what Kafka does:
// Partition.fetchOffsetForTimestamp filters the found offset with
// "timestampAndOffset.offset < lastFetchableOffset", lastFetchableOffset
// being the LSO for READ_COMMITTED.
func TestTxnListOffsetsByTimestampReadCommitted(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	const topic, id = "rg-lo", "rg-lo-tx"
	tb.createTopic(topic, 1)
	cl := tb.client()
	now := time.Now().UnixMilli()
	// Offset 0: committed, at now-10s. Offset 1: pending, at now.
	plain, err := spoollog.AppendBatch(nil, []spoollog.Record{{Timestamp: now - 10000, Value: []byte("committed")}}, spoollog.BatchOptions{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1})
	if err != nil {
		t.Fatal(err)
	}
	if r := produceBatch(t, cl, nil, topic, plain); r.ErrorCode != 0 {
		t.Fatalf("produce: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	pid, epoch := txnInit(t, cl, id)
	txnAddPartition(t, cl, id, pid, epoch, topic, 0)
	txid := id
	if r := produceBatch(t, cl, &txid, topic, txnRecordBatch(t, pid, epoch, 0, now, "pending")); r.ErrorCode != 0 || r.BaseOffset != 1 {
		t.Fatalf("transactional produce: offset %d, %v", r.BaseOffset, kerr.ErrorForCode(r.ErrorCode))
	}

	lookup := func(ts int64) (int64, int16) {
		req := kmsg.NewPtrListOffsetsRequest()
		req.ReplicaID, req.IsolationLevel = -1, 1
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp = 0, ts
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp := txnRaw[*kmsg.ListOffsetsResponse](t, cl, req)
		sp := resp.Topics[0].Partitions[0]
		if err := kerr.ErrorForCode(sp.ErrorCode); err != nil {
			t.Fatalf("ListOffsets %d: %v", ts, err)
		}
		return sp.Offset, resp.Version
	}
	if off, _ := lookup(-1); off != 1 {
		t.Fatalf("read_committed latest %d, want the LSO 1", off)
	}
	if off, _ := lookup(now - 1000); off != -1 {
		t.Errorf("read_committed ListOffsets for a timestamp only the pending record reaches: offset %d, want -1 (answers stay below the LSO)", off)
	}
	if off, v := lookup(-3); v >= 7 && off != 0 && off != -1 {
		t.Errorf("read_committed ListOffsets max timestamp (v%d): offset %d, the pending record, want an offset below the LSO", v, off)
	}
	txnEnd(t, cl, id, pid, epoch, false)
}

// Duplicate detection after a crash.

// TestTxnRetriedBatchAfterCrashIsNotDuplicated: a transactional batch is
// durable, the broker crashes before answering, and the producer retries
// it (same sequence) in the same transaction, which survived the restart.
// Spool rebuilds the pending transaction's producer state from the log,
// as a crash leaves no producer snapshot, and answers the retry with the
// original offset; the transaction then commits the batch once, and
// read_committed readers see the record once. Kafka does the same: it
// rebuilds each producer's last batches from its snapshot and the log
// (ProducerStateManager). The crash is simulated with everything synced
// and only the producer snapshot missing.
func TestTxnRetriedBatchAfterCrashIsNotDuplicated(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	const topic, id = "rg-dup", "rg-dup-tx"
	tb.createTopic(topic, 1)
	cl := tb.client()
	pid, epoch := txnInit(t, cl, id)
	txnAddPartition(t, cl, id, pid, epoch, topic, 0)
	txid := id
	batch := txnRecordBatch(t, pid, epoch, 0, time.Now().UnixMilli(), "once")
	if r := produceBatch(t, cl, &txid, topic, batch); r.ErrorCode != 0 || r.BaseOffset != 0 {
		t.Fatalf("produce: offset %d, %v", r.BaseOffset, kerr.ErrorForCode(r.ErrorCode))
	}

	// Crash: the log and meta.db as they are, no producer snapshot.
	crashRestart(t, tb)
	cl = tb.client()

	r := produceBatch(t, cl, &txid, topic, batch) // the client's retry
	if r.ErrorCode == 0 && r.BaseOffset != 0 {
		t.Errorf("retried batch (same producer, epoch and sequence) appended again at offset %d, want the original offset 0", r.BaseOffset)
	}
	txnEnd(t, cl, id, pid, epoch, true)
	c := tb.client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(200*time.Millisecond))
	got := consumeN(t, c, 1)
	cx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	got = append(got, c.PollFetches(cx).Records()...)
	if len(got) != 1 {
		t.Errorf("read_committed got %d records of a transaction that produced one, want 1", len(got))
	}
}

// OffsetFetch require_stable.

// TestTxnOffsetFetchUnstableAnswersNoOffset: while a transaction will
// commit a group's offset, OffsetFetch with require_stable answers
// UNSTABLE_OFFSET_COMMIT with offset -1, not the offset committed before
// the transaction, which a client reading the offset before the code would
// take as the group's position (kgo, Java and librdkafka check the code
// first). This is Kafka's answer: GroupMetadataManager answers "new
// PartitionData(OffsetFetchResponse.INVALID_OFFSET, Optional.empty(), "",
// Errors.UNSTABLE_OFFSET_COMMIT)".
func TestTxnOffsetFetchUnstableAnswersNoOffset(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	const topic, group, id = "rg-of", "rg-of-group", "rg-of-tx"
	tb.createTopic(topic, 1)
	cl := tb.client()
	// The group's committed offset before the transaction: 5.
	oc := kmsg.NewPtrOffsetCommitRequest()
	oc.Group, oc.Generation = group, -1
	ot := kmsg.NewOffsetCommitRequestTopic()
	ot.Topic = topic
	op := kmsg.NewOffsetCommitRequestTopicPartition()
	op.Partition, op.Offset, op.LeaderEpoch = 0, 5, -1
	ot.Partitions = append(ot.Partitions, op)
	oc.Topics = append(oc.Topics, ot)
	if code := txnRaw[*kmsg.OffsetCommitResponse](t, cl, oc).Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("OffsetCommit: %v", kerr.ErrorForCode(code))
	}
	pid, epoch := txnInit(t, cl, id)
	txnAddOffsets(t, cl, id, pid, epoch, group)
	if _, code := txnCommitOffset(t, cl, id, pid, epoch, group, "", -1, topic); code != 0 {
		t.Fatalf("TxnOffsetCommit: %v", kerr.ErrorForCode(code))
	}

	req := kmsg.NewPtrOffsetFetchRequest()
	req.RequireStable = true
	g := kmsg.NewOffsetFetchRequestGroup()
	g.Group = group
	gt := kmsg.NewOffsetFetchRequestGroupTopic()
	gt.Topic, gt.Partitions = topic, []int32{0}
	g.Topics = append(g.Topics, gt)
	req.Groups = append(req.Groups, g)
	resp := txnRaw[*kmsg.OffsetFetchResponse](t, cl, req)
	if resp.Version < 8 {
		t.Fatalf("OffsetFetch answered at v%d, want v8", resp.Version)
	}
	p := resp.Groups[0].Topics[0].Partitions[0]
	if p.ErrorCode != kerr.UnstableOffsetCommit.Code {
		t.Fatalf("require_stable with a pending transactional offset: %v, want UNSTABLE_OFFSET_COMMIT", kerr.ErrorForCode(p.ErrorCode))
	}
	if p.Offset != -1 {
		t.Errorf("UNSTABLE_OFFSET_COMMIT answered with offset %d, want -1", p.Offset)
	}
	txnEnd(t, cl, id, pid, epoch, false)
}
