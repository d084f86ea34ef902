package log

// Transactions, as a Kafka partition keeps them. A transactional producer's
// batches are pending until a control batch of the same producer (a marker)
// commits or aborts them. The last stable offset (LSO) is the first offset
// of the oldest pending transaction, or the high watermark when none is
// pending: committed readers (Kafka's read_committed, and Spool's own
// readers: the bridge, MQTT delivery, HTTP, actuators) see nothing at or
// past it. Aborted transactions stay listed (producer id, first offset,
// marker offset) while their data is in the log, so that readers skip
// their batches.
//
// The transaction coordinator (edge/kafka) drives this: BeginTxn when a
// producer adds the partition to its transaction, EndTxn to write the
// marker. The state is written to meta.db before it matters: a pending
// transaction before BeginTxn returns (so a restart knows what is pending
// before any reader starts), its end once its marker is durable. A crash
// between the marker and that write leaves the transaction pending; the
// coordinator ends it again at start, and a second marker is harmless.

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
)

// AbortedTxn is an aborted transaction of one partition: its producer's
// batches from First up to the abort marker at Last are not committed.
type AbortedTxn struct {
	ProducerID int64 `json:"pid"`
	// First is at or below the transaction's first batch: the next offset
	// when it began.
	First int64 `json:"first"`
	Last  int64 `json:"last"`
}

// txnState is a partition's transactions. mu guards it; pending mirrors
// len(ongoing) so that readers of a partition without transactions take
// no lock. saveMu, taken before mu, serialises changes that are stored.
type txnState struct {
	saveMu  sync.Mutex
	mu      sync.Mutex
	dirty   bool            // the last save failed: meta.db is behind memory
	ongoing map[int64]int64 // producer id -> first offset (a lower bound until the first batch)
	seen    map[int64]bool  // the first batch of the transaction was appended: ongoing is exact
	aborted []AbortedTxn    // in marker order
	pending atomic.Int32
}

// txnRecord is txnState as stored in meta.db.
type txnRecord struct {
	Ongoing map[int64]int64 `json:"ongoing,omitempty"`
	Aborted []AbortedTxn    `json:"aborted,omitempty"`
}

// loadTxns reads the partition's stored transactions.
func (p *Partition) loadTxns() error {
	b, err := p.l.meta.getTxns(p.topic.name, p.id)
	if err != nil || b == nil {
		return err
	}
	var rec txnRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return fmt.Errorf("meta: transactions of %s/%d: %w", p.topic.name, p.id, err)
	}
	t := &p.txn
	t.mu.Lock()
	defer t.mu.Unlock()
	// A transaction began at the end of the log as it was then, which
	// may have included appends a crash lost (sync: interval or never):
	// its batches come after the end the log has now.
	p.mu.Lock()
	end := p.next
	p.mu.Unlock()
	// Whether their first batch was appended before is not stored: the
	// offset where each began stays their first (TxnAppended must not take
	// a later batch for it).
	seen := map[int64]bool{}
	for pid, first := range rec.Ongoing {
		rec.Ongoing[pid], seen[pid] = min(first, end), true
	}
	t.ongoing, t.seen, t.aborted = rec.Ongoing, seen, rec.Aborted
	t.pending.Store(int32(len(t.ongoing)))
	return nil
}

// saveTxns writes the state as it is now, after dropping aborted
// transactions whose marker retention has removed. Call it with saveMu
// held and mu not: the meta.db write (an fsync) happens outside mu, so
// that appends' callbacks (TxnAppended) and readers never wait for it,
// and saveMu keeps the writes in the order of the states they write.
func (p *Partition) saveTxns() error {
	t := &p.txn
	if p.gone.Load() {
		// Deleted (DeleteTopic waits for saves under way): writing now
		// would bring the state back under the name.
		return fmt.Errorf("%w: topic %q partition %d", ErrClosed, p.topic.name, p.id)
	}
	err := p.writeTxns()
	t.mu.Lock()
	t.dirty = err != nil
	t.mu.Unlock()
	return err
}

