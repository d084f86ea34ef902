package kafka_test

// Group coordinator and SASL answers that must be a Kafka broker's:
// KIP-345 static restarts, rejoins that change nothing, DescribeGroups
// during a rebalance, OffsetDelete refusals, unsupported mechanisms.

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolmq/spool/edge/kafka"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// joinWithin sends a JoinGroup and waits at most d for its answer (nil
// when none came). Its metadata is rgJoinP's (topic "zz"), so that a
// member of a group made by rgTwoStatic rejoins unchanged.
func joinWithin(t *testing.T, c *kgo.Client, d time.Duration, group, member string, instance *string, sessionMs, rebalanceMs int32) *kmsg.JoinGroupResponse {
	t.Helper()
	req := kmsg.NewPtrJoinGroupRequest()
	req.Group, req.MemberID, req.InstanceID = group, member, instance
	req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = sessionMs, rebalanceMs
	req.ProtocolType = "consumer"
	p := kmsg.NewJoinGroupRequestProtocol()
	p.Name = "range"
	md := kmsg.NewConsumerMemberMetadata()
	md.Topics = []string{"zz"}
	p.Metadata = md.AppendTo(nil)
	req.Protocols = append(req.Protocols, p)
	cx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	resp, err := req.RequestWith(cx, c)
	if err != nil {
		return nil
	}
	return resp
}

// stableTwoStatic makes a Stable group of two static members (leader
// first), assigned "p0" (the leader) and "p1".
func stableTwoStatic(t *testing.T, tb *testBroker, group string) (lc, fc *kgo.Client, l, f *kmsg.JoinGroupResponse, li, fi string) {
	t.Helper()
	lc, fc, l, f, li, fi = rgTwoStatic(t, tb, group, 10000, 3000)
	done := make(chan *kmsg.SyncGroupResponse, 1)
	go func() { done <- rgSync(t, fc, group, f, fi, nil) }()
	time.Sleep(100 * time.Millisecond)
	if ls := rgSync(t, lc, group, l, li, map[string][]byte{l.MemberID: []byte("p0"), f.MemberID: []byte("p1")}); ls.ErrorCode != 0 {
		t.Fatalf("leader sync: %v", kerr.ErrorForCode(ls.ErrorCode))
	}
	if fs := <-done; fs.ErrorCode != 0 {
		t.Fatalf("follower sync: %v", kerr.ErrorForCode(fs.ErrorCode))
	}
	return
}

// TestStaticRestartInStableGroupDoesNotRebalance: a static member whose
// process restarts (JoinGroup with no member id and its known instance
// id) in a Stable group gets a new member id and the current generation
// at once, the group does not rebalance (the leader's heartbeat is
// answered NONE), and its SyncGroup gives it its old assignment (KIP-345).
func TestStaticRestartInStableGroupDoesNotRebalance(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	const group = "static-restart-stable"
	lc, _, l, f, li, fi := stableTwoStatic(t, tb, group)

	// The follower's process restarts: same instance id, no member id.
	inst := fi
	j := joinWithin(t, tb.client(), 1500*time.Millisecond, group, "", &inst, 10000, 3000)
	lh := rgHeartbeat(t, lc, group, l, li)
	switch {
	case j == nil:
		t.Errorf("restarted static member's JoinGroup not answered within 1.5s (Kafka answers at once in a Stable group); leader heartbeat: %v", kerr.ErrorForCode(lh))
	case j.ErrorCode != 0 || j.Generation != f.Generation:
		t.Errorf("restarted static member's JoinGroup: %v generation %d, want NONE and the current generation %d", kerr.ErrorForCode(j.ErrorCode), j.Generation, f.Generation)
	}
	if lh != 0 {
		t.Errorf("leader heartbeat after a static member restarted in a Stable group: %v, want NONE (Kafka: no rebalance)", kerr.ErrorForCode(lh))
	}
	if j != nil && j.ErrorCode == 0 {
		s := rgSync(t, tb.client(), group, j, fi, nil)
		if s.ErrorCode != 0 || string(s.MemberAssignment) != "p1" {
			t.Errorf("restarted static member's SyncGroup: %v %q, want its old assignment p1", kerr.ErrorForCode(s.ErrorCode), s.MemberAssignment)
		}
	}
}

