package bridge

import (
	"errors"
	"fmt"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	spoollog "github.com/spoolmq/spool/log"
)

// publisher is one upstream MQTT connection as a mirror uses it: MQTT
// 3.1.1 through paho.mqtt.golang, or MQTT 5 through paho.golang.
type publisher interface {
	// publish sends one QoS 1 message for record r; the token completes
	// at its PUBACK (or fails). A message over the connection's packet
	// limit is not sent: its token fails at once with errTooLarge.
	publish(topic string, payload []byte, r spoollog.Record) token
	// isOpen is false once the connection is known to be lost.
	isOpen() bool
}

// token is a publish waiting for its PUBACK; mqtt.Token is one.
type token interface {
	Done() <-chan struct{}
	Error() error
}

// errTooLarge marks a message the upstream refuses, or would refuse, as
// too large on its own: retrying it cannot succeed, so the mirror skips
// it (partState.skipTooLarge).
var errTooLarge = errors.New("message too large for the upstream broker")

// mqttMaxPacket is the largest packet MQTT can encode: a 4-byte remaining
// length of at most 268 435 455.
const mqttMaxPacket = 1 + 4 + 268_435_455

// packetSize is the size of a whole MQTT packet whose variable header and
// payload take rem bytes: the type byte, the remaining length, the rest.
func packetSize(rem int) int {
	n := 1
	for v := rem; v >= 128; v /= 128 {
		n++
	}
	return 1 + n + rem
}

// refuseTooLarge returns a token failed with errTooLarge, for a message
// of size bytes over limit that is not sent.
func refuseTooLarge(size, limit int) token {
	tok := newAckToken()
	tok.finish(fmt.Errorf("%w: PUBLISH of %d bytes, the limit is %d", errTooLarge, size, limit))
	return tok
}

// packetLimit is the largest PUBLISH the link sends: the smallest of
// MaxMessageBytes, the broker's Maximum Packet Size (MQTT 5 CONNACK; 0 when
// it has none) and what the protocol can encode.
func (l *MQTTLink) packetLimit(broker uint32) int {
	limit := mqttMaxPacket
	if m := l.opts.MaxMessageBytes; m > 0 {
		limit = min(limit, m)
	}
	if broker > 0 {
		limit = min(limit, int(broker))
	}
	return limit
}

// v3Publisher is an MQTT 3.1.1 connection: no properties, so only the
// payload goes (the envelope carries the headers when asked to). MQTT
// 3.1.1 cannot tell a publisher its message is too large (mosquitto drops
// the connection, or acknowledges and discards it): only limit, from
// MaxMessageBytes, keeps such a message from blocking its partition.
type v3Publisher struct {
	cl    mqtt.Client
	limit int
}

func (p v3Publisher) publish(topic string, payload []byte, _ spoollog.Record) token {
	if n := publish3Size(topic, payload); n > p.limit {
		return refuseTooLarge(n, p.limit)
	}
	return p.cl.Publish(topic, 1, false, payload)
}

// publish3Size is the size of a QoS 1 PUBLISH packet in MQTT 3.1.1: the
// topic with its 2-byte length, the packet id, the payload.
func publish3Size(topic string, payload []byte) int {
	return packetSize(2 + len(topic) + 2 + len(payload))
}

func (p v3Publisher) isOpen() bool { return p.cl.IsConnectionOpen() }
