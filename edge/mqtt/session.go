package mqtt

import (
	"encoding"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
	spoollog "github.com/spoolmq/spool/log"
)

// Namespaces of the MQTT state in the log's metadata store.
const (
	nsClients  = "mqtt.clients"  // client id → storage.Client
	nsSubs     = "mqtt.subs"     // client id NUL filter → storage.Subscription
	nsInflight = "mqtt.inflight" // client id NUL packet id → storage.Message
	nsRetained = "mqtt.retained" // topic → storage.Message
	// nsLeft: restore.go.
)

// sessionWriteDelay is how long session changes are gathered before one
// metadata transaction (one fsync) writes them. The messages themselves
// are already durable in the log; this is the state that says who is
// subscribed to what, what is retained and what is still to be delivered.
const sessionWriteDelay = 50 * time.Millisecond

// sessionHook keeps persistent sessions (clients, subscriptions, inflight
// messages) and retained messages in the metadata store, so that they
// survive a restart. Unlike mochi's bolt hook it stores inflight packet
// ids, so resent messages keep their ids. Writes are gathered for
// sessionWriteDelay and committed together; a timer runs only while there
// is something to write.
type sessionHook struct {
	mqtt.HookBase
	meta *spoollog.Meta
	lg   *slog.Logger

	mu        sync.Mutex
	pending   map[nsKey]*spoollog.CursorChange
	purges    []string        // client ids whose stored state goes
	persisted map[string]bool // client ids with stored state
	timer     *time.Timer
	closed    bool // after the final write: changes are no longer taken
	writeErrs atomic.Int64
	// onRestored is called with the stored subscriptions mochi loads.
	onRestored func([]storage.Subscription)

	// Restoring (restore.go): loading is true while mochi loads the
	// stored state (its OnDisconnect calls for restored clients are not
	// disconnects); expired holds sessions that expired while Spool was
	// down, not handed to mochi; wills are the delayed wills to arm once
	// started, by onStarted. maxExpiry is the server's session expiry.
	loading   bool
	expired   map[string]bool
	wills     []restoredWill
	onStarted func([]restoredWill)
	maxExpiry uint32
	// tooLarge counts QoS 1/2 deliveries discarded for exceeding the
	// subscriber's Maximum Packet Size; owedQuota are the clients whose
	// send quota mochi took for them, to give back (owed: any).
	tooLarge  atomic.Int64
	owedQuota []*mqtt.Client
	owed      atomic.Bool
}

// OnPublished gives back the send quota of discarded deliveries, now that
// mochi has taken it (see OnQosPublish).
func (h *sessionHook) OnPublished(cl *mqtt.Client, pk packets.Packet) {
	if !h.owed.Load() {
		return
	}
	h.mu.Lock()
	owed := h.owedQuota
	h.owedQuota = nil
	h.owed.Store(false)
	h.mu.Unlock()
	for _, c := range owed {
		c.State.Inflight.IncreaseSendQuota()
	}
}

type nsKey struct{ ns, key string }

func newSessionHook(meta *spoollog.Meta, lg *slog.Logger) *sessionHook {
	return &sessionHook{meta: meta, lg: lg, pending: map[nsKey]*spoollog.CursorChange{}, persisted: map[string]bool{},
		expired: map[string]bool{}}
}

func (h *sessionHook) ID() string { return "spool-sessions" }

func (h *sessionHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnSubscribed, mqtt.OnUnsubscribed,
		mqtt.OnRetainMessage, mqtt.OnQosPublish, mqtt.OnQosComplete, mqtt.OnQosDropped,
		mqtt.OnClientExpired, mqtt.OnRetainedExpired, mqtt.OnWillSent, mqtt.OnPacketSent, mqtt.OnStarted, mqtt.OnPublished,
		mqtt.StoredClients, mqtt.StoredSubscriptions, mqtt.StoredInflightMessages, mqtt.StoredRetainedMessages:
		return true
	}
	return false
}

// persistent reports whether cl's session outlives its connection.
func persistent(cl *mqtt.Client) bool {
	if cl.Net.Inline {
		return false
	}
	if cl.Properties.ProtocolVersion == 5 {
		return cl.Properties.Props.SessionExpiryInterval > 0
	}
	return !cl.Properties.Clean
}

func subKey(client, filter string) string { return client + "\x00" + filter }

