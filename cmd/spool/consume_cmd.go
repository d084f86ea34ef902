package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// startAt is where a consume begins in a partition that has no committed
// offset.
type startAt struct {
	kind string // "earliest", "latest" or "exact"
	at   int64  // the offset, for "exact"
}

func parseStartAt(s string) (startAt, error) {
	switch s {
	case "earliest", "beginning":
		return startAt{kind: "earliest"}, nil
	case "latest", "end":
		return startAt{kind: "latest"}, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return startAt{}, fmt.Errorf("--offset %q is not earliest, latest or an offset", s)
	}
	return startAt{kind: "exact", at: n}, nil
}

// next is the first offset a consume starting here reads, given the
// partition's log start and high watermark; kgo clamps an exact offset
// into the log the same way.
func (s startAt) next(logStart, end int64) int64 {
	switch s.kind {
	case "earliest":
		return logStart
	case "latest":
		return end
	}
	return min(max(s.at, logStart), end)
}

func (s startAt) kgoOffset(logStart, end int64) kgo.Offset {
	// Exact offsets, not AtEnd: "latest" means the end when spool started,
	// so that --follow also prints what is produced while it connects.
	return kgo.NewOffset().At(s.next(logStart, end))
}

// runConsume prints the records of a topic, like
// kafka-console-consumer.sh. Without --follow it stops once it has read up
// to the high watermarks it saw when it started, so that it can be used in
// scripts; with --group it resumes from and commits the group's offsets.
func runConsume(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("spool consume", stderr)
	k := addKafkaFlags(fs)
	fromBeginning := fs.Bool("from-beginning", false, "start at the earliest offset (same as --offset earliest)")
	offset := fs.String("offset", "", "where to start: earliest, latest or an offset N (default: earliest, or latest with --follow; with --group, only where nothing is committed)")
	partition := fs.Int("partition", -1, "read only this partition (default: all)")
	group := fs.String("group", "", "consume as a member of this consumer group and commit what was printed")
	follow := fs.Bool("follow", false, "keep waiting for new records (default: stop when caught up with the high watermarks seen at start)")
	count := fs.Int("count", 0, "stop after N records (default: no limit)")
	format := fs.String("format", "text", "output: text (the value, one a line) or json (one object a line)")
	printKey := fs.Bool("print-key", false, "text format: print key<TAB>value")
	isolation := fs.String("isolation", "committed", "committed: only records of committed transactions (as librdkafka and kcat read); uncommitted: also those of pending and aborted ones")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: spool consume TOPIC [flags]\nPrints records to stdout and the count to stderr.")
		fs.PrintDefaults()
	}
	pos, code := parseInterspersed(fs, args)
	if code >= 0 {
		return code
	}
	if len(pos) != 1 || pos[0] == "" {
		fs.Usage()
		return 2
	}
	topic := pos[0]
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "spool consume: "+format+"\n", a...)
		return 2
	}

	start := startAt{kind: "earliest"}
	if *follow {
		start.kind = "latest"
	}
	switch {
	case *fromBeginning && *offset != "":
		return usageErr("--from-beginning and --offset exclude each other")
	case *fromBeginning:
		start.kind = "earliest"
	case *offset != "":
		var err error
		if start, err = parseStartAt(*offset); err != nil {
			return usageErr("%v", err)
		}
	}
	if *group != "" && (*partition >= 0 || start.kind == "exact") {
		return usageErr("--group assigns the partitions and resumes from committed offsets; --partition and --offset N are for consuming without a group (see spool group reset-offsets)")
	}
	if *partition < -1 || *partition > 1<<31-1 {
		return usageErr("--partition %d is not a partition number", *partition)
	}
	if *count < 0 {
		return usageErr("--count %d is negative", *count)
	}
	if *format != "text" && *format != "json" {
		return usageErr("--format %q is not text or json", *format)
	}
	if *isolation != "committed" && *isolation != "uncommitted" {
		return usageErr("--isolation %q is not committed or uncommitted", *isolation)
	}
	committed := *isolation == "committed"

	// What the topic holds now: its partitions, log starts and high
	// watermarks. A consume without --follow reads up to these.
	admCl, adm, err := k.admin(ctx)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	snap, err := snapshotTopic(ctx, adm, topic, committed)
	admCl.Close()
	if err != nil {
		return fail(stderr, "consume %s: %v", topic, err)
	}
	if *partition >= 0 {
		if _, ok := snap.end[int32(*partition)]; !ok {
			return fail(stderr, "consume %s: --partition %d, but the topic has partitions 0 to %d", topic, *partition, len(snap.end)-1)
		}
	}

	sigCtx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	prog := &progress{end: snap.end, next: map[int32]int64{}}
	opts := []kgo.Opt{
		// Control records (transaction markers) take offsets too; seeing
		// them is how the position reaches a high watermark that sits
		// behind one. They are never printed.
		kgo.KeepControlRecords(),
	}
	if committed {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	if *group != "" {
		first := kgo.NewOffset().AtStart()
		if start.kind == "latest" {
			first = kgo.NewOffset().AtEnd()
		}
		opts = append(opts,
			kgo.ConsumerGroup(*group),
			kgo.ConsumeTopics(topic),
			kgo.ConsumeStartOffset(first),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			// Commit exactly what was printed: --count may stop in the
			// middle of a polled batch.
			kgo.AutoCommitMarks(),
			kgo.OnPartitionsAssigned(func(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) {
				prog.assign(ctx, cl, *group, topic, assigned[topic], start, snap)
			}),
			kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
				// Replacing the default revoke means committing here, as
				// it would, before another member takes the partitions.
				if err := cl.CommitMarkedOffsets(ctx); err != nil {
					prog.fail(fmt.Errorf("committing offsets on a rebalance: %w", err))
				}
				prog.drop(revoked[topic])
			}),
			kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
				prog.drop(lost[topic])
			}),
		)
	} else {
		parts := map[int32]kgo.Offset{}
		for p, end := range snap.end {
			if *partition >= 0 && p != int32(*partition) {
				continue
			}
			parts[p] = start.kgoOffset(snap.start[p], end)
			prog.next[p] = start.next(snap.start[p], end)
		}
		prog.ready = true
		opts = append(opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}))
	}
	cl, err := k.connect(ctx, opts...)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	defer cl.Close()

	if *follow {
		fmt.Fprintf(stderr, "spool: following %s; interrupt to stop\n", topic)
	}
	out := bufio.NewWriterSize(stdout, 64<<10)
	pr := recordPrinter{w: out, json: *format == "json", printKey: *printKey}
	n := 0
	var runErr error
	interrupted := false
	lastRecord, lastLook := time.Now(), time.Time{}
	var lookCl *kgo.Client // for committedRest, made when first needed