// writeTxns is saveTxns' write.
func (p *Partition) writeTxns() error {
	t := &p.txn
	t.mu.Lock()
	start := p.LogStartOffset()
	i := sort.Search(len(t.aborted), func(i int) bool { return t.aborted[i].Last >= start })
	t.aborted = t.aborted[i:]
	var v []byte
	var err error
	if len(t.ongoing) > 0 || len(t.aborted) > 0 {
		v, err = json.Marshal(txnRecord{Ongoing: t.ongoing, Aborted: t.aborted})
	}
	t.mu.Unlock()
	if err != nil {
		return err
	}
	return p.l.meta.putTxns(p.topic.name, p.id, v)
}

// BeginTxn records that producer pid has a transaction pending here: its
// batches come after the offsets assigned so far, and committed readers
// stop before them until EndTxn. It is stored when BeginTxn returns.
// Beginning a pending transaction again changes nothing.
func (p *Partition) BeginTxn(pid int64) error {
	if p.gone.Load() {
		return fmt.Errorf("%w: topic %q partition %d", ErrClosed, p.topic.name, p.id)
	}
	t := &p.txn
	t.saveMu.Lock()
	defer t.saveMu.Unlock()
	t.mu.Lock()
	if _, ok := t.ongoing[pid]; ok {
		t.mu.Unlock()
		return nil
	}
	// The high watermark, not the next offset to assign: queued appends
	// of a cycle that fails give their offsets back (failLocked, Recover),
	// and the transaction's batches may then land below that. Its first
	// batch makes the offset exact (TxnAppended).
	first := p.HighWatermark()
	if t.ongoing == nil {
		t.ongoing, t.seen = map[int64]int64{}, map[int64]bool{}
	}
	// Pending for readers from now on (they stop before it), and stored
	// before BeginTxn returns.
	t.ongoing[pid] = first
	t.pending.Store(int32(len(t.ongoing)))
	t.mu.Unlock()
	if err := p.saveTxns(); err != nil {
		t.mu.Lock()
		delete(t.ongoing, pid)
		t.pending.Store(int32(len(t.ongoing)))
		t.mu.Unlock()
		p.wakeReaders()
		return fmt.Errorf("storing the transaction of producer %d on %s/%d: %w", pid, p.topic.name, p.id, err)
	}
	return nil
}

// TxnPending reports whether producer pid has a transaction pending here.
func (p *Partition) TxnPending(pid int64) bool {
	t := &p.txn
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.ongoing[pid]
	return ok
}

// TxnAppended tells the partition where producer pid's pending transaction
// really starts: the base offset of its first batch, durable now. Until
// then the LSO stays at the offset where the transaction began, which may
// hold back records of other producers appended in between.
func (p *Partition) TxnAppended(pid, base int64) {
	t := &p.txn
	t.mu.Lock()
	first, ok := t.ongoing[pid]
	if ok && !t.seen[pid] && base >= first {
		t.ongoing[pid], t.seen[pid] = base, true
	}
	t.mu.Unlock()
	if ok {
		p.wakeReaders()
	}
}

// EndTxn writes producer pid's commit or abort marker and ends its pending
// transaction. It returns the marker's offset, or -1 when no transaction
// of pid is pending here (already ended: a coordinator finishing an end
// that a crash interrupted). The marker is durable before the transaction
// ends, for readers and in meta.db.
func (p *Partition) EndTxn(pid int64, epoch int16, commit bool, coordinatorEpoch int32) (int64, error) {
	t := &p.txn
	t.mu.Lock()
	first, ok := t.ongoing[pid]
	dirty := t.dirty
	t.mu.Unlock()
	if !ok {
		if dirty {
			// Ended before, but the end was not stored: a coordinator
			// retrying learns whether it is now, or the transaction would
			// be pending again after a restart with no one to end it.
			t.saveMu.Lock()
			defer t.saveMu.Unlock()
			if err := p.saveTxns(); err != nil {
				return -1, fmt.Errorf("storing the end of producer %d's transaction on %s/%d: %w", pid, p.topic.name, p.id, err)
			}
		}
		return -1, nil
	}
	marker, err := controlBatch(pid, epoch, commit, coordinatorEpoch, p.l.now().UnixMilli())
	if err != nil {
		return -1, err
	}
	res, err := p.Append(marker)
	if err == nil {
		err = p.syncMarker()
	}
	if err != nil {
		return -1, err
	}
	t.saveMu.Lock()
	defer t.saveMu.Unlock()
	t.mu.Lock()
	delete(t.ongoing, pid)
	delete(t.seen, pid)
	if !commit {
		// In marker order, which concurrent ends may complete out of.
		a := AbortedTxn{ProducerID: pid, First: first, Last: res.BaseOffset}
		i := sort.Search(len(t.aborted), func(i int) bool { return t.aborted[i].Last > a.Last })
		t.aborted = slices.Insert(t.aborted, i, a)
	}
	t.pending.Store(int32(len(t.ongoing)))
	t.mu.Unlock()
	err = p.saveTxns()
	// The LSO moved: readers waiting at it look again. The marker's own
	// append woke them while the transaction was still pending.
	p.wakeReaders()
	if err != nil {
		// The marker is durable and readers go by memory; meta.db still
		// lists the transaction as pending, so a restart ends it again.
		return res.BaseOffset, fmt.Errorf("storing the end of producer %d's transaction on %s/%d: %w", pid, p.topic.name, p.id, err)
	}
	return res.BaseOffset, nil
}

