// Package metricstest parses and checks the Prometheus text format (0.0.4)
// strictly, for tests of anything that exposes metrics: every sample
// belongs to a family declared by exactly one "# TYPE" (and at most one
// "# HELP") before its samples, a family's samples are contiguous, label
// values use only the format's escapes, no series repeats, counters are
// not negative, and every histogram series has ascending buckets with
// non-decreasing cumulative counts ending in +Inf, equal to its _count,
// and a _sum.
package metricstest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Family is a parsed family.
type Family struct {
	Name, Help, Type string
	Samples          []Sample
}

// Sample is one parsed line.
type Sample struct {
	Name   string // with a histogram's _bucket, _sum or _count suffix
	Labels map[string]string
	Value  float64
}

// Parse reads and checks the exposition. The error names the line.
func Parse(r io.Reader) ([]Family, error) {
	var (
		fams   []Family
		byName = map[string]int{} // family name → index in fams
		series = map[string]bool{}
		closed = map[string]bool{} // families whose samples are over
		cur    = -1                // family of the previous sample
		sc     = bufio.NewScanner(r)
		lineNo int
	)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	family := func(name string) *Family {
		i, ok := byName[name]
		if !ok {
			fams = append(fams, Family{Name: name})
			i = len(fams) - 1
			byName[name] = i
		}
		return &fams[i]
	}
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		fail := func(format string, args ...any) error {
			return fmt.Errorf("line %d %q: %s", lineNo, line, fmt.Sprintf(format, args...))
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		if strings.HasPrefix(line, "#") {
			fields := strings.SplitN(line, " ", 4)
			if len(fields) < 3 || (fields[1] != "HELP" && fields[1] != "TYPE") {
				continue // another comment
			}
			name := fields[2]
			if !validName(name, true) {
				return nil, fail("invalid metric name")
			}
			if _, ok := byName[name]; ok && (closed[name] || len(fams[byName[name]].Samples) > 0) {
				return nil, fail("%s after the family's samples", fields[1])
			}
			f := family(name)
			text := ""
			if len(fields) == 4 {
				text = fields[3]
			}
			switch fields[1] {
			case "HELP":
				if f.Help != "" {
					return nil, fail("second HELP")
				}
				h, err := unescape(text, false)
				if err != nil {
					return nil, fail("%v", err)
				}
				f.Help = h
				if f.Help == "" {
					f.Help = "\x00" // given but empty: still only once
				}
			case "TYPE":
				if f.Type != "" {
					return nil, fail("second TYPE")
				}
				switch text {
				case "counter", "gauge", "histogram", "summary", "untyped":
				default:
					return nil, fail("unknown type %q", text)
				}
				f.Type = text
			}
			continue
		}
		s, err := parseSample(line)
		if err != nil {
			return nil, fail("%v", err)
		}
		fname := familyOf(s.Name, byName, fams)
		i, ok := byName[fname]
		if !ok || fams[i].Type == "" {
			return nil, fail("sample without a # TYPE for its family")
		}
		if cur != i {
			if closed[fname] {
				return nil, fail("samples of family %s are not contiguous", fname)
			}
			if cur >= 0 {
				closed[fams[cur].Name] = true
			}
			cur = i
		}
		key := s.Name + labelKey(s.Labels)
		if series[key] {
			return nil, fail("duplicate series")
		}
		series[key] = true
		if fams[i].Type == "counter" && !(s.Value >= 0) {
			return nil, fail("counter value %v", s.Value)
		}
		fams[i].Samples = append(fams[i].Samples, s)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for i := range fams {
		if fams[i].Help == "\x00" {
			fams[i].Help = ""
		}
		if fams[i].Type == "" {
			return nil, fmt.Errorf("family %s: HELP without TYPE", fams[i].Name)
		}
		if fams[i].Type == "histogram" {
			if err := checkHistogram(fams[i]); err != nil {
				return nil, fmt.Errorf("histogram %s: %w", fams[i].Name, err)
			}
		}
	}
	return fams, nil
}

// familyOf maps a sample name to its family: itself, or for a histogram
// the name without _bucket, _sum or _count.
func familyOf(name string, byName map[string]int, fams []Family) string {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if i, known := byName[base]; ok && known && fams[i].Type == "histogram" {
			return base
		}
	}
	return name
}

func checkHistogram(f Family) error {
	type hseries struct {
		les              []float64
		counts           []float64
		sum, count       float64
		hasSum, hasCount bool
	}
	all := map[string]*hseries{}
	get := func(labels map[string]string) *hseries {
		k := labelKey(labels)
		if all[k] == nil {
			all[k] = &hseries{}
		}
		return all[k]
	}
	for _, s := range f.Samples {
		switch s.Name {
		case f.Name + "_bucket":
			le, ok := s.Labels["le"]
			if !ok {
				return fmt.Errorf("bucket without le: %v", s.Labels)
			}
			b, err := parseValue(le)
			if err != nil {
				return fmt.Errorf("le %q: %v", le, err)
			}
			rest := without(s.Labels, "le")
			h := get(rest)
			if n := len(h.les); n > 0 && (b <= h.les[n-1] || s.Value < h.counts[n-1]) {
				return fmt.Errorf("series %v: bucket le=%s (count %v) after le=%v (count %v): buckets must ascend and counts must not decrease",
					rest, le, s.Value, h.les[n-1], h.counts[n-1])
			}
			h.les = append(h.les, b)
			h.counts = append(h.counts, s.Value)
		case f.Name + "_sum":
			h := get(s.Labels)
			h.sum, h.hasSum = s.Value, true
		case f.Name + "_count":
			h := get(s.Labels)
			h.count, h.hasCount = s.Value, true
		default:
			return fmt.Errorf("sample %s is not a histogram sample", s.Name)
		}
	}
	for k, h := range all {
		switch {
		case len(h.les) == 0 || !math.IsInf(h.les[len(h.les)-1], 1):
			return fmt.Errorf("series %s: no +Inf bucket", k)
		case !h.hasSum || !h.hasCount:
			return fmt.Errorf("series %s: missing _sum or _count", k)
		case h.counts[len(h.counts)-1] != h.count:
			return fmt.Errorf("series %s: +Inf bucket %v != _count %v", k, h.counts[len(h.counts)-1], h.count)
		}
	}
	return nil
}

