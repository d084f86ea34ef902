package mqtt

import (
	"bytes"
	"errors"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	spoollog "github.com/spoolmq/spool/log"
)

// ingestHook turns publishes into log appends and takes acknowledgement
// away from mochi (see clientQueue).
type ingestHook struct {
	mqtt.HookBase
	b *Broker
}

func (h *ingestHook) ID() string { return "spool-ingest" }

func (h *ingestHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnPublish, mqtt.OnDisconnect, mqtt.OnConnect, mqtt.OnSessionEstablished,
		mqtt.OnSubscribe, mqtt.OnSubscribed, mqtt.OnUnsubscribed, mqtt.OnClientExpired,
		mqtt.OnPacketRead, mqtt.OnPacketEncode, mqtt.OnWillSent:
		return true
	}
	return false
}

// OnPacketRead takes the PUBREC of a stored QoS 2 publish out of the
// session when the publish is resent with DUP, so that the resend reaches
// OnPublish (see qos2Arrivals.storedResend); settling it puts the PUBREC
// back.
func (h *ingestHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type == packets.Subscribe || pk.FixedHeader.Type == packets.Unsubscribe {
		return h.b.ids.swapIn(cl, pk), nil // packetids.go
	}
	if pk.FixedHeader.Type == packets.Disconnect && pk.Properties.SessionExpiryIntervalFlag {
		// mochi caps the session expiry of CONNECT, not of DISCONNECT.
		pk.Properties.SessionExpiryInterval = min(pk.Properties.SessionExpiryInterval, h.b.sessions.maxExpiry)
		return pk, nil
	}
	if pk.FixedHeader.Type != packets.Publish || pk.FixedHeader.Qos != 2 || !pk.FixedHeader.Dup || cl == h.b.inline {
		return pk, nil
	}
	if pki, ok := cl.State.Inflight.Get(pk.PacketID); ok && pki.FixedHeader.Type == packets.Pubrec {
		h.b.qos2.storedResend(qos2Key{cl.ID, pk.PacketID})
		cl.State.Inflight.Delete(pk.PacketID)
	}
	return pk, nil
}

// OnPacketEncode gives a SUBACK or UNSUBACK the client's own packet id
// back (packetids.go).
func (h *ingestHook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	return h.b.ids.swapOut(cl, pk)
}

// OnClientExpired removes an expired session's subscriptions from mochi's
// topic index, which mochi does not do itself: they would go on counting,
// and a later client with the same id would receive what they match
// without ever subscribing. Removing them reports OnUnsubscribed.
func (h *ingestHook) OnClientExpired(cl *mqtt.Client) {
	h.b.server.UnsubscribeClient(cl)
}

// OnSubscribe notes, before mochi adds the subscription, that deliveries
// may have someone to go to (see deliver).
func (h *ingestHook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	h.b.subs.begin()
	return pk
}

// OnSubscribed keeps the filters mochi granted.
func (h *ingestHook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	h.b.subs.granted(cl.ID, pk.Filters, codes)
}

// OnUnsubscribed drops filters mochi removed: an UNSUBSCRIBE, or every
// filter of a session that ended or expired.
func (h *ingestHook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	h.b.subs.remove(cl.ID, pk.Filters)
}

// OnSessionEstablished notes that mochi now owns the connection's end:
// it will call OnDisconnect, and disconnect it at Close.
func (h *ingestHook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Conn != nil {
		h.b.conns.established(cl.Net.Conn)
	}
}

// OnConnect caps the keepalive a client asks for. MQTT 5 clients are told
// the server keepalive; MQTT 3.1.1 has no way to say it.
func (h *ingestHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	// No topic aliases towards the client: mochi keeps the alias-only
	// PUBLISH inflight, and resends it so on a new connection, where the
	// alias means nothing (a protocol error), or empty after a restart.
	cl.Properties.Props.TopicAliasMaximum = 0
	max := h.b.maxKeepalive
	if cl.Properties.ProtocolVersion == 5 && (cl.State.Keepalive == 0 || cl.State.Keepalive > max) {
		cl.State.Keepalive = max
		cl.State.ServerKeepalive = true
	}
	return nil
}

