package mqtt

import "testing"

func TestMatchFilter(t *testing.T) {
	cases := []struct {
		filter, topic string
		want          bool
	}{
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/+", "a/b", true},
		{"a/+", "a/b/c", false},
		{"a/+/c", "a/b/c", true},
		{"a/#", "a", true},
		{"a/#", "a/b/c", true},
		{"#", "a/b", true},
		{"#", "$SYS/x", false},
		{"+/x", "$SYS/x", false},
		{"$SYS/#", "$SYS/x", true},
		{"a/b", "a/b/c", false},
		{"a/b/c", "a/b", false},
		{"+", "", true},
		{"a//b", "a//b", true},
		{"a/+/b", "a//b", true},
	}
	for _, c := range cases {
		if got := matchFilter(c.filter, c.topic); got != c.want {
			t.Errorf("matchFilter(%q, %q) = %v, want %v", c.filter, c.topic, got, c.want)
		}
	}
}

func TestCoversFilters(t *testing.T) {
	cases := []struct {
		rule, sub string
		want      bool
	}{
		{"sensors/#", "sensors/+/temp", true},
		{"sensors/#", "sensors/#", true},
		{"sensors/+", "sensors/#", false},
		{"sensors/+/temp", "sensors/+/temp", true},
		{"sensors/a/temp", "sensors/+/temp", false},
		{"#", "+/+", true},
		{"a/b", "a/#", false},
	}
	for _, c := range cases {
		if got := covers(c.rule, c.sub); got != c.want {
			t.Errorf("covers(%q, %q) = %v, want %v", c.rule, c.sub, got, c.want)
		}
	}
}
