package main

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// committed returns the group's committed offsets of topic by partition,
// as the broker reports them.
func committed(t *testing.T, ctx context.Context, adm *kadm.Client, group, topic string) map[int32]int64 {
	t.Helper()
	resps, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("fetch offsets of %s: %v", group, err)
	}
	got := map[int32]int64{}
	for p, o := range resps[topic] {
		if o.Err != nil {
			t.Fatalf("offset of %s/%d: %v", topic, p, o.Err)
		}
		got[p] = o.At
	}
	return got
}

// produceSeq writes n records "v0".."v(n-1)" round-robin over parts
// partitions, so every partition gets n/parts of them.
func produceSeq(t *testing.T, ctx context.Context, addr, topic string, n, parts int) {
	t.Helper()
	for p := range parts {
		var in strings.Builder
		for i := p; i < n; i += parts {
			fmt.Fprintf(&in, "v%d\n", i)
		}
		if code, stderr := produceInput(t, ctx, addr, in.String(), topic, "--partition", fmt.Sprint(p)); code != 0 {
			t.Fatalf("produce: %s", stderr)
		}
	}
}

func sortedLines(s string) []string {
	l := lines(s)
	slices.Sort(l)
	return l
}

func lines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// TestKafkaConsumeGroupResumes: consume --group commits exactly what it
// printed, so a second run resumes after it with no record lost or
// repeated, and a run with nothing new prints nothing.
func TestKafkaConsumeGroupResumes(t *testing.T) {
	t.Parallel()
	_, addr := newKafka(t)
	ctx := testCtx(t, 2*time.Minute)
	_, adm := adminClient(t, addr)
	mustKafka(t, ctx, addr, "topic", "create", "jobs", "--partitions", "3")
	produceSeq(t, ctx, addr, "jobs", 30, 3)

	first := lines(mustKafka(t, ctx, addr, "consume", "jobs", "--group", "workers", "--count", "7"))
	if len(first) != 7 {
		t.Fatalf("first run printed %d records: %q", len(first), first)
	}
	sum := int64(0)
	for _, o := range committed(t, ctx, adm, "workers", "jobs") {
		sum += o
	}
	if sum != 7 {
		t.Errorf("after printing 7 records the group committed %d in all", sum)
	}

	second := lines(mustKafka(t, ctx, addr, "consume", "jobs", "--group", "workers"))
	all := append(slices.Clone(first), second...)
	slices.Sort(all)
	var want []string
	for i := range 30 {
		want = append(want, fmt.Sprintf("v%d", i))
	}
	slices.Sort(want)
	if !slices.Equal(all, want) {
		t.Fatalf("the two runs printed %q and %q; want every record once", first, second)
	}
	if got := committed(t, ctx, adm, "workers", "jobs"); got[0] != 10 || got[1] != 10 || got[2] != 10 {
		t.Errorf("after reading everything the group committed %v", got)
	}
	if out := mustKafka(t, ctx, addr, "consume", "jobs", "--group", "workers"); out != "" {
		t.Errorf("a third run printed %q", out)
	}
	// New records after the commit are what the next run prints.
	if code, stderr := produceInput(t, ctx, addr, "late\n", "jobs", "--partition", "2"); code != 0 {
		t.Fatal(stderr)
	}
	if out := mustKafka(t, ctx, addr, "consume", "jobs", "--group", "workers"); out != "late\n" {
		t.Errorf("after one more record the group printed %q", out)
	}
}

