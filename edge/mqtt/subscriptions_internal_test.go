package mqtt

import (
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

func TestSubscriptionSet(t *testing.T) {
	s := newSubscriptionSet()
	filters := func(fs ...string) packets.Subscriptions {
		var out packets.Subscriptions
		for _, f := range fs {
			out = append(out, packets.Subscription{Filter: f})
		}
		return out
	}
	check := func(what string, any bool, count int64) {
		t.Helper()
		if s.any() != any || s.count() != count {
			t.Fatalf("%s: any %v count %d, want %v %d", what, s.any(), s.count(), any, count)
		}
	}
	check("empty", false, 0)
	s.begin()
	check("a SUBSCRIBE in progress", true, 0)
	s.granted("c1", filters("a/#", "b", "c"), []byte{1, 0x80, 0x87})
	check("one of three granted", true, 1)
	s.begin()
	s.granted("c1", filters("a/#"), []byte{0})
	check("the same filter again", true, 1)
	s.begin()
	s.granted("c2", filters("a/#"), []byte{2, 0}) // a code short: nothing for a missing one
	check("another client's filter", true, 2)
	s.remove("c1", filters("a/#", "never"))
	check("c1 unsubscribed", true, 1)
	s.remove("c1", filters("a/#"))
	check("an unsubscribe repeated", true, 1)
	s.restore("c3", "x/+")
	s.restore("c3", "x/+")
	check("restored once", true, 2)
	s.remove("c2", filters("a/#"))
	s.remove("c3", filters("x/+"))
	check("all gone", false, 0)
	if len(s.byClient) != 0 {
		t.Errorf("clients left behind: %v", s.byClient)
	}
}