// OnPublish queues the publish for a durable append and returns
// ErrRejectPacket so that mochi neither acknowledges nor delivers it: the
// queue does both once the log has it. Publishes that match no route are
// queued too, so that a connection's acknowledgements stay in order.
func (h *ingestHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	b := h.b
	if cl == b.inline {
		// Our own redelivery: let mochi deliver it, as from the client
		// that published it (mochi made the origin ours: No Local would
		// never match).
		if pk.Connect.ClientIdentifier != "" {
			pk.Origin, pk.Connect.ClientIdentifier = pk.Connect.ClientIdentifier, ""
		}
		return pk, nil
	}
	b.stats.received.Add(1)
	q := b.queue(cl)
	p := q.push(pk)
	if pk.FixedHeader.Qos == 2 {
		b.qos2.arrive(qos2Key{cl.ID, pk.PacketID}, p, func(err error) { q.complete(p, err) })
		if p.resend {
			return pk, packets.ErrRejectPacket // it follows the first one
		}
	}

	if !b.auth.mayPublish(cl, pk.TopicName) {
		q.complete(p, errNotAuthorized)
		return pk, packets.ErrRejectPacket
	}
	rt := b.router.match(pk.TopicName)
	if rt == nil {
		b.stats.unrouted.Add(1)
		q.complete(p, nil)
		return pk, packets.ErrRejectPacket
	}
	if err := b.appendPublish(rt, &pk, cl.ID, p.onAppend); err != nil {
		q.complete(p, err)
	}
	return pk, packets.ErrRejectPacket
}

// appendPublish encodes pk as a record of its route's topic, keyed as the
// route says, and queues it; done is called once it is durable or failed.
// An error found before queueing is returned and done is not called.
func (b *Broker) appendPublish(rt *route, pk *packets.Packet, clientID string, done func(spoollog.AppendResult, error)) error {
	e := encoders.Get().(*recordEncoder)
	defer e.put()
	key, ok := rt.recordKey(e, pk, clientID)
	if !ok {
		b.stats.keyMissing.Add(1)
	}
	enc, err := e.appendRecord(pk, key, time.Now().UnixMilli())
	if err != nil {
		return err
	}
	part, err := rt.topic.Partition(rt.topic.PartitionFor(key, len(enc)))
	if err != nil {
		return err
	}
	return part.AppendOwnAsync(enc, done) // it copies enc into the partition's queue
}

// OnDisconnect forgets the connection's queue; publishes still waiting
// for the log keep their own reference and finish against the closed
// connection (the client resends whatever it did not see acknowledged).
//
// err is what the read loop met. When the broker itself stopped the
// client first (a refused publish or an ACL on MQTT 3.1.1, a takeover,
// shutdown), that read error is only the broker's own close: the cause
// was counted where it was decided, not as a disconnect.
func (h *ingestHook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	h.b.queues.Delete(cl)
	h.b.ids.forget(cl)
	if cause := cl.StopCause(); cause != nil && !errors.Is(cause, err) {
		return
	}
	h.b.countDisconnect(err)
}

// settle decides one completed publish: it appends its acknowledgement
// (positive, or negative for MQTT 5) to acks and reports whether it is to
// be delivered. A refused MQTT 3.1.1 QoS 1/2 publish closes the connection.
func (b *Broker) settle(cl *mqtt.Client, p *pending, acks []byte) ([]byte, bool) {
	pk := &p.pk
	if p.arrival != nil {
		// Once settled, mochi finds resends in the inflight PUBREC (or,
		// refused, the client's resend is a new arrival).
		defer b.qos2.settled(qos2Key{cl.ID, pk.PacketID}, p.arrival)
	}
	if p.err != nil {
		return b.reject(cl, pk, p.err, acks), false
	}
	switch pk.FixedHeader.Qos {
	case 1:
		acks = encodeAck(cl, acks, ackPacket(packets.Puback, pk.PacketID, packets.CodeSuccess))
	case 2:
		// The PUBREC stays inflight until PUBREL; mochi completes the
		// flow. It goes to the session the publish belongs to now, which
		// may be another connection's, or none.
		ack := ackPacket(packets.Pubrec, pk.PacketID, packets.CodeSuccess)
		if s := b.qos2Session(cl); s != nil && s.State.Inflight.Set(ack) {
			b.sessions.OnQosPublish(s, ack, ack.Created, 0)
		}
		acks = encodeAck(cl, acks, ack)
	}
	return acks, !p.resend
}

// encodeAck appends the wire form of an acknowledgement for cl.
func encodeAck(cl *mqtt.Client, dst []byte, ack packets.Packet) []byte {
	ack.ProtocolVersion = cl.Properties.ProtocolVersion
	if cl.Properties.Props.RequestProblemInfoFlag && cl.Properties.Props.RequestProblemInfo == 0 {
		ack.Mods.DisallowProblemInfo = true // [MQTT-3.1.2-29]
	}
	buf := bytes.NewBuffer(dst)
	var err error
	if ack.FixedHeader.Type == packets.Pubrec {
		err = ack.PubrecEncode(buf)
	} else {
		err = ack.PubackEncode(buf)
	}
	if err != nil {
		return dst
	}
	return buf.Bytes()
}