// TestStaticLeaderRestartInStableGroup: a static leader that restarts in a
// Stable group keeps the group Stable and its assignment. With JoinGroup
// v9 it is told that it leads, with every member's metadata, and to skip
// the assignment (KIP-814); before v9 it gets the leader id from before
// the restart, which starts with its instance id (as Kafka's member ids
// do), so that kgo still knows it leads.
func TestStaticLeaderRestartInStableGroup(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	const group = "static-leader-restart"
	_, fc, l, f, li, fi := stableTwoStatic(t, tb, group)
	inst := li
	j := joinWithin(t, tb.client(), 1500*time.Millisecond, group, "", &inst, 10000, 3000)
	switch {
	case j == nil:
		t.Fatal("restarted static leader's JoinGroup not answered within 1.5s")
	case j.ErrorCode != 0 || j.Generation != l.Generation:
		t.Fatalf("restarted leader's JoinGroup: %v generation %d, want NONE and generation %d", kerr.ErrorForCode(j.ErrorCode), j.Generation, l.Generation)
	case j.LeaderID != j.MemberID || !j.SkipAssignment || len(j.Members) != 2:
		t.Errorf("v9 restart of the leader: leader %s (member %s), skip assignment %v, %d members; want itself, true, 2", j.LeaderID, j.MemberID, j.SkipAssignment, len(j.Members))
	}
	if fh := rgHeartbeat(t, fc, group, f, fi); fh != 0 {
		t.Errorf("follower heartbeat after the leader restarted: %v, want NONE", kerr.ErrorForCode(fh))
	}
	if s := rgSync(t, tb.client(), group, j, li, nil); s.ErrorCode != 0 || string(s.MemberAssignment) != "p0" {
		t.Errorf("restarted leader's SyncGroup: %v %q, want its old assignment p0", kerr.ErrorForCode(s.ErrorCode), s.MemberAssignment)
	}

	v8 := kversion.Stable()
	v8.SetMaxKeyVersion(kmsg.JoinGroup.Int16(), 8)
	j8 := joinWithin(t, tb.client(kgo.MaxVersions(v8)), 1500*time.Millisecond, group, "", &inst, 10000, 3000)
	switch {
	case j8 == nil:
		t.Fatal("second restart of the leader (v8) not answered within 1.5s")
	case j8.ErrorCode != 0 || j8.LeaderID != j.MemberID || len(j8.Members) != 0:
		t.Errorf("v8 restart of the leader: %v, leader %s, %d members; want NONE, the previous leader id %s, none", kerr.ErrorForCode(j8.ErrorCode), j8.LeaderID, len(j8.Members), j.MemberID)
	case !strings.HasPrefix(j8.LeaderID, li+"-") || !strings.HasPrefix(j8.MemberID, li+"-"):
		t.Errorf("static member ids %s, %s: want them to start with the instance id %s-", j8.LeaderID, j8.MemberID, li)
	}
}

// TestFollowerRejoinWithSameMetadataInStableGroup: a follower of a Stable
// group that sends JoinGroup again with its member id and unchanged
// metadata (a retried join whose answer was lost) gets the current
// generation at once, and the group does not rebalance (Kafka's
// doCurrentMemberJoinGroup).
func TestFollowerRejoinWithSameMetadataInStableGroup(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	const group = "follower-rejoin"
	lc, _, l, f, li, fi := stableTwoStatic(t, tb, group)
	inst := fi
	j := joinWithin(t, tb.client(), 1500*time.Millisecond, group, f.MemberID, &inst, 10000, 3000)
	lh := rgHeartbeat(t, lc, group, l, li)
	switch {
	case j == nil:
		t.Errorf("follower's JoinGroup with unchanged metadata not answered within 1.5s (Kafka answers at once with the current generation); leader heartbeat: %v", kerr.ErrorForCode(lh))
	case j.ErrorCode != 0 || j.Generation != f.Generation:
		t.Errorf("follower rejoin: %v generation %d, want NONE and generation %d", kerr.ErrorForCode(j.ErrorCode), j.Generation, f.Generation)
	}
	if lh != 0 {
		t.Errorf("leader heartbeat after a follower rejoined with unchanged metadata: %v, want NONE (Kafka: no rebalance)", kerr.ErrorForCode(lh))
	}
}

// TestDescribeGroupsCompletingRebalanceHidesProtocol: DescribeGroups of a
// group in CompletingRebalance answers the protocol as "" and its members
// without metadata, as Kafka's GroupMetadata.summary does outside Stable.
func TestDescribeGroupsCompletingRebalanceHidesProtocol(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	const group = "describe-completing"
	_, _, _, _, _, _ = rgTwoStatic(t, tb, group, 10000, 5000) // joined, nobody synced: CompletingRebalance
	dg := kmsg.NewPtrDescribeGroupsRequest()
	dg.Groups = []string{group}
	r, err := dg.RequestWith(ctx(t), tb.client())
	if err != nil || len(r.Groups) != 1 {
		t.Fatalf("describe: %v %v", err, r)
	}
	g := r.Groups[0]
	if g.State != "CompletingRebalance" {
		t.Fatalf("state %q, want CompletingRebalance", g.State)
	}
	if g.Protocol != "" {
		t.Errorf("DescribeGroups of a CompletingRebalance group: protocol %q, want \"\" (Kafka names the protocol only for a Stable group)", g.Protocol)
	}
	for _, m := range g.Members {
		if len(m.ProtocolMetadata) != 0 {
			t.Errorf("member %s: %d bytes of protocol metadata outside Stable, want none (Kafka: summaryNoMetadata)", m.MemberID, len(m.ProtocolMetadata))
		}
	}
}

