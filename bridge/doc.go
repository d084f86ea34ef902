// Package bridge mirrors local log topics to upstream systems and back.
//
// A link is a consumer of the local log (ARCHITECTURE.md, decision 6): it
// keeps one cursor per (link, topic, partition) in the log's metadata store,
// the next local offset to mirror, and advances it only after the upstream
// acknowledged every record below it. A crash or an outage therefore causes
// resends, never a gap. Every mirrored record carries origin headers
// (spool.edge, spool.topic, spool.partition, spool.offset) so upstream
// consumers can recognise the resends. MQTTLink (MQTT 3.1.1, which has no
// headers) says the origin through its topic template and, with its
// Envelope option, a JSON envelope carrying the same four fields; without
// the envelope a resend is recognisable only by its content.
//
// The cursor also pins the local partition's retention (Partition.Pin):
// records a link has not mirrored are deleted only under an explicit
// on_full: drop_oldest policy, and a link that finds its cursor below the log
// start counts and logs the skipped offsets as a gap (decision 5). The
// cursor is stored as soon as the link is built, even if it never moves,
// so a restart finds what the link owed.
//
// A record the upstream refuses on its own as too large (MESSAGE_TOO_LARGE
// for a round of that one record; rounds of several are halved and
// retried) can never be mirrored: the link moves past it, counts it in
// Health.Skipped and logs it with its offset, rather than blocking the
// partition for ever. It stays in the local log. An MQTT link does the
// same for a PUBACK with reason 0x95 (MQTT 5), and refuses before sending
// a message over the broker's Maximum Packet Size (MQTT 5 CONNACK) or
// MQTTLinkOptions.MaxMessageBytes: MQTT 3.1.1 cannot say "too large".
//
// A local topic deleted while a link runs retires its mirrors (pin and
// cursor released); AddTopics mirrors a topic created again under the same
// name from its log start.
//
// This package imports only the log, franz-go, paho and the standard
// library; wiring links into `spool serve` belongs to edge.
package bridge
