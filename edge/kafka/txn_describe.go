package kafka

import (
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// kafkaState is a status as Kafka's admin APIs name it.
var kafkaState = map[txnStatus]string{
	txnEmpty: "Empty", txnOngoing: "Ongoing",
	txnPrepareCommit: "PrepareCommit", txnPrepareAbort: "PrepareAbort",
	txnCompleteCommit: "CompleteCommit", txnCompleteAbort: "CompleteAbort",
}

// txnView is a copy of one transactional id's state.
type txnView struct {
	id  string
	rec txnRecord
}

// snapshot copies the coordinator's states, ids sorted.
func (tc *txnCoordinator) snapshot() []txnView {
	entries := tc.entries()
	out := make([]txnView, 0, len(entries))
	for _, e := range entries {
		e.mu.Lock()
		if !e.gone {
			out = append(out, txnView{id: e.id, rec: e.rec})
		}
		e.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b txnView) int { return strings.Compare(a.id, b.id) })
	return out
}

// startedAt is when e's pending transaction began, -1 when none is.
func startedAt(e *txnView) int64 {
	if e.rec.StartedMs == 0 {
		return -1
	}
	return e.rec.StartedMs
}

func (s *Server) describeTransactions(_ *connState, req *request) kmsg.Response {
	r := req.body.(*kmsg.DescribeTransactionsRequest)
	resp := r.ResponseKind().(*kmsg.DescribeTransactionsResponse)
	byID := map[string]txnView{}
	for _, e := range s.txns.snapshot() {
		byID[e.id] = e
	}
	for _, id := range r.TransactionalIDs {
		st := kmsg.NewDescribeTransactionsResponseTransactionState()
		st.TransactionalID, st.ProducerID, st.ProducerEpoch, st.StartTimestamp = id, -1, -1, -1
		e, ok := byID[id]
		if !ok {
			st.ErrorCode = kerr.TransactionalIDNotFound.Code
			resp.TransactionStates = append(resp.TransactionStates, st)
			continue
		}
		st.State, st.TimeoutMillis = kafkaState[e.rec.Status], e.rec.TimeoutMs
		st.ProducerID, st.ProducerEpoch, st.StartTimestamp = e.rec.PID, e.rec.Epoch, startedAt(&e)
		for _, tp := range e.rec.Partitions {
			i := slices.IndexFunc(st.Topics, func(t kmsg.DescribeTransactionsResponseTransactionStateTopic) bool { return t.Topic == tp.Topic })
			if i < 0 {
				t := kmsg.NewDescribeTransactionsResponseTransactionStateTopic()
				t.Topic = tp.Topic
				st.Topics = append(st.Topics, t)
				i = len(st.Topics) - 1
			}
			st.Topics[i].Partitions = append(st.Topics[i].Partitions, tp.Partition)
		}
		resp.TransactionStates = append(resp.TransactionStates, st)
	}
	return resp
}

func (s *Server) listTransactions(_ *connState, req *request) kmsg.Response {
	r := req.body.(*kmsg.ListTransactionsRequest)
	resp := r.ResponseKind().(*kmsg.ListTransactionsResponse)
	states := map[string]bool{}
	for _, f := range r.StateFilters {
		if !slices.Contains([]string{"Empty", "Ongoing", "PrepareCommit", "PrepareAbort", "CompleteCommit", "CompleteAbort", "Dead", "PrepareEpochFence"}, f) {
			resp.UnknownStateFilters = append(resp.UnknownStateFilters, f)
		}
		states[f] = true
	}
	now := time.Now().UnixMilli()
	for _, e := range s.txns.snapshot() {
		state := kafkaState[e.rec.Status]
		switch {
		case len(states) > 0 && !states[state]:
			continue
		case len(r.ProducerIDFilters) > 0 && !slices.Contains(r.ProducerIDFilters, e.rec.PID):
			continue
		case req.version >= 1 && r.DurationFilterMillis >= 0 && now-startedAt(&e) <= r.DurationFilterMillis:
			continue // KIP-994: only those running longer
		}
		st := kmsg.NewListTransactionsResponseTransactionState()
		st.TransactionalID, st.ProducerID, st.TransactionState = e.id, e.rec.PID, state
		resp.TransactionStates = append(resp.TransactionStates, st)
	}
	return resp
}
