package mqtt

import "strings"

// matchFilter reports whether an MQTT topic filter matches a topic name:
// + matches one level, # the rest (including the parent level), and
// wildcards at the first level do not match topics starting with $.
func matchFilter(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	return covers(filter, topic)
}

// covers reports whether every topic matched by sub is also matched by
// filter. For a topic name (no wildcards) that is plain matching; for a
// subscription filter it is what an ACL needs: "sensors/#" covers
// "sensors/+/temp", but "sensors/+" does not cover "sensors/#".
func covers(filter, sub string) bool {
	for {
		f, fRest, fMore := strings.Cut(filter, "/")
		s, sRest, sMore := strings.Cut(sub, "/")
		switch {
		case f == "#":
			return true
		case s == "#":
			return false
		case f == "+":
			// + covers any one level, including a + in sub.
		case f != s:
			return false
		}
		switch {
		case !fMore && !sMore:
			return true
		case !sMore:
			// "a/#" also matches "a" itself.
			return fRest == "#"
		case !fMore:
			return false
		}
		filter, sub = fRest, sRest
	}
}
