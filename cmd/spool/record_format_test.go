package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// consume --format json gives bytes that are not UTF-8 as base64, header
// keys included (key_b64, as the HTTP API writes them): encoding/json
// would turn them into U+FFFD and lose the key.
func TestJSONHeaderKeyNotUTF8(t *testing.T) {
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	p := recordPrinter{w: w, json: true}
	key := "\xff\xfeh"
	p.print(&kgo.Record{Topic: "t", Value: []byte("v"), Timestamp: time.UnixMilli(0),
		Headers: []kgo.RecordHeader{{Key: key, Value: []byte("x")}}})
	w.Flush()
	var out struct {
		Headers []map[string]string `json:"headers"`
	}
	if err := json.Unmarshal(buf.Bytes(), &out); err != nil || len(out.Headers) != 1 {
		t.Fatalf("output %q: %v", buf.String(), err)
	}
	h := out.Headers[0]
	got := h["key"]
	if b64, ok := h["key_b64"]; ok {
		b, _ := base64.StdEncoding.DecodeString(b64)
		got = string(b)
	}
	if got != key {
		t.Errorf("header key %q printed as %s: the bytes are lost (want key_b64 as for values)", key, bytes.TrimSpace(buf.Bytes()))
	}
}
