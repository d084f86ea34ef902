package mqtt

import (
	"errors"
	"io"
	"sync/atomic"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Stats are the broker's counters.
type Stats struct {
	Received    int64 // publishes from clients
	Unrouted    int64 // publishes matching no route: delivered live, not stored
	KeyMissing  int64 // routed publishes stored without a key (level or JSON field missing)
	DroppedQoS0 int64 // QoS 0 publishes the log refused (no way to tell the client)
	// Rejected counts publishes the log refused, by reason: full,
	// too_large, error.
	Rejected map[string]int64
	// Disconnects counts connections closed by an error, by cause:
	// malformed, too_large, protocol, auth, io.
	Disconnects     map[string]int64
	AuthFailures    int64
	ACLDenied       int64
	SessionWriteErr int64
	Clients         int64 // connected now
	// DeliveriesDropped counts messages not delivered to a subscriber
	// whose queue (max_queued) or inflight window was full; they remain
	// in the log.
	DeliveriesDropped int64
	Retained          int64 // retained messages held now
	Subscriptions     int64 // filters held, by connected clients and stored sessions
	// Egress: records delivered to MQTT, skipped (the topic template
	// lacked a key or header), and passed over because they came in over
	// MQTT and were delivered live then to the same MQTT topic.
	EgressDelivered, EgressSkipped, EgressFromMQTT int64
	// EgressHeadersDropped counts record headers left out of delivered
	// messages: not UTF-8, with a NUL, or too long for an MQTT 5 property.
	EgressHeadersDropped int64
}

type counters struct {
	received, unrouted, keyMissing, droppedQoS0 atomic.Int64
	rejFull, rejTooLarge, rejError              atomic.Int64
	discMalformed, discTooLarge, discProtocol   atomic.Int64
	discIO                                      atomic.Int64
}

func (c *counters) rejected(reason string) {
	switch reason {
	case "full":
		c.rejFull.Add(1)
	case "too_large":
		c.rejTooLarge.Add(1)
	default:
		c.rejError.Add(1)
	}
}

// countDisconnect classifies why mochi closed a connection.
func (b *Broker) countDisconnect(err error) {
	var code packets.Code
	switch {
	case err == nil, errors.Is(err, packets.ErrServerShuttingDown), errors.Is(err, packets.ErrSessionTakenOver),
		errors.Is(err, packets.CodeDisconnect):
		return
	case errors.Is(err, packets.ErrPacketTooLarge):
		b.stats.discTooLarge.Add(1)
	case errors.As(err, &code) && code.Code == packets.ErrMalformedPacket.Code:
		b.stats.discMalformed.Add(1)
	case errors.As(err, &code) && code.Code == packets.ErrProtocolViolation.Code:
		b.stats.discProtocol.Add(1)
	case errors.Is(err, io.EOF):
		return // the client went away without DISCONNECT: normal for devices
	default:
		b.stats.discIO.Add(1)
	}
}

// countRefused classifies why a connection ended before its session
// existed (mochi calls no hook then): a CONNECT that was too large, did
// not decode, or was refused by the protocol checks. Refused credentials
// are auth failures and a full server is not the client's error.
func (b *Broker) countRefused(err error) {
	var code packets.Code
	switch {
	case err == nil, errors.Is(err, io.EOF),
		errors.Is(err, packets.ErrBadUsernameOrPassword), errors.Is(err, packets.ErrServerBusy):
		return
	case errors.Is(err, packets.ErrPacketTooLarge):
		b.stats.discTooLarge.Add(1)
	case errors.As(err, &code) && code.Code == packets.ErrMalformedPacket.Code:
		b.stats.discMalformed.Add(1)
	case errors.As(err, &code):
		b.stats.discProtocol.Add(1) // a bad protocol name or version, client id, will, first packet
	default:
		b.stats.discIO.Add(1) // including a CONNECT not sent within connectTimeout, a failed TLS handshake
	}
}

// Stats returns a snapshot of the counters.
func (b *Broker) Stats() Stats {
	c := &b.stats
	return Stats{
		Received:    c.received.Load(),
		Unrouted:    c.unrouted.Load(),
		KeyMissing:  c.keyMissing.Load(),
		DroppedQoS0: c.droppedQoS0.Load(),
		Rejected: map[string]int64{
			"full": c.rejFull.Load(), "too_large": c.rejTooLarge.Load(), "error": c.rejError.Load(),
		},
		Disconnects: map[string]int64{
			"malformed": c.discMalformed.Load(), "too_large": c.discTooLarge.Load(),
			"protocol": c.discProtocol.Load(), "io": c.discIO.Load(),
		},
		AuthFailures:    b.auth.failures.Load(),
		ACLDenied:       b.auth.denied.Load(),
		SessionWriteErr: b.sessions.writeErrs.Load(),
		Clients:         atomic.LoadInt64(&b.server.Info.ClientsConnected),
		DeliveriesDropped: atomic.LoadInt64(&b.server.Info.MessagesDropped) +
			atomic.LoadInt64(&b.server.Info.InflightDropped) + b.sessions.tooLarge.Load(),
		Retained:        atomic.LoadInt64(&b.server.Info.Retained),
		Subscriptions:   b.subs.count(),
		EgressDelivered: b.egressStats.delivered.Load(),
		EgressSkipped:   b.egressStats.skipped.Load(),
		EgressFromMQTT:  b.egressStats.fromMQTT.Load(),

		EgressHeadersDropped: b.egressStats.headersDropped.Load(),
	}
}
