package config

import (
	"fmt"
	"strconv"
	"strings"
)

// KeyKind says where a route takes the record key from.
type KeyKind int

const (
	KeyTopic    KeyKind = iota // the MQTT topic (the default)
	KeyNone                    // no key: sticky round-robin partitioning
	KeyLevel                   // one level of the MQTT topic
	KeyJSON                    // a field of a JSON payload
	KeyClientID                // the publishing client's id
)

// Key is a parsed route key rule.
type Key struct {
	Kind  KeyKind
	Level int      // KeyLevel: 0-based level index
	Path  []string // KeyJSON: field names from the root
}

// ParseKey reads "topic", "none", "client_id", "level:N" or "json:a.b".
// The empty string means "topic".
func ParseKey(s string) (Key, error) {
	switch {
	case s == "" || s == "topic":
		return Key{Kind: KeyTopic}, nil
	case s == "none":
		return Key{Kind: KeyNone}, nil
	case s == "client_id":
		return Key{Kind: KeyClientID}, nil
	case strings.HasPrefix(s, "level:"):
		n, err := strconv.Atoi(strings.TrimPrefix(s, "level:"))
		if err != nil || n < 0 {
			return Key{}, fmt.Errorf("%q: level must be a number from 0", s)
		}
		return Key{Kind: KeyLevel, Level: n}, nil
	case strings.HasPrefix(s, "json:"):
		p := strings.TrimPrefix(s, "json:")
		parts := strings.Split(p, ".")
		for _, f := range parts {
			if f == "" {
				return Key{}, fmt.Errorf("%q: empty field name in the JSON path", s)
			}
		}
		return Key{Kind: KeyJSON, Path: parts}, nil
	}
	return Key{}, fmt.Errorf("%q is not topic, none, client_id, level:N or json:field.path", s)
}
