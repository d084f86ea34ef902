package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// command is one subcommand. Commands print results to stdout and
// diagnostics to stderr, and return an exit code.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"serve", "run the appliance", runServe},
		{"log", "inspect a data directory offline: dump, verify, repair", runLog},
		{"bench", "measure the log: spool bench log", runBench},
		{"bridge", "show the upstream links of a running spool: spool bridge status", runBridge},
		{"sensors", "show the sensors and actuators of a running spool: spool sensors list", runSensors},
		{"passwd", "hash a password read from stdin for auth.users[].password_hash", func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
			return runPasswd(ctx, args, stdin, stdout, stderr)
		}},
		{"topic", "create, list, describe, alter, delete topics over the Kafka protocol", runTopic},
		{"produce", "send lines of stdin as records to a Kafka topic", func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
			return runProduce(ctx, args, stdin, stdout, stderr)
		}},
		{"consume", "print the records of a Kafka topic", runConsume},
		{"group", "list, describe and reset the offsets of consumer groups", runGroup},
		{"version", "print the version", runVersion},
	}
}

// run dispatches args to a subcommand and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "spool: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: spool <command> [flags]")
	fmt.Fprintln(w)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'spool <command> -h' for a command's flags.")
}

// newFlagSet returns a flag set that reports errors instead of exiting.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses args and maps the outcome to an exit code: -1 means
// go on.
func parseFlags(fs *flag.FlagSet, args []string) int {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	return -1
}

func fail(stderr io.Writer, format string, a ...any) int {
	msg := fmt.Sprintf(format, a...)
	fmt.Fprintln(stderr, "spool: "+strings.TrimSuffix(msg, "\n"))
	return 1
}
