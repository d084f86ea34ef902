package log

// Crash test with real processes: the test binary re-executes itself as a
// child that appends from several goroutines and reports every acknowledged
// record on stdout; the parent SIGKILLs it at a random moment, many times
// over the same data directory, and checks after each kill that every
// acknowledged record is stored intact at its acknowledged offset.
//
// A SIGKILL loses no page cache, so this checks process-crash consistency
// (torn batches, recovery of the previous run's tail, index caches written
// at odd moments, segments rolled mid-run), not power-loss durability.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	crashEnvDir  = "SPOOL_CRASH_CHILD_DIR"
	crashEnvRun  = "SPOOL_CRASH_CHILD_RUN"
	crashEnvSeed = "SPOOL_CRASH_SEED" // set by hand to replay a failure
	// crashEnvRecycle makes the child's topic retain few bytes, so that
	// retention deletes segments and their files are recycled (recycle.go).
	crashEnvRecycle = "SPOOL_CRASH_RECYCLE"

	crashTopic      = "crash"
	crashPartitions = 2
	crashWriters    = 8
	crashMaxBatch   = 3 // records per append: 1..crashMaxBatch
	crashMagic      = "SPCR"
)

// crashTopicConfig is small enough that segments roll several times during
// the test, with index entries (and index file writes) every few batches.
// With recycle, size retention deletes all but the last few segments, and
// they are large enough to be kept as spares and written over.
func crashTopicConfig(recycle bool) TopicConfig {
	cfg := DefaultTopicConfig()
	cfg.Partitions = crashPartitions
	cfg.Sync = SyncAlways
	cfg.SegmentBytes = 256 << 10
	cfg.MaxMessageBytes = 64 << 10
	cfg.IndexIntervalBytes = 1024
	cfg.Retention = -1
	if recycle {
		// Small, so that retention runs from the first runs on, even
		// under the race detector.
		cfg.SegmentBytes = 64 << 10
		cfg.RetentionBytes = 2 * cfg.SegmentBytes
	}
	return cfg
}

// crashPartitionOf is the partition writer w appends to.
func crashPartitionOf(w int) int32 { return int32(w % crashPartitions) }

// crashBatchLen is how many records writer w appends in the batch that
// starts at seq during run: both processes compute it, so the parent knows
// the exact extent of a batch that was stored but never acknowledged.
func crashBatchLen(run, w int, seq uint64) int {
	r := rand.New(rand.NewPCG(uint64(run)<<32|uint64(w), seq))
	return 1 + r.IntN(crashMaxBatch)
}

// crashValue encodes (run, writer, seq), a deterministic payload and a
// CRC-32 of everything before it.
func crashValue(run, w int, seq uint64) []byte {
	r := rand.New(rand.NewPCG(uint64(run)<<32|uint64(w), seq^0x9e3779b97f4a7c15))
	n := r.IntN(1500)
	if r.IntN(8) == 0 {
		n = 4000 + r.IntN(8000) // now and then a large one
	}
	b := make([]byte, 0, 24+n+4)
	b = append(b, crashMagic...)
	b = binary.BigEndian.AppendUint32(b, uint32(run))
	b = binary.BigEndian.AppendUint32(b, uint32(w))
	b = binary.BigEndian.AppendUint64(b, seq)
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	for i := 0; i < n; i += 8 {
		b = binary.LittleEndian.AppendUint64(b, r.Uint64())
	}
	b = b[:24+n]
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
}

type crashID struct {
	run, w int
	seq    uint64
}

// parseCrashValue checks a value's checksum, length and exact payload.
func parseCrashValue(v []byte) (crashID, error) {
	if len(v) < 28 || string(v[:4]) != crashMagic {
		return crashID{}, fmt.Errorf("not a crash test value (%d bytes)", len(v))
	}
	body, sum := v[:len(v)-4], binary.BigEndian.Uint32(v[len(v)-4:])
	if got := crc32.ChecksumIEEE(body); got != sum {
		return crashID{}, fmt.Errorf("value checksum %08x, stored %08x", got, sum)
	}
	id := crashID{
		run: int(binary.BigEndian.Uint32(v[4:])),
		w:   int(binary.BigEndian.Uint32(v[8:])),
		seq: binary.BigEndian.Uint64(v[12:]),
	}
	if n := binary.BigEndian.Uint32(v[20:]); int(n) != len(v)-28 {
		return id, fmt.Errorf("payload length %d in a %d-byte value", n, len(v))
	}
	if !bytes.Equal(v, crashValue(id.run, id.w, id.seq)) {
		return id, fmt.Errorf("value of %+v differs from what was appended", id)
	}
	return id, nil
}

