package bridge

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	spoollog "github.com/spoolmq/spool/log"
)

// mirrorOf is what mirrorSet needs of a link's mirror: its partState.
type mirrorOf interface{ state() *partState }

func (s *partState) state() *partState { return s }

// mirrorSet is the changing set of a link's mirrors, shared by KafkaLink
// and MQTTLink: AddTopics adds the partitions of named topics not yet
// mirrored and signals added, for a running link to start them; a mirror
// whose local partition was deleted retires.
type mirrorSet[M mirrorOf] struct {
	mu      *sync.Mutex // the link's
	mirrors *[]M
	// mirrored maps the cursorKey of every partition mirrored so far to
	// that partition. It keeps the entry of a retired mirror, so that a
	// topic re-created under the same name is known to be a new one.
	mirrored map[string]*spoollog.Partition
	added    chan struct{}
}

// add makes a mirror for every partition of names not mirrored yet. A
// topic that fails (unknown, a bad destination) is skipped and reported;
// the others are still added, and whatever was added is signalled. A
// partition that replaces a deleted one of the same name (the topic was
// deleted and created again) gets a new mirror from its log start, in
// place of the old partition's.
func (s mirrorSet[M]) add(l *spoollog.Log, link string, names []string, check func(topic string, p int32) error,
	build func(p *spoollog.Partition, topic string, fresh bool) (M, error)) (int, error) {
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
			if have == p {
				continue
			}
			if err := check(name, p.ID()); err != nil {
				errs = append(errs, fmt.Errorf("bridge link %s: %w", link, err))
				break
			}
			fresh := have != nil
			m, err := build(p, name, fresh)
			if err != nil {
				errs = append(errs, err)
				break
			}
			if err := s.register(m, fresh); err != nil {
				errs = append(errs, fmt.Errorf("bridge link %s: %w", link, err))
				break
			}
			n++
		}
	}
	return n, errors.Join(errs...)
}

// register adds m to the set, in place of a mirror of the same key whose
// partition was deleted. Its cursor is stored again under mu when fresh:
// the old mirror, retiring meanwhile, may have deleted the stored one.
func (s mirrorSet[M]) register(m M, fresh bool) error {
	st := m.state()
	s.mu.Lock()
	defer s.mu.Unlock()
	var stale []*spoollog.Partition
	*s.mirrors = slices.DeleteFunc(*s.mirrors, func(o M) bool {
		if os := o.state(); os.key == st.key {
			stale = append(stale, os.p)
			return true
		}
		return false
	})
	for _, p := range stale {
		p.Unpin(st.ns)
	}
	*s.mirrors = append(*s.mirrors, m)
	s.mirrored[st.key] = st.p
	if fresh {
		return st.storeCursor(st.getCursor())
	}
	return nil
}

// retire removes a mirror whose local partition was deleted, releases its
// pin and deletes its stored cursor, which belonged to the deleted data:
// a topic created again under the same name starts from its log start.
// The cursor stays when a new partition already took the key over.
func (s mirrorSet[M]) retire(m M) {
	st := m.state()
	s.mu.Lock()
	*s.mirrors = slices.DeleteFunc(*s.mirrors, func(o M) bool { return o.state() == st })
	var err error
	if s.mirrored[st.key] == st.p {
		err = st.meta.DeleteCursor(st.ns, st.key)
		if err == nil {
			// A cursor an exactly-once link committed upstream for this
			// key is the deleted partition's: one created again must not
			// resume from it, even after a restart (partState.init).
			err = st.meta.PutCursor(st.ns, freshKey(st.key), []byte{1})
		}
	}
	s.mu.Unlock()
	st.p.Unpin(st.ns)
	st.lg.Warn("local partition deleted; its mirror stops", "cursor", st.getCursor())
	if err != nil {
		// Harmless: a partition created again under this name finds a
		// cursor past its end, or is known to be new while this link runs.
		st.lg.Warn("deleting the cursor of the deleted partition failed", "err", err)
	}
}

// deleted reports whether the partition was deleted from the log (its topic
// deleted, perhaps created again): it is no longer the log's partition of
// that topic and number. A partition closed with the whole log is not.
func (s *partState) deleted(l *spoollog.Log) bool {
	t, err := l.Topic(s.topic)
	if err != nil {
		return errors.Is(err, spoollog.ErrUnknownTopic)
	}
	p, err := t.Partition(s.p.ID())
	return err != nil || p != s.p
}
