package kafka_test

import (
	"errors"
	"testing"

	"github.com/spoolmq/spool/edge/kafka"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestTopicAdmin: kadm creates topics with settings under their Kafka
// names, refuses bad ones, describes and changes them, grows partitions
// (never shrinks), deletes records below an offset, and deletes topics.
func TestTopicAdmin(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	adm := tb.admin()
	retention, compact := "3600000", "compact"
	resp, err := adm.CreateTopic(ctx(t), 2, 1, map[string]*string{"retention.ms": &retention, "cleanup.policy": &compact}, "adm")
	if err != nil || resp.Err != nil {
		t.Fatalf("create: %v %v", err, resp.Err)
	}
	top, err := tb.Log.Topic("adm")
	if err != nil {
		t.Fatal(err)
	}
	if cfg := top.Config(); cfg.Partitions != 2 || cfg.Retention.Milliseconds() != 3600000 || cfg.CleanupPolicy != "compact" {
		t.Errorf("stored config %+v", cfg)
	}
	bogus := "1"
	for name, cfg := range map[string]map[string]*string{
		"unknown setting": {"flux.capacitor": &bogus},
		"bad value":       {"retention.ms": &compact},
	} {
		resp, _ := adm.CreateTopic(ctx(t), 1, 1, cfg, "bad")
		if !errors.Is(resp.Err, kerr.InvalidConfig) || resp.ErrMessage == "" {
			t.Errorf("%s: %v (%q), want INVALID_CONFIG with a message", name, resp.Err, resp.ErrMessage)
		}
	}
	if resp, _ := adm.CreateTopic(ctx(t), 1, 3, nil, "replicated"); !errors.Is(resp.Err, kerr.InvalidReplicationFactor) {
		t.Errorf("replication factor 3: %v", resp.Err)
	}
	if resp, _ := adm.CreateTopic(ctx(t), 1, 1, nil, "adm"); !errors.Is(resp.Err, kerr.TopicAlreadyExists) {
		t.Errorf("second create: %v", resp.Err)
	}

	rc, err := adm.DescribeTopicConfigs(ctx(t), "adm")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range rc[0].Configs {
		got[c.Key] = c.MaybeValue()
	}
	if got["retention.ms"] != "3600000" || got["cleanup.policy"] != "compact" || got["spool.sync"] != "always" {
		t.Errorf("described configs %v", got)
	}

	seg := "1048576"
	ar, err := adm.AlterTopicConfigs(ctx(t), []kadm.AlterConfig{{Name: "segment.bytes", Value: &seg}, {Op: kadm.DeleteConfig, Name: "retention.ms"}}, "adm")
	if err != nil || ar[0].Err != nil {
		t.Fatalf("alter: %v %v", err, ar)
	}
	if cfg := top.Config(); cfg.SegmentBytes != 1<<20 || cfg.Retention.Hours() != 7*24 {
		t.Errorf("after alter: segment %d, retention %v", cfg.SegmentBytes, cfg.Retention)
	}

	if cr, err := adm.UpdatePartitions(ctx(t), 4, "adm"); err != nil || cr["adm"].Err != nil {
		t.Fatalf("grow partitions: %v %v", err, cr)
	}
	if n := top.NumPartitions(); n != 4 {
		t.Errorf("%d partitions after growing to 4", n)
	}
	if cr, _ := adm.UpdatePartitions(ctx(t), 2, "adm"); !errors.Is(cr["adm"].Err, kerr.InvalidPartitions) {
		t.Errorf("shrink: %v, want INVALID_PARTITIONS", cr["adm"].Err)
	}

	p := tb.client(kgo.DefaultProduceTopic("adm"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for range 10 {
		if err := p.ProduceSync(ctx(t), &kgo.Record{Partition: 1, Value: []byte("x")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// Kafka deletes records only from topics whose policy deletes.
	policy := "compact,delete"
	if ar, err := adm.AlterTopicConfigs(ctx(t), []kadm.AlterConfig{{Name: "cleanup.policy", Value: &policy}}, "adm"); err != nil || ar[0].Err != nil {
		t.Fatalf("alter cleanup.policy: %v %v", err, ar)
	}
	below := kadm.Offsets{}
	below.Add(kadm.Offset{Topic: "adm", Partition: 1, At: 6})
	dr, err := adm.DeleteRecords(ctx(t), below)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := dr.Lookup("adm", 1); d.Err != nil || d.LowWatermark != 6 {
		t.Errorf("delete records: low watermark %d, %v", d.LowWatermark, d.Err)
	}
	start, err := adm.ListStartOffsets(ctx(t), "adm")
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := start.Lookup("adm", 1); s.Offset != 6 {
		t.Errorf("start offset %d after deleting records below 6", s.Offset)
	}

	if dr, err := adm.DeleteTopics(ctx(t), "adm"); err != nil || dr["adm"].Err != nil {
		t.Fatalf("delete topic: %v %v", err, dr)
	}
	if _, err := tb.Log.Topic("adm"); err == nil {
		t.Error("the topic is still there")
	}
}