// TestCrashChild is the child process of TestCrashRecovery; it does nothing
// in a normal test run.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnvDir)
	if dir == "" {
		t.Skip("child process of TestCrashRecovery")
	}
	run, err := strconv.Atoi(os.Getenv(crashEnvRun))
	if err != nil {
		crashChildFail("bad %s: %v", crashEnvRun, err)
	}
	// Never outlive the parent: it holds our stdin open until it is done.
	go func() {
		io.Copy(io.Discard, os.Stdin)
		os.Exit(3)
	}()
	// A backstop should the parent forget to kill us.
	time.AfterFunc(60*time.Second, func() { crashChildFail("not killed after 60s") })

	recycle := os.Getenv(crashEnvRecycle) != ""
	if recycle {
		minSpareBytes = 16 << 10 // the crash test's segments are small
	}
	l, err := Open(dir, Options{})
	if err != nil {
		crashChildFail("open: %v", err)
	}
	tp, err := l.Topic(crashTopic)
	if errors.Is(err, ErrUnknownTopic) {
		tp, err = l.CreateTopic(crashTopic, crashTopicConfig(recycle))
	}
	if err != nil {
		crashChildFail("topic: %v", err)
	}
	var outMu sync.Mutex
	var wg sync.WaitGroup
	for w := range crashWriters {
		p, err := tp.Partition(crashPartitionOf(w))
		if err != nil {
			crashChildFail("partition: %v", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Mostly uncompressed; lz4 is rare because every lz4 batch
			// costs the verifier a 4 MiB decompression buffer.
			codecs := []Codec{CodecNone, CodecNone, CodecNone, CodecSnappy, CodecNone, CodecZstd, CodecNone,
				CodecGzip, CodecNone, CodecSnappy, CodecNone, CodecZstd, CodecNone, CodecNone, CodecNone, CodecLz4}
			var line []byte
			for seq := uint64(0); ; {
				n := crashBatchLen(run, w, seq)
				recs := make([]Record, n)
				for i := range recs {
					recs[i] = Record{
						Timestamp: time.Now().UnixMilli(),
						Key:       fmt.Appendf(nil, "w%d", w),
						Value:     crashValue(run, w, seq+uint64(i)),
						Headers:   []Header{{Key: "run", Value: strconv.AppendInt(nil, int64(run), 10)}},
					}
				}
				opts := DefaultBatchOptions
				opts.Codec = codecs[(seq+uint64(w))%uint64(len(codecs))]
				res, err := p.AppendRecords(recs, opts)
				if err != nil {
					crashChildFail("writer %d append seq %d: %v", w, seq, err)
				}
				if res.LastOffset-res.BaseOffset != int64(n-1) {
					crashChildFail("writer %d append seq %d: %d records got offsets %d..%d", w, seq, n, res.BaseOffset, res.LastOffset)
				}
				// Acknowledged: report every record, in one write.
				line = line[:0]
				for i := range n {
					line = fmt.Appendf(line, "ack %d %d %d\n", w, seq+uint64(i), res.BaseOffset+int64(i))
				}
				outMu.Lock()
				_, err = os.Stdout.Write(line)
				outMu.Unlock()
				if err != nil {
					os.Exit(4)
				}
				seq += uint64(n)
			}
		}()
	}
	wg.Wait()
}

// crashChildFail reports a child failure to the parent on stdout (where it
// is read line by line) and exits.
func crashChildFail(format string, args ...any) {
	fmt.Fprintf(os.Stdout, "fail "+format+"\n", args...)
	os.Exit(2)
}

// crashAck is one acknowledged record: (run, writer, seq) at offset.
type crashAck struct {
	id     crashID
	offset int64
}

func TestCrashRecovery(t *testing.T) {
	iterations, budget := 25, 40*time.Second
	if testing.Short() {
		iterations, budget = 5, 15*time.Second
	}
	crashRecoveryTest(t, false, iterations, budget)
}

// TestCrashRecoveryRecycled is the crash test with size retention deleting
// segments as the children write: their files become the next segments,
// written over while the old batches are still in them, and the kills land
// anywhere in that.
func TestCrashRecoveryRecycled(t *testing.T) {
	iterations, budget := 15, 25*time.Second
	if testing.Short() {
		iterations, budget = 5, 10*time.Second
	}
	crashRecoveryTest(t, true, iterations, budget)
}

