package log

import (
	"strings"
	"testing"
)

func TestValidateTopicName(t *testing.T) {
	cases := []struct {
		name    string
		wantErr string // empty means valid
	}{
		{"orders", ""},
		{"a", ""},
		{"Sensors.greenhouse_3-temp", ""},
		{"0123456789", ""},
		{"...", ""},
		{".hidden", ""},
		{"__consumer_offsets", ""},
		{strings.Repeat("x", 249), ""},

		{"", "empty"},
		{".", "not allowed"},
		{"..", "not allowed"},
		{strings.Repeat("x", 250), "250 characters is more than the maximum of 249"},
		{"a/b", `topic name "a/b": character '/' is not allowed (use letters, digits, '.', '_', '-')`},
		{"with space", `character ' ' is not allowed`},
		{"tab\there", `character '\t' is not allowed`},
		{"nul\x00", `character '\x00' is not allowed`},
		{"température", `character 'é' is not allowed`},
		{"日本", `character '日' is not allowed`},
		{"bad\xffutf8", `character '�' is not allowed`},
		{"a:b", `character ':' is not allowed`},
		{"a\\b", `character '\\' is not allowed`},
		// The character check comes first: a long unicode name reports the
		// character, which is the more useful fix.
		{strings.Repeat("é", 200), `character 'é' is not allowed`},
	}
	for _, c := range cases {
		err := ValidateTopicName(c.name)
		switch {
		case c.wantErr == "" && err != nil:
			t.Errorf("ValidateTopicName(%.20q) = %v, want nil", c.name, err)
		case c.wantErr != "" && err == nil:
			t.Errorf("ValidateTopicName(%.20q) = nil, want an error containing %q", c.name, c.wantErr)
		case c.wantErr != "" && !strings.Contains(err.Error(), c.wantErr):
			t.Errorf("ValidateTopicName(%.20q) = %q, want it to contain %q", c.name, err, c.wantErr)
		}
	}
}

func TestTopicNamesCollide(t *testing.T) {
	cases := []struct {
		a, b string
		want bool
	}{
		{"a.b", "a_b", true},
		{"a_b", "a.b", true},
		{"x.y_z", "x_y.z", true},
		{"a.b", "a.b", false}, // the same topic is not a collision
		{"a_b", "a_b", false},
		{"a.b", "a-b", false},
		{"ab", "a_b", false},
		{"a.b", "a.c", false},
	}
	for _, c := range cases {
		if got := topicNamesCollide(c.a, c.b); got != c.want {
			t.Errorf("topicNamesCollide(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}