// syncMarker fsyncs a marker just appended whatever the topic's sync
// policy: meta.db is about to say the transaction ended, and a marker lost
// in a crash after that would leave its aborted records looking committed.
func (p *Partition) syncMarker() error {
	if p.topic.Config().Sync == SyncAlways {
		return nil // Append returned after the fsync
	}
	p.ioMu.Lock()
	defer p.ioMu.Unlock()
	if p.segmentsClosed() {
		return fmt.Errorf("%w: topic %q partition %d", ErrClosed, p.topic.name, p.id)
	}
	if !p.dirty {
		return nil // synced since (a roll syncs what it seals)
	}
	return p.syncLocked(p.l.now())
}

// LastStableOffset is the offset committed readers stop before: the first
// offset of the oldest pending transaction, or the high watermark.
func (p *Partition) LastStableOffset() int64 {
	hw := p.HighWatermark()
	t := &p.txn
	if t.pending.Load() == 0 {
		return hw
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	lso := hw
	for _, first := range t.ongoing {
		lso = min(lso, first)
	}
	return max(lso, p.LogStartOffset())
}

// AbortedTxns returns the aborted transactions whose data may lie in
// [from, to]: marker at or after from, first offset at or before to, in
// marker order. Kafka's fetch answers them to read_committed consumers.
func (p *Partition) AbortedTxns(from, to int64) []AbortedTxn {
	t := &p.txn
	t.mu.Lock()
	defer t.mu.Unlock()
	i := sort.Search(len(t.aborted), func(i int) bool { return t.aborted[i].Last >= from })
	var out []AbortedTxn
	for _, a := range t.aborted[i:] {
		if a.First <= to {
			out = append(out, a)
		}
	}
	return out
}

// ReadCommitted is Read for readers of committed records only: it returns
// nothing at or past the last stable offset. Pair it with EachCommitted,
// which skips aborted transactions.
func (p *Partition) ReadCommitted(offset int64, maxBytes int) ([]byte, error) {
	lso := p.LastStableOffset()
	if offset >= lso && offset >= p.LogStartOffset() && offset <= p.HighWatermark() && !p.gone.Load() {
		// Nothing readable yet. (Read says why, when that is an error.)
		return nil, nil
	}
	data, err := p.Read(offset, maxBytes)
	if err != nil || len(data) == 0 || p.txn.pending.Load() == 0 {
		return data, err
	}
	// Cut before the first batch at the LSO. No batch straddles it: the
	// LSO is where a transaction began or its first batch starts.
	end := 0
	walkHeaders(data, func(h BatchHeader) bool {
		if h.BaseOffset >= lso {
			return false
		}
		end += h.Size()
		return true
	})
	return data[:end], nil
}

// EachCommitted is EachRecord over data from ReadCommitted that also skips
// the batches of aborted transactions.
func (p *Partition) EachCommitted(data []byte, from int64, fn func(Record) error) (int64, error) {
	var aborted []AbortedTxn
	if p.hasAborted() {
		aborted = p.AbortedTxns(from, lastOffsetIn(data))
	}
	if len(aborted) == 0 {
		return EachRecord(data, from, fn)
	}
	return eachRecord(data, from, func(h BatchHeader) bool { return isAborted(aborted, h) }, fn)
}

// Aborted reports whether batch h, read from this partition, belongs to an
// aborted transaction: committed readers skip it.
func (p *Partition) Aborted(h BatchHeader) bool {
	if !h.Transactional() || h.Control() || !p.hasAborted() {
		return false
	}
	return isAborted(p.AbortedTxns(h.BaseOffset, h.BaseOffset), h)
}

// isAborted reports whether batch h belongs to one of the aborted
// transactions (of its producer, between their first offset and marker).
func isAborted(aborted []AbortedTxn, h BatchHeader) bool {
	if !h.Transactional() || h.Control() {
		return false
	}
	for _, a := range aborted {
		if a.ProducerID == h.ProducerID && h.BaseOffset >= a.First && h.BaseOffset < a.Last {
			return true
		}
	}
	return false
}

func (p *Partition) hasAborted() bool {
	p.txn.mu.Lock()
	defer p.txn.mu.Unlock()
	return len(p.txn.aborted) > 0
}

// lastOffsetIn is the last offset of the whole batches in data, -1 if none.
func lastOffsetIn(data []byte) int64 {
	last := int64(-1)
	walkHeaders(data, func(h BatchHeader) bool {
		last = h.LastOffset()
		return true
	})
	return last
}

// walkHeaders calls fn with the header of each whole batch at the start of
// data, read as stored (a Read's data was checked when written and is
// checked again by whoever decodes it), until fn returns false.
func walkHeaders(data []byte, fn func(BatchHeader) bool) {
	for len(data) >= batchHeaderSize {
		h := parseBatchHeader(data)
		if h.Length <= 0 || h.Size() > len(data) || !fn(h) {
			return
		}
		data = data[h.Size():]
	}
}

// Control record layout (Kafka's EndTransactionMarker): the key is a
// version and the marker type, the value a version and the coordinator's
// epoch.
const (
	controlAbort  = 0
	controlCommit = 1
)

// controlBatch encodes a commit or abort marker of producer pid.
func controlBatch(pid int64, epoch int16, commit bool, coordinatorEpoch int32, now int64) ([]byte, error) {
	typ := int16(controlAbort)
	if commit {
		typ = controlCommit
	}
	key := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, 0), uint16(typ))
	value := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint16(nil, 0), uint32(coordinatorEpoch))
	h := BatchHeader{
		Attributes:    attrTransactional | attrControl,
		BaseTimestamp: now, MaxTimestamp: now,
		ProducerID: pid, ProducerEpoch: epoch, BaseSequence: -1,
	}
	return appendBatch(nil, h, []Record{{Timestamp: now, Key: key, Value: value}}, false)
}