func crashRecoveryTest(t *testing.T, recycle bool, iterations int, budget time.Duration) {
	switch runtime.GOOS {
	case "js", "wasip1", "ios", "android":
		t.Skipf("cannot run child processes on %s", runtime.GOOS)
	}
	if os.Getenv(crashEnvDir) != "" {
		t.Skip("in the child")
	}
	exe := os.Args[0] // this test binary
	var err error
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(crashEnvSeed); s != "" {
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("%s: %v", crashEnvSeed, err)
		}
	}
	t.Logf("seed %d (replay with %s=%d)", seed, crashEnvSeed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	dir := filepath.Join(t.TempDir(), "data")
	// acks holds every record acknowledged by any run, by partition.
	acks := make([][]crashAck, crashPartitions)
	var runs []crashRunStats
	start := time.Now()
	for run := 0; run < iterations; run++ {
		if run >= 3 && time.Since(start) > budget {
			t.Logf("stopping after %d runs: time budget of %v spent", run, budget)
			break
		}
		// Most runs die 20-300 ms after their first ack; one in six dies
		// early, possibly during recovery, before acknowledging anything.
		var delay time.Duration
		early := run > 0 && rng.IntN(6) == 0
		if early {
			delay = time.Duration(rng.IntN(40)) * time.Millisecond
		} else {
			delay = time.Duration(20+rng.IntN(281)) * time.Millisecond
		}
		got, st := crashRun(t, exe, dir, run, delay, early, seed, recycle)
		for _, a := range got {
			p := crashPartitionOf(a.id.w)
			acks[p] = append(acks[p], a)
		}
		st.acks = len(got)

		// Verify on a copy every other run, so that the next child
		// recovers the torn tail itself; in place otherwise.
		vdir := dir
		if run%2 == 0 {
			vdir = filepath.Join(t.TempDir(), fmt.Sprintf("verify-%d", run))
			if err := crashCopyDir(dir, vdir); err != nil {
				t.Fatalf("run %d (seed %d): copy data dir: %v", run, seed, err)
			}
		}
		verifyStart := time.Now()
		st.segments, st.records, st.start, st.spares = crashVerify(t, vdir, run, acks, seed, recycle)
		st.verify = time.Since(verifyStart)
		if vdir != dir {
			os.RemoveAll(vdir)
		}
		runs = append(runs, st)
	}

	total, segs, spares := 0, 0, 0
	for _, st := range runs {
		total += st.acks
		t.Logf("run %2d: killed %3dms after %s, %4d acks, verify %v: %d records in %d segments, log start %d, %d spares",
			st.run, st.delay.Milliseconds(), st.after, st.acks, st.verify.Round(time.Millisecond), st.records, st.segments, st.start, st.spares)
		segs = st.segments
		spares += st.spares
	}
	t.Logf("%d runs, %d acknowledged records, %d segments, %v", len(runs), total, segs, time.Since(start).Round(time.Millisecond))
	if total == 0 {
		t.Fatalf("seed %d: no append was ever acknowledged", seed)
	}
	if recycle && spares == 0 {
		t.Fatalf("seed %d: retention never left a spare segment file: nothing was recycled", seed)
	}
}

type crashRunStats struct {
	run      int
	delay    time.Duration
	after    string
	acks     int
	verify   time.Duration
	segments int
	records  int
	start    int64 // log start of partition 0
	spares   int   // spare files found
}

