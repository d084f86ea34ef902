package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spoolmq/spool/edge/config"
	"golang.org/x/crypto/bcrypt"
)

// stdin is what commands that read input (spool passwd) read. Tests that
// go through run replace it.
var stdin io.Reader = os.Stdin

// maxPasswordBytes is bcrypt's limit: it uses only the first 72 bytes, and
// golang.org/x/crypto/bcrypt refuses longer passwords rather than silently
// ignoring the rest.
const maxPasswordBytes = 72

// runPasswd reads a password from the first line of in and prints its
// bcrypt hash, the value of a user's password_hash in the config file.
func runPasswd(_ context.Context, args []string, in io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("spool passwd", stderr)
	cost := fs.Int("cost", bcrypt.DefaultCost, fmt.Sprintf("bcrypt cost, %d to %d; each step doubles the time a login (and a guess) takes", bcrypt.MinCost, bcrypt.MaxCost))
	withSCRAM := fs.Bool("scram", false, "also print SCRAM-SHA-256 and SCRAM-SHA-512 credentials (Kafka SASL/SCRAM), as YAML for a user entry")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: spool passwd [--cost N] [--scram] < password")
		fmt.Fprintln(stderr, "Reads a password from the first line of stdin and prints its bcrypt hash for auth.users[].password_hash;")
		fmt.Fprintln(stderr, "with --scram, the password_hash and scram keys of a user entry.")
		fs.PrintDefaults()
	}
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return 2
	}
	if *cost < bcrypt.MinCost || *cost > bcrypt.MaxCost {
		fmt.Fprintf(stderr, "spool passwd: --cost %d is not between %d and %d\n", *cost, bcrypt.MinCost, bcrypt.MaxCost)
		return 2
	}

	if isTerminal(in) {
		fmt.Fprint(stderr, "Password (shown as you type; end with Enter): ")
	}
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fail(stderr, "passwd: reading the password: %v", err)
	}
	pw := strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	switch {
	case pw == "":
		return fail(stderr, "passwd: the password is empty; write it on the first line of stdin")
	case len(pw) > maxPasswordBytes:
		return fail(stderr, "passwd: the password is %d bytes; bcrypt allows at most %d", len(pw), maxPasswordBytes)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(pw), *cost)
	if err != nil {
		return fail(stderr, "passwd: %v", err)
	}
	if !*withSCRAM {
		fmt.Fprintf(stdout, "%s\n", hash)
		return 0
	}
	fmt.Fprintf(stdout, "password_hash: %s\nscram:\n", hash)
	for _, mech := range []string{"SCRAM-SHA-256", "SCRAM-SHA-512"} {
		cred, err := config.MakeSCRAM(mech, pw)
		if err != nil {
			return fail(stderr, "passwd: %v", err)
		}
		fmt.Fprintf(stdout, "  - %s\n", cred)
	}
	return 0
}

// isTerminal reports whether r is a character device, where a prompt helps.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