func inflightKey(client string, id uint16) string { return fmt.Sprintf("%s\x00%05d", client, id) }

func (h *sessionHook) put(ns, key string, v encoding.BinaryMarshaler) {
	b, err := v.MarshalBinary()
	if err != nil {
		h.lg.Error("encoding MQTT session state failed", "namespace", ns, "error", err)
		return
	}
	h.mu.Lock()
	h.pending[nsKey{ns, key}] = &spoollog.CursorChange{NS: ns, Key: key, Value: b}
	h.schedule()
	h.mu.Unlock()
}

func (h *sessionHook) del(ns, key string) {
	h.mu.Lock()
	h.pending[nsKey{ns, key}] = &spoollog.CursorChange{NS: ns, Key: key, Delete: true}
	h.schedule()
	h.mu.Unlock()
}

// purge forgets everything stored for a client.
func (h *sessionHook) purge(client string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.persisted[client] {
		return
	}
	delete(h.persisted, client)
	prefix := client + "\x00"
	for k, c := range h.pending {
		if ((k.ns == nsClients || k.ns == nsLeft) && k.key == client) || ((k.ns == nsSubs || k.ns == nsInflight) && strings.HasPrefix(k.key, prefix)) {
			c.Delete, c.Value = true, nil
		}
	}
	h.pending[nsKey{nsClients, client}] = &spoollog.CursorChange{NS: nsClients, Key: client, Delete: true}
	h.pending[nsKey{nsLeft, client}] = &spoollog.CursorChange{NS: nsLeft, Key: client, Delete: true}
	h.purges = append(h.purges, client)
	h.schedule()
}

// schedule arms the write timer; h.mu is held.
func (h *sessionHook) schedule() {
	if h.timer == nil && !h.closed {
		h.timer = time.AfterFunc(sessionWriteDelay, func() { _ = h.flush() })
	}
}

// flush writes the gathered changes in one transaction. On failure they
// stay pending and are retried with the next change or at Stop.
func (h *sessionHook) flush() error {
	h.mu.Lock()
	h.timer = nil
	pending, purges := h.pending, h.purges
	h.pending, h.purges = map[nsKey]*spoollog.CursorChange{}, nil
	h.mu.Unlock()
	if len(pending) == 0 && len(purges) == 0 {
		return nil
	}

	changes := make([]spoollog.CursorChange, 0, len(pending))
	// A purge deletes stored keys of the client that no later change
	// rewrote (a reconnect may subscribe again before the write).
	for _, ns := range []string{nsSubs, nsInflight} {
		if len(purges) == 0 {
			break
		}
		stored, err := h.meta.Cursors(ns)
		if err != nil {
			h.restore(pending, purges)
			return h.failed(err)
		}
		for k := range stored {
			for _, c := range purges {
				if strings.HasPrefix(k, c+"\x00") {
					if _, ok := pending[nsKey{ns, k}]; !ok {
						changes = append(changes, spoollog.CursorChange{NS: ns, Key: k, Delete: true})
					}
				}
			}
		}
	}
	for _, c := range pending {
		changes = append(changes, *c)
	}
	if err := h.meta.ApplyCursors(changes); err != nil {
		h.restore(pending, purges)
		return h.failed(err)
	}
	return nil
}

// restore puts changes that failed to write back in front of newer ones.
func (h *sessionHook) restore(pending map[nsKey]*spoollog.CursorChange, purges []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, c := range pending {
		if _, newer := h.pending[k]; !newer {
			h.pending[k] = c
		}
	}
	h.purges = append(purges, h.purges...)
}

func (h *sessionHook) failed(err error) error {
	h.writeErrs.Add(1)
	h.lg.Error("writing MQTT sessions and retained messages failed; will retry", "error", err)
	return err
}

// Stop writes whatever is pending; mochi calls it when it closes.
func (h *sessionHook) Stop() error { return h.flush() }

// close writes whatever is pending, for the last time: the broker calls it
// after the last publish finished, before the metadata store closes.
func (h *sessionHook) close() error {
	h.mu.Lock()
	h.closed = true
	if h.timer != nil {
		h.timer.Stop()
	}
	h.mu.Unlock()
	return h.flush()
}

func (h *sessionHook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	if !persistent(cl) {
		h.purge(cl.ID) // a clean start replaces a stored session
		return
	}
	h.mu.Lock()
	h.persisted[cl.ID] = true
	h.mu.Unlock()
	h.putClient(cl)
	h.del(nsLeft, cl.ID) // connected again
}

