package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestKafkaTopicLifecycle creates, lists, describes, alters and deletes a
// topic, checking each step with an independent admin client as well as in
// the command's output.
func TestKafkaTopicLifecycle(t *testing.T) {
	t.Parallel()
	_, addr := newKafka(t)
	ctx := testCtx(t, time.Minute)
	cl, adm := adminClient(t, addr)

	out := mustKafka(t, ctx, addr, "topic", "create", "orders", "--partitions", "3", "--config", "retention.ms=3600000", "--config", "cleanup.policy=compact")
	if out != "created topic orders with 3 partitions, replication factor 1\n" {
		t.Errorf("create output %q", out)
	}
	mustKafka(t, ctx, addr, "topic", "create", "audit", "--partitions", "1")
	code, _, stderr := kafkaCmd(t, ctx, addr, "topic", "create", "orders", "--partitions", "3")
	if code != 1 || !strings.Contains(stderr, "TOPIC_ALREADY_EXISTS") {
		t.Errorf("creating it again: exit %d, %q", code, stderr)
	}
	code, _, stderr = kafkaCmd(t, ctx, addr, "topic", "create", "bad", "--replication-factor", "3")
	if code != 1 || !strings.Contains(stderr, "topic create bad") || !strings.Contains(stderr, "INVALID_REPLICATION_FACTOR") {
		t.Errorf("more replicas than brokers: exit %d, %q", code, stderr)
	}

	if n := partitionCount(t, ctx, cl, "orders"); n != 3 {
		t.Fatalf("after create the broker has %d partitions", n)
	}
	cfgs, err := adm.DescribeTopicConfigs(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	rc, _ := cfgs.On("orders", nil)
	got := map[string]string{}
	for _, c := range rc.Configs {
		got[c.Key] = c.MaybeValue()
	}
	if got["retention.ms"] != "3600000" || got["cleanup.policy"] != "compact" {
		t.Errorf("configs after create: %v", got)
	}

	if out := mustKafka(t, ctx, addr, "topic", "list"); out != "audit\norders\n" {
		t.Errorf("list: %q", out)
	}

	if code, stderr := produceInput(t, ctx, addr, "a\nb\nc\nd\ne\n", "orders", "--partition", "1"); code != 0 {
		t.Fatalf("produce: %d %s", code, stderr)
	}
	out = mustKafka(t, ctx, addr, "topic", "describe", "orders")
	for _, want := range []string{"topic: orders\n", "partitions: 3\n", "replication factor: 1\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("describe lacks %q:\n%s", want, out)
		}
	}
	// One row per partition: number, leader, epoch, replicas, ISR, start, end.
	rows := regexp.MustCompile(`(?m)^(\d+)\s+(\d+)\s+(\d+)\s+(\S+)\s+(\S+)\s+(\d+)\s+(\d+)$`).FindAllStringSubmatch(out, -1)
	if len(rows) != 3 {
		t.Fatalf("describe has %d partition rows:\n%s", len(rows), out)
	}
	for i, r := range rows {
		wantEnd := "0"
		if i == 1 {
			wantEnd = "5"
		}
		if r[1] != []string{"0", "1", "2"}[i] || r[2] != "0" || r[4] != "0" || r[5] != "0" || r[6] != "0" || r[7] != wantEnd {
			t.Errorf("partition row %q; want partition %d, leader 0, replicas 0, start 0, end %s", r[0], i, wantEnd)
		}
	}
	if !regexp.MustCompile(`(?m)^retention\.ms\s+3600000\s+DYNAMIC_TOPIC_CONFIG$`).MatchString(out) {
		t.Errorf("describe does not show the retention.ms override:\n%s", out)
	}

	out = mustKafka(t, ctx, addr, "topic", "alter", "orders", "--partitions", "5", "--config", "retention.ms=7200000", "--delete-config", "cleanup.policy")
	if !strings.Contains(out, "partitions 3 -> 5") || !strings.Contains(out, "set retention.ms=7200000") {
		t.Errorf("alter output %q", out)
	}
	if n := partitionCount(t, ctx, cl, "orders"); n != 5 {
		t.Fatalf("after alter the broker has %d partitions", n)
	}
	cfgs, err = adm.DescribeTopicConfigs(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	rc, _ = cfgs.On("orders", nil)
	for _, c := range rc.Configs {
		switch c.Key {
		case "retention.ms":
			if c.MaybeValue() != "7200000" {
				t.Errorf("retention.ms after alter: %s", c.MaybeValue())
			}
		case "cleanup.policy":
			if c.Source.String() == "DYNAMIC_TOPIC_CONFIG" {
				t.Errorf("cleanup.policy still overridden after --delete-config: %s", c.MaybeValue())
			}
		}
	}

	// Kafka cannot shrink a topic; the refusal changes nothing.
	code, _, stderr = kafkaCmd(t, ctx, addr, "topic", "alter", "orders", "--partitions", "2", "--config", "retention.ms=1")
	if code != 1 || !strings.Contains(stderr, "cannot remove partitions") {
		t.Errorf("shrink: exit %d, %q", code, stderr)
	}
	out = mustKafka(t, ctx, addr, "topic", "describe", "orders")
	if !strings.Contains(out, "partitions: 5\n") || !regexp.MustCompile(`(?m)^retention\.ms\s+7200000\s`).MatchString(out) {
		t.Errorf("after a refused shrink:\n%s", out)
	}
	code, _, stderr = kafkaCmd(t, ctx, addr, "topic", "alter", "nope", "--partitions", "2")
	if code != 1 || !strings.Contains(stderr, `topic "nope" does not exist`) {
		t.Errorf("alter of a missing topic: exit %d, %q", code, stderr)
	}

	if out := mustKafka(t, ctx, addr, "topic", "delete", "orders"); out != "deleted topic orders\n" {
		t.Errorf("delete output %q", out)
	}
	if out := mustKafka(t, ctx, addr, "topic", "list"); out != "audit\n" {
		t.Errorf("list after delete: %q", out)
	}
	code, _, stderr = kafkaCmd(t, ctx, addr, "topic", "describe", "orders")
	if code != 1 || !strings.Contains(stderr, `topic "orders" does not exist`) {
		t.Errorf("describe after delete: exit %d, %q", code, stderr)
	}
	code, _, stderr = kafkaCmd(t, ctx, addr, "topic", "delete", "orders")
	if code != 1 || !strings.Contains(stderr, "UNKNOWN_TOPIC_OR_PARTITION") {
		t.Errorf("deleting twice: exit %d, %q", code, stderr)
	}
}

// partitionCount asks the broker, past the client's metadata cache, how
// many partitions topic has.
func partitionCount(t *testing.T, ctx context.Context, cl *kgo.Client, topic string) int {
	t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil || len(resp.Topics) != 1 {
		t.Fatalf("metadata of %s: %v, %v", topic, resp, err)
	}
	return len(resp.Topics[0].Partitions)
}
