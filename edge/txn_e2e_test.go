package edge

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spoolmq/spool/edge/config"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestTransactionsReachOnlyCommitted: records a Kafka client produces in
// transactions reach Spool's own readers (the link upstream, HTTP, MQTT
// egress to devices) only once committed: an aborted transaction's never,
// a pending one's (and any record after it) only after its commit.
func TestTransactionsReachOnlyCommitted(t *testing.T) {
	up, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	cfg := config.Default()
	cfg.Data = t.TempDir()
	cfg.MQTT.Addr, cfg.Kafka.Addr, cfg.HTTP.Addr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.EdgeID = "pi-3"
	cfg.Topics = []config.TopicSpec{{Name: "cmds"}}
	cfg.Egress = []config.EgressSpec{{Topic: "cmds", MQTTTopic: "devices/{key}/cmd"}}
	cfg.Links = []config.LinkSpec{{Name: "central", Kafka: config.KafkaPeer{Brokers: up.ListenAddrs()}, Topics: []string{"cmds"}}}
	srv := startServer(t, cfg)

	var pump received
	pc := mqttClient(t, srv, "pump1", true, pump.handler)
	defer pc.Disconnect(50)
	if tok := pc.Subscribe("devices/pump1/cmd", 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tx, err := kgo.NewClient(kgo.SeedBrokers(srv.Kafka().Addr().String()), kgo.TransactionalID("ops"), kgo.DefaultProduceTopic("cmds"))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	inTxn := func(commit bool, values ...string) {
		t.Helper()
		if err := tx.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for _, v := range values {
			if err := tx.ProduceSync(ctx, &kgo.Record{Key: []byte("pump1"), Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if commit {
			if err := tx.EndTransaction(ctx, kgo.TryCommit); err != nil {
				t.Fatal(err)
			}
		}
	}
	inTxn(true, "c1", "c2")
	inTxn(false, "a1")
	if err := tx.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
	inTxn(false, "p1") // pending: left open for now
	produceTo(t, srv, "cmds", "pump1", "n1")

	want := []string{"c1", "c2"}
	upstream, err := kgo.NewClient(kgo.SeedBrokers(up.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer upstream.Close()
	values := func(rs []*kgo.Record) (out []string) {
		for _, r := range rs {
			out = append(out, string(r.Value))
		}
		return out
	}
	if got := values(readPartition(ctx, t, upstream, "pi-3.cmds", 0, 2)); !slices.Equal(got, want) {
		t.Fatalf("upstream got %q, want %q", got, want)
	}
	if got := pump.wait(t, 2); !slices.Equal(got, []string{"devices/pump1/cmd=c1", "devices/pump1/cmd=c2"}) {
		t.Fatalf("device got %q", got)
	}
	httpValues := func() (out []string) {
		var rr struct {
			Records []struct {
				Value string `json:"value"`
			} `json:"records"`
		}
		getJSON(t, "http://"+srv.HTTPAddr().String()+"/api/v1/topics/cmds/partitions/0/records?offset=earliest", &rr)
		for _, r := range rr.Records {
			out = append(out, r.Value)
		}
		return out
	}
	if got := httpValues(); !slices.Equal(got, want) {
		t.Fatalf("HTTP read %q, want %q", got, want)
	}
	// Nothing more while the transaction is pending: not the aborted
	// record, not the pending one, not the one produced after it.
	time.Sleep(500 * time.Millisecond)
	// /metrics shows where committed readers stop: at the pending
	// transaction (offset 5, after c1 c2 and its marker, a1 and its
	// marker), with the high watermark past it.
	metricsText := func() string {
		resp, err := http.Get("http://" + srv.HTTPAddr().String() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if m := metricsText(); !containsLine(m, `spool_partition_last_stable_offset{partition="0",topic="cmds"} 5`) ||
		!containsLine(m, `spool_partition_high_watermark{partition="0",topic="cmds"} 7`) {
		t.Errorf("metrics while pending:\n%s", grepLines(m, "cmds"))
	}
	if got := pump.get(); len(got) != 2 {
		t.Fatalf("device got %q while a transaction was pending", got)
	}

	if err := tx.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	want = []string{"c1", "c2", "p1", "n1"}
	if got := values(readPartition(ctx, t, upstream, "pi-3.cmds", 0, 4)); !slices.Equal(got, want) {
		t.Fatalf("upstream got %q, want %q", got, want)
	}
	if got := pump.wait(t, 4); !slices.Equal(got, []string{"devices/pump1/cmd=c1", "devices/pump1/cmd=c2", "devices/pump1/cmd=p1", "devices/pump1/cmd=n1"}) {
		t.Fatalf("device got %q", got)
	}
	if got := httpValues(); !slices.Equal(got, want) {
		t.Fatalf("HTTP read %q, want %q", got, want)
	}
}

// TestPendingTransactionTimesOutWithoutKafkaListener: a transaction left
// pending by a run with the Kafka listener is still aborted at its
// timeout by a run without one, so the partition's committed readers go
// on past it.
func TestPendingTransactionTimesOutWithoutKafkaListener(t *testing.T) {
	cfg := config.Default()
	cfg.Data = t.TempDir()
	cfg.MQTT.Addr, cfg.Kafka.Addr, cfg.HTTP.Addr = "", "127.0.0.1:0", ""
	cfg.Topics = []config.TopicSpec{{Name: "jobs"}}
	rs := startServerStoppable(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tx, err := kgo.NewClient(kgo.SeedBrokers(rs.s.Kafka().Addr().String()), kgo.TransactionalID("left"),
		kgo.DefaultProduceTopic("jobs"), kgo.TransactionTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := tx.ProduceSync(ctx, &kgo.Record{Value: []byte("half-done")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	rs.stop(t)
	tx.Close()

	rs.cfg.Kafka.Addr = ""
	rs = startServerStoppable(t, rs.cfg)
	tp, err := rs.s.Log().Topic("jobs")
	if err != nil {
		t.Fatal(err)
	}
	p, err := tp.Partition(0)
	if err != nil {
		t.Fatal(err)
	}
	if lso := p.LastStableOffset(); lso != 0 {
		t.Fatalf("LSO %d at start, want 0: the transaction is still pending", lso)
	}
	for p.LastStableOffset() != p.HighWatermark() {
		if ctx.Err() != nil {
			t.Fatalf("the pending transaction never timed out: LSO %d, high watermark %d", p.LastStableOffset(), p.HighWatermark())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := p.AbortedTxns(0, p.HighWatermark()); len(got) != 1 {
		t.Errorf("aborted transactions %+v, want the one left pending", got)
	}
}

func grepLines(text, substr string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
