package bridge

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	spoollog "github.com/spoolmq/spool/log"
)

// DefaultMQTTTopic is the default MQTT topic template of an MQTTLink: one
// subtree per site, one topic per local topic.
const DefaultMQTTTopic = "{site}/{topic}"

// MQTTLinkOptions configure an MQTTLink. Zero values take the defaults
// written beside each field. Every message is published with QoS 1 and
// without the retain flag, over MQTT 3.1.1 or 5 (Version).
type MQTTLinkOptions struct {
	// Name identifies the link; its cursors live in namespace
	// "bridge."+Name and its retention pin is named the same. Required.
	Name string
	// Site is this edge's id: the {site} of Topic and the "edge" of the
	// envelope. Required.
	Site string
	// Broker is the upstream broker URL: tcp://host:port, or
	// ssl://host:port (also tls://, mqtts://) with TLS. Required.
	Broker string
	// TLS is the client TLS configuration for ssl:// brokers; nil uses
	// the system roots.
	TLS *tls.Config
	// ClientID, default "spool-" + Site + "-" + Name. Two links with the
	// same client id on one broker take each other's connection.
	ClientID string
	// Username and Password, sent when Username is not empty.
	Username, Password string

	// Log is the local log to mirror from. Required.
	Log *spoollog.Log
	// Topics are the local topics to mirror, all of their partitions.
	Topics []string
	// EveryTopic says the link mirrors every local topic: it may start
	// with no Topics, and its owner adds the topics created later with
	// AddTopics.
	EveryTopic bool
	// Topic is the MQTT topic template of each message: {site}, {topic},
	// {partition} and {key} are replaced ({key} by the record key with
	// '+', '#' and NUL turned into '_', and "_" for an empty key). Default
	// DefaultMQTTTopic.
	Topic string
	// Version is the MQTT protocol: 4 (3.1.1, default) or 5. Over MQTT 5
	// every message carries the record's headers and the origin headers
	// (spool.edge, spool.topic, spool.partition, spool.offset) as user
	// properties, and a content-type header as its content type.
	Version int
	// Envelope publishes each record as a JSON MQTTEnvelope instead of its
	// bare value. MQTT 3.1.1 has no headers: without the envelope the
	// record headers are not sent and a resend after a failure is
	// recognisable only by its content.
	Envelope bool
	// MaxMessageBytes bounds one PUBLISH packet (topic, properties and
	// payload included); 0 means no limit but the broker's. A record whose
	// message would be larger is not sent: it is skipped like one the
	// broker refuses as too large (Health.Skipped, logged with its offset).
	// MQTT 3.1.1 has no way to say "too large" (mosquitto drops the
	// connection over max_packet_size, or acknowledges and discards a
	// payload over message_size_limit), so set it to the broker's limit
	// (to a payload limit it is a little strict: the topic counts too).
	// Over MQTT 5 the broker's Maximum Packet Size (CONNACK) and a PUBACK
	// with reason 0x95 are honoured without it.
	MaxMessageBytes int

	// KeepAlive is the MQTT keepalive; default 30 s. A dead connection is
	// noticed within about 1.5 times this when no TCP error says so.
	KeepAlive time.Duration
	// ConnectTimeout bounds one connection attempt (TCP, TLS and
	// CONNACK); default 10 s.
	ConnectTimeout time.Duration
	// WriteTimeout bounds writing one packet to the socket (paho's write
	// timeout). paho notices a connection that failed under a blocked
	// write only after it, so it also bounds how long an outage can go
	// unseen. Default 10 s, at most DeliveryTimeout.
	WriteTimeout time.Duration
	// InFlight bounds the publishes of one partition waiting for their
	// PUBACK; default 64.
	InFlight int
	// ReadBytes bounds what one partition reads from the local log at a
	// time; default 1 MiB.
	ReadBytes int
	// DeliveryTimeout bounds how long one publish may wait for its PUBACK
	// before the link drops the connection, backs off and resends from
	// the cursor. Default 30 s.
	DeliveryTimeout time.Duration
	// BackoffMin and BackoffMax bound the reconnect backoff. Defaults
	// 100 ms and 10 s.
	BackoffMin, BackoffMax time.Duration
	// StallTimeout: a partition with lag and no progress for this long,
	// without an error, makes Health report failing. Default 30 s.
	StallTimeout time.Duration
	// FlushTimeout bounds how long Run waits, after its context ends, for
	// PUBACKs of messages already published. Default 5 s.
	FlushTimeout time.Duration

	// Logger, discarding when nil.
	Logger *slog.Logger
}

