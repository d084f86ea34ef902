package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

const groupUsage = `usage: spool group list
       spool group describe GROUP
       spool group reset-offsets GROUP --topic T (--to-earliest | --to-latest | --to-offset N) [--partition N] [--execute]
Every subcommand takes --brokers host:port[,host:port] (env SPOOL_BROKERS) and --timeout.`

// runGroup inspects consumer groups and moves their committed offsets, like
// kafka-consumer-groups.sh.
func runGroup(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, groupUsage)
		return 2
	}
	switch args[0] {
	case "list":
		return runGroupList(ctx, args[1:], stdout, stderr)
	case "describe":
		return runGroupDescribe(ctx, args[1:], stdout, stderr)
	case "reset-offsets":
		return runGroupResetOffsets(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, groupUsage)
		return 0
	}
	fmt.Fprintf(stderr, "spool group: unknown subcommand %q\n%s\n", args[0], groupUsage)
	return 2
}

func runGroupList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("spool group list", stderr)
	k := addKafkaFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: spool group list [flags]")
		fs.PrintDefaults()
	}
	pos, code := parseInterspersed(fs, args)
	if code >= 0 {
		return code
	}
	if len(pos) != 0 {
		fs.Usage()
		return 2
	}
	cl, adm, err := k.admin(ctx)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	defer cl.Close()
	groups, err := adm.ListGroups(ctx)
	if err != nil {
		return fail(stderr, "group list: %v", err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tSTATE\tPROTOCOL-TYPE")
	for _, g := range groups.Sorted() {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", g.Group, dash(g.State), dash(g.ProtocolType))
	}
	tw.Flush()
	return 0
}

func runGroupDescribe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("spool group describe", stderr)
	k := addKafkaFlags(fs)
	name, code := nameArg(fs, args, "spool group describe GROUP [flags]")
	if code >= 0 {
		return code
	}
	cl, adm, err := k.admin(ctx)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	defer cl.Close()
	lags, err := adm.Lag(ctx, name)
	if err != nil {
		return fail(stderr, "group describe %s: %v", name, err)
	}
	g, ok := lags[name]
	if !ok {
		return fail(stderr, "group describe %s: not in the broker's answer", name)
	}
	if err := g.Error(); err != nil {
		if errors.Is(err, kerr.GroupIDNotFound) {
			return fail(stderr, "group describe %s: group %q does not exist", name, name)
		}
		return fail(stderr, "group describe %s: %v", name, err)
	}
	lag := g.Lag.Sorted()
	if g.State == "Dead" && len(g.Members) == 0 && len(lag) == 0 {
		return fail(stderr, "group describe %s: group %q does not exist", name, name)
	}

	fmt.Fprintf(stdout, "group: %s\nstate: %s\nprotocol: %s\ncoordinator: %d\nmembers: %d\n\n",
		name, g.State, dash(strings.Trim(g.ProtocolType+"/"+g.Protocol, "/")), g.Coordinator.NodeID, len(g.Members))
	if len(g.Members) > 0 {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "MEMBER\tCLIENT-ID\tHOST\tASSIGNED")
		for _, m := range g.Members {
			var assigned []string
			if c, ok := m.Assigned.AsConsumer(); ok {
				for _, t := range c.Topics {
					ps := slices.Clone(t.Partitions)
					slices.Sort(ps)
					assigned = append(assigned, fmt.Sprintf("%s[%s]", t.Topic, joinInt32s(ps)))
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.MemberID, m.ClientID, m.ClientHost, dash(strings.Join(assigned, " ")))
		}
		tw.Flush()
		fmt.Fprintln(stdout)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tCOMMITTED\tEND\tLAG\tMEMBER")
	var total int64
	for _, l := range lag {
		committed, end, lagS, member := "-", "?", "?", "-"
		if l.Commit.At >= 0 {
			committed = fmt.Sprint(l.Commit.At)
		}
		if l.End.Err == nil {
			end = fmt.Sprint(l.End.Offset)
		}
		if l.Err == nil && l.Lag >= 0 {
			lagS = fmt.Sprint(l.Lag)
			total += l.Lag
		}
		if l.Member != nil {
			member = l.Member.MemberID
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", l.Topic, l.Partition, committed, end, lagS, member)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "\ntotal lag: %d\n", total)
	return 0
}

func runGroupResetOffsets(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("spool group reset-offsets", stderr)
	k := addKafkaFlags(fs)
	topic := fs.String("topic", "", "the topic whose offsets to reset (required)")
	toEarliest := fs.Bool("to-earliest", false, "reset to each partition's log start")
	toLatest := fs.Bool("to-latest", false, "reset to each partition's end: skip everything not yet read")
	toOffset := fs.Int64("to-offset", -1, "reset to offset N, moved into each partition's log if outside it")
	partition := fs.Int("partition", -1, "reset only this partition (default: all)")
	execute := fs.Bool("execute", false, "commit the new offsets (default: only print the plan)")
	name, code := nameArg(fs, args, "spool group reset-offsets GROUP --topic T (--to-earliest | --to-latest | --to-offset N) [flags]")
	if code >= 0 {
		return code
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var to startAt
	n := 0
	if *toEarliest {
		to, n = startAt{kind: "earliest"}, n+1
	}
	if *toLatest {
		to, n = startAt{kind: "latest"}, n+1
	}
	if set["to-offset"] {
		to, n = startAt{kind: "exact", at: *toOffset}, n+1
	}
	switch {
	case *topic == "":
		fmt.Fprintln(stderr, "spool group reset-offsets: --topic is required")
		return 2
	case n != 1:
		fmt.Fprintln(stderr, "spool group reset-offsets: give exactly one of --to-earliest, --to-latest, --to-offset N")
		return 2
	case to.kind == "exact" && to.at < 0:
		fmt.Fprintf(stderr, "spool group reset-offsets: --to-offset %d is negative\n", to.at)
		return 2
	case *partition < -1 || *partition > 1<<31-1:
		fmt.Fprintf(stderr, "spool group reset-offsets: --partition %d is not a partition number\n", *partition)
		return 2
	}

	cl, adm, err := k.admin(ctx)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	defer cl.Close()

	// A member would overwrite the reset with its next commit, and the
	// coordinator refuses commits from outside an active generation:
	// Kafka's tool refuses too.
	described, err := adm.DescribeGroups(ctx, name)
	if err != nil {
		return fail(stderr, "group reset-offsets %s: %v", name, err)
	}
	if d, ok := described[name]; ok && d.Err == nil {
		if len(d.Members) > 0 || (d.State != "Empty" && d.State != "Dead" && d.State != "") {
			return fail(stderr, "group reset-offsets %s: the group has %d active members (state %s); offsets can only be reset while no consumer is in the group, so stop them first", name, len(d.Members), d.State)
		}
	} else if ok && !errors.Is(d.Err, kerr.GroupIDNotFound) {
		return fail(stderr, "group reset-offsets %s: %v", name, d.Err)
	}

	snap, err := snapshotTopic(ctx, adm, *topic, false)
	if err != nil {
		return fail(stderr, "group reset-offsets %s: %v", name, err)
	}
	current, err := adm.FetchOffsets(ctx, name)
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		return fail(stderr, "group reset-offsets %s: fetching committed offsets: %v", name, err)
	}

	var parts []int32
	for p := range snap.end {
		if *partition < 0 || p == int32(*partition) {
			parts = append(parts, p)
		}
	}
	if len(parts) == 0 {
		return fail(stderr, "group reset-offsets %s: topic %s has no partition %d", name, *topic, *partition)
	}
	slices.Sort(parts)
	plan := make(kadm.Offsets)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tCURRENT\tNEW")
	for _, p := range parts {
		next := to.next(snap.start[p], snap.end[p])
		if to.kind == "exact" && next != to.at {
			fmt.Fprintf(stderr, "spool: partition %d holds offsets %d to %d; using %d instead of %d\n", p, snap.start[p], snap.end[p], next, to.at)
		}
		cur := "-"
		if c, ok := current.Lookup(*topic, p); ok && c.Err == nil && c.At >= 0 {
			cur = fmt.Sprint(c.At)
		}
		plan.AddOffset(*topic, p, next, -1)
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\n", *topic, p, cur, next)
	}
	tw.Flush()
	if !*execute {
		fmt.Fprintln(stderr, "spool: dry run, nothing changed; add --execute to commit these offsets")
		return 0
	}
	resps, err := adm.CommitOffsets(ctx, name, plan)
	if err == nil {
		err = resps.Error()
	}
	if err != nil {
		return fail(stderr, "group reset-offsets %s: committing: %v", name, err)
	}
	fmt.Fprintf(stderr, "spool: committed %d offsets for group %s\n", len(parts), name)
	return 0
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