// TestKafkaGroupCommands: group list and describe show the group, its
// members, assignments, committed offsets and lag; reset-offsets prints a
// plan without --execute, commits it with --execute (consume then reads
// from there), and refuses while the group has an active member.
func TestKafkaGroupCommands(t *testing.T) {
	t.Parallel()
	_, addr := newKafka(t)
	ctx := testCtx(t, 2*time.Minute)
	_, adm := adminClient(t, addr)
	mustKafka(t, ctx, addr, "topic", "create", "events", "--partitions", "2")
	produceSeq(t, ctx, addr, "events", 10, 2) // 5 records in each partition
	if got := lines(mustKafka(t, ctx, addr, "consume", "events", "--group", "g1", "--count", "6")); len(got) != 6 {
		t.Fatalf("consumed %q", got)
	}
	before := committed(t, ctx, adm, "g1", "events")

	out := mustKafka(t, ctx, addr, "group", "list")
	if !regexp.MustCompile(`(?m)^g1\s+Empty\s+consumer$`).MatchString(out) {
		t.Errorf("group list:\n%s", out)
	}

	out = mustKafka(t, ctx, addr, "group", "describe", "g1")
	if !strings.Contains(out, "group: g1\nstate: Empty\n") || !strings.Contains(out, "members: 0\n") {
		t.Errorf("describe of the idle group:\n%s", out)
	}
	for p := int32(0); p < 2; p++ {
		c := before[p]
		row := fmt.Sprintf(`(?m)^events\s+%d\s+%d\s+5\s+%d\s+-$`, p, c, 5-c)
		if !regexp.MustCompile(row).MatchString(out) {
			t.Errorf("describe lacks partition %d committed %d lag %d:\n%s", p, c, 5-c, out)
		}
	}
	if !strings.Contains(out, "total lag: 4\n") {
		t.Errorf("describe total lag:\n%s", out)
	}
	code, _, stderr := kafkaCmd(t, ctx, addr, "group", "describe", "nobody")
	if code != 1 || !strings.Contains(stderr, `group "nobody" does not exist`) {
		t.Errorf("describe of a missing group: exit %d, %q", code, stderr)
	}

	// Dry run: the plan, and nothing committed.
	code, out, stderr = kafkaCmd(t, ctx, addr, "group", "reset-offsets", "g1", "--topic", "events", "--to-earliest")
	if code != 0 || !strings.Contains(stderr, "dry run") {
		t.Fatalf("dry run: exit %d, %q", code, stderr)
	}
	for p := int32(0); p < 2; p++ {
		if !regexp.MustCompile(fmt.Sprintf(`(?m)^events\s+%d\s+%d\s+0$`, p, before[p])).MatchString(out) {
			t.Errorf("plan lacks partition %d from %d to 0:\n%s", p, before[p], out)
		}
	}
	if got := committed(t, ctx, adm, "g1", "events"); !maps.Equal(got, before) {
		t.Errorf("a dry run changed the offsets from %v to %v", before, got)
	}

	// --execute: committed, and the next consume reads everything again.
	mustKafka(t, ctx, addr, "group", "reset-offsets", "g1", "--topic", "events", "--to-earliest", "--execute")
	if got := committed(t, ctx, adm, "g1", "events"); got[0] != 0 || got[1] != 0 {
		t.Errorf("after --to-earliest --execute: %v", got)
	}
	if got := lines(mustKafka(t, ctx, addr, "consume", "events", "--group", "g1")); len(got) != 10 {
		t.Errorf("after the reset the group read %d records: %q", len(got), got)
	}

	// To an offset, in one partition; out of range is moved into the log.
	mustKafka(t, ctx, addr, "group", "reset-offsets", "g1", "--topic", "events", "--partition", "1", "--to-offset", "3", "--execute")
	if got := committed(t, ctx, adm, "g1", "events"); got[0] != 5 || got[1] != 3 {
		t.Errorf("after --to-offset 3 on partition 1: %v", got)
	}
	if out := mustKafka(t, ctx, addr, "consume", "events", "--group", "g1"); out != "v7\nv9\n" {
		t.Errorf("from offset 3 of partition 1 the group read %q", out)
	}
	code, _, stderr = kafkaCmd(t, ctx, addr, "group", "reset-offsets", "g1", "--topic", "events", "--to-offset", "99", "--execute")
	if code != 0 || !strings.Contains(stderr, "using 5 instead of 99") {
		t.Errorf("--to-offset past the end: exit %d, %q", code, stderr)
	}
	// A group that never consumed gets offsets, as with Kafka's tool.
	mustKafka(t, ctx, addr, "group", "reset-offsets", "fresh", "--topic", "events", "--to-offset", "4", "--execute")
	if got := committed(t, ctx, adm, "fresh", "events"); got[0] != 4 || got[1] != 4 {
		t.Errorf("offsets of a new group: %v", got)
	}
	if out := mustKafka(t, ctx, addr, "consume", "events", "--group", "fresh"); !slices.Equal(sortedLines(out), []string{"v8", "v9"}) {
		t.Errorf("the new group read %q", out)
	}
	mustKafka(t, ctx, addr, "group", "reset-offsets", "g1", "--topic", "events", "--to-latest", "--execute")
	if got := committed(t, ctx, adm, "g1", "events"); got[0] != 5 || got[1] != 5 {
		t.Errorf("after --to-latest: %v", got)
	}

	// An active member: describe shows it with its assignment, and a reset
	// is refused and changes nothing.
	member, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumerGroup("g1"), kgo.ConsumeTopics("events"), kgo.ClientID("test-member"))
	if err != nil {
		t.Fatal(err)
	}
	defer member.Close()
	waitFor(t, 30*time.Second, "the member to join", func() bool {
		d, err := adm.DescribeGroups(ctx, "g1")
		return err == nil && d["g1"].State == "Stable" && len(d.AssignedPartitions()["events"]) == 2
	})
	out = mustKafka(t, ctx, addr, "group", "describe", "g1")
	if !strings.Contains(out, "state: Stable\n") || !strings.Contains(out, "members: 1\n") ||
		!regexp.MustCompile(`(?m)^\S+\s+test-member\s+\S+\s+events\[0,1\]$`).MatchString(out) {
		t.Errorf("describe with a member:\n%s", out)
	}
	if !regexp.MustCompile(`(?m)^events\s+0\s+5\s+5\s+0\s+\S*test-member\S*$`).MatchString(out) {
		t.Errorf("describe does not name the member consuming partition 0:\n%s", out)
	}
	code, _, stderr = kafkaCmd(t, ctx, addr, "group", "reset-offsets", "g1", "--topic", "events", "--to-earliest", "--execute")
	if code != 1 || !strings.Contains(stderr, "1 active members") {
		t.Errorf("reset of an active group: exit %d, %q", code, stderr)
	}
	if got := committed(t, ctx, adm, "g1", "events"); got[0] != 5 || got[1] != 5 {
		t.Errorf("a refused reset changed the offsets to %v", got)
	}
}
