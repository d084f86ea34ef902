package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"
)

// recordPrinter writes consumed records in spool consume's formats.
//
// text: the value and a newline, or key TAB value with printKey; bytes are
// written as they are.
//
// json: one object a line,
//
//	{"topic":"t","partition":0,"offset":7,"timestamp":"2026-01-02T15:04:05.000Z",
//	 "key":"k","value":"v","headers":[{"key":"h","value":"1"}]}
//
// A null key or value is JSON null. Bytes that are not UTF-8 cannot be a
// JSON string without loss, so such a key or value is given as base64 in
// key_b64 or value_b64 instead of key or value (headers likewise).
type recordPrinter struct {
	w        *bufio.Writer
	json     bool
	printKey bool
}

// jsonTimestamp is RFC 3339 with milliseconds, Kafka's timestamp precision.
const jsonTimestamp = "2006-01-02T15:04:05.000Z07:00"

type jsonRecord struct {
	Topic     string          `json:"topic"`
	Partition int32           `json:"partition"`
	Offset    int64           `json:"offset"`
	Timestamp string          `json:"timestamp"`
	Key       json.RawMessage `json:"key,omitempty"`
	KeyB64    string          `json:"key_b64,omitempty"`
	Value     json.RawMessage `json:"value,omitempty"`
	ValueB64  string          `json:"value_b64,omitempty"`
	Headers   []jsonHeader    `json:"headers"`
}

type jsonHeader struct {
	Key      json.RawMessage `json:"key,omitempty"`
	KeyB64   string          `json:"key_b64,omitempty"`
	Value    json.RawMessage `json:"value,omitempty"`
	ValueB64 string          `json:"value_b64,omitempty"`
}

func (p *recordPrinter) print(r *kgo.Record) {
	if !p.json {
		if p.printKey {
			p.w.Write(r.Key)
			p.w.WriteByte('\t')
		}
		p.w.Write(r.Value)
		p.w.WriteByte('\n')
		return
	}
	jr := jsonRecord{
		Topic:     r.Topic,
		Partition: r.Partition,
		Offset:    r.Offset,
		Timestamp: r.Timestamp.UTC().Format(jsonTimestamp),
		Headers:   []jsonHeader{},
	}
	jr.Key, jr.KeyB64 = jsonBytes(r.Key)
	jr.Value, jr.ValueB64 = jsonBytes(r.Value)
	for _, h := range r.Headers {
		var jh jsonHeader
		jh.Key, jh.KeyB64 = jsonBytes([]byte(h.Key))
		jh.Value, jh.ValueB64 = jsonBytes(h.Value)
		jr.Headers = append(jr.Headers, jh)
	}
	enc := json.NewEncoder(p.w)
	enc.SetEscapeHTML(false)
	enc.Encode(jr) // cannot fail: every field is a string, number or valid raw JSON
}

// jsonBytes returns b as a JSON string (null for nil), or, when b is not
// UTF-8, as base64 for the *_b64 field.
func jsonBytes(b []byte) (json.RawMessage, string) {
	if b == nil {
		return json.RawMessage("null"), ""
	}
	if !utf8.Valid(b) {
		return nil, base64.StdEncoding.EncodeToString(b)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.Encode(string(b))
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), ""
}
