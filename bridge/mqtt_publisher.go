package bridge

import (
	mqtt "github.com/eclipse/paho.mqtt.golang"

	spoollog "github.com/spoolmq/spool/log"
)

// publisher is one upstream MQTT connection as a mirror uses it: MQTT
// 3.1.1 through paho.mqtt.golang, or MQTT 5 through paho.golang.
type publisher interface {
	// publish sends one QoS 1 message for record r; the token completes
	// at its PUBACK (or fails).
	publish(topic string, payload []byte, r spoollog.Record) token
	// isOpen is false once the connection is known to be lost.
	isOpen() bool
}

// token is a publish waiting for its PUBACK; mqtt.Token is one.
type token interface {
	Done() <-chan struct{}
	Error() error
}

// v3Publisher is an MQTT 3.1.1 connection: no properties, so only the
// payload goes (the envelope carries the headers when asked to).
type v3Publisher struct{ cl mqtt.Client }

func (p v3Publisher) publish(topic string, payload []byte, _ spoollog.Record) token {
	return p.cl.Publish(topic, 1, false, payload)
}

func (p v3Publisher) isOpen() bool { return p.cl.IsConnectionOpen() }
