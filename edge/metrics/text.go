package metrics

// The Prometheus text format, version 0.0.4:
//
//	# HELP <name> <help, with \ and newline escaped as \\ and \n>
//	# TYPE <name> counter|gauge|histogram
//	<name>{<label>="<value, with \, " and newline escaped>",...} <value>
//
// A histogram <name> is written as cumulative <name>_bucket series with an
// "le" label (the bucket's upper bound, the last one "+Inf"), then
// <name>_sum and <name>_count. Values are Go floats; +Inf, -Inf and NaN are
// spelled that way, integers without an exponent.

import (
	"bufio"
	"io"
	"math"
	"strconv"
)

// WriteText writes families in the text format.
func WriteText(w io.Writer, fams []Family) error {
	bw := bufio.NewWriterSize(w, 16<<10)
	var b []byte
	for _, f := range fams {
		b = append(b[:0], "# HELP "...)
		b = append(b, f.Name...)
		b = append(b, ' ')
		b = appendEscaped(b, f.Help, false)
		b = append(b, "\n# TYPE "...)
		b = append(b, f.Name...)
		b = append(b, ' ')
		b = append(b, f.Type.String()...)
		b = append(b, '\n')
		for _, s := range f.Series {
			if f.Type == HistogramType {
				b = appendHistogram(b, f.Name, s)
				continue
			}
			b = appendSample(b, f.Name, "", s.Labels, "", "", s.Value)
		}
		if _, err := bw.Write(b); err != nil {
			return err
		}
	}
	return bw.Flush()
}

func appendHistogram(b []byte, name string, s Series) []byte {
	h := s.Histogram
	var cum uint64
	for i, n := range h.Counts {
		cum += n
		le := "+Inf"
		if i < len(h.UpperBounds) {
			le = formatFloat(h.UpperBounds[i])
		}
		b = appendSample(b, name, "_bucket", s.Labels, "le", le, float64(cum))
	}
	b = appendSample(b, name, "_sum", s.Labels, "", "", h.Sum)
	return appendSample(b, name, "_count", s.Labels, "", "", float64(cum))
}

// appendSample writes one line; extraName/extraValue is one more label
// (a histogram's "le"), written last.
func appendSample(b []byte, name, suffix string, labels []Label, extraName, extraValue string, v float64) []byte {
	b = append(b, name...)
	b = append(b, suffix...)
	b = appendLabels(b, labels, extraName, extraValue)
	b = append(b, ' ')
	b = append(b, formatFloat(v)...)
	return append(b, '\n')
}

func appendLabels(b []byte, labels []Label, extraName, extraValue string) []byte {
	if len(labels) == 0 && extraName == "" {
		return b
	}
	b = append(b, '{')
	for i, l := range labels {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendLabel(b, l.Name, l.Value)
	}
	if extraName != "" {
		if len(labels) > 0 {
			b = append(b, ',')
		}
		b = appendLabel(b, extraName, extraValue)
	}
	return append(b, '}')
}

func appendLabel(b []byte, name, value string) []byte {
	b = append(b, name...)
	b = append(b, '=', '"')
	b = appendEscaped(b, value, true)
	return append(b, '"')
}

// appendEscaped escapes a backslash and a newline, and in label values
// also a double quote, as the format requires.
func appendEscaped(b []byte, s string, quote bool) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, `\\`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '"' && quote:
			b = append(b, `\"`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// formatFloat spells a value the way Prometheus parses it: integers in
// full, other values in the shortest form that round-trips.
func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	case v == math.Trunc(v) && math.Abs(v) < 1<<53:
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
