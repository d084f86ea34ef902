package kafka_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/spoolmq/spool/edge/kafka"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A transaction committed is seen by read_committed consumers; one aborted
// is not, though a read_uncommitted consumer sees both.
func TestTxnCommitAndAbort(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	tb.createTopic("tx", 2)
	p := tb.client(kgo.TransactionalID("t1"), kgo.DefaultProduceTopic("tx"))
	defer p.Close()
	produce := func(prefix string, commit bool) {
		t.Helper()
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := range 10 {
			r := &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprintf("%s-%d", prefix, i))}
			if err := p.ProduceSync(ctx(t), r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.EndTransaction(ctx(t), kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	produce("a", true)
	produce("b", false)
	produce("c", true)

	committed := tb.client(kgo.ConsumeTopics("tx"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	defer committed.Close()
	got := consumeN(t, committed, 20)
	for _, r := range got {
		if r.Value[0] == 'b' {
			t.Fatalf("read_committed consumer got aborted record %s", r.Value)
		}
	}
	// Nothing more: the aborted ones never come.
	c2, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if fs := committed.PollFetches(c2); len(fs.Records()) > 0 {
		t.Fatalf("read_committed consumer got %d more records", len(fs.Records()))
	}

	all := tb.client(kgo.ConsumeTopics("tx"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadUncommitted()))
	defer all.Close()
	if got := consumeN(t, all, 30); len(got) != 30 {
		t.Fatalf("read_uncommitted got %d records, want 30", len(got))
	}
}

// kadm lists and describes transactional ids: a pending transaction shows
// Ongoing with its partitions, a committed one CompleteCommit.
func TestTxnDescribeAndList(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	tb.createTopic("dt", 3)
	p := tb.client(kgo.TransactionalID("lister"), kgo.DefaultProduceTopic("dt"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := p.ProduceSync(ctx(t), &kgo.Record{Partition: 2, Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	adm := tb.admin()
	listed, err := adm.ListTransactions(ctx(t), nil, []string{"Ongoing"})
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := listed["lister"]; !ok || s.State != "Ongoing" || len(listed) != 1 {
		t.Fatalf("ListTransactions Ongoing: %+v", listed)
	}
	described, err := adm.DescribeTransactions(ctx(t), "lister", "nobody")
	if err != nil {
		t.Fatal(err)
	}
	d := described["lister"]
	if d.Err != nil || d.State != "Ongoing" || d.StartTimestamp <= 0 || len(d.Topics["dt"]) != 1 || !hasKey(d.Topics["dt"], 2) {
		t.Fatalf("DescribeTransactions: %+v", d)
	}
	if n := described["nobody"]; n.Err == nil {
		t.Errorf("an unknown transactional id described without error: %+v", n)
	}
	if err := p.EndTransaction(ctx(t), kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	if listed, err = adm.ListTransactions(ctx(t), nil, []string{"Ongoing"}); err != nil || len(listed) != 0 {
		t.Fatalf("ListTransactions Ongoing after the commit: %+v, %v", listed, err)
	}
	if described, err = adm.DescribeTransactions(ctx(t), "lister"); err != nil || described["lister"].State != "CompleteCommit" {
		t.Fatalf("DescribeTransactions after the commit: %+v, %v", described, err)
	}
}

func hasKey[K comparable, V any](m map[K]V, k K) bool {
	_, ok := m[k]
	return ok
}
