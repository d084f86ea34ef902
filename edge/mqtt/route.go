package mqtt

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"sync"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/spoolmq/spool/edge/config"
	spoollog "github.com/spoolmq/spool/log"
)

// DefaultTopic is the log topic every publish goes to when no routes are
// configured, keyed by its MQTT topic.
const DefaultTopic = "mqtt"

// route sends publishes whose MQTT topic matches filter to a log topic.
type route struct {
	filter string
	topic  *spoollog.Topic
	key    config.Key
}

// router picks the first route whose filter matches.
type router struct {
	routes []route
}

func (r *router) match(topic string) *route {
	for i := range r.routes {
		if matchFilter(r.routes[i].filter, topic) {
			return &r.routes[i]
		}
	}
	return nil
}

// recordKey computes the record key a route asks for. ok is false when
// the key could not be found (a missing topic level or JSON field, or a
// payload that is not JSON): the record is then stored without a key and
// the miss is counted, rather than refusing a device's data.
// The key is copied into e's scratch space.
func (rt *route) recordKey(e *recordEncoder, pk *packets.Packet, clientID string) (key []byte, ok bool) {
	switch rt.key.Kind {
	case config.KeyNone:
		return nil, true
	case config.KeyClientID:
		return e.value(clientID), true
	case config.KeyLevel:
		levels := strings.Split(pk.TopicName, "/")
		if rt.key.Level >= len(levels) {
			return nil, false
		}
		return e.value(levels[rt.key.Level]), true
	case config.KeyJSON:
		return jsonField(pk.Payload, rt.key.Path)
	}
	return e.value(pk.TopicName), true
}

// jsonField returns the value at path in a JSON object: a string as its
// text, a number as written, anything else as compact JSON.
func jsonField(payload []byte, path []string) ([]byte, bool) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, false
	}
	for _, f := range path {
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = obj[f]; !ok {
			return nil, false
		}
	}
	switch x := v.(type) {
	case string:
		return []byte(x), true
	case json.Number:
		return []byte(x.String()), true
	case nil:
		return nil, false
	}
	b, err := json.Marshal(v)
	return b, err == nil
}

// Header keys of a record made from an MQTT publish. MQTT 5 user
// properties follow them under their own names.
const (
	HeaderTopic       = "mqtt.topic"
	HeaderQoS         = "mqtt.qos"
	HeaderRetain      = "mqtt.retain"
	HeaderContentType = "content-type"
)

var qosText = [3][]byte{[]byte("0"), []byte("1"), []byte("2")}

var retainText = []byte("1")

// recordEncoder is the scratch space for encoding one publish as a
// record. It is pooled (encoders), so that ingest allocates nothing per
// message for it.
type recordEncoder struct {
	out  []byte            // the encoded batch
	vals []byte            // header values copied from the packet's strings
	hdrs []spoollog.Header // the record's headers, pointing into vals
}

var encoders = sync.Pool{New: func() any { return &recordEncoder{out: make([]byte, 0, 1024)} }}

// put returns e to the pool, unless a rare huge publish grew it.
func (e *recordEncoder) put() {
	if cap(e.out)+cap(e.vals) > 64<<10 {
		return
	}
	clear(e.hdrs) // drop references to the packet
	e.out, e.vals, e.hdrs = e.out[:0], e.vals[:0], e.hdrs[:0]
	encoders.Put(e)
}

// value copies s into the scratch space and returns the copy.
func (e *recordEncoder) value(s string) []byte {
	n := len(e.vals)
	e.vals = append(e.vals, s...)
	return e.vals[n:len(e.vals):len(e.vals)]
}

// appendRecord encodes pk as a one-record batch into e.out and returns it.
func (e *recordEncoder) appendRecord(pk *packets.Packet, key []byte, tsMillis int64) ([]byte, error) {
	// Room for every value first, so that they share one buffer (what
	// e.value copied before, such as the key, may stay on an older one).
	need := len(pk.TopicName) + len(pk.Properties.ContentType)
	for _, up := range pk.Properties.User {
		need += len(up.Val)
	}
	e.vals = slices.Grow(e.vals, need)
	hdrs := append(e.hdrs[:0],
		spoollog.Header{Key: HeaderTopic, Value: e.value(pk.TopicName)},
		spoollog.Header{Key: HeaderQoS, Value: qosText[min(pk.FixedHeader.Qos, 2)]},
	)
	if pk.FixedHeader.Retain {
		hdrs = append(hdrs, spoollog.Header{Key: HeaderRetain, Value: retainText})
	}
	if pk.Properties.ContentType != "" {
		hdrs = append(hdrs, spoollog.Header{Key: HeaderContentType, Value: e.value(pk.Properties.ContentType)})
	}
	for _, up := range pk.Properties.User {
		hdrs = append(hdrs, spoollog.Header{Key: up.Key, Value: e.value(up.Val)})
	}
	e.hdrs = hdrs
	value := pk.Payload
	if value == nil {
		value = []byte{} // an empty payload is not a compaction tombstone
	}
	recs := [1]spoollog.Record{{Timestamp: tsMillis, Key: key, Value: value, Headers: hdrs}}
	var err error
	e.out, err = spoollog.AppendBatch(e.out[:0], recs[:], spoollog.DefaultBatchOptions)
	return e.out, err
}
