package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// cutProxy forwards TCP connections to target and plays a flaky uplink:
// it can cut all of them at once, stall them (nothing moves, the sockets
// stay open) or slow them (small chunks with pauses), for a while.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  map[net.Conn]bool
	cuts   int
	// stallUntil and slowUntil are the ends of a stall and a slow spell.
	stallUntil, slowUntil time.Time
	stalls, slows         int
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	px := &cutProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go px.pipe(c)
		}
	}()
	t.Cleanup(func() { ln.Close(); px.cut() })
	return px
}

func (px *cutProxy) pipe(c net.Conn) {
	s, err := net.Dial("tcp", px.target)
	if err != nil {
		c.Close()
		return
	}
	px.mu.Lock()
	px.conns[c], px.conns[s] = true, true
	px.mu.Unlock()
	go func() { px.copy(s, c); s.Close(); c.Close() }()
	px.copy(c, s)
	c.Close()
	s.Close()
}

// copy forwards src to dst, minding stalls and slow spells.
func (px *cutProxy) copy(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		for off := 0; off < n; {
			px.mu.Lock()
			stall, slow := time.Until(px.stallUntil), time.Now().Before(px.slowUntil)
			px.mu.Unlock()
			if stall > 0 {
				time.Sleep(stall)
				continue
			}
			chunk := n - off
			if slow {
				chunk = min(chunk, 512)
				time.Sleep(2 * time.Millisecond) // about 250 kB/s
			}
			if _, werr := dst.Write(buf[off : off+chunk]); werr != nil {
				return
			}
			off += chunk
		}
		if err != nil {
			return
		}
	}
}

// stall stops every byte for d, connections left open.
func (px *cutProxy) stall(d time.Duration) {
	px.mu.Lock()
	px.stallUntil = time.Now().Add(d)
	px.stalls++
	px.mu.Unlock()
}

// slow throttles every connection for d.
func (px *cutProxy) slow(d time.Duration) {
	px.mu.Lock()
	px.slowUntil = time.Now().Add(d)
	px.slows++
	px.mu.Unlock()
}

func (px *cutProxy) cut() {
	px.mu.Lock()
	defer px.mu.Unlock()
	for c := range px.conns {
		c.Close()
	}
	px.conns = map[net.Conn]bool{}
	px.cuts++
}

// TestBridgeCrash: devices publish while the uplink is cut, stalled and
// slowed at random and spool serve itself is killed with SIGKILL, several
// times. Afterwards the
// upstream holds every publish that got a PUBACK (nothing lost), and every
// duplicate has the same origin offset as its original (identifiable);
// with exactly_once, a read_committed consumer sees no duplicate at all.
func TestBridgeCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes")
	}
	bin := buildSpool(t)
	t.Run("idempotent", func(t *testing.T) { bridgeCrash(t, bin, false) })
	t.Run("exactly_once", func(t *testing.T) { bridgeCrash(t, bin, true) })
}

func bridgeCrash(t *testing.T, bin string, exactlyOnce bool) {
	up, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	px := newCutProxy(t, up.ListenAddrs()[0])
	dir := t.TempDir()
	cfg := writeFile(t, dir, "spool.yaml", fmt.Sprintf(`edge_id: crash
links:
  - name: central
    kafka: {brokers: ["%s"]}
    topics: ["*"]
    delivery_timeout: 2s
    exactly_once: %v
`, px.ln.Addr(), exactlyOnce))
	data := filepath.Join(dir, "data")

	pub := &crashPublisher{id: "dev", topic: "devices/dev/temp", acked: map[uint64]bool{}}
	for round := range 4 {
		addr := freeAddr(t)
		p := startServe(t, bin, nil, "--config", cfg, "--data", data, "--mqtt-addr", addr, "--http-addr", "off", "--log-format", "json")
		p.waitTCP(addr, 15*time.Second)
		cl := mqttConnect(t, addr, pub.id)
		stop, giveUp := make(chan struct{}), make(chan struct{})
		done := make(chan crashRound, 1)
		go func() { done <- pub.publish(cl, stop, giveUp) }()
		// Cut, stall or slow the uplink a few times, then kill the
		// appliance.
		for range 2 + rand.IntN(3) {
			time.Sleep(50*time.Millisecond + rand.N(150*time.Millisecond))
			switch rand.IntN(3) {
			case 0:
				px.cut()
			case 1:
				px.stall(100*time.Millisecond + rand.N(400*time.Millisecond))
			default:
				px.slow(200*time.Millisecond + rand.N(600*time.Millisecond))
			}
		}
		time.Sleep(rand.N(200 * time.Millisecond))
		p.kill()
		close(stop)
		timer := time.AfterFunc(10*time.Second, func() { close(giveUp) })
		r := <-done
		timer.Stop()
		cl.Disconnect(0)
		t.Logf("round %d: %d published, %d acknowledged", round, r.published, r.acked)
	}
	if len(pub.acked) == 0 {
		t.Fatal("nothing was acknowledged: the test checked nothing")
	}

	// The last start drains the backlog over an uplink left alone.
	addr := freeAddr(t)
	p := startServe(t, bin, nil, "--config", cfg, "--data", data, "--mqtt-addr", addr, "--http-addr", "off", "--log-format", "json")
	p.waitTCP(addr, 15*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	isolation := kgo.ReadUncommitted()
	if exactlyOnce {
		isolation = kgo.ReadCommitted()
	}
	c, err := kgo.NewClient(kgo.SeedBrokers(up.ListenAddrs()...), kgo.ConsumeTopics("crash.mqtt"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(isolation))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	offsetOf := map[string]string{} // payload → origin offset
	seen := map[string]int{}
	missing := func() int {
		n := 0
		for seq := range pub.acked {
			if seen[pub.payload(seq)] == 0 {
				n++
			}
		}
		return n
	}
	for missing() > 0 {
		fs := c.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%d of %d acknowledged publishes never reached the upstream (proxy cut %d times)", missing(), len(pub.acked), px.cuts)
		}
		for _, r := range fs.Records() {
			var origin string
			for _, h := range r.Headers {
				if h.Key == "spool.offset" {
					origin = string(h.Value)
				}
			}
			v := string(r.Value)
			if prev, ok := offsetOf[v]; ok && prev != origin {
				t.Fatalf("%s arrived with origin offsets %s and %s: a duplicate that cannot be told apart", v, prev, origin)
			}
			offsetOf[v] = origin
			seen[v]++
		}
	}
	dups := 0
	for _, n := range seen {
		dups += n - 1
	}
	t.Logf("%d acknowledged publishes all upstream (%d records, %d resends; proxy cut %d times, stalled %d, slowed %d)", len(pub.acked), len(seen), dups, px.cuts, px.stalls, px.slows)
	if exactlyOnce && dups > 0 {
		t.Errorf("exactly_once: a read_committed consumer saw %d duplicates", dups)
	}
	if code := p.stop(syscall.SIGTERM, 15*time.Second); code != 0 {
		t.Fatalf("spool exited %d after SIGTERM:\n%s", code, lastLines(p.output(), 30))
	}
}
