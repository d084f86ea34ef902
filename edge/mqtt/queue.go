package mqtt

import (
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	spoollog "github.com/spoolmq/spool/log"
)

// A clientQueue holds one connection's publishes between their arrival and
// their acknowledgement. mochi acknowledges a publish when OnPublish
// returns, which would cost one fsync per message on a pipelining
// connection. Instead OnPublish queues the append and returns at once;
// appends from many connections share fsyncs (the log's group commit),
// and as they complete the queue delivers and acknowledges them in the
// order they arrived, as MQTT requires (4.6), from its own goroutine.
type clientQueue struct {
	b  *Broker
	cl *mqtt.Client
	// slots bounds the publishes waiting for the log (the receive maximum):
	// OnPublish blocks when it is full, which stops reading the socket.
	slots chan struct{}

	mu       sync.Mutex
	items    []*pending // in arrival order
	draining bool       // a drain goroutine is running
	// free holds finished pendings for reuse: at thousands of publishes a
	// second, allocating each (with its copy of the packet) is a large
	// part of ingest's garbage.
	free []*pending

	acks []byte // scratch space of the drain goroutine (only one runs at a time)
}

// pending is one publish waiting for its durable append.
type pending struct {
	pk   packets.Packet
	done bool
	err  error // the append's error; nil when stored (or not routed)
	// A QoS 2 publish is registered while it is not settled (qos2.go);
	// a resend of one still registered follows its outcome instead,
	// acknowledged but neither appended nor delivered again.
	arrival *qos2Arrival
	resend  bool
	// onAppend completes this pending; bound once, as the log's callback.
	onAppend func(spoollog.AppendResult, error)
}

// reusable reports whether nothing else can refer to p once it is
// drained: QoS 2 publishes are referred to by the arrivals table.
func (p *pending) reusable() bool { return p.arrival == nil && !p.resend }

func newClientQueue(b *Broker, cl *mqtt.Client, slots int) *clientQueue {
	return &clientQueue{b: b, cl: cl, slots: make(chan struct{}, slots)}
}

// push reserves a slot and queues pk. It blocks while the queue is full.
func (q *clientQueue) push(pk packets.Packet) *pending {
	q.slots <- struct{}{}
	q.b.pendingWG.Add(1)
	q.mu.Lock()
	var p *pending
	if n := len(q.free); n > 0 {
		p, q.free = q.free[n-1], q.free[:n-1]
	} else {
		p = &pending{}
		p.onAppend = func(_ spoollog.AppendResult, err error) { q.complete(p, err) }
	}
	p.pk = pk
	q.items = append(q.items, p)
	q.mu.Unlock()
	return p
}

// complete records p's outcome. It is called from the log's flusher, so it
// never blocks: acknowledgements are written by a drain goroutine.
func (q *clientQueue) complete(p *pending, err error) {
	if p.arrival != nil {
		q.b.qos2.completed(p.arrival, err)
	}
	q.mu.Lock()
	p.done, p.err = true, err
	start := !q.draining && q.items[0].done
	if start {
		q.draining = true
	}
	q.mu.Unlock()
	if start {
		go q.drain()
	}
}

// drain finishes the completed publishes at the head of the queue, in
// order, until it meets one still waiting for the log.
func (q *clientQueue) drain() {
	var batch []*pending
	for {
		q.mu.Lock()
		n := 0
		for n < len(q.items) && q.items[n].done {
			n++
		}
		if n == 0 {
			q.draining = false
			q.mu.Unlock()
			return
		}
		batch = append(batch[:0], q.items[:n]...)
		// Shift rather than reslice so the backing array does not grow
		// without bound on a long-lived connection.
		m := copy(q.items, q.items[n:])
		clear(q.items[m:])
		q.items = q.items[:m]
		q.mu.Unlock()

		// Each stored publish is delivered before its acknowledgement goes
		// out, as mosquitto does: once a publisher has its PUBACK, every
		// subscriber's session holds the message. (Delivered after the
		// PUBACK, it could race a subscriber's reconnect, and mochi drops
		// a message that reaches a session being taken over.)
		acks := q.acks[:0]
		for _, p := range batch {
			var ok bool
			if acks, ok = q.b.settle(q.cl, p, acks); ok {
				q.b.deliver(p.pk)
			}
		}
		writeAcks(q.cl, acks)
		q.mu.Lock()
		for _, p := range batch {
			if p.reusable() && len(q.free) < cap(q.slots) {
				*p = pending{onAppend: p.onAppend}
				q.free = append(q.free, p)
			}
		}
		q.mu.Unlock()
		for range batch {
			<-q.slots
			q.b.pendingWG.Done()
		}
		q.acks = acks[:0]
		clear(batch)
	}
}
