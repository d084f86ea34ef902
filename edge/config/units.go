package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Size is a byte count written as 512MiB, 2GB or 1048576.
type Size int64

// ParseSize reads a size such as 512MiB, 2GB or 1048576. A leading minus
// is allowed for -1 ("unbounded") where a field says so.
func ParseSize(s string) (Size, error) {
	units := []struct {
		suffix string
		mult   int64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"kB", 1e3}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
	}
	t := strings.TrimSpace(s)
	if t == "-1" {
		return -1, nil
	}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size such as 512MiB, 2GB or 1048576", s)
	}
	return Size(n * mult), nil
}

// UnmarshalYAML accepts a plain integer or a string with a unit.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: expected a size such as 512MiB", n.Line)
	}
	v, err := ParseSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %v", n.Line, err)
	}
	*s = v
	return nil
}

// UnmarshalText lets a Size come from a flag, JSON or an environment variable.
func (s *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// String formats the size with the largest binary unit that divides it.
func (s Size) String() string {
	n := int64(s)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// MarshalText writes the size the way ParseSize reads it.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Duration is a time.Duration that also understands days and weeks (7d,
// 2w, 1d12h) and -1 or "forever" for "no limit" where a field allows it.
type Duration time.Duration

// Forever is the Duration written as -1 or "forever".
const Forever = Duration(-1)

// ParseDuration reads 30s, 15m, 7d, 2w, 1d12h, -1 or forever. The empty
// string is not a duration, and neither is anything above 106751d (the
// largest time.Duration): it would wrap around instead of meaning "long".
func ParseDuration(s string) (Duration, error) {
	t := strings.TrimSpace(s)
	if t == "-1" || t == "forever" {
		return Forever, nil
	}
	if t == "0" {
		return 0, nil
	}
	invalid := fmt.Errorf("%q is not a duration such as 30s, 15m or 7d", s)
	tooLong := fmt.Errorf("%q is longer than 106751d, the longest duration", s)
	if t == "" {
		return 0, invalid
	}
	var total time.Duration
	rest := t
	// Peel whole days and weeks off the front; time.ParseDuration does the rest.
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i == len(rest) || (rest[i] != 'd' && rest[i] != 'w') {
			break
		}
		unit := 24 * time.Hour
		if rest[i] == 'w' {
			unit *= 7
		}
		n, err := strconv.ParseInt(rest[:i], 10, 64)
		if err != nil || n > int64(math.MaxInt64/unit) || time.Duration(n)*unit > math.MaxInt64-total {
			return 0, tooLong
		}
		total += time.Duration(n) * unit
		rest = rest[i+1:]
	}
	if rest != "" {
		d, err := time.ParseDuration(rest)
		switch {
		case err != nil || d < 0 || (total > 0 && (rest[0] == '+' || rest[0] == '-')):
			// (A sign after the days, "1d+1h", is not a duration.)
			return 0, invalid
		case d > math.MaxInt64-total:
			return 0, tooLong
		}
		total += d
	}
	return Duration(total), nil
}

// UnmarshalYAML accepts 30s, 7d, -1 and forever.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: expected a duration such as 30s or 7d", n.Line)
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %v", n.Line, err)
	}
	*d = v
	return nil
}

// UnmarshalText lets a Duration come from a flag, JSON or an environment variable.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// String formats the duration, using days when it is a whole number of them.
func (d Duration) String() string {
	switch {
	case d < 0:
		return "forever"
	case d > 0 && time.Duration(d)%(24*time.Hour) == 0:
		return strconv.FormatInt(int64(time.Duration(d)/(24*time.Hour)), 10) + "d"
	}
	return time.Duration(d).String()
}

// MarshalText writes the duration the way ParseDuration reads it.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// D returns the duration as a time.Duration (-1 for Forever).
func (d Duration) D() time.Duration { return time.Duration(d) }
