package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/spoolmq/spool/edge/config"
	"github.com/spoolmq/spool/edge/kafka"
	spoollog "github.com/spoolmq/spool/log"
	"golang.org/x/crypto/bcrypt"
)

// startSpoolKafka runs Spool's own Kafka listener over a fresh log, with
// SASL required for the user "ops" (password "pw").
func startSpoolKafka(t *testing.T) string {
	t.Helper()
	l, err := spoollog.Open(t.TempDir(), spoollog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := config.MakeSCRAM("SCRAM-SHA-512", "pw")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := config.ParseSCRAM(cred)
	if err != nil {
		t.Fatal(err)
	}
	s, err := kafka.New(kafka.Options{
		Addr: "127.0.0.1:0", Log: l, Logger: slog.New(slog.DiscardHandler), RequireSASL: true,
		Users: map[string]kafka.Credentials{"ops": {BcryptHash: string(hash), SCRAM: map[string]config.SCRAMCredential{"SCRAM-SHA-512": sc}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(func() { s.Close(); l.Close() })
	return s.Addr().String()
}

// TestKafkaCommandsAgainstSpool: the client commands work against Spool's
// own listener with SASL (SCRAM and PLAIN), and fail clearly without it.
func TestKafkaCommandsAgainstSpool(t *testing.T) {
	addr := startSpoolKafka(t)
	t.Setenv("SPOOL_KAFKA_PASSWORD", "pw")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	auth := []string{"--brokers", addr, "--timeout", "15s", "--sasl", "SCRAM-SHA-512", "--user", "ops"}

	if code, _, stderr := spool(t, ctx, append([]string{"topic", "create", "cli", "--partitions", "2"}, auth...)...); code != 0 {
		t.Fatalf("topic create: exit %d: %s", code, stderr)
	}
	old := stdin
	t.Cleanup(func() { stdin = old })
	stdin = strings.NewReader("a:1\nb:2\nc:3\n")
	code, _, stderr := spool(t, ctx, append([]string{"produce", "cli", "--key-separator", ":"}, auth...)...)
	if code != 0 {
		t.Fatalf("produce: exit %d: %s", code, stderr)
	}
	plainAuth := []string{"--brokers", addr, "--timeout", "15s", "--sasl", "PLAIN", "--user", "ops"}
	code, out, stderr := spool(t, ctx, append([]string{"consume", "cli", "--from-beginning", "--print-key"}, plainAuth...)...)
	if code != 0 {
		t.Fatalf("consume: exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("consumed %q", out)
	}

	code, _, stderr = spool(t, ctx, "topic", "list", "--brokers", addr, "--timeout", "2s")
	if code != 1 || !strings.Contains(stderr, "SASL") {
		t.Errorf("without SASL: exit %d, stderr %q", code, stderr)
	}
	t.Setenv("SPOOL_KAFKA_PASSWORD", "wrong")
	code, _, stderr = spool(t, ctx, append([]string{"topic", "list"}, auth...)...)
	if code != 1 || !strings.Contains(stderr, "SASL_AUTHENTICATION_FAILED") {
		t.Errorf("wrong password: exit %d, stderr %q", code, stderr)
	}
}