// crashRun runs one child until it is killed and returns its acks.
func crashRun(t *testing.T, exe, dir string, run int, delay time.Duration, early bool, seed uint64, recycle bool) ([]crashAck, crashRunStats) {
	t.Helper()
	st := crashRunStats{run: run, delay: delay, after: "first ack"}
	if early {
		st.after = "start"
	}
	cmd := exec.Command(exe, "-test.run=^TestCrashChild$", "-test.count=1", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), crashEnvDir+"="+dir, crashEnvRun+"="+strconv.Itoa(run))
	if recycle {
		cmd.Env = append(cmd.Env, crashEnvRecycle+"=1")
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	kill := func() {
		if !killed {
			killed = true
			cmd.Process.Kill() // SIGKILL
		}
	}
	waited := false
	done := make(chan struct{})
	defer func() {
		// Never leave a child (or the goroutine reading it) behind,
		// whatever happened.
		close(done)
		kill()
		stdin.Close()
		if !waited {
			cmd.Wait()
		}
	}()

	type line struct {
		ack   crashAck
		isAck bool
		text  string
	}
	lines := make(chan line, 1024)
	go func() {
		defer close(lines)
		r := bufio.NewReader(stdout)
		for {
			s, err := r.ReadString('\n')
			if err != nil {
				// A last line without its newline was cut by the kill.
				return
			}
			s = strings.TrimSuffix(s, "\n")
			l := line{text: s}
			if n, _ := fmt.Sscanf(s, "ack %d %d %d", &l.ack.id.w, &l.ack.id.seq, &l.ack.offset); n == 3 {
				l.ack.id.run, l.isAck = run, true
			}
			select {
			case lines <- l:
			case <-done:
				return
			}
		}
	}()

	var got []crashAck
	var other []string
	take := func(l line) {
		if l.isAck {
			got = append(got, l.ack)
		} else {
			other = append(other, l.text)
		}
	}
	var timer <-chan time.Time
	if early {
		timer = time.After(delay)
	}
	noAck := time.After(30 * time.Second)
	eof := false
loop:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				eof = true
				break loop
			}
			take(l)
			if timer == nil && len(got) > 0 {
				timer = time.After(delay)
			}
		case <-timer:
			break loop
		case <-noAck:
			kill()
			cmd.Wait()
			waited = true
			t.Fatalf("run %d (seed %d): no ack within 30s; stderr:\n%s", run, seed, stderr.String())
		}
	}
	kill()
	if !eof {
		for l := range lines { // drains what the child wrote before dying
			take(l)
		}
	}
	err = cmd.Wait()
	waited = true
	for _, s := range other {
		if strings.HasPrefix(s, "fail ") {
			t.Fatalf("run %d (seed %d): child: %s\nstderr:\n%s", run, seed, s, stderr.String())
		}
	}
	if strings.Contains(stderr.String(), "DATA RACE") {
		t.Errorf("run %d (seed %d): the race detector fired in the child:\n%s", run, seed, stderr.String())
	}
	if !killed || !crashKilled(err) {
		t.Fatalf("run %d (seed %d): child exited by itself (%v) before the kill; output %q\nstderr:\n%s", run, seed, err, other, stderr.String())
	}
	return got, st
}

func crashKilled(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	return !ee.Exited() // ended by a signal
}

// crashVerify opens dir and checks every partition against the acks. With
// recycle, records below the log start were deleted by retention.
func crashVerify(t *testing.T, dir string, lastRun int, acks [][]crashAck, seed uint64, recycle bool) (segments, records int, start0 int64, spares int) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("after run %d (seed %d, data %s): %s", lastRun, seed, dir, fmt.Sprintf(format, args...))
	}
	l, err := Open(dir, Options{})
	if err != nil {
		fail("open: %v", err)
	}
	defer func() {
		if err := l.Close(); err != nil {
			fail("close: %v", err)
		}
	}()
	tp, err := l.Topic(crashTopic)
	if err != nil {
		if errors.Is(err, ErrUnknownTopic) && len(acks[0])+len(acks[1]) == 0 {
			return 0, 0, 0, 0 // killed before the topic was created
		}
		fail("topic: %v", err)
	}
	for pi := range int32(crashPartitions) {
		p, err := tp.Partition(pi)
		if err != nil {
			fail("%v", err)
		}
		segments += len(p.segments)
		start := p.LogStartOffset()
		if !recycle && start != 0 {
			fail("partition %d: log start %d, want 0", pi, start)
		}
		if pi == 0 {
			start0 = start
		}
		spares += len(spareFiles(t, p))
		stored := crashReadPartition(t, p, start, fail)
		records += len(stored)

		// Every acknowledged record at or past the log start is at its
		// offset.
		end := start + int64(len(stored))
		for _, a := range acks[pi] {
			if a.offset < start && recycle {
				continue // deleted by retention
			}
			if a.offset < 0 || a.offset >= end {
				fail("partition %d: acked %+v at offset %d, but the log holds [%d, %d)", pi, a.id, a.offset, start, end)
			}
			if got := stored[a.offset-start]; got != a.id {
				fail("partition %d: acked %+v at offset %d, but the log holds %+v there", pi, a.id, a.offset, got)
			}
		}

		// Per (run, writer): sequence numbers 0, 1, 2, ... in log
		// order, at most one unacknowledged batch after the last ack,
		// and runs in increasing order.
		type rw struct{ run, w int }
		next := map[rw]uint64{}
		runOf := map[int]int{} // writer's run at the last record seen
		for off, id := range stored {
			if r, ok := runOf[id.w]; ok && id.run < r {
				fail("partition %d offset %d: writer %d of run %d after its records of run %d", pi, off, id.w, id.run, r)
			}
			runOf[id.w] = id.run
			k := rw{id.run, id.w}
			if _, seen := next[k]; !seen && start > 0 {
				next[k] = id.seq // the run's first records may be deleted
			}
			if id.seq != next[k] {
				fail("partition %d offset %d: writer %d run %d seq %d, want seq %d (gap or reorder)", pi, off, id.w, id.run, id.seq, next[k])
			}
			next[k] = id.seq + 1
		}
		acked := map[rw]uint64{} // seq after the last acked record
		for _, a := range acks[pi] {
			k := rw{a.id.run, a.id.w}
			acked[k] = max(acked[k], a.id.seq+1)
		}
		for k, n := range next {
			if a := acked[k]; n > a && n-a != uint64(crashBatchLen(k.run, k.w, a)) {
				fail("partition %d: writer %d run %d stored seqs up to %d, acked up to %d: more than the one batch in flight", pi, k.w, k.run, n-1, int64(a)-1)
			}
		}
	}
	return segments, records, start0, spares
}

