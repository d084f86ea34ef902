package mqtt

import (
	"errors"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	spoollog "github.com/spoolmq/spool/log"
)

// OnWillSent stores a will message in the log like a publish of its
// client, routed by its topic: mochi publishes wills to subscribers
// itself, past OnPublish, and a device's "offline" would otherwise be
// missing from the data it went with. Nobody waits for an
// acknowledgement: a will that cannot be stored is counted (rejected)
// and logged.
func (h *ingestHook) OnWillSent(cl *mqtt.Client, pk packets.Packet) {
	h.b.storeWill(cl.ID, pk)
}

func (b *Broker) storeWill(clientID string, pk packets.Packet) {
	rt := b.router.match(pk.TopicName)
	if rt == nil {
		b.stats.unrouted.Add(1)
		return
	}
	b.stats.received.Add(1)
	err := b.appendPublish(rt, &pk, clientID, func(_ spoollog.AppendResult, err error) {
		if err != nil {
			b.willLost(clientID, pk.TopicName, err)
		}
	})
	if err != nil {
		b.willLost(clientID, pk.TopicName, err)
	}
}

func (b *Broker) willLost(clientID, topic string, err error) {
	reason := "error"
	switch {
	case errors.Is(err, spoollog.ErrFull):
		reason = "full"
	case errors.Is(err, spoollog.ErrTooLarge):
		reason = "too_large"
	}
	b.stats.rejected(reason)
	b.lg.Warn("a will message was published but could not be stored in the log", "client", clientID, "topic", topic, "error", err)
}
