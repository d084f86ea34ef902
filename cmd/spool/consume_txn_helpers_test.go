package main

import (
	"context"
	"log/slog"
	"testing"

	"github.com/spoolmq/spool/edge/kafka"
	spoollog "github.com/spoolmq/spool/log"
	"github.com/twmb/franz-go/pkg/kgo"
)

// startPlainSpoolKafka runs Spool's Kafka listener, without SASL, over a
// fresh log and returns its address.
func startPlainSpoolKafka(t *testing.T) string {
	t.Helper()
	l, err := spoollog.Open(t.TempDir(), spoollog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := kafka.New(kafka.Options{Addr: "127.0.0.1:0", Log: l, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	t.Cleanup(func() { srv.Close(); l.Close() })
	return srv.Addr().String()
}

// abortBeforePending leaves partition 0 of topic with an aborted
// transaction's record ("aborted") followed by a pending transaction's
// ("pending"): the abort marker lies past the last stable offset, so a
// read_committed client is given no offset below it. It returns the
// pending transaction's client; ids names the two transactional ids.
func abortBeforePending(t *testing.T, ctx context.Context, addr, topic string, ids [2]string) *kgo.Client {
	t.Helper()
	client := func(id string) *kgo.Client {
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.TransactionalID(id), kgo.DefaultProduceTopic(topic),
			kgo.RecordPartitioner(kgo.ManualPartitioner()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		return cl
	}
	first, second := client(ids[0]), client(ids[1])
	if err := first.ProduceSync(ctx, &kgo.Record{Partition: 0, Value: []byte("aborted")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := second.ProduceSync(ctx, &kgo.Record{Partition: 0, Value: []byte("pending")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := first.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
	return second
}
