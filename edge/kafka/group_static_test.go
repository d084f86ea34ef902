package kafka_test

import (
	"context"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/spoolmq/spool/edge/kafka"
	spoollog "github.com/spoolmq/spool/log"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// rgJoin sends one JoinGroup of a "consumer" group member.
func rgJoin(t *testing.T, c *kgo.Client, group, member string, instance *string, sessionMs int32) *kmsg.JoinGroupResponse {
	t.Helper()
	return rgJoinP(t, c, group, member, instance, sessionMs, sessionMs, "range")
}

func rgJoinP(t *testing.T, c *kgo.Client, group, member string, instance *string, sessionMs, rebalanceMs int32, protocol string) *kmsg.JoinGroupResponse {
	t.Helper()
	req := kmsg.NewPtrJoinGroupRequest()
	req.Group, req.MemberID, req.InstanceID = group, member, instance
	req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = sessionMs, rebalanceMs
	req.ProtocolType = "consumer"
	p := kmsg.NewJoinGroupRequestProtocol()
	p.Name = protocol
	md := kmsg.NewConsumerMemberMetadata()
	md.Topics = []string{"zz"}
	p.Metadata = md.AppendTo(nil)
	req.Protocols = append(req.Protocols, p)
	resp, err := req.RequestWith(ctx(t), c)
	if err != nil {
		t.Fatalf("join: %v", err)
	}
	return resp
}

// TestStaticMemberUnknownInstanceRejoin: a static member whose place is
// gone (its session expired, or Spool restarted) rejoins with its old
// member id. As Kafka's coordinator, Spool answers UNKNOWN_MEMBER_ID for
// an instance it does not know, so that the client resets its member id
// and joins afresh; FENCED_INSTANCE_ID, fatal to every client, is only for
// an instance registered under another member id.
func TestStaticMemberUnknownInstanceRejoin(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	c := tb.client()
	const group = "zz-static"
	inst := "zz-i1"

	j := rgJoin(t, c, group, "", &inst, 1000)
	if j.ErrorCode != 0 {
		t.Fatalf("first join: %v", kerr.ErrorForCode(j.ErrorCode))
	}
	sreq := kmsg.NewPtrSyncGroupRequest()
	sreq.Group, sreq.MemberID, sreq.Generation, sreq.InstanceID = group, j.MemberID, j.Generation, &inst
	a := kmsg.NewSyncGroupRequestGroupAssignment()
	a.MemberID, a.MemberAssignment = j.MemberID, []byte{0, 0, 0, 0, 0, 0, 0, 0}
	sreq.GroupAssignment = append(sreq.GroupAssignment, a)
	if s, err := sreq.RequestWith(ctx(t), c); err != nil || s.ErrorCode != 0 {
		t.Fatalf("sync: %v %v", err, s)
	}

	// No heartbeats: the session (1s) ends and the member is removed.
	time.Sleep(2500 * time.Millisecond)

	// The client learns it from a heartbeat (UNKNOWN_MEMBER_ID) and, as
	// kgo does, rejoins with the member id it has.
	h := kmsg.NewPtrHeartbeatRequest()
	h.Group, h.MemberID, h.Generation, h.InstanceID = group, j.MemberID, j.Generation, &inst
	if hr, err := h.RequestWith(ctx(t), c); err != nil || hr.ErrorCode != kerr.UnknownMemberID.Code {
		t.Fatalf("heartbeat after expiry: %v %v, want UNKNOWN_MEMBER_ID", err, hr)
	}
	j2 := rgJoin(t, c, group, j.MemberID, &inst, 1000)
	if j2.ErrorCode != kerr.UnknownMemberID.Code {
		t.Errorf("rejoin of an expired static member with its old member id: %v, want UNKNOWN_MEMBER_ID (Kafka) so that the client resets its member id",
			kerr.ErrorForCode(j2.ErrorCode))
	}
}

// rgFixedBroker is a broker on a fixed port, so that a client keeps its
// connection target across a restart.
type rgFixedBroker struct {
	t    *testing.T
	dir  string
	addr string
	log  *spoollog.Log
	s    *kafka.Server
	done chan error
}

func (b *rgFixedBroker) open() {
	b.t.Helper()
	l, err := spoollog.Open(b.dir, spoollog.Options{})
	if err != nil {
		b.t.Fatal(err)
	}
	s, err := kafka.New(kafka.Options{Log: l, Addr: b.addr})
	if err != nil {
		b.t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		b.t.Fatal(err)
	}
	b.log, b.s, b.done = l, s, make(chan error, 1)
	go func() { b.done <- s.Serve() }()
}

func (b *rgFixedBroker) close() {
	if b.s == nil {
		return
	}
	_ = b.s.Close()
	<-b.done
	_ = b.log.Close()
	b.s = nil
}

// TestStaticKgoMemberSurvivesRestart: a kgo consumer with a
// group.instance.id keeps running while Spool restarts (group membership
// is in memory, so the group comes back empty): it gets back into the
// group and consumes what is produced after the restart.
func TestStaticKgoMemberSurvivesRestart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	b := &rgFixedBroker{t: t, dir: t.TempDir(), addr: addr}
	b.open()
	t.Cleanup(b.close)

	const topic, group = "zz-restart", "zz-restart-group"
	adm, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic), kgo.RetryTimeout(testTimeout))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	if _, err := (&kmsgCreate{adm}).create(t, topic); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	seen := map[string]bool{}
	c, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.InstanceID("zz-pi"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(6*time.Second), kgo.HeartbeatInterval(200*time.Millisecond),
		kgo.RebalanceTimeout(5*time.Second), kgo.FetchMaxWait(200*time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 200 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for cx.Err() == nil {
			fs := c.PollFetches(cx)
			mu.Lock()
			for _, r := range fs.Records() {
				seen[string(r.Value)] = true
			}
			mu.Unlock()
		}
	}()
	waitSeen := func(v string, d time.Duration) bool {
		deadline := time.Now().Add(d)
		for time.Now().Before(deadline) {
			mu.Lock()
			ok := seen[v]
			mu.Unlock()
			if ok {
				return true
			}
			time.Sleep(50 * time.Millisecond)
		}
		return false
	}

	if err := adm.ProduceSync(ctx(t), &kgo.Record{Value: []byte("before")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if !waitSeen("before", testTimeout) {
		t.Fatal("record produced before the restart not consumed")
	}
	b.close()
	b.open()
	// After the restart the member must get back into the group: Stable,
	// one member with its instance id.
	deadline := time.Now().Add(15 * time.Second)
	var state string
	var members int
	for time.Now().Before(deadline) {
		dg := kmsg.NewPtrDescribeGroupsRequest()
		dg.Groups = []string{group}
		if r, err := dg.RequestWith(ctx(t), adm); err == nil && len(r.Groups) == 1 {
			state, members = r.Groups[0].State, len(r.Groups[0].Members)
			if state == "Stable" && members == 1 {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if state != "Stable" || members != 1 {
		t.Errorf("15s after Spool restarted the group is %q with %d members, want Stable with the static member: its rejoin is refused with FENCED_INSTANCE_ID (Kafka: UNKNOWN_MEMBER_ID, and kgo rejoins without a member id)", state, members)
	}
	for i := 0; i < 3; i++ {
		if err := adm.ProduceSync(ctx(t), &kgo.Record{Value: []byte("after" + strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if !waitSeen("after2", 15*time.Second) {
		t.Error("the static member consumed nothing in 15s after Spool restarted: its rejoin is refused with FENCED_INSTANCE_ID (Kafka: UNKNOWN_MEMBER_ID, and the client rejoins)")
	}
}

type kmsgCreate struct{ c *kgo.Client }

func (k *kmsgCreate) create(t *testing.T, topic string) (*kmsg.CreateTopicsResponse, error) {
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, 1, 1
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx(t), k.c)
	if err == nil {
		err = kerr.ErrorForCode(resp.Topics[0].ErrorCode)
	}
	return resp, err
}

// rgTwoStatic joins two static members (separate connections: a JoinGroup
// holds its connection until the rebalance completes) into one
// generation, and returns their join answers, leader first.
func rgTwoStatic(t *testing.T, tb *testBroker, group string, sessionMs, rebalanceMs int32) (lc, fc *kgo.Client, l, f *kmsg.JoinGroupResponse, li, fi string) {
	t.Helper()
	ca, cb := tb.client(), tb.client()
	ia, ib := "zz-a", "zz-b"
	var wg sync.WaitGroup
	var ja, jb *kmsg.JoinGroupResponse
	wg.Add(2)
	go func() { defer wg.Done(); ja = rgJoinP(t, ca, group, "", &ia, sessionMs, rebalanceMs, "range") }()
	go func() {
		defer wg.Done()
		time.Sleep(50 * time.Millisecond)
		jb = rgJoinP(t, cb, group, "", &ib, sessionMs, rebalanceMs, "range")
	}()
	wg.Wait()
	if ja.ErrorCode != 0 || jb.ErrorCode != 0 || ja.Generation != jb.Generation {
		t.Fatalf("joins: %v gen %d, %v gen %d", kerr.ErrorForCode(ja.ErrorCode), ja.Generation, kerr.ErrorForCode(jb.ErrorCode), jb.Generation)
	}
	if ja.LeaderID == ja.MemberID {
		return ca, cb, ja, jb, ia, ib
	}
	return cb, ca, jb, ja, ib, ia
}

func rgSync(t *testing.T, c *kgo.Client, group string, j *kmsg.JoinGroupResponse, inst string, plan map[string][]byte) *kmsg.SyncGroupResponse {
	t.Helper()
	req := kmsg.NewPtrSyncGroupRequest()
	req.Group, req.MemberID, req.Generation, req.InstanceID = group, j.MemberID, j.Generation, &inst
	for id, a := range plan {
		ga := kmsg.NewSyncGroupRequestGroupAssignment()
		ga.MemberID, ga.MemberAssignment = id, a
		req.GroupAssignment = append(req.GroupAssignment, ga)
	}
	resp, err := req.RequestWith(ctx(t), c)
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	return resp
}

func rgHeartbeat(t *testing.T, c *kgo.Client, group string, j *kmsg.JoinGroupResponse, inst string) int16 {
	t.Helper()
	h := kmsg.NewPtrHeartbeatRequest()
	h.Group, h.MemberID, h.Generation, h.InstanceID = group, j.MemberID, j.Generation, &inst
	resp, err := h.RequestWith(ctx(t), c)
	if err != nil {
		t.Fatalf("heartbeat: %v", err)
	}
	return resp.ErrorCode
}

// TestStaticRejoinWithInconsistentProtocolKeepsOldMember: a static
// member's instance restarts with an assignor no other member supports.
// As Kafka, the protocols are checked first and the group is left as it
// was: the refused join does not remove the old member.
func TestStaticRejoinWithInconsistentProtocolKeepsOldMember(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	const group = "zz-static-proto"
	lc, fc, l, f, li, fi := rgTwoStatic(t, tb, group, 6000, 6000)
	var fs *kmsg.SyncGroupResponse
	done := make(chan struct{})
	go func() { defer close(done); fs = rgSync(t, fc, group, f, fi, nil) }()
	time.Sleep(100 * time.Millisecond)
	if ls := rgSync(t, lc, group, l, li, map[string][]byte{l.MemberID: []byte("p0"), f.MemberID: []byte("p1")}); ls.ErrorCode != 0 {
		t.Fatalf("leader sync: %v", kerr.ErrorForCode(ls.ErrorCode))
	}
	<-done
	if fs.ErrorCode != 0 {
		t.Fatalf("follower sync: %v", kerr.ErrorForCode(fs.ErrorCode))
	}

	// The follower's instance comes back with only "roundrobin".
	inst := fi
	j := rgJoinP(t, tb.client(), group, "", &inst, 6000, 6000, "roundrobin")
	if j.ErrorCode != kerr.InconsistentGroupProtocol.Code {
		t.Fatalf("join with an unsupported protocol: %v, want INCONSISTENT_GROUP_PROTOCOL", kerr.ErrorForCode(j.ErrorCode))
	}
	lh, fh := rgHeartbeat(t, lc, group, l, li), rgHeartbeat(t, fc, group, f, fi)
	if fh != 0 {
		t.Errorf("the old member (owner of p1) after the refused join: heartbeat %v, want NONE: Kafka leaves the group unchanged", kerr.ErrorForCode(fh))
		if lh == 0 {
			t.Errorf("and the remaining member's heartbeat is NONE: no rebalance moves p1 to it, nobody consumes it")
		}
	}
}

// TestFollowerAwaitingSyncIsNotExpired: a follower waiting in SyncGroup
// for a slow leader is alive (Kafka: awaiting a rebalance satisfies the
// heartbeat); its session timer does not remove it, and it gets its
// assignment when the leader sends it.
func TestFollowerAwaitingSyncIsNotExpired(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	const group = "zz-slow-leader"
	lc, fc, l, f, li, fi := rgTwoStatic(t, tb, group, 1000, 20000)
	var fs *kmsg.SyncGroupResponse
	done := make(chan struct{})
	go func() { defer close(done); fs = rgSync(t, fc, group, f, fi, nil) }()
	// The leader is alive (it heartbeats) but takes 2.5s to assign.
	for i := 0; i < 10; i++ {
		time.Sleep(250 * time.Millisecond)
		if code := rgHeartbeat(t, lc, group, l, li); code != 0 {
			t.Logf("leader heartbeat: %v", kerr.ErrorForCode(code))
		}
	}
	ls := rgSync(t, lc, group, l, li, map[string][]byte{l.MemberID: []byte("p0"), f.MemberID: []byte("p1")})
	<-done
	if fs.ErrorCode != 0 || string(fs.MemberAssignment) != "p1" {
		t.Errorf("follower waiting in SyncGroup: %v, assignment %q; want its assignment p1 (Kafka does not expire a member awaiting sync)",
			kerr.ErrorForCode(fs.ErrorCode), fs.MemberAssignment)
	}
	if ls.ErrorCode != 0 {
		t.Logf("leader sync: %v", kerr.ErrorForCode(ls.ErrorCode))
	}
}

// TestLeaderThatNeverSyncsIsRemoved: a leader that heartbeats but never
// sends its assignment is removed after the rebalance timeout, as Kafka
// removes pending sync members; the follower waiting in SyncGroup is told
// to rejoin instead of waiting forever.
func TestLeaderThatNeverSyncsIsRemoved(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	const group = "zz-silent-leader"
	lc, fc, l, f, li, fi := rgTwoStatic(t, tb, group, 10000, 1500)
	start := time.Now()
	var fs *kmsg.SyncGroupResponse
	done := make(chan struct{})
	go func() { defer close(done); fs = rgSync(t, fc, group, f, fi, nil) }()
	var leaderCode int16
	for time.Since(start) < 10*time.Second {
		time.Sleep(250 * time.Millisecond)
		if leaderCode = rgHeartbeat(t, lc, group, l, li); leaderCode != 0 {
			break
		}
	}
	<-done
	if fs.ErrorCode != kerr.RebalanceInProgress.Code {
		t.Errorf("follower waiting in SyncGroup got %v, want REBALANCE_IN_PROGRESS once the leader is removed", kerr.ErrorForCode(fs.ErrorCode))
	}
	if leaderCode != kerr.UnknownMemberID.Code {
		t.Errorf("the silent leader's heartbeat: %v, want UNKNOWN_MEMBER_ID after the rebalance timeout", kerr.ErrorForCode(leaderCode))
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("the leader was removed after %v, before its 1.5s rebalance timeout", d)
	}
}
