package httpapi

import (
	"encoding/base64"
	"strconv"
	"unicode/utf8"

	spoollog "github.com/spoolmq/spool/log"
)

// appendRecordJSON writes a record as one line of JSON:
//
//	{"offset":5,"timestamp":1700000000000,"key":"k","value":"v","headers":[{"key":"h","value":"x"}]}
//
// Bytes that are valid UTF-8 are JSON strings; other bytes are standard
// base64 under key_b64 / value_b64 (and, in headers, value_b64). A missing
// key and a null value (a tombstone) are null. headers is left out when
// there are none.
func appendRecordJSON(b []byte, r *spoollog.Record) []byte {
	b = append(b, `{"offset":`...)
	b = strconv.AppendInt(b, r.Offset, 10)
	b = append(b, `,"timestamp":`...)
	b = strconv.AppendInt(b, r.Timestamp, 10)
	b = append(b, ',')
	b = appendBytesField(b, "key", r.Key)
	b = append(b, ',')
	b = appendBytesField(b, "value", r.Value)
	if len(r.Headers) > 0 {
		b = append(b, `,"headers":[`...)
		for i, h := range r.Headers {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '{')
			if utf8.ValidString(h.Key) {
				b = append(b, `"key":`...)
				b = appendString(b, h.Key)
			} else {
				b = append(b, `"key_b64":"`...)
				b = base64.StdEncoding.AppendEncode(b, []byte(h.Key))
				b = append(b, '"')
			}
			b = append(b, ',')
			b = appendBytesField(b, "value", h.Value)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// appendBytesField writes "name":"text", "name_b64":"base64" or "name":null.
func appendBytesField(b []byte, name string, v []byte) []byte {
	switch {
	case v == nil:
		b = append(b, '"')
		b = append(b, name...)
		return append(b, `":null`...)
	case utf8.Valid(v):
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, `":`...)
		return appendString(b, string(v))
	}
	b = append(b, '"')
	b = append(b, name...)
	b = append(b, `_b64":"`...)
	b = base64.StdEncoding.AppendEncode(b, v)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// appendString writes s, which must be valid UTF-8, as a JSON string.
// Control characters are escaped, and so are U+2028 and U+2029, which
// some JavaScript parsers take for line ends.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c >= 0x20 && c != 0x7f:
				b = append(b, c)
			case c == '\n':
				b = append(b, `\n`...)
			case c == '\r':
				b = append(b, `\r`...)
			case c == '\t':
				b = append(b, `\t`...)
			default:
				b = append(b, `\u00`...)
				b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == '\u2028' || r == '\u2029' {
			b = append(b, `\u202`...)
			b = append(b, hexDigits[r&0xf])
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
