package main

// How far a consume has to read: without --follow it stops at the high
// watermarks it saw at start, in whichever partitions it reads.

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// topicSnapshot is a topic's partitions with their log start offsets and
// high watermarks at one moment.
type topicSnapshot struct {
	start, end map[int32]int64
}

// snapshotTopic lists a topic's log start offsets and ends. With
// committed, the ends are the last stable offsets, where a read_committed
// consumer stops while a transaction is pending.
func snapshotTopic(ctx context.Context, adm *kadm.Client, topic string, committed bool) (topicSnapshot, error) {
	if _, err := describeTopic(ctx, adm, topic); err != nil {
		return topicSnapshot{}, err
	}
	snap := topicSnapshot{start: map[int32]int64{}, end: map[int32]int64{}}
	ends := adm.ListEndOffsets
	if committed {
		ends = adm.ListCommittedOffsets
	}
	for _, l := range []struct {
		list func(context.Context, ...string) (kadm.ListedOffsets, error)
		into map[int32]int64
		what string
	}{{adm.ListStartOffsets, snap.start, "start"}, {ends, snap.end, "end"}} {
		listed, err := l.list(ctx, topic)
		if err == nil {
			err = listed.Error()
		}
		if err != nil {
			return topicSnapshot{}, fmt.Errorf("listing %s offsets: %w", l.what, err)
		}
		listed.Each(func(o kadm.ListedOffset) { l.into[o.Partition] = o.Offset })
	}
	return snap, nil
}

// progress says when a consume without --follow is done: when every
// partition it reads has reached the high watermark seen at start.
type progress struct {
	mu    sync.Mutex // guards the fields below: group callbacks run on kgo's goroutines
	end   map[int32]int64
	next  map[int32]int64 // the partitions being read, and the next offset of each
	ready bool            // the partitions are known: always without a group, after the first assignment with one
	err   error
	wake  func() // called once, when done or failed, to end a waiting poll
}

// wakeWhenDone arranges for wake to be called as soon as the consume is
// done or has failed, at once if it already is. The returned function
// cancels the arrangement.
func (p *progress) wakeWhenDone(wake func()) func() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.wake = wake
	p.maybeWakeLocked()
	return func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.wake = nil
	}
}

func (p *progress) maybeWakeLocked() {
	if p.wake != nil && (p.err != nil || p.doneLocked()) {
		p.wake()
		p.wake = nil
	}
}

// assign adds newly assigned partitions, starting from the group's
// committed offsets; partitions without one start where start says.
func (p *progress) assign(ctx context.Context, cl *kgo.Client, group, topic string, parts []int32, start startAt, snap topicSnapshot) {
	var committed kadm.OffsetResponses
	if len(parts) > 0 {
		var err error
		committed, err = kadm.NewClient(cl).FetchOffsets(ctx, group)
		if err == nil {
			err = committed.Error()
		}
		if err != nil {
			p.fail(fmt.Errorf("fetching the committed offsets of group %s: %w", group, err))
			return
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, part := range parts {
		next := start.next(snap.start[part], snap.end[part])
		if c, ok := committed.Lookup(topic, part); ok && c.At >= 0 {
			next = c.At
		}
		p.next[part] = next
	}
	p.ready = true
	p.maybeWakeLocked()
}

// past reports whether offset lies at or after the high watermark the
// partition had at start (a partition created since had none): a consume
// without --follow stops there, whatever a fetch brings beyond.
func (p *progress) past(part int32, offset int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	end, ok := p.end[part]
	return !ok || offset >= end
}

func (p *progress) drop(parts []int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, part := range parts {
		delete(p.next, part)
	}
	p.maybeWakeLocked()
}

func (p *progress) advance(part int32, next int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n, ok := p.next[part]; ok && next > n {
		p.next[part] = next
	}
}

func (p *progress) done() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.doneLocked()
}

func (p *progress) doneLocked() bool {
	if !p.ready {
		return false
	}
	for part, n := range p.next {
		if n < p.end[part] {
			return false
		}
	}
	return true
}

// short lists the partitions short of their end, with their next offset.
func (p *progress) short() map[int32]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[int32]int64{}
	for part, n := range p.next {
		if n < p.end[part] {
			out[part] = n
		}
	}
	return out
}

// behind describes the partitions short of their high watermark.
func (p *progress) behind() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.ready {
		return "no partitions assigned yet"
	}
	var parts []int32
	for part, n := range p.next {
		if n < p.end[part] {
			parts = append(parts, part)
		}
	}
	slices.Sort(parts)
	s := ""
	for i, part := range parts {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("partition %d at %d of %d", part, p.next[part], p.end[part])
	}
	return s
}

func (p *progress) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		p.err = err
	}
	p.maybeWakeLocked()
}

func (p *progress) failure() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}
