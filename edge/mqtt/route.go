package mqtt

import (
	"bytes"
	"encoding/json"
	"strings"

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
func (rt *route) recordKey(pk *packets.Packet, clientID string) (key []byte, ok bool) {
	switch rt.key.Kind {
	case config.KeyNone:
		return nil, true
	case config.KeyClientID:
		return []byte(clientID), true
	case config.KeyLevel:
		levels := strings.Split(pk.TopicName, "/")
		if rt.key.Level >= len(levels) {
			return nil, false
		}
		return []byte(levels[rt.key.Level]), true
	case config.KeyJSON:
		return jsonField(pk.Payload, rt.key.Path)
	}
	return []byte(pk.TopicName), true
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

// appendRecord encodes pk as a one-record batch into dst.
func appendRecord(dst []byte, pk *packets.Packet, key []byte, tsMillis int64) ([]byte, error) {
	hdrs := make([]spoollog.Header, 0, 3+len(pk.Properties.User))
	hdrs = append(hdrs,
		spoollog.Header{Key: HeaderTopic, Value: []byte(pk.TopicName)},
		spoollog.Header{Key: HeaderQoS, Value: qosText[min(pk.FixedHeader.Qos, 2)]},
	)
	if pk.FixedHeader.Retain {
		hdrs = append(hdrs, spoollog.Header{Key: HeaderRetain, Value: []byte("1")})
	}
	if pk.Properties.ContentType != "" {
		hdrs = append(hdrs, spoollog.Header{Key: HeaderContentType, Value: []byte(pk.Properties.ContentType)})
	}
	for _, up := range pk.Properties.User {
		hdrs = append(hdrs, spoollog.Header{Key: up.Key, Value: []byte(up.Val)})
	}
	value := pk.Payload
	if value == nil {
		value = []byte{} // an empty payload is not a compaction tombstone
	}
	rec := spoollog.Record{Timestamp: tsMillis, Key: key, Value: value, Headers: hdrs}
	return spoollog.AppendBatch(dst, []spoollog.Record{rec}, spoollog.DefaultBatchOptions)
}
