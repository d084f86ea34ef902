package httpapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	spoollog "github.com/spoolmq/spool/log"
)

// produceRequest is the body of POST /api/v1/topics/{topic}/records:
//
//	{"records": [{"key": "k", "value": <any JSON>, "headers": {"h": "v"}, "partition": 0}]}
//
// key and value: a JSON string is stored as its UTF-8 bytes, any other
// JSON value as its compact JSON text, and null or absent as no key / a
// null value (a tombstone for compaction). key_b64 and value_b64 carry
// binary bytes in standard base64 instead. headers is an object of string
// values, or a list of {"key", "value" | "value_b64"} (which allows
// binary values and repeated keys). partition picks the partition;
// without it a keyed record goes where murmur2 of the key says (Kafka's
// default partitioner) and a keyless one to the sticky partition.
// timestamp (milliseconds) defaults to the time of the request.
type produceRequest struct {
	Records []produceRecord `json:"records"`
}

type produceRecord struct {
	Key       json.RawMessage `json:"key"`
	KeyB64    *string         `json:"key_b64"`
	Value     json.RawMessage `json:"value"`
	ValueB64  *string         `json:"value_b64"`
	Headers   json.RawMessage `json:"headers"`
	Partition *int32          `json:"partition"`
	Timestamp *int64          `json:"timestamp"`
}

// produceResult is one record's outcome, in request order.
type produceResult struct {
	Partition int32  `json:"partition"`
	Offset    *int64 `json:"offset,omitempty"`
	Error     string `json:"error,omitempty"`
}

