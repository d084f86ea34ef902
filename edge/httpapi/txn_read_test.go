package httpapi

import (
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"net/http"
	"testing"
	"time"

	spoollog "github.com/spoolmq/spool/log"
)

// txnTestBatch encodes one transactional batch of producer pid.
func txnTestBatch(t *testing.T, pid int64, values ...string) []byte {
	t.Helper()
	recs := make([]spoollog.Record, len(values))
	for i, v := range values {
		recs[i] = spoollog.Record{Timestamp: time.Now().UnixMilli(), Value: []byte(v)}
	}
	b, err := spoollog.AppendBatch(nil, recs, spoollog.BatchOptions{ProducerID: pid, BaseSequence: 0})
	if err != nil {
		t.Fatal(err)
	}
	binary.BigEndian.PutUint16(b[21:], binary.BigEndian.Uint16(b[21:])|0x10) // transactional
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

// TestTxnReadAtPendingTxnShowsLastStableOffset: a read at the last stable
// offset while a transaction is pending answers no records, next_offset at
// the LSO, and last_stable_offset, so that a client paging until it
// reaches the end sees that it has read everything it can (the high
// watermark lies past the pending records).
func TestTxnReadAtPendingTxnShowsLastStableOffset(t *testing.T) {
	e := newEnv(t, spoollog.Options{}, nil)
	e.createTopic("txn", nil)
	e.must(http.StatusOK, "POST", "/api/v1/topics/txn/records", `{"records":[{"value":"c0"}]}`, nil)
	tp, err := e.l.Topic("txn")
	if err != nil {
		t.Fatal(err)
	}
	p, err := tp.Partition(0)
	if err != nil {
		t.Fatal(err)
	}
	const pid = 77
	if err := p.BeginTxn(pid); err != nil {
		t.Fatal(err)
	}
	res, err := p.Append(txnTestBatch(t, pid, "p1", "p2"))
	if err != nil {
		t.Fatal(err)
	}
	p.TxnAppended(pid, res.BaseOffset)

	var first readResp
	e.must(http.StatusOK, "GET", recordsPath("txn", 0, "offset=earliest"), nil, &first)
	if len(first.Records) != 1 || first.NextOffset != 1 {
		t.Fatalf("first read %+v, want c0 and next_offset 1", first)
	}
	// The client goes on from next_offset, as documented.
	status, body := e.do("GET", recordsPath("txn", 0, "offset=1"), nil)
	if status != http.StatusOK {
		t.Fatalf("read at 1: %d %s", status, body)
	}
	var rr readResp
	var extra struct {
		LSO *int64 `json:"last_stable_offset"`
	}
	if err := json.Unmarshal(body, &rr); err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(body, &extra)
	caughtUp := extra.LSO != nil && *extra.LSO == p.LastStableOffset() && rr.NextOffset == *extra.LSO
	if len(rr.Records) != 0 || !caughtUp {
		t.Errorf("read at the pending transaction (LSO %d): %s — an empty answer with next_offset %d below high_watermark %d and no last stable offset: the client cannot tell it is caught up",
			p.LastStableOffset(), body, rr.NextOffset, rr.HighWatermark)
	}
	if _, err := p.EndTxn(pid, 0, true, 0); err != nil {
		t.Fatal(err)
	}
}
