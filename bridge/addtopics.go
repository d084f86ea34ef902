package bridge

import (
	"errors"
	"fmt"
	"sync"

	spoollog "github.com/spoolmq/spool/log"
)

// mirrorSet is the growing set of a link's mirrors, shared by KafkaLink
// and MQTTLink: AddTopics adds the partitions of named topics not yet
// mirrored and signals added, for a running link to start them.
type mirrorSet[M any] struct {
	mu       *sync.Mutex // the link's
	mirrors  *[]M
	mirrored map[string]bool // cursorKey of every mirror
	added    chan struct{}
}

// add makes a mirror for every partition of names not mirrored yet. A
// topic that fails (unknown, a bad destination) is skipped and reported;
// the others are still added, and whatever was added is signalled.
func (s mirrorSet[M]) add(l *spoollog.Log, link string, names []string, check func(topic string, p int32) error,
	build func(p *spoollog.Partition, topic string) (M, error)) (int, error) {
	n := 0
	var errs []error
	defer func() {
		if n > 0 {
			select {
			case s.added <- struct{}{}:
			default:
			}
		}
	}()
	for _, name := range names {
		t, err := l.Topic(name)
		if err != nil {
			errs = append(errs, fmt.Errorf("bridge link %s: %w", link, err))
			continue
		}
		for _, p := range t.Partitions() {
			key := cursorKey(name, p.ID())
			s.mu.Lock()
			have := s.mirrored[key]
			s.mu.Unlock()
			if have {
				continue
			}
			if err := check(name, p.ID()); err != nil {
				errs = append(errs, fmt.Errorf("bridge link %s: %w", link, err))
				break
			}
			m, err := build(p, name)
			if err != nil {
				errs = append(errs, err)
				break
			}
			s.mu.Lock()
			*s.mirrors = append(*s.mirrors, m)
			s.mirrored[key] = true
			s.mu.Unlock()
			n++
		}
	}
	return n, errors.Join(errs...)
}
