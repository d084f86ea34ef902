package bridge

import (
	"fmt"
	"regexp"
	"strings"
)

// DefaultDestination names an upstream topic after the site and the local
// topic, so several edges can mirror the same local topic into one cluster
// without mixing their partitions.
const DefaultDestination = "{site}.{topic}"

// kafkaTopicName is what Kafka accepts as a topic name.
var kafkaTopicName = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

// destination expands a template's {site} and {topic} placeholders and
// checks that the result is a valid Kafka topic name, so a bad template or
// site id fails when the link is built rather than at every produce.
func destination(tmpl, site, topic string) (string, error) {
	name := strings.NewReplacer("{site}", site, "{topic}", topic).Replace(tmpl)
	if !kafkaTopicName.MatchString(name) || name == "." || name == ".." {
		return "", fmt.Errorf("destination %q (from template %q) is not a valid Kafka topic name", name, tmpl)
	}
	return name, nil
}
