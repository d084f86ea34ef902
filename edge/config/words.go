package config

import (
	"regexp"
	"strings"
)

var unknownField = regexp.MustCompile(`^line (\d+): field (.+) not found in type \S+$`)

// rewordUnknown rewrites yaml's unknown-field message to name the key.
func rewordUnknown(m string) string {
	if s := unknownField.FindStringSubmatch(m); s != nil {
		return "line " + s[1] + ": unknown key " + `"` + s[2] + `"`
	}
	return m
}

func joinLines(msgs []string) string { return strings.Join(msgs, "; ") }