func (o MQTTLinkOptions) withDefaults() (MQTTLinkOptions, error) {
	switch {
	case o.Name == "":
		return o, errors.New("bridge: link name is empty")
	case o.Site == "":
		return o, fmt.Errorf("bridge link %s: site is empty", o.Name)
	case o.Broker == "":
		return o, fmt.Errorf("bridge link %s: no broker", o.Name)
	case o.Log == nil:
		return o, fmt.Errorf("bridge link %s: no local log", o.Name)
	case len(o.Topics) == 0 && !o.EveryTopic:
		return o, fmt.Errorf("bridge link %s: no topics", o.Name)
	}
	switch o.Version {
	case 0:
		o.Version = 4
	case 4, 5:
	default:
		return o, fmt.Errorf("bridge link %s: MQTT version %d is not 4 (3.1.1) or 5", o.Name, o.Version)
	}
	if o.MaxMessageBytes < 0 {
		return o, fmt.Errorf("bridge link %s: max message bytes %d is negative", o.Name, o.MaxMessageBytes)
	}
	u, err := url.Parse(o.Broker)
	if err != nil {
		return o, fmt.Errorf("bridge link %s: broker: %w", o.Name, err)
	}
	switch u.Scheme {
	case "tcp", "mqtt", "ssl", "tls", "mqtts", "tcps":
	default:
		return o, fmt.Errorf("bridge link %s: broker %q: scheme is not tcp or ssl", o.Name, o.Broker)
	}
	if u.Host == "" {
		return o, fmt.Errorf("bridge link %s: broker %q has no host", o.Name, o.Broker)
	}
	if o.ClientID == "" {
		o.ClientID = "spool-" + o.Site + "-" + o.Name
	}
	if o.Topic == "" {
		o.Topic = DefaultMQTTTopic
	}
	if o.KeepAlive <= 0 {
		o.KeepAlive = 30 * time.Second
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	if o.InFlight <= 0 {
		o.InFlight = 64
	}
	if o.ReadBytes <= 0 {
		o.ReadBytes = 1 << 20
	}
	if o.DeliveryTimeout <= 0 {
		o.DeliveryTimeout = 30 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	o.WriteTimeout = min(o.WriteTimeout, o.DeliveryTimeout)
	if o.BackoffMin <= 0 {
		o.BackoffMin = 100 * time.Millisecond
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 10 * time.Second
	}
	o.BackoffMax = max(o.BackoffMax, o.BackoffMin)
	if o.StallTimeout <= 0 {
		o.StallTimeout = 30 * time.Second
	}
	if o.FlushTimeout <= 0 {
		o.FlushTimeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// mqttTopic expands a template for one record. The result must be a valid
// MQTT topic name to publish to: not empty, no wildcard, no NUL.
func mqttTopic(tmpl, site, topic string, partition int32, key []byte) (string, error) {
	k := "_"
	if len(key) > 0 {
		k = strings.NewReplacer("+", "_", "#", "_", "\x00", "_").Replace(string(key))
	}
	name := strings.NewReplacer("{site}", site, "{topic}", topic,
		"{partition}", fmt.Sprint(partition), "{key}", k).Replace(tmpl)
	if name == "" || strings.ContainsAny(name, "+#\x00") || len(name) > 65535 {
		return "", fmt.Errorf("MQTT topic %q (from template %q) is not a valid topic name", name, tmpl)
	}
	return name, nil
}
