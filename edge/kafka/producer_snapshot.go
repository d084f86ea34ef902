package kafka

import (
	"encoding/json"
	"errors"
	"fmt"

	spoollog "github.com/spoolmq/spool/log"
)

// Producer state survives a clean restart: Close writes it to the
// metadata store once every connection is done (so every batch it lists
// is durable and nothing was appended after it), and the next start reads
// it and deletes it at once. A crash leaves no snapshot, or only one
// already consumed: the producers' last batches are then read back from
// the log's tail (producer_rebuild.go); a producer not found there is
// taken as it comes (a stale state would refuse its next batches).

const keyProducers = "producers" // the snapshot, in namespace nsKafka

type producerSnapshot struct {
	Version int                `json:"version"`
	Epochs  map[int64]int16    `json:"epochs"`
	States  []producerSnapItem `json:"states"`
}

type producerSnapItem struct {
	PID       int64          `json:"pid"`
	Topic     string         `json:"topic"`
	Partition int32          `json:"partition"`
	Epoch     int16          `json:"epoch"`
	LastSeq   int32          `json:"last_seq"`
	Recent    []snapshotSent `json:"recent"`
}

type snapshotSent struct {
	First, Last int32
	Base, End   int64 // the batch's first and last offsets
	AppendTime  int64
}

// save writes the snapshot. Call it only when no append is in flight.
func (ps *producers) save() error {
	ps.mu.Lock()
	snap := producerSnapshot{Version: 1, Epochs: ps.epochs}
	for k, st := range ps.parts {
		item := producerSnapItem{PID: k.pid, Topic: k.part.Topic().Name(), Partition: k.part.ID(), Epoch: st.epoch, LastSeq: st.lastSeq}
		for _, b := range st.recent {
			select {
			case <-b.done:
				if b.err == nil {
					item.Recent = append(item.Recent, snapshotSent{b.first, b.last, b.res.BaseOffset, b.res.LastOffset, b.res.LogAppendTime})
				}
			default:
			}
		}
		snap.States = append(snap.States, item)
	}
	b, err := json.Marshal(snap)
	ps.mu.Unlock()
	if err != nil {
		return err
	}
	return ps.meta.PutCursor(nsKafka, keyProducers, b)
}

// restore reads and deletes the snapshot a clean shutdown left; found is
// false when there was none (a crash, or the first start).
func (ps *producers) restore(l *spoollog.Log) (found bool, err error) {
	b, ok, err := ps.meta.GetCursor(nsKafka, keyProducers)
	if err != nil || !ok {
		return false, err
	}
	// Deleted before anything else: a crash from here on must not find
	// a snapshot older than the log.
	if err := ps.meta.DeleteCursor(nsKafka, keyProducers); err != nil {
		return false, err
	}
	var snap producerSnapshot
	if err := json.Unmarshal(b, &snap); err != nil || snap.Version != 1 {
		return false, errors.Join(fmt.Errorf("unreadable producer state snapshot (version %d)", snap.Version), err)
	}
	for pid, e := range snap.Epochs {
		ps.epochs[pid] = e
	}
	for _, it := range snap.States {
		t, err := l.Topic(it.Topic)
		if err != nil {
			continue // deleted since
		}
		p, err := t.Partition(it.Partition)
		if err != nil {
			continue
		}
		st := &seqState{epoch: it.Epoch, lastSeq: it.LastSeq}
		for _, r := range it.Recent {
			sb := &seqBatch{first: r.First, last: r.Last, done: make(chan struct{}),
				res: spoollog.AppendResult{BaseOffset: r.Base, LastOffset: r.End, LogAppendTime: r.AppendTime}}
			close(sb.done)
			st.recent = append(st.recent, sb)
		}
		ps.parts[pidPartition{it.PID, p}] = st
	}
	return true, nil
}
