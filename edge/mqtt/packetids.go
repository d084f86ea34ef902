package mqtt

import (
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Packet identifiers are per direction [MQTT-2.2.1]: the ids a client
// gives its SUBSCRIBE and UNSUBSCRIBE packets have nothing to do with the
// ids the server gives the messages it sends. mochi keeps both in one
// inflight map and answers a SUBSCRIBE whose id an outgoing message uses
// with 0x91 (packet identifier in use), which a client subscribing right
// after it was sent retained messages meets often (and an MQTT 3.1.1
// client cannot even read). So such a SUBSCRIBE or UNSUBSCRIBE is handed
// to mochi under a free id, and its SUBACK or UNSUBACK goes out under the
// client's own.

// packetIDSwaps maps, per client, the stand-in ids given to its
// SUBSCRIBE and UNSUBSCRIBE packets to the ids the client chose.
type packetIDSwaps struct {
	mu sync.Mutex
	m  map[*mqtt.Client]map[uint16]uint16
}

// swapIn gives pk a free stand-in id if its own is the id of a message
// the server is sending cl. An id of the client's own QoS 2 publish still
// in flight (an inbound PUBREC) is a real reuse, left for mochi to refuse.
func (s *packetIDSwaps) swapIn(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type != packets.Subscribe && pk.FixedHeader.Type != packets.Unsubscribe {
		return pk
	}
	held, ok := cl.State.Inflight.Get(pk.PacketID)
	if !ok || (held.FixedHeader.Type != packets.Publish && held.FixedHeader.Type != packets.Pubrel) {
		return pk
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	swaps := s.m[cl]
	// From the top: mochi numbers outgoing messages upwards from 1.
	for id := uint16(65535); id > 0; id-- {
		if _, used := cl.State.Inflight.Get(id); used {
			continue
		}
		if _, used := swaps[id]; used {
			continue
		}
		if swaps == nil {
			if s.m == nil {
				s.m = map[*mqtt.Client]map[uint16]uint16{}
			}
			swaps = map[uint16]uint16{}
			s.m[cl] = swaps
		}
		swaps[id] = pk.PacketID
		pk.PacketID = id
		return pk
	}
	return pk
}

// swapOut puts the client's own id back on the SUBACK or UNSUBACK of a
// packet swapIn gave a stand-in.
func (s *packetIDSwaps) swapOut(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type != packets.Suback && pk.FixedHeader.Type != packets.Unsuback {
		return pk
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if own, ok := s.m[cl][pk.PacketID]; ok {
		delete(s.m[cl], pk.PacketID)
		if len(s.m[cl]) == 0 {
			delete(s.m, cl)
		}
		pk.PacketID = own
	}
	return pk
}

// forget drops what was kept for a connection that ended.
func (s *packetIDSwaps) forget(cl *mqtt.Client) {
	s.mu.Lock()
	delete(s.m, cl)
	s.mu.Unlock()
}
