package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/spoolmq/spool/edge"
	"github.com/spoolmq/spool/edge/config"
	"github.com/twmb/franz-go/pkg/kfake"
)

// TestBridgeStatus: spool bridge status shows a running appliance's link,
// its state and partitions; with nothing listening it fails clearly.
func TestBridgeStatus(t *testing.T) {
	up, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	cfg := config.Default()
	cfg.Data = t.TempDir()
	cfg.MQTT.Addr, cfg.Kafka.Addr, cfg.HTTP.Addr = "", "", "127.0.0.1:0"
	cfg.EdgeID = "pi-3"
	cfg.Topics = []config.TopicSpec{{Name: "telemetry"}}
	cfg.Links = []config.LinkSpec{{Name: "central", Kafka: config.KafkaPeer{Brokers: up.ListenAddrs()}, Topics: []string{"telemetry"}}}
	srv, err := edge.Open(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() { done <- srv.Run(ctx, func() { close(ready) }) }()
	<-ready
	defer func() { cancel(); <-done }()

	addr := srv.HTTPAddr().String()
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, out, stderr := spool(t, context.Background(), "bridge", "status", "--http", addr)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		if strings.Contains(out, "link central: caught_up") && strings.Contains(out, "pi-3.telemetry") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never showed the link caught up:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	code, out, _ := spool(t, context.Background(), "bridge", "status", "--http", addr, "--json")
	if code != 0 || !strings.Contains(out, `"state":"caught_up"`) {
		t.Errorf("--json: exit %d, %s", code, out)
	}
	code, _, stderr := spool(t, context.Background(), "bridge", "status", "--http", "127.0.0.1:1")
	if code != 1 || !strings.Contains(stderr, "no spool answering at 127.0.0.1:1") {
		t.Errorf("nothing listening: exit %d, %q", code, stderr)
	}
}
