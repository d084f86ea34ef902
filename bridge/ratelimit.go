package bridge

import (
	"container/heap"
	"context"
	"sync"
	"time"
)

// limiter bounds a link's average upstream bandwidth (keys and values, as
// read from the local log, before compression) and decides who sends
// next: a token bucket holding one second's worth. A round asks for its
// bytes with a class; while the bucket is in credit the waiting round of
// the highest class (then the longest waiting) takes its bytes once the
// bucket holds them (a round larger than the bucket, once it is full, and
// the debt it leaves is paid by those behind it), and sends; the others
// wait their turn. So a burst of alarms, or the few new records of a caught-up
// partition, go ahead of a backlog that would otherwise fill the link. A
// nil limiter does not limit (nothing waits, so nothing is ordered).
type limiter struct {
	rate float64 // bytes per second

	mu      sync.Mutex
	tokens  float64
	last    time.Time
	waiting waitHeap
	seq     uint64
	timer   *time.Timer // wakes dispatch once the debt is paid
}

// A round's class: its topic's priority, and within it live rounds (those
// that reach the end of their partition) before backlog ones.
func roundClass(priority int, live bool) int {
	c := 2 * priority
	if live {
		c++
	}
	return c
}

type waiter struct {
	n     float64
	class int
	seq   uint64
	ready chan struct{} // closed when granted
	index int           // in the heap; -1 once granted or gone
}

type waitHeap []*waiter

func (h waitHeap) Len() int { return len(h) }
func (h waitHeap) Less(i, j int) bool {
	if h[i].class != h[j].class {
		return h[i].class > h[j].class
	}
	return h[i].seq < h[j].seq
}
func (h waitHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i]; h[i].index = i; h[j].index = j }
func (h *waitHeap) Push(x any)   { w := x.(*waiter); w.index = len(*h); *h = append(*h, w) }
func (h *waitHeap) Pop() any {
	old := *h
	w := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	w.index = -1
	return w
}

func newLimiter(bytesPerSec int64) *limiter {
	if bytesPerSec <= 0 {
		return nil
	}
	return &limiter{rate: float64(bytesPerSec), tokens: float64(bytesPerSec), last: time.Now()}
}

// wait takes n bytes for a round of the given class, waiting while the
// bucket is in debt or a higher class waits. It reports false when ctx
// ended first (and then takes nothing).
func (l *limiter) wait(ctx context.Context, n int64, class int) bool {
	if l == nil {
		return true
	}
	l.mu.Lock()
	l.seq++
	w := &waiter{n: float64(n), class: class, seq: l.seq, ready: make(chan struct{})}
	heap.Push(&l.waiting, w)
	l.dispatchLocked()
	l.mu.Unlock()
	select {
	case <-w.ready:
		return true
	case <-ctx.Done():
		l.mu.Lock()
		defer l.mu.Unlock()
		if w.index < 0 {
			return true // granted meanwhile: its bytes are taken, so send
		}
		heap.Remove(&l.waiting, w.index)
		l.dispatchLocked()
		return false
	}
}

// dispatchLocked grants waiters in order while the bucket holds what the
// first needs, and otherwise sets the timer for when it will.
func (l *limiter) dispatchLocked() {
	now := time.Now()
	l.tokens = min(l.rate, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	l.last = now
	for l.waiting.Len() > 0 && l.tokens >= min(l.waiting[0].n, l.rate) {
		w := heap.Pop(&l.waiting).(*waiter)
		l.tokens -= w.n
		close(w.ready)
	}
	if l.waiting.Len() == 0 {
		return
	}
	d := time.Duration((min(l.waiting[0].n, l.rate) - l.tokens) / l.rate * float64(time.Second))
	if l.timer == nil {
		l.timer = time.AfterFunc(d, func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.dispatchLocked()
		})
	} else {
		l.timer.Reset(d)
	}
}