// crashReadPartition reads a whole partition, checking that batches and
// offsets are contiguous from start, that each batch is one writer's
// whole append, and every value's checksum. It returns the record at
// every offset from start.
func crashReadPartition(t *testing.T, p *Partition, start int64, fail func(string, ...any)) []crashID {
	t.Helper()
	hw := p.HighWatermark()
	var out []crashID
	off := start
	for off < hw {
		data, err := p.Read(off, 256<<10)
		if err != nil {
			fail("partition %d: read at %d (high watermark %d): %v", p.ID(), off, hw, err)
		}
		if len(data) == 0 {
			fail("partition %d: read at %d below the high watermark %d returned nothing", p.ID(), off, hw)
		}
		err = SplitBatches(data, func(h BatchHeader, b []byte) error {
			if h.BaseOffset != off {
				return fmt.Errorf("batch at offset %d, want %d (gap or overlap)", h.BaseOffset, off)
			}
			_, recs, err := DecodeRecords(b)
			if err != nil {
				return fmt.Errorf("batch at %d: %v", off, err)
			}
			if int64(len(recs)) != int64(h.LastOffsetDelta)+1 {
				return fmt.Errorf("batch at %d: %d records for last offset delta %d", off, len(recs), h.LastOffsetDelta)
			}
			// A batch holds whole appends, each its writer's records in
			// sequence: one append, or several that the flusher merged
			// (AppendRecords batches are Spool's own, merge.go).
			var first crashID
			left := 0 // records of the current append still to come
			for i, r := range recs {
				if r.Offset != off {
					return fmt.Errorf("record %d of the batch at %d has offset %d, want %d", i, h.BaseOffset, r.Offset, off)
				}
				id, err := parseCrashValue(r.Value)
				if err != nil {
					return fmt.Errorf("record at %d: %v", off, err)
				}
				if crashPartitionOf(id.w) != p.ID() {
					return fmt.Errorf("record at %d: writer %d belongs to partition %d", off, id.w, crashPartitionOf(id.w))
				}
				if left == 0 {
					first, left = id, crashBatchLen(id.run, id.w, id.seq)
				} else if n := crashBatchLen(first.run, first.w, first.seq) - left; id.run != first.run || id.w != first.w || id.seq != first.seq+uint64(n) {
					return fmt.Errorf("batch at %d mixes %+v and %+v: not whole appends", h.BaseOffset, first, id)
				}
				left--
				if string(r.Key) != fmt.Sprintf("w%d", id.w) {
					return fmt.Errorf("record at %d: key %q", off, r.Key)
				}
				out = append(out, id)
				off++
			}
			if left != 0 {
				return fmt.Errorf("batch at %d ends %d records into an append of writer %d run %d from seq %d (%d records)", h.BaseOffset,
					crashBatchLen(first.run, first.w, first.seq)-left, first.w, first.run, first.seq, crashBatchLen(first.run, first.w, first.seq))
			}
			return nil
		})
		if err != nil {
			fail("partition %d: %v", p.ID(), err)
		}
	}
	if int64(len(out)) != hw-start {
		fail("partition %d: read %d records from %d below high watermark %d", p.ID(), len(out), start, hw)
	}
	// Nothing is readable at or past the high watermark.
	if data, err := p.Read(hw, 1<<10); err != nil || len(data) != 0 {
		fail("partition %d: read at the high watermark %d: %d bytes, %v", p.ID(), hw, len(data), err)
	}
	return out
}

// crashCopyDir copies a data directory (regular files and directories).
func crashCopyDir(src, dst string) error {
	return filepath.Walk(src, func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if fi.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, fi.Mode().Perm())
	})
}
