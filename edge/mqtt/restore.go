package mqtt

// What a restart must carry over that mochi's stored state does not:
// when a persistent session's client left (its expiry runs from then, not
// from the restart), the delayed wills still to be sent, and the message
// expiry of restored retained and inflight messages. mochi keeps these in
// memory only.

import (
	"bytes"
	"encoding/binary"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
)

// nsLeft holds when a persistent session's client disconnected: client id
// → unix seconds. Deleted when the client connects again.
const nsLeft = "mqtt.left"

// restoredWill is a delayed will of a restored session, due at due.
type restoredWill struct {
	client string
	due    time.Time
}

// sessionExpiry is the expiry mochi applies to a session: the client's own
// for MQTT 5, the server's maximum for MQTT 3.1.1.
func sessionExpiry(c *storage.Client, max uint32) uint32 {
	if c.ProtocolVersion == 5 && c.Properties.SessionExpiryIntervalFlag {
		return c.Properties.SessionExpiryInterval
	}
	return max
}

// restoreClients applies the time the clients left to the stored sessions
// mochi is about to load: a session that expired meanwhile is purged and
// not returned; an MQTT 5 one keeps only the rest of its expiry; a delayed
// will is noted for after the start (h.wills).
func (h *sessionHook) restoreClients(cs []storage.Client) []storage.Client {
	left, err := h.meta.Cursors(nsLeft)
	if err != nil {
		h.lg.Error("reading when MQTT sessions ended failed; their expiry starts now", "error", err)
		return cs
	}
	now := time.Now()
	kept := cs[:0]
	for _, c := range cs {
		b, ok := left[c.ID]
		if !ok || len(b) != 8 {
			kept = append(kept, c)
			continue
		}
		gone := time.Unix(int64(binary.BigEndian.Uint64(b)), 0)
		expiry := time.Duration(sessionExpiry(&c, h.maxExpiry)) * time.Second
		elapsed := now.Sub(gone)
		if elapsed >= expiry {
			h.expired[c.ID] = true
			continue
		}
		if c.ProtocolVersion == 5 && c.Properties.SessionExpiryIntervalFlag {
			c.Properties.SessionExpiryInterval = uint32(max((expiry-elapsed)/time.Second, 1))
		}
		if c.Will.Flag == 1 && c.Will.WillDelayInterval > 0 {
			delay := min(time.Duration(c.Will.WillDelayInterval)*time.Second, expiry)
			h.wills = append(h.wills, restoredWill{client: c.ID, due: gone.Add(delay)})
		}
		kept = append(kept, c)
	}
	return kept
}

// noteLeft stores when a persistent session's client disconnected.
func (h *sessionHook) noteLeft(cl *mqtt.Client) {
	h.put(nsLeft, cl.ID, unixSeconds(time.Now()))
}

type unixSeconds time.Time

func (u unixSeconds) MarshalBinary() ([]byte, error) {
	return binary.BigEndian.AppendUint64(nil, uint64(time.Time(u).Unix())), nil
}

// afterRestore runs once mochi has loaded the stored state: it gives the
// restored retained and inflight messages their expiry back (mochi's
// stored form has none), drops those already expired, and arms the
// delayed wills.
func (b *Broker) afterRestore(wills []restoredWill) {
	now := time.Now().Unix()
	for topic, pk := range b.server.Topics.Retained.GetAll() {
		if pk.Properties.MessageExpiryInterval == 0 {
			continue
		}
		pk.Expiry, pk.ProtocolVersion = pk.Created+int64(pk.Properties.MessageExpiryInterval), 5
		if pk.Expiry < now {
			b.server.Topics.Retained.Delete(topic)
			b.sessions.OnRetainedExpired(topic)
			continue
		}
		b.server.Topics.Retained.Add(topic, pk)
	}
	for _, cl := range b.server.Clients.GetAll() {
		for _, pk := range cl.State.Inflight.GetAll(false) {
			if pk.Properties.MessageExpiryInterval == 0 || pk.FixedHeader.Type != packets.Publish {
				continue
			}
			pk.Expiry, pk.ProtocolVersion = pk.Created+int64(pk.Properties.MessageExpiryInterval), 5
			cl.State.Inflight.Set(pk) // mochi drops it on resend if expired
		}
	}
	for _, w := range wills {
		cl, ok := b.server.Clients.Get(w.client)
		if !ok {
			continue
		}
		time.AfterFunc(max(time.Until(w.due), 0), func() { b.sendRestoredWill(cl) })
	}
}

// sendRestoredWill publishes the delayed will of a restored session whose
// client has not come back: the session is still the restored one.
func (b *Broker) sendRestoredWill(cl *mqtt.Client) {
	if cur, ok := b.server.Clients.Get(cl.ID); !ok || cur != cl || atomic.LoadUint32(&cl.Properties.Will.Flag) == 0 {
		return
	}
	w := cl.Properties.Will
	atomic.StoreUint32(&cl.Properties.Will.Flag, 0)
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: w.Qos, Retain: w.Retain},
		TopicName:   w.TopicName,
		Payload:     w.Payload,
		Properties:  packets.Properties{User: w.User},
		Origin:      cl.ID,
		Created:     time.Now().Unix(),
	}
	b.lg.Info("sending the delayed will of a session restored after a restart", "client", cl.ID, "topic", w.TopicName)
	_ = b.deliver(pk)
	b.storeWill(cl.ID, pk)
	b.sessions.putClient(cl)
}

// tooLargeFor reports whether pk, encoded for cl, exceeds the Maximum
// Packet Size cl asked for: the server must then discard it as if sent
// [MQTT-3.1.2-25]. mochi notices only when writing it, and leaves it
// inflight, where it blocks the client's receive maximum for ever.
func tooLargeFor(cl *mqtt.Client, pk packets.Packet) bool {
	max := cl.Properties.Props.MaximumPacketSize
	if max == 0 {
		return false
	}
	pk.ProtocolVersion = cl.Properties.ProtocolVersion
	pk.Mods.MaxSize = 0
	var buf bytes.Buffer
	if err := pk.PublishEncode(&buf); err != nil {
		return false
	}
	return uint32(buf.Len()) > max
}
