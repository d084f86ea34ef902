package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	spoollog "github.com/spoolmq/spool/log"
)

func runLog(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	usage := "usage: spool log dump [--records] PATH | spool log verify DATA | spool log repair DATA"
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	switch args[0] {
	case "dump":
		return runLogDump(args[1:], stdout, stderr)
	case "verify":
		return runLogVerify(args[1:], stdout, stderr)
	case "repair":
		return runLogRepair(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "spool log: unknown subcommand %q\n%s\n", args[0], usage)
	return 2
}

func runLogDump(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("spool log dump", stderr)
	records := fs.Bool("records", false, "print every record (like kafka-dump-log --print-data-log)")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: spool log dump [--records] PATH (a partition directory or a .log segment)")
		return 2
	}
	if err := spoollog.Dump(stdout, fs.Arg(0), *records); err != nil {
		var ce *spoollog.CorruptionError
		if errors.As(err, &ce) {
			return failDump(stderr, ce)
		}
		return fail(stderr, "%v", err)
	}
	return 0
}

// failDump reports a damaged batch found by dump, with the repair command
// for the data directory the segment lies in. A segment outside one (a
// copy) has no topic and partition to name.
func failDump(stderr io.Writer, ce *spoollog.CorruptionError) int {
	data, _, _, ok := spoollog.PartitionOf(filepath.Dir(ce.Segment))
	if !ok {
		return fail(stderr, "corrupt segment %s at byte %d: %v (copy it into a partition directory DATA/topics/<topic>/<partition>/ to repair it with 'spool log repair DATA')",
			ce.Segment, ce.Position, ce.Err)
	}
	fail(stderr, "%v", ce)
	fmt.Fprintf(stderr, "stop spool, then 'spool log repair %s' keeps every valid batch around the damage\n", data)
	return 1
}

// runLogVerify exits 0 when the data directory is clean and 1 with one
// line per problem when it is not. Warnings (harmless leftovers) are
// printed but do not fail it.
func runLogVerify(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("spool log verify", stderr)
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: spool log verify DATA")
		return 2
	}
	probs, err := spoollog.Verify(fs.Arg(0))
	if err != nil {
		return fail(stderr, "verify: %v", err)
	}
	warnings := 0
	for _, p := range probs {
		fmt.Fprintln(stdout, p.String())
		if p.Warning {
			warnings++
		}
	}
	if n := len(probs) - warnings; n > 0 {
		fmt.Fprintf(stdout, "%d problem(s); 'spool log repair %s' fixes them (stop spool first)\n", n, fs.Arg(0))
		return 1
	}
	if warnings > 0 {
		fmt.Fprintf(stdout, "ok: every segment and index is intact; %d leftover(s) that 'spool log repair %s' removes\n", warnings, fs.Arg(0))
		return 0
	}
	fmt.Fprintln(stdout, "ok: every segment and index is intact")
	return 0
}

func runLogRepair(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("spool log repair", stderr)
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: spool log repair DATA")
		return 2
	}
	actions, err := spoollog.Repair(fs.Arg(0))
	for _, a := range actions {
		fmt.Fprintln(stdout, a.String())
	}
	if err != nil {
		return fail(stderr, "repair: %v", err)
	}
	if len(actions) == 0 {
		fmt.Fprintln(stdout, "nothing to repair")
	}
	return 0
}
