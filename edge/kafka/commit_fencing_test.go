package kafka

import (
	"io/fs"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	spoollog "github.com/spoolmq/spool/log"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// blockFS blocks MkdirAll of one directory until released: a test
// seam to hold a topic's partition lock (AlterTopic holds it across
// openPartition) for as long as the test wants.
type blockFS struct {
	spoollog.OSFS
	dir     string
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (f *blockFS) MkdirAll(path string, perm fs.FileMode) error {
	if path == f.dir {
		f.once.Do(func() { close(f.entered) })
		<-f.release
	}
	return f.OSFS.MkdirAll(path, perm)
}

// atStack reports whether one goroutine's stack holds every marker.
func atStack(markers ...string) bool {
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	for _, g := range strings.Split(string(buf[:n]), "\n\n") {
		all := true
		for _, m := range markers {
			all = all && strings.Contains(g, m)
		}
		if all {
			return true
		}
	}
	return false
}

// waitStack polls the goroutine dump until one goroutine is blocked
// where the markers say: a deterministic "it is there now".
func waitStack(t *testing.T, markers ...string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if atStack(markers...) {
			return
		}
	}
	t.Fatalf("no goroutine reached %v", markers)
}

func commitReq(gen int32, member string, offset int64, topics ...string) *request {
	r := kmsg.NewPtrOffsetCommitRequest()
	r.Version = 8
	r.Group, r.Generation, r.MemberID = "g", gen, member
	for _, tn := range topics {
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.Topic = tn
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = 0, offset
		rt.Partitions = append(rt.Partitions, rp)
		r.Topics = append(r.Topics, rt)
	}
	return &request{key: r.Key(), version: 8, body: r}
}

func commitCode(resp kmsg.Response, topic string) int16 {
	for _, rt := range resp.(*kmsg.OffsetCommitResponse).Topics {
		if rt.Topic == topic {
			return rt.Partitions[0].ErrorCode
		}
	}
	return -999
}

// rebalanceAndCommit fences member A (generation 1) and makes B the
// only member of generation 2, then commits B's offset through the handler.
func rebalanceAndCommit(s *Server) kmsg.Response {
	s.groups.mu.Lock()
	g := s.groups.get("g", false)
	s.groups.remove(g, "A", 0)
	g.members["B"] = &member{id: "B", protocolType: "consumer"}
	g.generation, g.leader, g.state = 2, "B", groupStable
	s.groups.mu.Unlock()
	return s.offsetCommit(nil, commitReq(2, "B", 100, "x"))
}

// A member fenced by a rebalance while its OffsetCommit is being handled
// must not store its stale offsets over the new generation's commit: the
// member is checked and the offsets stored under one lock, as Kafka does
// under the group lock.
//
// Deterministic: member A's request names topic y first; y's partition
// lock is held (AlterTopic blocked in the FS), so A's handler stops in
// t.NumPartitions after its check passed, with x/0 already accepted.
func TestOffsetCommitOfFencedMemberDoesNotOverwrite(t *testing.T) {
	dir := t.TempDir()
	bfs := &blockFS{
		dir:     filepath.Join(dir, "topics", "y", "1"),
		entered: make(chan struct{}), release: make(chan struct{}),
	}
	l, err := spoollog.Open(dir, spoollog.Options{FS: bfs})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg := spoollog.DefaultTopicConfig()
	cfg.Partitions = 1
	for _, n := range []string{"x", "y"} {
		if _, err := l.CreateTopic(n, cfg); err != nil {
			t.Fatal(err)
		}
	}
	s, err := New(Options{Log: l})
	if err != nil {
		t.Fatal(err)
	}

	// Generation 1, A the only member, Stable.
	s.groups.mu.Lock()
	g := s.groups.get("g", true)
	g.members["A"] = &member{id: "A", protocolType: "consumer"}
	g.generation, g.leader, g.state, g.protocolType = 1, "A", groupStable, "consumer"
	s.groups.mu.Unlock()

	// Hold topic y's partition lock.
	alterDone := make(chan error, 1)
	go func() {
		c := cfg
		c.Partitions = 2
		alterDone <- l.AlterTopic("y", c)
	}()
	<-bfs.entered

	// A commits y/0 and x/0 = 50 for generation 1; it passes the check and
	// stops at y's partition count.
	aResp := make(chan kmsg.Response, 1)
	go func() { aResp <- s.offsetCommit(nil, commitReq(1, "A", 50, "y", "x")) }()
	waitStack(t, "(*Server).offsetCommit", "(*Topic).NumPartitions")

	// The rebalance: A is fenced, B (generation 2) commits x/0 = 100.
	bResp := make(chan kmsg.Response, 1)
	go func() { bResp <- rebalanceAndCommit(s) }()
	// Either B's commit completes (current code), or it waits for A's (a fix
	// that holds the group across check and store): then release A first.
	var rb kmsg.Response
	for deadline := time.Now().Add(20 * time.Second); rb == nil; time.Sleep(time.Millisecond) {
		select {
		case rb = <-bResp:
			continue
		default:
		}
		if atStack("rebalanceAndCommit", "Mutex") || time.Now().After(deadline) {
			break
		}
	}
	close(bfs.release)
	if err := <-alterDone; err != nil {
		t.Fatal(err)
	}
	ra := <-aResp
	if rb == nil {
		rb = <-bResp
	}
	if c := commitCode(rb, "x"); c != 0 {
		t.Fatalf("B's commit for generation 2: %v", kerr.ErrorForCode(c))
	}

	got, err := l.Meta().FetchOffsets("g")
	if err != nil {
		t.Fatal(err)
	}
	if o := got[spoollog.TopicPartition{Topic: "x", Partition: 0}].Offset; o != 100 {
		t.Errorf("committed offset of x/0 is %d, want 100: fenced member A (generation 1, answered %v) overwrote B's generation-2 commit",
			o, kerr.ErrorForCode(commitCode(ra, "x")))
	}
}

// deleteRecordsReq runs one DeleteRecords for topic/0 through the handler.
func deleteRecordsReq(s *Server, topic string, offset int64) kmsg.DeleteRecordsResponseTopicPartition {
	r := kmsg.NewPtrDeleteRecordsRequest()
	r.Version = 2
	rt := kmsg.NewDeleteRecordsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewDeleteRecordsRequestTopicPartition()
	rp.Partition, rp.Offset = 0, offset
	rt.Partitions = append(rt.Partitions, rp)
	r.Topics = append(r.Topics, rt)
	resp := s.deleteRecords(nil, &request{key: r.Key(), version: 2, body: r}).(*kmsg.DeleteRecordsResponse)
	return resp.Topics[0].Partitions[0]
}

func serverWithRecords(t *testing.T, name string, cfg spoollog.TopicConfig, n int) (*Server, *spoollog.Partition) {
	t.Helper()
	l, err := spoollog.Open(t.TempDir(), spoollog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	cfg.Partitions = 1
	tp, err := l.CreateTopic(name, cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, err := tp.Partition(0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		k := []byte{byte('a' + i)}
		if _, err := p.AppendRecords([]spoollog.Record{{Key: k, Value: k}}, spoollog.DefaultBatchOptions); err != nil {
			t.Fatal(err)
		}
	}
	s, err := New(Options{Log: l})
	if err != nil {
		t.Fatal(err)
	}
	return s, p
}

// Only -1 means the high watermark; Kafka answers any other negative
// offset with OFFSET_OUT_OF_RANGE (Partition.deleteRecordsOnLeader) and
// deletes nothing.
func TestDeleteRecordsRefusesNegativeOffsets(t *testing.T) {
	s, p := serverWithRecords(t, "neg", spoollog.DefaultTopicConfig(), 5)
	sp := deleteRecordsReq(s, "neg", -2)
	if sp.ErrorCode != kerr.OffsetOutOfRange.Code || p.LogStartOffset() != 0 {
		t.Errorf("DeleteRecords(offset -2): error %v, low watermark %d, log start now %d; want OFFSET_OUT_OF_RANGE and nothing deleted",
			kerr.ErrorForCode(sp.ErrorCode), sp.LowWatermark, p.LogStartOffset())
	}
}

// Kafka refuses DeleteRecords on a topic whose cleanup.policy lacks
// delete (POLICY_VIOLATION, "can not be deleted due to the configured
// policy").
func TestDeleteRecordsRefusedOnCompactTopic(t *testing.T) {
	cfg := spoollog.DefaultTopicConfig()
	cfg.CleanupPolicy = spoollog.CleanupCompact
	s, p := serverWithRecords(t, "cmp", cfg, 5)
	sp := deleteRecordsReq(s, "cmp", 3)
	if sp.ErrorCode != kerr.PolicyViolation.Code || p.LogStartOffset() != 0 {
		t.Errorf("DeleteRecords on a compact topic: error %v, log start now %d; want POLICY_VIOLATION and nothing deleted",
			kerr.ErrorForCode(sp.ErrorCode), p.LogStartOffset())
	}
}

// A commit with a generation (>= 0) for a group the coordinator does not
// know is, in Kafka, ILLEGAL_GENERATION before v9 and GROUP_ID_NOT_FOUND
// from v9 (OffsetMetadataManager.validateOffsetCommit).
func TestOffsetCommitToUnknownGroupCodes(t *testing.T) {
	s, _ := serverWithRecords(t, "x", spoollog.DefaultTopicConfig(), 1)
	for _, tc := range []struct {
		version int16
		want    *kerr.Error
	}{{8, kerr.IllegalGeneration}, {9, kerr.GroupIDNotFound}} {
		req := commitReq(3, "m-1", 1, "x")
		req.version = tc.version
		req.body.SetVersion(tc.version)
		if c := commitCode(s.offsetCommit(nil, req), "x"); c != tc.want.Code {
			t.Errorf("OffsetCommit v%d, generation 3, unknown group: %v, want %v", tc.version, kerr.ErrorForCode(c), tc.want)
		}
	}
}
