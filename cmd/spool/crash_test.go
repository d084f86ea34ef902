package main

// Crash test of the appliance with real processes: MQTT clients publish at
// QoS 1 to `spool serve` while it is SIGKILLed at a random moment, over
// and over on the same data directory. A PUBACK promises that the publish
// is in the log, so every acknowledged publish must be found there, in the
// order each client sent it, after all the crashes.
//
// A SIGKILL loses no page cache, so this checks what a crash of the
// process can break (acknowledging before the append, recovery of a torn
// tail, acknowledgements out of order), not power-loss durability; the
// log's own crash tests cover that through a file-system seam.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/spoolmq/spool/edge/mqtt"
)

const (
	serveCrashRounds  = 8
	serveCrashClients = 4
	serveCrashWindow  = 16 // publishes a client has in flight at most
	// serveCrashBudget bounds the crash rounds, so that the test, with the
	// build and the final checks, stays within a minute.
	serveCrashBudget = 40 * time.Second
	// serveCrashFinal is how many publishes each client makes against the
	// last, cleanly stopped process.
	serveCrashFinal = 20
)

// crashPublisher is one MQTT client's history across all rounds.
type crashPublisher struct {
	id, topic string
	next      uint64          // the next sequence number to publish
	acked     map[uint64]bool // sequence numbers that got a PUBACK
}

// payload is what the client publishes as seq: "clientID/seq".
func (c *crashPublisher) payload(seq uint64) string { return c.id + "/" + strconv.FormatUint(seq, 10) }

// inflight is a publish waiting for its acknowledgement.
type inflight struct {
	seq uint64
	tok paho.Token
}

// crashRound is what happened to one client in one round.
type crashRound struct {
	published, acked, failed, unresolved int
}

// publish sends QoS 1 publishes with consecutive sequence numbers, at most
// serveCrashWindow unacknowledged, until stop is closed or the connection
// is gone. It records which ones were acknowledged; those whose token has
// not completed when giveUp is closed count as unresolved (not
// acknowledged). It returns once every publish is settled.
func (c *crashPublisher) publish(cl paho.Client, stop, giveUp <-chan struct{}) crashRound {
	var r crashRound
	// The waiter takes tokens in publish order: the broker acknowledges a
	// connection's publishes in order, so waiting on the oldest first
	// holds the window to serveCrashWindow.
	pending := make(chan inflight, serveCrashWindow-1)
	settled := make(chan struct{})
	go func() {
		defer close(settled)
		for f := range pending {
			select {
			case <-f.tok.Done():
			default:
				select {
				case <-f.tok.Done():
				case <-giveUp:
					// Done may have closed at the same moment.
					select {
					case <-f.tok.Done():
					default:
						r.unresolved++
						continue
					}
				}
			}
			if f.tok.Error() == nil {
				c.acked[f.seq] = true
				r.acked++
			} else {
				r.failed++
			}
		}
	}()
	c.send(cl, stop, pending, &r.published)
	close(pending)
	<-settled
	return r
}

// send is publish's sending half: it publishes until stop is closed or
// the connection is gone, queueing each token for the waiter.
func (c *crashPublisher) send(cl paho.Client, stop <-chan struct{}, pending chan<- inflight, published *int) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		seq := c.next
		c.next++
		*published++
		tok := cl.Publish(c.topic, 1, false, c.payload(seq))
		pending <- inflight{seq, tok}
		select {
		case <-tok.Done():
			if tok.Error() != nil {
				return // not connected any more: nothing further can succeed
			}
		default:
		}
	}
}