poll:
	for {
		if err := prog.failure(); err != nil {
			runErr = err
			break
		}
		if *count > 0 && n >= *count {
			break
		}
		if !*follow && prog.done() {
			break
		}
		// Without --follow a poll that brings nothing for the whole
		// timeout means the broker stopped answering, or the log has a
		// gap (compaction) the position cannot cross: stop, not hang.
		pctx, cancel := sigCtx, context.CancelFunc(func() {})
		unwake := func() {}
		if !*follow {
			wait := k.timeout
			if committed {
				// Short polls, each followed by a look for aborted batches
				// that no poll will ever cross (consume_committed.go).
				wait = min(wait, committedLookEvery)
			}
			pctx, cancel = context.WithTimeout(sigCtx, wait)
			// A group assignment can make the consume done while the
			// poll waits for records that are not coming: it wakes the
			// poll.
			unwake = prog.wakeWhenDone(cancel)
		}
		fetches := cl.PollRecords(pctx, *count-n)
		unwake()
		cancel()
		if fetches.IsClientClosed() {
			break
		}
		var fetchErr error
		fetches.EachError(func(t string, p int32, err error) {
			if fetchErr == nil {
				fetchErr = fmt.Errorf("partition %d: %w", p, err)
				if t == "" {
					fetchErr = err
				}
			}
		})
		fetches.EachRecord(func(r *kgo.Record) {
			if *count > 0 && n >= *count {
				return
			}
			if !*follow && prog.past(r.Partition, r.Offset) {
				return // produced after the start: neither printed nor committed
			}
			lastRecord = time.Now() // progress: records past the ends are none
			prog.advance(r.Partition, r.Offset+1)
			if *group != "" {
				cl.MarkCommitRecords(r)
			}
			if r.Attrs.IsControl() {
				return
			}
			pr.print(r)
			n++
		})
		if err := out.Flush(); err != nil {
			runErr = fmt.Errorf("writing the records: %w", err)
			break
		}
		if committed && !*follow && sigCtx.Err() == nil && time.Since(lastRecord) >= committedLookEvery && time.Since(lastLook) >= committedLookEvery {
			// Nothing given for a while: maybe only aborted batches are
			// left below the ends, which no poll crosses.
			lastLook = time.Now()
			for part, next := range prog.short() {
				if lookCl == nil {
					// A client of its own: on the consumer's, the look would
					// queue behind its long-polling fetch.
					if lookCl, err = k.connect(sigCtx); err != nil {
						runErr = err
						break poll
					}
					defer lookCl.Close()
				}
				more, err := committedRest(sigCtx, lookCl, topic, part, next, snap.end[part])
				if err != nil {
					runErr = fmt.Errorf("partition %d: looking for committed records at %d: %w", part, next, err)
					break poll
				}
				if !more {
					prog.advance(part, snap.end[part]) // only aborted batches and markers left
				}
			}
		}
		switch {
		case fetchErr == nil:
		case sigCtx.Err() != nil:
			interrupted = true
			break poll
		case errors.Is(fetchErr, context.Canceled):
			// Woken: done or failed, which the top of the loop handles.
		case errors.Is(fetchErr, context.DeadlineExceeded) && committed && time.Since(lastRecord) < k.timeout:
			// A short poll (committedLookEvery) ran out: looked below.
		case errors.Is(fetchErr, context.DeadlineExceeded):
			runErr = fmt.Errorf("no record for %v before reaching the high watermarks seen at start (%s); --follow waits without limit", k.timeout, prog.behind())
			break poll
		default:
			runErr = fetchErr
			break poll
		}
	}
	if err := out.Flush(); err != nil && runErr == nil {
		runErr = fmt.Errorf("writing the records: %w", err)
	}
	if *group != "" {
		// The commit must happen even after a signal, so it gets its own
		// bounded context rather than the cancelled one.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), k.timeout)
		err := cl.CommitMarkedOffsets(cctx)
		cancel()
		if err != nil && runErr == nil {
			runErr = fmt.Errorf("committing offsets for group %s: %w", *group, err)
		}
	}
	if interrupted {
		fmt.Fprintln(stderr, "spool: interrupted")
	}
	fmt.Fprintf(stderr, "spool: consumed %d records from %s\n", n, topic)
	if runErr != nil {
		return fail(stderr, "consume %s: %v", topic, runErr)
	}
	return 0
}
