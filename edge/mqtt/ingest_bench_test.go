package mqtt_test

import (
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
	spoollog "github.com/spoolmq/spool/log"
)

// BenchmarkIngestQoS1 publishes QoS 1 messages of 200 bytes over loopback
// from one connection keeping 64 unacknowledged, into a sync: never topic
// so that the figure is the broker's own work per message: decoding,
// routing, encoding the record, queueing the append and writing the
// PUBACK. Run with -benchmem: allocations per message are the other
// figure to watch, since on a small board the collector's share grows
// with them.
func BenchmarkIngestQoS1(b *testing.B) {
	cfg := spoollog.DefaultTopicConfig()
	cfg.Sync = spoollog.SyncNever
	tb := startBroker(b, setup{topics: map[string]spoollog.TopicConfig{"mqtt": cfg}})
	rc := dialRaw(b, tb.addr(), 5)
	rc.mustConnect("bench")

	const window = 64
	payload := string(make([]byte, 200))
	var frames [window][]byte
	for i := range frames {
		frames[i] = rc.encode(publishPacket("site/1/sensor/temp", 1, uint16(i+1), payload))
	}
	b.ReportAllocs()
	b.SetBytes(200)
	b.ResetTimer()
	sent, acked := 0, 0
	for acked < b.N {
		for sent < b.N && sent-acked < window {
			rc.write(frames[sent%window])
			sent++
		}
		if pk := rc.read(); pk.FixedHeader.Type != packets.Puback || pk.ReasonCode != 0 {
			b.Fatalf("expected a successful PUBACK, got type %d reason 0x%02x", pk.FixedHeader.Type, pk.ReasonCode)
		}
		acked++
	}
}