// joinWithType sends one JoinGroup of the given protocol type.
func joinWithType(t *testing.T, c *kgo.Client, group, ptype string, topics []string) *kmsg.JoinGroupResponse {
	t.Helper()
	req := kmsg.NewPtrJoinGroupRequest()
	req.Group, req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = group, 10000, 10000
	req.ProtocolType = ptype
	p := kmsg.NewJoinGroupRequestProtocol()
	p.Name = "range"
	md := kmsg.NewConsumerMemberMetadata()
	md.Topics = topics
	p.Metadata = md.AppendTo(nil)
	req.Protocols = append(req.Protocols, p)
	for {
		resp, err := req.RequestWith(context.Background(), c)
		if err != nil {
			t.Errorf("join: %v", err)
			return kmsg.NewPtrJoinGroupResponse()
		}
		if resp.ErrorCode != kerr.MemberIDRequired.Code {
			return resp
		}
		req.MemberID = resp.MemberID
	}
}

func commitStandalone(t *testing.T, tb *testBroker, group, topic string, offset int64) {
	t.Helper()
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group, req.Generation = group, -1
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset = 0, offset
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx(t), tb.client())
	if err != nil || resp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("commit: %v %v", err, resp)
	}
}

func offsetDeleteOne(t *testing.T, tb *testBroker, group, topic string) *kmsg.OffsetDeleteResponse {
	t.Helper()
	req := kmsg.NewPtrOffsetDeleteRequest()
	req.Group = group
	rt := kmsg.NewOffsetDeleteRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewOffsetDeleteRequestTopicPartition()
	rp.Partition = 0
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx(t), tb.client())
	if err != nil {
		t.Fatalf("offset delete: %v", err)
	}
	return resp
}

func committedOffset(t *testing.T, tb *testBroker, group, topic string) int64 {
	t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = group
	rt := kmsg.NewOffsetFetchRequestTopic()
	rt.Topic, rt.Partitions = topic, []int32{0}
	req.Topics = append(req.Topics, rt)
	req.SetVersion(7)
	resp, err := req.RequestWith(ctx(t), tb.client())
	if err != nil || len(resp.Topics) != 1 {
		t.Fatalf("offset fetch: %v %v", err, resp)
	}
	return resp.Topics[0].Partitions[0].Offset
}

// TestOffsetDeleteOnNonEmptyNonConsumerGroup: OffsetDelete on a group with
// members of a protocol type other than "consumer" is refused with
// NON_EMPTY_GROUP (what they consume cannot be known), and the committed
// offset stays.
func TestOffsetDeleteOnNonEmptyNonConsumerGroup(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	const topic, group = "od-connect-topic", "od-connect"
	tb.createTopic(topic, 1)
	commitStandalone(t, tb, group, topic, 5)
	if j := joinWithType(t, tb.client(), group, "connect", []string{topic}); j.ErrorCode != 0 {
		t.Fatalf("join: %v", kerr.ErrorForCode(j.ErrorCode))
	}
	resp := offsetDeleteOne(t, tb, group, topic)
	if resp.ErrorCode != kerr.NonEmptyGroup.Code {
		t.Errorf("OffsetDelete on a non-empty %q group: %v, want NON_EMPTY_GROUP; committed offset now %d", "connect", kerr.ErrorForCode(resp.ErrorCode), committedOffset(t, tb, group, topic))
	}
}

// TestOffsetDeleteDuringFirstRebalance: during a consumer group's first
// rebalance no protocol is chosen, so its subscriptions are not known:
// OffsetDelete of the topic the joining member subscribes to is refused
// with GROUP_SUBSCRIBED_TO_TOPIC, as Kafka refuses every topic then.
func TestOffsetDeleteDuringFirstRebalance(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	const topic, group = "od-first-topic", "od-first"
	tb.createTopic(topic, 1)
	commitStandalone(t, tb, group, topic, 5)
	c := tb.client()
	joined := make(chan struct{})
	go func() { defer close(joined); joinWithType(t, c, group, "consumer", []string{topic}) }()
	defer func() { <-joined }()
	time.Sleep(80 * time.Millisecond) // inside the group's initial rebalance delay
	resp := offsetDeleteOne(t, tb, group, topic)
	code := resp.ErrorCode
	if code == 0 && len(resp.Topics) == 1 {
		code = resp.Topics[0].Partitions[0].ErrorCode
	}
	if code != kerr.GroupSubscribedToTopic.Code {
		t.Errorf("OffsetDelete of a topic the joining member subscribes to: %v, want GROUP_SUBSCRIBED_TO_TOPIC; committed offset now %d", kerr.ErrorForCode(code), committedOffset(t, tb, group, topic))
	}
}

