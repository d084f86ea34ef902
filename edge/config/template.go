package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Template is an MQTT topic made from a record: literal text and the
// fields {key}, {header:NAME}, {partition} and {topic}.
type Template []TemplatePart

// TemplatePart is literal text, or a field (Field set: "key", "header",
// "partition", "topic"; Header names the header).
type TemplatePart struct {
	Text, Field, Header string
}

// RecordFields are what a template takes from one record.
type RecordFields struct {
	Key       []byte
	Header    func(name string) ([]byte, bool)
	Partition int32
	Topic     string
}

// ParseTemplate reads an MQTT topic template. The literal parts must not
// hold MQTT wildcards: a delivery goes to one topic.
func ParseTemplate(s string) (Template, error) {
	if s == "" {
		return nil, errors.New("empty topic template")
	}
	var t Template
	for rest := s; rest != ""; {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			t = append(t, TemplatePart{Text: rest})
			break
		}
		if i > 0 {
			t = append(t, TemplatePart{Text: rest[:i]})
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return nil, fmt.Errorf("%q: unclosed {", s)
		}
		field := rest[i+1 : i+j]
		switch name, hdr, isHeader := strings.Cut(field, ":"); {
		case field == "key" || field == "partition" || field == "topic":
			t = append(t, TemplatePart{Field: field})
		case isHeader && name == "header" && hdr != "":
			t = append(t, TemplatePart{Field: "header", Header: hdr})
		default:
			return nil, fmt.Errorf("%q: {%s} is not {key}, {header:NAME}, {partition} or {topic}", s, field)
		}
		rest = rest[i+j+1:]
	}
	for _, p := range t {
		if strings.ContainsAny(p.Text, "+#\x00") || strings.Contains(p.Text, "}") {
			return nil, fmt.Errorf("%q: wildcards (+ #) and stray } are not allowed in a topic", s)
		}
	}
	return t, nil
}

// Render builds the MQTT topic of a record. It fails when a field is
// missing or would make the topic invalid (empty, a wildcard, NUL).
func (t Template) Render(f RecordFields) (string, error) {
	var b strings.Builder
	for _, p := range t {
		var v string
		switch p.Field {
		case "":
			b.WriteString(p.Text)
			continue
		case "key":
			if f.Key == nil {
				return "", errors.New("the record has no key")
			}
			v = string(f.Key)
		case "header":
			h, ok := f.Header(p.Header)
			if !ok {
				return "", fmt.Errorf("the record has no header %q", p.Header)
			}
			v = string(h)
		case "partition":
			v = strconv.Itoa(int(f.Partition))
		case "topic":
			v = f.Topic
		}
		if v == "" || strings.ContainsAny(v, "+#\x00") {
			return "", fmt.Errorf("{%s} is %q, which cannot be part of an MQTT topic", p.Field, v)
		}
		b.WriteString(v)
	}
	return b.String(), nil
}
