package mqtt

import (
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// QoS 2 publishes must be stored once however often a client resends
// them. mochi checks a resend against the session's inflight PUBREC, but
// Spool writes that PUBREC only once the append is durable: a client whose
// link drops while the append waits for its fsync reconnects, resends with
// DUP set, and mochi finds nothing. qos2Arrivals covers that window: a
// publish from the same client id with the same packet id while the first
// is not yet settled follows the first's outcome instead of being appended
// again.

type qos2Key struct {
	client string
	id     uint16
}

// qos2Arrival is a QoS 2 publish between its arrival and its settling.
type qos2Arrival struct {
	done    bool
	err     error
	waiters []func(error) // resends waiting for the outcome
	// stored marks a publish settled earlier whose resend (DUP) was taken
	// back from mochi (storedResend): the next DUP arrival follows it,
	// once, and the entry goes. The resend reaches OnPublish right after,
	// unless mochi dropped it as malformed; storedAt lets such an entry
	// expire rather than wait for a later publish reusing the id.
	stored   bool
	storedAt time.Time
}

// storedResendTTL bounds how long a taken-back resend waits for its
// OnPublish. Past it, a resend is stored again: a duplicate, never a loss.
const storedResendTTL = 10 * time.Second

type qos2Arrivals struct {
	mu sync.Mutex
	m  map[qos2Key]*qos2Arrival
}

// arrive registers p, a QoS 2 publish, as its key's arrival; or, if one
// with the same key is not yet settled, marks p a resend that follows that
// one's outcome: follow is called with it (at once if it is known), and
// the caller does not append. p's fields are set under the lock, before
// anyone else can see p.
func (a *qos2Arrivals) arrive(k qos2Key, p *pending, follow func(error)) {
	a.mu.Lock()
	prev := a.m[k]
	if prev != nil && prev.stored {
		delete(a.m, k)
		if !p.pk.FixedHeader.Dup || time.Since(prev.storedAt) > storedResendTTL {
			prev = nil // a new publish reusing the id, not the resend
		}
	}
	switch {
	case prev == nil:
		if a.m == nil {
			a.m = map[qos2Key]*qos2Arrival{}
		}
		p.arrival = &qos2Arrival{}
		a.m[k] = p.arrival
		a.mu.Unlock()
	case !prev.done:
		p.resend = true
		prev.waiters = append(prev.waiters, follow)
		a.mu.Unlock()
	default:
		p.resend = true
		err := prev.err
		a.mu.Unlock()
		follow(err)
	}
}

// completed records the append's outcome and passes it to the resends.
func (a *qos2Arrivals) completed(arr *qos2Arrival, err error) {
	a.mu.Lock()
	arr.done, arr.err = true, err
	waiters := arr.waiters
	arr.waiters = nil
	a.mu.Unlock()
	for _, w := range waiters {
		w(err)
	}
}

// storedResend notes that a QoS 2 publish already stored and settled is
// being resent: its PUBREC was in the session, and the caller took it out
// so that mochi hands the resend to OnPublish instead of answering 0x91
// (packet identifier in use), a failure code to an MQTT 5 client, where
// MQTT-4.3.3-10 asks for the PUBREC again. The resend then follows the
// stored outcome: acknowledged, not stored or delivered again.
func (a *qos2Arrivals) storedResend(k qos2Key) {
	a.mu.Lock()
	if a.m == nil {
		a.m = map[qos2Key]*qos2Arrival{}
	}
	a.m[k] = &qos2Arrival{done: true, stored: true, storedAt: time.Now()}
	a.mu.Unlock()
}

// settled forgets the publish once its PUBREC is in the session's
// inflight, where mochi finds later resends itself.
func (a *qos2Arrivals) settled(k qos2Key, arr *qos2Arrival) {
	a.mu.Lock()
	if a.m[k] == arr {
		delete(a.m, k)
	}
	a.mu.Unlock()
}

// qos2Session is the session a QoS 2 publish's PUBREC belongs to: cl's;
// or, when cl's connection was taken over by one that continues its
// session, the new connection's (mochi copied the inflight messages
// before this PUBREC existed); or nil when the session ended or a clean
// start discarded it, where a stored PUBREC would come back after a
// restart into a session that never sent the publish.
func (b *Broker) qos2Session(cl *mqtt.Client) *mqtt.Client {
	live, ok := b.server.Clients.Get(cl.ID)
	switch {
	case !ok:
		return nil
	case live == cl:
		return cl
	case live.Properties.Clean:
		return nil
	default:
		return live
	}
}
