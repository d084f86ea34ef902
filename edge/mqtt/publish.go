package mqtt

import "github.com/mochi-mqtt/server/v2/packets"

// Publish delivers a message that Spool itself originates (Home Assistant
// discovery, sensor states) to subscribers like any publish, keeping it
// as the topic's retained message when retain is set. It is not a record
// of the log: the ingest hook ignores the broker's own inline client.
func (b *Broker) Publish(topic string, payload []byte, qos byte, retain bool) error {
	return b.deliver(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos, Retain: retain},
		TopicName:   topic,
		Payload:     payload,
	})
}
