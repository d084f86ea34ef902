package log

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// maxTopicNameLen is Kafka's limit. It leaves room for a partition directory
// name (topic + "-" + partition number) within the common 255-byte limit on
// file names.
const maxTopicNameLen = 249

// ValidateTopicName applies Kafka's topic name rules, so that any name Spool
// accepts a Kafka cluster would accept too, and the name is safe to use as a
// directory name.
func ValidateTopicName(name string) error {
	switch {
	case name == "":
		return errors.New("topic name is empty")
	case name == "." || name == "..":
		return fmt.Errorf("topic name %q is not allowed", name)
	}
	for _, c := range name {
		if !isTopicNameChar(c) {
			return fmt.Errorf("topic name %q: character %q is not allowed (use letters, digits, '.', '_', '-')", name, c)
		}
	}
	// Every character is ASCII by now, so bytes are characters. Only the
	// start of an overlong name is quoted, to keep the error readable.
	if len(name) > maxTopicNameLen {
		return fmt.Errorf("topic name %.40q...: %d characters is more than the maximum of %d", name, len(name), maxTopicNameLen)
	}
	return nil
}

func isTopicNameChar(c rune) bool {
	return c < utf8.RuneSelf &&
		('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '.' || c == '_' || c == '-')
}

// topicNamesCollide reports whether two different topic names become equal
// when '.' is replaced by '_'. Kafka refuses to create such a pair because
// '.' turns into '_' in metric names, so both topics would report under one
// metric; Spool refuses it too so its topics stay creatable on Kafka.
func topicNamesCollide(a, b string) bool {
	return a != b && strings.ReplaceAll(a, ".", "_") == strings.ReplaceAll(b, ".", "_")
}