// writeAcks sends a run of acknowledgements in one write. mochi's
// WritePacket would make one system call per acknowledgement, the largest
// cost of ingest on a small board. The client's lock keeps the write
// whole between mochi's own packets.
func writeAcks(cl *mqtt.Client, acks []byte) {
	if len(acks) == 0 || cl.Net.Conn == nil || cl.Closed() {
		return
	}
	cl.Lock()
	_, err := cl.Net.Conn.Write(acks)
	cl.Unlock()
	if err != nil {
		cl.Stop(err)
	}
}

// deliver hands a stored publish back to mochi through our inline client,
// which delivers it to subscribers and keeps it if it is retained.
func (b *Broker) deliver(pk packets.Packet) error {
	if !pk.FixedHeader.Retain && !b.subs.any() {
		// Nobody subscribes and there is nothing to keep: skip mochi's
		// second pass through the hooks and the topic index.
		return nil
	}
	pk.Properties.TopicAlias, pk.Properties.TopicAliasFlag = 0, false
	// The publisher's id rides in a field a PUBLISH does not use, past
	// mochi's stamping of the inline client's id (see OnPublish).
	pk.Connect.ClientIdentifier = pk.Origin
	if pk.FixedHeader.Qos > 0 && pk.PacketID == 0 {
		pk.PacketID = 1 // mochi checks there is one; each subscriber gets its own
	}
	err := b.server.InjectPacket(b.inline, pk)
	if err != nil {
		b.lg.Warn("delivering a stored publish failed", "topic", pk.TopicName, "error", err)
	}
	return err
}

// reject refuses a publish the log did not store. MQTT 5 gets a negative
// acknowledgement with a reason code; MQTT 3.1.1 has no way to say no, so
// the connection is closed: the client keeps the message and resends it.
// QoS 0 has no acknowledgement: the drop is counted and logged.
func (b *Broker) reject(cl *mqtt.Client, pk *packets.Packet, err error, acks []byte) []byte {
	code := packets.ErrUnspecifiedError
	reason := "error"
	switch {
	case errors.Is(err, errNotAuthorized):
		// Counted by the ACL; QoS 0 is dropped quietly, as mochi does.
		if pk.FixedHeader.Qos == 0 {
			return acks
		}
		return b.refuse(cl, pk, packets.ErrNotAuthorized, err, acks)
	case errors.Is(err, spoollog.ErrFull):
		code, reason = packets.ErrQuotaExceeded, "full"
	case errors.Is(err, spoollog.ErrTooLarge):
		code, reason = packets.ErrPacketTooLarge, "too_large"
	}
	b.stats.rejected(reason)
	b.lg.Warn("publish not stored", "client", cl.ID, "topic", pk.TopicName, "qos", pk.FixedHeader.Qos, "error", err)
	if pk.FixedHeader.Qos == 0 {
		b.stats.droppedQoS0.Add(1)
		return acks
	}
	return b.refuse(cl, pk, code, err, acks)
}

// errNotAuthorized marks a publish the client's ACL does not allow.
var errNotAuthorized = errors.New("not authorized to publish to this topic")

// refuse answers a QoS 1/2 publish with a negative acknowledgement
// (MQTT 5) or by closing the connection (MQTT 3.1.1).
func (b *Broker) refuse(cl *mqtt.Client, pk *packets.Packet, code packets.Code, err error, acks []byte) []byte {
	if cl.Properties.ProtocolVersion < 5 {
		// Acknowledgements before this one still go out; nothing after it.
		writeAcks(cl, acks)
		cl.Stop(code)
		return nil
	}
	typ := byte(packets.Puback)
	if pk.FixedHeader.Qos == 2 {
		typ = packets.Pubrec
	}
	ack := ackPacket(typ, pk.PacketID, code)
	ack.Properties.ReasonString = err.Error()
	return encodeAck(cl, acks, ack)
}

func ackPacket(typ byte, id uint16, code packets.Code) packets.Packet {
	now := time.Now().Unix()
	return packets.Packet{
		FixedHeader: packets.FixedHeader{Type: typ},
		PacketID:    id,
		ReasonCode:  code.Code,
		Created:     now,
		Expiry:      now + 24*3600,
	}
}
