package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/spoolmq/spool/edge/config"
	"golang.org/x/crypto/bcrypt"
)

// passwd runs spool passwd in-process with in as stdin.
func passwd(t *testing.T, in io.Reader, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := runPasswd(context.Background(), args, in, &out, &errOut)
	return code, out.String(), errOut.String()
}

// hashOf checks that out is one line holding a bcrypt hash of the given
// cost and returns the hash.
func hashOf(t *testing.T, out string, cost int) []byte {
	t.Helper()
	line, ok := strings.CutSuffix(out, "\n")
	if !ok || strings.Contains(line, "\n") {
		t.Fatalf("output %q is not one line", out)
	}
	got, err := bcrypt.Cost([]byte(line))
	if err != nil || got != cost {
		t.Fatalf("output %q: cost %d, %v; want cost %d", line, got, err, cost)
	}
	return []byte(line)
}

func TestPasswd(t *testing.T) {
	code, out, stderr := passwd(t, strings.NewReader("change-me\n"), "--cost", "4")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	hash := hashOf(t, out, 4)
	if err := bcrypt.CompareHashAndPassword(hash, []byte("change-me")); err != nil {
		t.Errorf("the hash does not verify the password: %v", err)
	}
	for _, wrong := range []string{"change-me\n", "change-m", "Change-me", ""} {
		if bcrypt.CompareHashAndPassword(hash, []byte(wrong)) == nil {
			t.Errorf("the hash verifies the wrong password %q", wrong)
		}
	}

	// The hash is what auth.users[].password_hash takes.
	c := config.Default()
	c.Auth.Users = []config.User{{Name: "u", PasswordHash: string(hash)}}
	if err := c.Validate(); err != nil {
		t.Errorf("config refuses the hash: %v", err)
	}

	// Two runs salt differently.
	_, out2, _ := passwd(t, strings.NewReader("change-me\n"), "--cost", "4")
	if out2 == out {
		t.Error("two hashes of one password are equal: no salt")
	}
}

func TestPasswdDefaultCost(t *testing.T) {
	code, out, stderr := passwd(t, strings.NewReader("change-me\n"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if err := bcrypt.CompareHashAndPassword(hashOf(t, out, bcrypt.DefaultCost), []byte("change-me")); err != nil {
		t.Error(err)
	}
}

// TestPasswdRun goes through the command dispatch and the stdin variable.
func TestPasswdRun(t *testing.T) {
	old := stdin
	t.Cleanup(func() { stdin = old })
	stdin = strings.NewReader("s3cret\n")
	code, out, stderr := spool(t, context.Background(), "passwd", "--cost", "4")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	hash := hashOf(t, out, 4)
	if bcrypt.CompareHashAndPassword(hash, []byte("s3cret")) != nil || bcrypt.CompareHashAndPassword(hash, []byte("change-me")) == nil {
		t.Error("the hash does not match exactly the password on stdin")
	}
	if _, usage, _ := spool(t, context.Background(), "help"); !strings.Contains(usage, "passwd") {
		t.Errorf("usage does not list passwd:\n%s", usage)
	}
}

// TestPasswdInput checks which bytes of stdin are the password.
func TestPasswdInput(t *testing.T) {
	for _, tc := range []struct {
		name, in, password, notPassword string
	}{
		{"no_newline", "pw", "pw", "pw\n"},
		{"crlf", "pw\r\n", "pw", "pw\r"},
		{"first_line_only", "first\nsecond\n", "first", "first\nsecond"},
		{"spaces_kept", " pw \n", " pw ", "pw"},
		{"longest", strings.Repeat("x", 72) + "\n", strings.Repeat("x", 72), strings.Repeat("x", 71)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, stderr := passwd(t, strings.NewReader(tc.in), "--cost", "4")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			hash := hashOf(t, out, 4)
			if err := bcrypt.CompareHashAndPassword(hash, []byte(tc.password)); err != nil {
				t.Errorf("password %q does not verify: %v", tc.password, err)
			}
			if bcrypt.CompareHashAndPassword(hash, []byte(tc.notPassword)) == nil {
				t.Errorf("%q verifies too", tc.notPassword)
			}
		})
	}
}

func TestPasswdErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   io.Reader
		args []string
		code int
		msg  string
	}{
		{"empty_input", strings.NewReader(""), nil, 1, "password is empty"},
		{"empty_line", strings.NewReader("\nsecond\n"), nil, 1, "password is empty"},
		{"crlf_only", strings.NewReader("\r\n"), nil, 1, "password is empty"},
		{"too_long", strings.NewReader(strings.Repeat("x", 73) + "\n"), nil, 1, "at most 72"},
		{"read_error", io.MultiReader(strings.NewReader("pw"), errReader{}), nil, 1, "disk on fire"},
		{"cost_too_low", strings.NewReader("pw\n"), []string{"--cost", "3"}, 2, "--cost 3 is not between 4 and 31"},
		{"cost_too_high", strings.NewReader("pw\n"), []string{"--cost", "32"}, 2, "--cost 32 is not between 4 and 31"},
		{"cost_not_a_number", strings.NewReader("pw\n"), []string{"--cost", "ten"}, 2, "invalid value"},
		{"argument", strings.NewReader("pw\n"), []string{"pw"}, 2, "usage: spool passwd"},
		{"help", strings.NewReader("pw\n"), []string{"-h"}, 0, "usage: spool passwd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, stderr := passwd(t, tc.in, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.msg) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, stderr, tc.code, tc.msg)
			}
			if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
		})
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

// TestPasswdSCRAM: with --scram the output is the password_hash and scram
// keys of a user entry, which the config takes.
func TestPasswdSCRAM(t *testing.T) {
	code, out, stderr := passwd(t, strings.NewReader("change-me\n"), "--cost", "4", "--scram")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	c, err := config.Parse(strings.NewReader("auth:\n  users:\n    - name: u\n" + indent(out, "      ")))
	if err != nil {
		t.Fatalf("the output does not parse as a user entry: %v\n%s", err, out)
	}
	u := c.Auth.Users[0]
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte("change-me")) != nil {
		t.Errorf("password_hash does not verify the password")
	}
	var mechs []string
	for _, s := range u.SCRAM {
		cred, err := config.ParseSCRAM(s)
		if err != nil {
			t.Fatalf("scram %q: %v", s, err)
		}
		mechs = append(mechs, cred.Mechanism)
	}
	if strings.Join(mechs, " ") != "SCRAM-SHA-256 SCRAM-SHA-512" {
		t.Errorf("mechanisms %v", mechs)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("config refuses the output: %v", err)
	}
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	for i := range lines {
		lines[i] = prefix + lines[i]
	}
	return strings.Join(lines, "\n") + "\n"
}
