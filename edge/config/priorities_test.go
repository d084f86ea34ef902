package config

import (
	"strings"
	"testing"
)

// TestLinkPrioritiesValidate: a priority names one of the link's topics,
// once, and only on a Kafka link.
func TestLinkPrioritiesValidate(t *testing.T) {
	base := "edge_id: s\nlinks: [{name: up, kafka: {brokers: [h:9092]}, topics: [alarms, telemetry], priorities: "
	for _, tc := range []struct{ prio, want string }{
		{"[{topic: alarms, priority: 10}]", ""},
		{"[{topic: nope, priority: 1}]", `links[0].priorities[0].topic: "nope" is not one of the link's topics`},
		{"[{topic: alarms, priority: 1}, {topic: alarms, priority: 2}]", `links[0].priorities[1].topic: "alarms" has a priority already`},
		{"[{topic: alarms, priority: high}]", "links[0].priorities[0].priority:"},
	} {
		c, err := Parse(strings.NewReader(base + tc.prio + "}]"))
		if err == nil {
			err = c.Validate()
		}
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.prio, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got %v\nwant %q", tc.prio, err, tc.want)
		}
	}
	c, err := Parse(strings.NewReader("edge_id: s\nlinks: [{name: up, mqtt: {url: 'tcp://h:1883'}, topics: [a], priorities: [{topic: a, priority: 1}]}]"))
	if err == nil {
		err = c.Validate()
	}
	if err == nil || !strings.Contains(err.Error(), "links[0].priorities[0]: priorities apply to the bandwidth limit of Kafka links") {
		t.Errorf("MQTT link with priorities: %v", err)
	}
}
