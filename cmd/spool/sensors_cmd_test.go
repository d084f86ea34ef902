package main

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/spoolmq/spool/edge"
	"github.com/spoolmq/spool/edge/config"
)

// TestSensorsList: spool sensors list shows each sensor's state and last
// reading, and why a failed one failed; with nothing listening it fails
// clearly.
func TestSensorsList(t *testing.T) {
	cfg := config.Default()
	cfg.Data = t.TempDir()
	cfg.MQTT.Addr, cfg.Kafka.Addr, cfg.HTTP.Addr = "", "", "127.0.0.1:0"
	cfg.Sensors = []config.SensorSpec{
		{Name: "tank", Topic: "sensors", Simulated: &config.SimulatedSpec{Waveform: "square", Value: "level", Unit: "%", Min: 10, Max: 90}},
	}
	_, noGPIO := os.Stat("/dev/gpiochip0")
	if noGPIO != nil {
		cfg.Sensors = append(cfg.Sensors, config.SensorSpec{Name: "door", Topic: "sensors", DigitalInput: &config.DigitalInputSpec{Pin: "GPIO4"}})
	}
	srv, err := edge.Open(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() { done <- srv.Run(ctx, func() { close(ready) }) }()
	<-ready
	defer func() { cancel(); <-done }()

	addr := srv.HTTPAddr().String()
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, out, stderr := spool(t, context.Background(), "sensors", "list", "--http", addr)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		tankOK := containsFields(out, "tank", "simulated", "sensors", "running", "1") && strings.Contains(out, "level=")
		doorOK := noGPIO == nil || (containsFields(out, "door", "digital_input", "sensors", "failed") && strings.Contains(out, "door: pin GPIO4: /dev/gpiochip0 absent"))
		if tankOK && doorOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sensors list never showed both sensors:\n%s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	code, out, _ := spool(t, context.Background(), "sensors", "list", "--http", addr, "--json")
	if code != 0 || !strings.Contains(out, `"name":"tank"`) {
		t.Errorf("--json: exit %d, %s", code, out)
	}
	code, _, stderr := spool(t, context.Background(), "sensors", "list", "--http", "127.0.0.1:1")
	if code != 1 || !strings.Contains(stderr, "no spool answering at 127.0.0.1:1") {
		t.Errorf("nothing listening: exit %d, %q", code, stderr)
	}
	if code, _, _ := spool(t, context.Background(), "sensors"); code != 2 {
		t.Errorf("no subcommand: exit %d", code)
	}
}

// containsFields: some line of out has these whitespace-separated
// fields, in this order, at its start.
func containsFields(out string, fields ...string) bool {
	for line := range strings.SplitSeq(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= len(fields) && strings.Join(f[:len(fields)], " ") == strings.Join(fields, " ") {
			return true
		}
	}
	return false
}