func (h *sessionHook) OnWillSent(cl *mqtt.Client, pk packets.Packet) {
	if persistent(cl) {
		h.putClient(cl)
	}
}

func (h *sessionHook) putClient(cl *mqtt.Client) {
	props := cl.Properties.Props.Copy(false)
	h.put(nsClients, cl.ID, &storage.Client{
		ID:              cl.ID,
		T:               storage.ClientKey,
		Remote:          cl.Net.Remote,
		Listener:        cl.Net.Listener,
		Username:        cl.Properties.Username,
		Clean:           cl.Properties.Clean,
		ProtocolVersion: cl.Properties.ProtocolVersion,
		Properties: storage.ClientProperties{
			SessionExpiryInterval:     props.SessionExpiryInterval,
			SessionExpiryIntervalFlag: props.SessionExpiryIntervalFlag,
			AuthenticationMethod:      props.AuthenticationMethod,
			AuthenticationData:        props.AuthenticationData,
			RequestProblemInfo:        props.RequestProblemInfo,
			RequestProblemInfoFlag:    props.RequestProblemInfoFlag,
			RequestResponseInfo:       props.RequestResponseInfo,
			ReceiveMaximum:            props.ReceiveMaximum,
			TopicAliasMaximum:         props.TopicAliasMaximum,
			User:                      props.User,
			MaximumPacketSize:         props.MaximumPacketSize,
		},
		Will: storage.ClientWill(cl.Properties.Will),
	})
}

func (h *sessionHook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	switch {
	case cl.StopCause() == packets.ErrSessionTakenOver:
	case expire:
		h.purge(cl.ID)
	case h.isLoading() || !persistent(cl):
	default:
		// A DISCONNECT may have changed the session expiry; the clock
		// starts now (restore.go).
		h.putClient(cl)
		h.noteLeft(cl)
	}
}

func (h *sessionHook) isLoading() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.loading
}

// OnStarted ends the loading of the stored state and arms what it left
// to do (restore.go).
func (h *sessionHook) OnStarted() {
	h.mu.Lock()
	h.loading = false
	wills := h.wills
	h.wills = nil
	for c := range h.expired {
		h.persisted[c] = true // so that purge deletes what is stored
	}
	expired := h.expired
	h.expired = map[string]bool{}
	h.mu.Unlock()
	for c := range expired {
		h.lg.Info("MQTT session expired while Spool was stopped", "client", c)
		h.purge(c)
	}
	if h.onStarted != nil {
		h.onStarted(wills)
	}
}

// OnPacketSent keeps the state of an outbound QoS 2 message once its PUBREL
// is sent: after a restart the PUBREL is resent, not the message again.
func (h *sessionHook) OnPacketSent(cl *mqtt.Client, pk packets.Packet, b []byte) {
	if pk.FixedHeader.Type != packets.Pubrel || !persistent(cl) {
		return
	}
	k := inflightKey(cl.ID, pk.PacketID)
	h.put(nsInflight, k, message(storage.InflightKey, k, cl.ID, pk))
}

func (h *sessionHook) OnClientExpired(cl *mqtt.Client) { h.purge(cl.ID) }

func (h *sessionHook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	if !persistent(cl) {
		return
	}
	for i, f := range pk.Filters {
		if i >= len(codes) || codes[i] >= 0x80 {
			continue
		}
		h.put(nsSubs, subKey(cl.ID, f.Filter), &storage.Subscription{
			ID:                subKey(cl.ID, f.Filter),
			T:                 storage.SubscriptionKey,
			Client:            cl.ID,
			Qos:               codes[i],
			Filter:            f.Filter,
			Identifier:        f.Identifier,
			NoLocal:           f.NoLocal,
			RetainHandling:    f.RetainHandling,
			RetainAsPublished: f.RetainAsPublished,
		})
	}
}

func (h *sessionHook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	if !persistent(cl) {
		return
	}
	for _, f := range pk.Filters {
		h.del(nsSubs, subKey(cl.ID, f.Filter))
	}
}

func (h *sessionHook) OnRetainMessage(cl *mqtt.Client, pk packets.Packet, r int64) {
	if r == -1 {
		h.del(nsRetained, pk.TopicName)
		return
	}
	h.put(nsRetained, pk.TopicName, message(storage.RetainedKey, pk.TopicName, cl.ID, pk))
}

