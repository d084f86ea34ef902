package mqtt

import (
	"sync"
	"sync/atomic"

	"github.com/mochi-mqtt/server/v2/packets"
)

// subscriptionSet knows whether mochi holds any subscription, so that a
// stored publish nobody subscribes to skips mochi's second pass through
// its hooks and topic index (deliver): on a pure ingest load that pass is
// the largest cost after the socket reads.
//
// It mirrors mochi's topic index, keyed by client id and filter as that
// index is: mochi's own count (Info.Subscriptions) misses restored
// sessions. A session taken over keeps its client id and its filters, so
// needs no update; mochi reports every other removal through
// OnUnsubscribed (an UNSUBSCRIBE, a clean session's end), and so does the
// ingest hook for an expiry (OnClientExpired), which mochi does not.
type subscriptionSet struct {
	mu       sync.Mutex
	byClient map[string]map[string]struct{}
	held     atomic.Int64 // filters in byClient
	// pending counts SUBSCRIBE packets in progress: a subscription counts
	// from before mochi adds it to its index, so that a publish stored
	// meanwhile is not skipped.
	pending atomic.Int64
}

func newSubscriptionSet() *subscriptionSet {
	return &subscriptionSet{byClient: map[string]map[string]struct{}{}}
}

// any reports whether a publish may have somebody to go to.
func (s *subscriptionSet) any() bool { return s.pending.Load() > 0 || s.held.Load() > 0 }

// count is the number of subscriptions held.
func (s *subscriptionSet) count() int64 { return s.held.Load() }

// begin notes a SUBSCRIBE packet mochi is about to process (OnSubscribe).
func (s *subscriptionSet) begin() { s.pending.Add(1) }

// granted ends a SUBSCRIBE begun with begin: the filters mochi granted
// (a code below 0x80) are held from now on (OnSubscribed).
func (s *subscriptionSet) granted(client string, filters packets.Subscriptions, codes []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range filters {
		if i < len(codes) && codes[i] < 0x80 {
			s.addLocked(client, f.Filter)
		}
	}
	s.pending.Add(-1)
}

// restore adds a subscription mochi loaded from a stored session.
func (s *subscriptionSet) restore(client, filter string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addLocked(client, filter)
}

func (s *subscriptionSet) addLocked(client, filter string) {
	fs := s.byClient[client]
	if fs == nil {
		fs = map[string]struct{}{}
		s.byClient[client] = fs
	}
	if _, ok := fs[filter]; !ok {
		fs[filter] = struct{}{}
		s.held.Add(1)
	}
}

// remove drops a client's filters (OnUnsubscribed).
func (s *subscriptionSet) remove(client string, filters packets.Subscriptions) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fs := s.byClient[client]
	for _, f := range filters {
		if _, ok := fs[f.Filter]; ok {
			delete(fs, f.Filter)
			s.held.Add(-1)
		}
	}
	if len(fs) == 0 {
		delete(s.byClient, client)
	}
}