func TestServeCrash(t *testing.T) {
	bin := buildSpool(t)
	start := time.Now()
	dir := filepath.Join(t.TempDir(), "data")
	serveArgs := func(addr string) []string {
		return []string{"--data", dir, "--mqtt-addr", addr, "--http-addr", "off", "--log-format", "json"}
	}
	pubs := make([]*crashPublisher, serveCrashClients)
	for i := range pubs {
		pubs[i] = &crashPublisher{id: fmt.Sprintf("crash-c%d", i), topic: fmt.Sprintf("crash/c%d", i), acked: map[uint64]bool{}}
	}

	rounds, ackedBeforeKill := 0, 0
	for rounds < serveCrashRounds {
		if rounds >= 2 && time.Since(start) > serveCrashBudget {
			t.Logf("stopping after %d rounds: time budget of %v spent", rounds, serveCrashBudget)
			break
		}
		rounds++
		addr := freeAddr(t)
		p := startServe(t, bin, nil, serveArgs(addr)...)
		p.waitTCP(addr, 15*time.Second)
		clients := make([]paho.Client, len(pubs))
		for i, c := range pubs {
			clients[i] = mqttConnect(t, addr, c.id)
		}

		stop, giveUp := make(chan struct{}), make(chan struct{})
		results := make([]crashRound, len(pubs))
		var wg sync.WaitGroup
		for i, c := range pubs {
			wg.Go(func() { results[i] = c.publish(clients[i], stop, giveUp) })
		}
		// The crash comes at a random moment of the publishing.
		delay := 50*time.Millisecond + rand.N(350*time.Millisecond)
		time.Sleep(delay)
		p.kill()
		close(stop)
		// Once the process is gone every token completes as soon as paho
		// sees the connection closed; giveUp only bounds the wait.
		giveUpTimer := time.AfterFunc(10*time.Second, func() { close(giveUp) })
		wg.Wait()
		giveUpTimer.Stop()
		for _, cl := range clients {
			cl.Disconnect(0)
		}

		var sum crashRound
		for _, r := range results {
			sum.published += r.published
			sum.acked += r.acked
			sum.failed += r.failed
			sum.unresolved += r.unresolved
		}
		ackedBeforeKill += sum.acked
		t.Logf("round %d: killed %3dms into publishing: %5d published, %5d acknowledged, %3d failed, %d unresolved",
			rounds, delay.Milliseconds(), sum.published, sum.acked, sum.failed, sum.unresolved)
	}
	if ackedBeforeKill == 0 {
		t.Fatal("no publish was acknowledged in any round: the test checked nothing")
	}

	// A last run recovers the log once more, takes a few publishes that
	// must all be acknowledged, and stops cleanly.
	addr := freeAddr(t)
	p := startServe(t, bin, nil, serveArgs(addr)...)
	p.waitTCP(addr, 15*time.Second)
	for _, c := range pubs {
		cl := mqttConnect(t, addr, c.id)
		var toks []paho.Token
		first := c.next
		for range serveCrashFinal {
			toks = append(toks, cl.Publish(c.topic, 1, false, c.payload(c.next)))
			c.next++
		}
		for i, tok := range toks {
			if !tok.WaitTimeout(10 * time.Second) {
				t.Fatalf("%s: no PUBACK for seq %d within 10s", c.id, first+uint64(i))
			}
			if err := tok.Error(); err != nil {
				t.Fatalf("%s: publish seq %d after recovery: %v", c.id, first+uint64(i), err)
			}
			c.acked[first+uint64(i)] = true
		}
		cl.Disconnect(250)
	}
	if code := p.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Fatalf("spool exited %d after SIGTERM; output:\n%s", code, lastLines(p.output(), 30))
	}
	if p.findLog("spool stopped") == nil {
		t.Errorf("no \"spool stopped\" log line after SIGTERM; output:\n%s", lastLines(p.output(), 30))
	}

	// The offline verifier finds the data directory intact.
	if code, out, errOut := spool(t, context.Background(), "log", "verify", dir); code != 0 {
		t.Fatalf("spool log verify: exit %d:\n%s%s", code, out, errOut)
	}

	// Every acknowledged publish is in the log, in order per client.
	recs, _ := readTopic(t, dir, mqtt.DefaultTopic)
	byID := map[string]*crashPublisher{}
	for _, c := range pubs {
		byID[c.id] = c
	}
	order := map[string][]uint64{} // per client, the acknowledged seqs in log order
	seen := map[string]map[uint64]int64{}
	stored, dups, unacked := 0, 0, 0
	for _, r := range recs {
		id, seqText, _ := strings.Cut(r.Value, "/")
		c := byID[id]
		seq, err := strconv.ParseUint(seqText, 10, 64)
		if c == nil || err != nil || seq >= c.next {
			t.Fatalf("partition %d offset %d: value %q was never published", r.Partition, r.Offset, r.Value)
		}
		if r.Key != c.topic || r.Headers[mqtt.HeaderTopic] != c.topic || r.Headers[mqtt.HeaderQoS] != "1" {
			t.Fatalf("partition %d offset %d (%q): key %q, headers %v; want key and %s %q, %s 1",
				r.Partition, r.Offset, r.Value, r.Key, r.Headers, mqtt.HeaderTopic, c.topic, mqtt.HeaderQoS)
		}
		stored++
		if seen[id] == nil {
			seen[id] = map[uint64]int64{}
		}
		if prev, ok := seen[id][seq]; ok {
			// The clients never resend, so even an unacknowledged copy is
			// suspect; an acknowledged one stored twice is a bug.
			dups++
			if c.acked[seq] {
				t.Errorf("acknowledged %q is stored twice: offsets %d and %d", r.Value, prev, r.Offset)
			}
			continue
		}
		seen[id][seq] = r.Offset
		if c.acked[seq] {
			order[id] = append(order[id], seq)
		} else {
			unacked++
		}
	}
	acked := 0
	for _, c := range pubs {
		acked += len(c.acked)
		var missing []uint64
		for seq := range c.acked {
			if _, ok := seen[c.id][seq]; !ok {
				missing = append(missing, seq)
			}
		}
		if len(missing) > 0 {
			slices.Sort(missing)
			t.Errorf("%s: %d acknowledged publishes are not in the log, e.g. seqs %v", c.id, len(missing), missing[:min(len(missing), 10)])
		}
		if o := order[c.id]; !slices.IsSorted(o) {
			for i := 1; i < len(o); i++ {
				if o[i] < o[i-1] {
					t.Errorf("%s: acknowledged seq %d is stored after seq %d", c.id, o[i], o[i-1])
					break
				}
			}
		}
	}
	t.Logf("%d crash rounds and a clean run: %d publishes acknowledged (%d before a SIGKILL), %d records stored (%d unacknowledged, %d duplicates), %v",
		rounds, acked, ackedBeforeKill, stored, unacked, dups, time.Since(start).Round(time.Millisecond))
}
