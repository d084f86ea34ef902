package main

import (
	"context"
	"fmt"
	"io"

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
		return fail(stderr, "%v", err)
	}
	return 0
}

// runLogVerify exits 0 when the data directory is clean and 1 with one
// line per problem when it is not.
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
	for _, p := range probs {
		fmt.Fprintln(stdout, p.String())
	}
	if len(probs) > 0 {
		fmt.Fprintf(stdout, "%d problem(s); 'spool log repair %s' fixes them (stop spool first)\n", len(probs), fs.Arg(0))
		return 1
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