// rawRequest writes one request on a raw connection and reads its answer
// (nil and the error when the connection is closed instead).
func rawRequest(c net.Conn, corr int32, req kmsg.Request, version int16) ([]byte, error) {
	req.SetVersion(version)
	f := kmsg.NewRequestFormatter(kmsg.FormatterClientID("raw"))
	if _, err := c.Write(f.AppendRequest(nil, req, corr)); err != nil {
		return nil, err
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	var size [4]byte
	if _, err := io.ReadFull(c, size[:]); err != nil {
		return nil, err
	}
	buf := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(c, buf); err != nil {
		return nil, err
	}
	return buf[4:], nil // without the correlation id (v1 handshake: no header tags)
}

// TestUnsupportedSaslMechanismClosesConnection: a SaslHandshake naming a
// mechanism that is not enabled is answered UNSUPPORTED_SASL_MECHANISM,
// and then the connection is closed, as Kafka does after any failed
// authentication, and the failure is counted.
func TestUnsupportedSaslMechanismClosesConnection(t *testing.T) {
	tb := startBroker(t, kafka.Options{RequireSASL: true, Users: saslUsers(t)})
	c, err := net.Dial("tcp", tb.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Mechanism = "GSSAPI"
	body, err := rawRequest(c, 1, hs, 1)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	resp := kmsg.NewPtrSASLHandshakeResponse()
	resp.SetVersion(1)
	if err := resp.ReadFrom(body); err != nil || resp.ErrorCode != kerr.UnsupportedSaslMechanism.Code {
		t.Fatalf("handshake for GSSAPI: %v %v, want UNSUPPORTED_SASL_MECHANISM", err, kerr.ErrorForCode(resp.ErrorCode))
	}
	hs2 := kmsg.NewPtrSASLHandshakeRequest()
	hs2.Mechanism = "PLAIN"
	if _, err := rawRequest(c, 2, hs2, 1); err == nil {
		t.Errorf("after UNSUPPORTED_SASL_MECHANISM the connection still answers a second SaslHandshake; Kafka closes it")
	}
	if n := tb.S.Stats().AuthFailures.Load(); n != 1 {
		t.Errorf("authentication failures counted: %d, want 1", n)
	}
}

// TestKgoStaticRestartDoesNotRevokeOthers: of two kgo static members
// (eager range balancer) sharing a topic, one restarts with the same
// instance id within its session: the group stays Stable (KIP-345) and
// the other member's partitions are not revoked.
func TestKgoStaticRestartDoesNotRevokeOthers(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	const topic, group = "kgo-static-restart", "kgo-static-restart-g"
	tb.createTopic(topic, 4)
	var revokedB atomic.Int32
	member := func(inst string, onRevoke func()) *kgo.Client {
		return tb.client(kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.InstanceID(inst),
			kgo.Balancers(kgo.RangeBalancer()), kgo.SessionTimeout(10*time.Second),
			kgo.RebalanceTimeout(3*time.Second), kgo.HeartbeatInterval(200*time.Millisecond),
			kgo.FetchMaxWait(200*time.Millisecond),
			kgo.OnPartitionsRevoked(func(context.Context, *kgo.Client, map[string][]int32) { onRevoke() }))
	}
	poll := func(c *kgo.Client, stop <-chan struct{}) {
		for {
			select {
			case <-stop:
				return
			default:
			}
			cx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			c.PollFetches(cx)
			cancel()
		}
	}
	stopA, stopB := make(chan struct{}), make(chan struct{})
	defer close(stopB)
	a := member("inst-a", func() {})
	go poll(a, stopA)
	b := member("inst-b", func() { revokedB.Add(1) })
	go poll(b, stopB)
	waitMembers(t, tb.admin(), group, 2, 4)
	time.Sleep(time.Second)
	before := revokedB.Load()

	close(stopA)
	a.Close() // a static member does not leave the group
	a2 := member("inst-a", func() {})
	stopA2 := make(chan struct{})
	defer close(stopA2)
	go poll(a2, stopA2)
	time.Sleep(5 * time.Second)
	if n := revokedB.Load() - before; n != 0 {
		t.Errorf("the other member's partitions were revoked %d times when a static member restarted with the same instance id; Kafka does not rebalance", n)
	}
	waitMembers(t, tb.admin(), group, 2, 4)
}