func (h *sessionHook) OnRetainedExpired(topic string) { h.del(nsRetained, topic) }

func (h *sessionHook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, sent int64, resends int) {
	if pk.FixedHeader.Type == packets.Publish && tooLargeFor(cl, pk) {
		// Discarded as if sent: out of the inflight. mochi takes one of
		// the client's send quota after this hook: it is given back once
		// the publish is done (OnPublished).
		cl.State.Inflight.Delete(pk.PacketID)
		h.mu.Lock()
		h.owedQuota = append(h.owedQuota, cl)
		h.mu.Unlock()
		h.owed.Store(true)
		h.tooLarge.Add(1)
		h.lg.Debug("a message larger than the subscriber's maximum packet size was not sent", "client", cl.ID, "topic", pk.TopicName)
		return
	}
	if !persistent(cl) {
		return
	}
	k := inflightKey(cl.ID, pk.PacketID)
	m := message(storage.InflightKey, k, cl.ID, pk)
	m.Sent = sent
	h.put(nsInflight, k, m)
}

func (h *sessionHook) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	if persistent(cl) {
		h.del(nsInflight, inflightKey(cl.ID, pk.PacketID))
	}
}

func (h *sessionHook) OnQosDropped(cl *mqtt.Client, pk packets.Packet) { h.OnQosComplete(cl, pk) }

func message(typ, id, client string, pk packets.Packet) *storage.Message {
	props := pk.Properties.Copy(false)
	return &storage.Message{
		ID:          id,
		T:           typ,
		Client:      client,
		Origin:      pk.Origin,
		FixedHeader: pk.FixedHeader,
		TopicName:   pk.TopicName,
		Payload:     pk.Payload,
		Created:     pk.Created,
		PacketID:    pk.PacketID,
		Properties: storage.MessageProperties{
			PayloadFormat:          props.PayloadFormat,
			PayloadFormatFlag:      props.PayloadFormatFlag,
			MessageExpiryInterval:  props.MessageExpiryInterval,
			ContentType:            props.ContentType,
			ResponseTopic:          props.ResponseTopic,
			CorrelationData:        props.CorrelationData,
			SubscriptionIdentifier: props.SubscriptionIdentifier,
			User:                   props.User,
		},
	}
}

// load decodes every value of a namespace with dec.
func load[T any](h *sessionHook, ns string, dec func([]byte) (T, error)) ([]T, error) {
	all, err := h.meta.Cursors(ns)
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(all))
	for k, b := range all {
		v, err := dec(b)
		if err != nil {
			// One bad record must not lose every session: skip it, loudly.
			h.lg.Error("skipping unreadable MQTT state", "namespace", ns, "key", k, "error", err)
			continue
		}
		out = append(out, v)
	}
	return out, nil
}

func (h *sessionHook) StoredClients() ([]storage.Client, error) {
	cs, err := load(h, nsClients, func(b []byte) (c storage.Client, err error) { return c, c.UnmarshalBinary(b) })
	h.mu.Lock()
	h.loading = true
	h.mu.Unlock()
	cs = h.restoreClients(cs)
	h.mu.Lock()
	for _, c := range cs {
		h.persisted[c.ID] = true
	}
	h.mu.Unlock()
	return cs, err
}

func (h *sessionHook) StoredSubscriptions() ([]storage.Subscription, error) {
	subs, err := load(h, nsSubs, func(b []byte) (s storage.Subscription, err error) { return s, s.UnmarshalBinary(b) })
	subs = slices.DeleteFunc(subs, func(s storage.Subscription) bool { return h.expired[s.Client] })
	if len(subs) > 0 && h.onRestored != nil {
		h.onRestored(subs)
	}
	return subs, err
}

func (h *sessionHook) StoredInflightMessages() ([]storage.Message, error) {
	ms, err := load(h, nsInflight, func(b []byte) (m storage.Message, err error) { return m, m.UnmarshalBinary(b) })
	return slices.DeleteFunc(ms, func(m storage.Message) bool { return h.expired[m.Client] }), err
}

func (h *sessionHook) StoredRetainedMessages() ([]storage.Message, error) {
	return load(h, nsRetained, func(b []byte) (m storage.Message, err error) { return m, m.UnmarshalBinary(b) })
}