// produce appends the records, one batch per partition (the partitions in
// parallel), and answers once every append returned: for a sync: always
// topic, after the fsync. 200 with {"offsets": [...]} when all were
// stored; otherwise the status of the first failure (507 full, 413 too
// large, ...) with {"error": ..., "offsets": [...]} telling which records
// were stored anyway (each partition's batch is all or nothing).
func (a *api) produce(w http.ResponseWriter, r *http.Request) {
	t, err := a.l.Topic(r.PathValue("topic"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var req produceRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := decodeOne(dec, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	if len(req.Records) == 0 {
		a.fail(w, r, badRequest(`"records" is empty`))
		return
	}

	now := time.Now().UnixMilli()
	n := t.NumPartitions()
	recs := make([]spoollog.Record, len(req.Records))
	parts := make([]int32, len(req.Records))
	for i, pr := range req.Records {
		rec, err := pr.record(now)
		if err != nil {
			a.fail(w, r, badRequest(fmt.Sprintf("records[%d]: %v", i, err)))
			return
		}
		recs[i] = rec
		switch {
		case pr.Partition != nil:
			if *pr.Partition < 0 || *pr.Partition >= n {
				a.fail(w, r, &requestError{http.StatusNotFound,
					fmt.Sprintf("records[%d]: topic %q has no partition %d (it has %d)", i, t.Name(), *pr.Partition, n)})
				return
			}
			parts[i] = *pr.Partition
		default:
			parts[i] = t.PartitionFor(rec.Key, len(rec.Key)+len(rec.Value))
		}
	}

	// One batch per partition, records in request order.
	type group struct {
		p    int32
		idx  []int
		res  spoollog.AppendResult
		err  error
		recs []spoollog.Record
	}
	byPart := map[int32]*group{}
	var groups []*group
	for i, p := range parts {
		g := byPart[p]
		if g == nil {
			g = &group{p: p}
			byPart[p] = g
			groups = append(groups, g)
		}
		g.idx = append(g.idx, i)
		g.recs = append(g.recs, recs[i])
	}
	var wg sync.WaitGroup
	for _, g := range groups {
		wg.Go(func() {
			p, err := t.Partition(g.p)
			if err == nil {
				g.res, err = p.AppendRecords(g.recs, spoollog.DefaultBatchOptions)
			}
			g.err = err
		})
	}
	wg.Wait()

	results := make([]produceResult, len(recs))
	var firstErr error
	slices.SortFunc(groups, func(x, y *group) int { return x.idx[0] - y.idx[0] })
	for _, g := range groups {
		for j, i := range g.idx {
			results[i].Partition = g.p
			if g.err != nil {
				results[i].Error = g.err.Error()
				continue
			}
			off := g.res.BaseOffset + int64(j)
			results[i].Offset = &off
		}
		if g.err != nil && firstErr == nil {
			firstErr = g.err
		}
	}
	if firstErr != nil {
		status := errorStatus(firstErr)
		a.logFailure(r, status, firstErr)
		writeJSON(w, status, struct {
			Error   string          `json:"error"`
			Offsets []produceResult `json:"offsets"`
		}{firstErr.Error(), results})
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Offsets []produceResult `json:"offsets"`
	}{results})
}

func (pr produceRecord) record(now int64) (spoollog.Record, error) {
	rec := spoollog.Record{Timestamp: now}
	if pr.Timestamp != nil {
		if *pr.Timestamp < 0 {
			return rec, fmt.Errorf("timestamp: %d is negative", *pr.Timestamp)
		}
		rec.Timestamp = *pr.Timestamp
	}
	var err error
	if rec.Key, err = payload("key", pr.Key, pr.KeyB64); err != nil {
		return rec, err
	}
	if rec.Value, err = payload("value", pr.Value, pr.ValueB64); err != nil {
		return rec, err
	}
	if rec.Headers, err = parseHeaders(pr.Headers); err != nil {
		return rec, fmt.Errorf("headers: %v", err)
	}
	return rec, nil
}

// payload turns a key or value into bytes: a JSON string as its UTF-8
// bytes, other JSON as its compact text, null or absent as nil, or the
// decoded _b64 form.
func payload(field string, raw json.RawMessage, b64 *string) ([]byte, error) {
	isNull := len(raw) == 0 || string(raw) == "null"
	if b64 != nil {
		if !isNull {
			return nil, fmt.Errorf("give %s or %s_b64, not both", field, field)
		}
		b, err := base64.StdEncoding.DecodeString(*b64)
		if err != nil {
			return nil, fmt.Errorf("%s_b64: %v", field, err)
		}
		return b, nil
	}
	if isNull {
		return nil, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("%s: %v", field, err)
		}
		return []byte(s), nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, fmt.Errorf("%s: %v", field, err)
	}
	return buf.Bytes(), nil
}

// parseHeaders accepts {"k": "v", ...} (sorted by key) or
// [{"key": "k", "value": "v" | "value_b64": "..."}, ...] (in order).
func parseHeaders(raw json.RawMessage) ([]spoollog.Header, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] == '{' {
		var m map[string]*string
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("want an object of strings: %v", err)
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		hs := make([]spoollog.Header, 0, len(keys))
		for _, k := range keys {
			h := spoollog.Header{Key: k}
			if v := m[k]; v != nil {
				h.Value = []byte(*v)
			}
			hs = append(hs, h)
		}
		return hs, nil
	}
	var list []struct {
		Key      string  `json:"key"`
		Value    *string `json:"value"`
		ValueB64 *string `json:"value_b64"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&list); err != nil {
		return nil, fmt.Errorf("want an object or a list of {key, value}: %v", err)
	}
	hs := make([]spoollog.Header, 0, len(list))
	for i, e := range list {
		h := spoollog.Header{Key: e.Key}
		switch {
		case e.Value != nil && e.ValueB64 != nil:
			return nil, fmt.Errorf("[%d]: give value or value_b64, not both", i)
		case e.Value != nil:
			h.Value = []byte(*e.Value)
		case e.ValueB64 != nil:
			b, err := base64.StdEncoding.DecodeString(*e.ValueB64)
			if err != nil {
				return nil, fmt.Errorf("[%d].value_b64: %v", i, err)
			}
			h.Value = b
		}
		hs = append(hs, h)
	}
	return hs, nil
}
