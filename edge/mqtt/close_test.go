package mqtt_test

// Graceful Close: publishes in flight when the broker closes are either
// acknowledged and in the log, or not acknowledged; never acknowledged
// and missing. Close waits for the appends it accepted.

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	spoollog "github.com/spoolmq/spool/log"
)

// TestCloseWaitsForPendingAppends holds the fsync while publishes are
// queued, closes the broker, and checks that Close waits for them and
// that they are durable (across a restart) whether or not their
// acknowledgement got out.
func TestCloseWaitsForPendingAppends(t *testing.T) {
	gate := newSyncGate()
	tb := startBroker(t, setup{logOpts: spoollog.Options{FS: gate.fs()}})
	t.Cleanup(gate.release)

	const clients, before, during = 3, 10, 10
	rcs := make([]*rawClient, clients)
	acked := make([][]string, clients)
	for c := range rcs {
		rcs[c] = dialRaw(t, tb.addr(), byte(4+c%2))
		rcs[c].mustConnect(fmt.Sprintf("closer-%d", c))
		for i := range before {
			payload := fmt.Sprintf("c%d-%02d", c, i)
			rcs[c].publish("close/x", 1, uint16(i+1), payload)
			rcs[c].readAck(packets.Puback, uint16(i+1))
			acked[c] = append(acked[c], payload)
		}
	}

	gate.hold()
	for c, rc := range rcs {
		for i := before; i < before+during; i++ {
			rc.publish("close/x", 1, uint16(i+1), fmt.Sprintf("c%d-%02d", c, i))
		}
	}
	total := int64(clients * (before + during))
	waitFor(t, "every publish to be queued for the log", func() bool { return tb.B.Stats().Received == total })
	waitFor(t, "the flusher to hold in fsync", func() bool { return gate.waiting.Load() > 0 })

	closed := make(chan bool, 1)
	go func() { closed <- tb.closeBroker() }()
	// Close returns only once the appends it accepted are done.
	stays(t, 200*time.Millisecond, "Close waiting for the held fsync", func() bool { return len(closed) == 0 })
	gate.release()
	if !<-closed {
		t.FailNow()
	}

	// Clients read whatever the broker sent before closing: acks are a
	// prefix of what they published.
	for c, rc := range rcs {
		for {
			pk, err := rc.tryRead(waitTimeout)
			if err != nil {
				break
			}
			if pk.FixedHeader.Type == packets.Puback {
				if int(pk.PacketID) != len(acked[c])+1 {
					t.Errorf("client %d: PUBACK %d after %d acks", c, pk.PacketID, len(acked[c]))
				}
				acked[c] = append(acked[c], fmt.Sprintf("c%d-%02d", c, pk.PacketID-1))
			}
		}
	}

	// Everything the broker accepted is durable, across a restart.
	tb.closeLog()
	tb.open()
	stored := map[string][]string{}
	for _, r := range tb.records("mqtt", 0) {
		c := string(r.Value[:2])
		stored[c] = append(stored[c], string(r.Value))
	}
	for c := range rcs {
		var want []string
		for i := range before + during {
			want = append(want, fmt.Sprintf("c%d-%02d", c, i))
		}
		got := stored[fmt.Sprintf("c%d", c)]
		if !slices.Equal(got, want) {
			t.Errorf("client %d: log holds %q,\nwant %q", c, got, want)
		}
		for _, a := range acked[c] {
			if !slices.Contains(got, a) {
				t.Errorf("client %d: %q acknowledged but not in the log", c, a)
			}
		}
	}
}

// TestCloseUnderLoad closes the broker while clients pipeline publishes
// as fast as they can: every acknowledged publish is in the log, and each
// connection's stored publishes are a gap-free prefix of what it sent.
func TestCloseUnderLoad(t *testing.T) {
	tb := startBroker(t, setup{})
	const clients = 4
	var wg sync.WaitGroup
	acked := make([][]int, clients)
	var mu sync.Mutex
	total := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, a := range acked {
			n += len(a)
		}
		return n
	}
	for c := range clients {
		rc := dialRaw(t, tb.addr(), byte(4+c%2))
		rc.mustConnect(fmt.Sprintf("load-%d", c))
		wg.Add(2)
		go func() { // writer: until the connection fails
			defer wg.Done()
			for i := 0; ; i++ {
				b := rc.encode(publishPacket("load/x", 1, uint16(i%65535+1), fmt.Sprintf("c%d-%06d", c, i)))
				rc.conn.SetWriteDeadline(time.Now().Add(waitTimeout))
				if _, err := rc.conn.Write(b); err != nil {
					return
				}
			}
		}()
		go func() { // reader: PUBACKs until the connection closes
			defer wg.Done()
			for n := 0; ; n++ {
				pk, err := rc.tryRead(waitTimeout)
				if err != nil {
					return
				}
				if pk.FixedHeader.Type != packets.Puback {
					continue // DISCONNECT at shutdown
				}
				mu.Lock()
				acked[c] = append(acked[c], n)
				mu.Unlock()
				if want := uint16(n%65535 + 1); pk.PacketID != want || pk.ReasonCode != 0 {
					t.Errorf("client %d: PUBACK id %d reason 0x%02x, want id %d", c, pk.PacketID, pk.ReasonCode, want)
					return
				}
			}
		}()
	}
	waitFor(t, "some acknowledgements", func() bool { return total() >= 500 })
	tb.closeBroker() // disconnects the clients: their loops end
	wg.Wait()

	tb.closeLog()
	tb.open()
	stored := make([][]string, clients)
	for _, r := range tb.records("mqtt", 0) {
		var c, i int
		if _, err := fmt.Sscanf(string(r.Value), "c%d-%d", &c, &i); err != nil {
			t.Fatalf("record %q: %v", r.Value, err)
		}
		stored[c] = append(stored[c], string(r.Value))
	}
	for c := range clients {
		for i, v := range stored[c] {
			if want := fmt.Sprintf("c%d-%06d", c, i); v != want {
				t.Fatalf("client %d: record %d is %q, want %q: a gap or a reordering", c, i, v, want)
			}
		}
		if len(acked[c]) > len(stored[c]) {
			t.Errorf("client %d: %d acknowledged, only %d stored", c, len(acked[c]), len(stored[c]))
		}
		t.Logf("client %d: %d acknowledged, %d stored", c, len(acked[c]), len(stored[c]))
	}
}

// TestCloseWhileClientsLeave closes the broker while clean-session clients
// drop their connections. mochi's own Close read-locks its client map
// twice (GetByListener → Len) and deadlocks when a leaving client is
// waiting to delete itself in between, so the broker disconnects clients
// itself. The window is narrow: this is a smoke test of Close racing
// with departures, not a deterministic reproduction of that deadlock.
func TestCloseWhileClientsLeave(t *testing.T) {
	const rounds, clients = 15, 25
	for round := range rounds {
		tb := startBroker(t, setup{})
		rcs := make([]*rawClient, clients)
		for i := range rcs {
			rcs[i] = dialRaw(t, tb.addr(), byte(4+i%2))
			rcs[i].mustConnect(fmt.Sprintf("leaver-%d", i))
			rcs[i].ping()
		}
		var wg sync.WaitGroup
		for _, rc := range rcs {
			wg.Go(func() { rc.conn.Close() })
		}
		ok := tb.closeBroker()
		wg.Wait()
		if !ok {
			t.Fatalf("round %d: Close hung", round)
		}
		tb.closeLog()
	}
}
