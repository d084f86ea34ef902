package config

import (
	"strings"
	"testing"
	"time"
)

// A value reached twice (an alias, or a mapping merged with <<:) is
// expanded from its own text each time, never from an earlier expansion:
// a variable's value is not itself scanned for ${...}, and both uses of
// one anchored value read the same.
func TestAliasExpandsEnvOnce(t *testing.T) {
	t.Setenv("SPOOL_TEST_V", "p${SPOOL_TEST_W}")
	t.Setenv("SPOOL_TEST_W", "leaked")
	c, err := Parse(strings.NewReader("log:\n  format: &v ${SPOOL_TEST_V}\n  level: *v\n"))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if c.Log.Format != "p${SPOOL_TEST_W}" || c.Log.Level != c.Log.Format {
		t.Errorf("format %q, level %q (one anchored value): want both %q", c.Log.Format, c.Log.Level, "p${SPOOL_TEST_W}")
	}
}

// mqtt.max_keepalive is 1s to 65535s: below a second, the broker's whole
// seconds would be 0, which to an MQTT 5 client means no keepalive.
func TestMaxKeepaliveBelowOneSecond(t *testing.T) {
	c := Default()
	c.MQTT.MaxKeepalive = Duration(500 * time.Millisecond)
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "mqtt.max_keepalive") {
		t.Errorf("mqtt.max_keepalive 500ms: Validate = %v, want an error naming mqtt.max_keepalive (1s to 65535s)", err)
	}
}

// A sign after the days ("1d+1h", like "7d-1h") is refused: after the
// days are peeled off, time.ParseDuration would take it.
func TestDurationSignInTheMiddle(t *testing.T) {
	for _, s := range []string{"1d+1h", "2w+0s"} {
		if d, err := ParseDuration(s); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error as for \"7d-1h\"", s, d.D())
		}
	}
}