// ControlMarker decodes a control batch's marker: commit (true) or abort.
func ControlMarker(batch []byte) (commit bool, err error) {
	commit, _, err = DecodeMarker(batch)
	return commit, err
}

// DecodeMarker decodes a control batch's marker and the coordinator epoch
// it carries.
func DecodeMarker(batch []byte) (commit bool, coordinatorEpoch int32, err error) {
	h, recs, err := DecodeRecords(batch)
	if err != nil {
		return false, 0, err
	}
	if !h.Control() {
		return false, 0, fmt.Errorf("batch at offset %d is not a control batch", h.BaseOffset)
	}
	if len(recs) != 1 || len(recs[0].Key) < 4 {
		return false, 0, fmt.Errorf("control batch with %d records is not a transaction marker", len(recs))
	}
	if len(recs[0].Value) >= 6 {
		coordinatorEpoch = int32(binary.BigEndian.Uint32(recs[0].Value[2:]))
	}
	switch typ := int16(binary.BigEndian.Uint16(recs[0].Key[2:])); typ {
	case controlCommit:
		return true, coordinatorEpoch, nil
	case controlAbort:
		return false, coordinatorEpoch, nil
	default:
		return false, 0, fmt.Errorf("control record type %d is not a transaction marker", typ)
	}
}

// wakeReaders wakes tailing readers without publishing new data.
func (p *Partition) wakeReaders() {
	p.notifyMu.Lock()
	defer p.notifyMu.Unlock()
	if p.notifyDone {
		return
	}
	close(p.notify)
	p.notify = make(chan struct{})
}