func without(m map[string]string, name string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		if k != name {
			out[k] = v
		}
	}
	return out
}

func labelKey(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteByte('{')
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%q,", k, m[k])
	}
	b.WriteByte('}')
	return b.String()
}

// parseSample parses `name{l="v",...} value [timestamp]`.
func parseSample(line string) (Sample, error) {
	s := Sample{Labels: map[string]string{}}
	i := 0
	for i < len(line) && line[i] != '{' && line[i] != ' ' {
		i++
	}
	s.Name = line[:i]
	if !validName(s.Name, true) {
		return s, fmt.Errorf("invalid metric name %q", s.Name)
	}
	rest := line[i:]
	if strings.HasPrefix(rest, "{") {
		rest = rest[1:]
		for {
			if strings.HasPrefix(rest, "}") {
				rest = rest[1:]
				break
			}
			eq := strings.IndexByte(rest, '=')
			if eq < 0 {
				return s, errors.New("label without '='")
			}
			name := rest[:eq]
			if !validName(name, false) {
				return s, fmt.Errorf("invalid label name %q", name)
			}
			rest = rest[eq+1:]
			if !strings.HasPrefix(rest, `"`) {
				return s, fmt.Errorf("label %s: value not quoted", name)
			}
			end, err := closingQuote(rest)
			if err != nil {
				return s, fmt.Errorf("label %s: %v", name, err)
			}
			v, err := unescape(rest[1:end], true)
			if err != nil {
				return s, fmt.Errorf("label %s: %v", name, err)
			}
			if _, dup := s.Labels[name]; dup {
				return s, fmt.Errorf("label %s given twice", name)
			}
			s.Labels[name] = v
			rest = rest[end+1:]
			if strings.HasPrefix(rest, ",") {
				rest = rest[1:]
			} else if !strings.HasPrefix(rest, "}") {
				return s, errors.New("labels not separated by ','")
			}
		}
	}
	if !strings.HasPrefix(rest, " ") {
		return s, errors.New("no space before the value")
	}
	fields := strings.Fields(rest)
	if len(fields) < 1 || len(fields) > 2 {
		return s, errors.New("want a value and an optional timestamp")
	}
	v, err := parseValue(fields[0])
	if err != nil {
		return s, err
	}
	s.Value = v
	if len(fields) == 2 {
		if _, err := strconv.ParseInt(fields[1], 10, 64); err != nil {
			return s, fmt.Errorf("timestamp %q", fields[1])
		}
	}
	return s, nil
}

// closingQuote returns the index of the quote ending the string that
// starts at s[0].
func closingQuote(s string) (int, error) {
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return i, nil
		}
	}
	return 0, errors.New("unterminated value")
}

// unescape undoes the format's escapes: \\ and \n, and in label values \".
// Any other backslash sequence, and a raw newline, are errors.
func unescape(s string, label bool) (string, error) {
	if !strings.ContainsAny(s, "\\\n") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\n' {
			return "", errors.New("raw newline")
		}
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		if i+1 == len(s) {
			return "", errors.New("trailing backslash")
		}
		i++
		switch s[i] {
		case '\\':
			b.WriteByte('\\')
		case 'n':
			b.WriteByte('\n')
		case '"':
			if !label {
				return "", errors.New(`\" in HELP`)
			}
			b.WriteByte('"')
		default:
			return "", fmt.Errorf("unknown escape \\%c", s[i])
		}
	}
	return b.String(), nil
}

func parseValue(s string) (float64, error) {
	switch s {
	case "+Inf":
		return math.Inf(1), nil
	case "-Inf":
		return math.Inf(-1), nil
	case "NaN":
		return math.NaN(), nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || strings.ContainsAny(s, "_xXpP") {
		return 0, fmt.Errorf("value %q is not a float", s)
	}
	return v, nil
}

func validName(s string, metric bool) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9' || metric && c == ':'
		if !ok {
			return false
		}
	}
	return true
}

// Find returns the named family, or nil.
func Find(fams []Family, name string) *Family {
	for i := range fams {
		if fams[i].Name == name {
			return &fams[i]
		}
	}
	return nil
}

// Value returns the value of the sample named name whose labels include
// all of want (alternating names and values), and whether there was
// exactly one such sample.
func (f *Family) Value(name string, want ...string) (float64, bool) {
	var (
		v float64
		n int
	)
	for _, s := range f.Samples {
		if s.Name != name {
			continue
		}
		match := true
		for i := 0; i+1 < len(want); i += 2 {
			if got, ok := s.Labels[want[i]]; !ok || got != want[i+1] {
				match = false
				break
			}
		}
		if match {
			v, n = s.Value, n+1
		}
	}
	return v, n == 1
}
