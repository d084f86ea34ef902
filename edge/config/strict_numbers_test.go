package config

import (
	"strings"
	"testing"
)

// TestFractionalUint16Refused: unsigned integer keys (the BME280's I2C
// address) refuse a fraction like every other integer key, rather than
// yaml.v3 turning 118.9 into 118.
func TestFractionalUint16Refused(t *testing.T) {
	c, err := parse(t, "sensors: [{name: a, topic: s, bme280: {address: 118.9}}]\n")
	if err == nil {
		t.Fatalf("address: 118.9 parsed without error as %d; want an error naming sensors[0].bme280.address",
			c.Sensors[0].BME280.Address)
	}
	if !strings.Contains(err.Error(), "sensors[0].bme280.address") {
		t.Errorf("error %q does not name sensors[0].bme280.address", err)
	}
}

// TestEmptyEnvValueIsEmpty: ${NAME} set to the empty string sets the key
// to "" (for mqtt.addr, a listener off), never to YAML null, which would
// keep the default without a word.
func TestEmptyEnvValueIsEmpty(t *testing.T) {
	t.Setenv("SPOOL_TEST_EMPTY", "")
	c, err := parse(t, "mqtt:\n  addr: ${SPOOL_TEST_EMPTY}\n")
	if err != nil {
		t.Fatal(err)
	}
	if c.MQTT.Addr != "" {
		t.Fatalf("mqtt.addr: ${SPOOL_TEST_EMPTY} with the variable empty gave %q; want \"\" (listener off), as mqtt.addr: \"\" does", c.MQTT.Addr)
	}
}
