package edge

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/spoolmq/spool/edge/config"
	spoollog "github.com/spoolmq/spool/log"
)

// TestEgressPositionPastEndGoesOnFromEnd: an egress position stored past
// the partition's end (a crash lost the tail it was stored after) makes
// the egress go on from the end: a command appended after the restart
// reaches its device, instead of being skipped until the log grows back
// to the old position.
func TestEgressPositionPastEndGoesOnFromEnd(t *testing.T) {
	cfg := config.Default()
	cfg.Data = t.TempDir()
	cfg.MQTT.Addr, cfg.Kafka.Addr, cfg.HTTP.Addr = "127.0.0.1:0", "127.0.0.1:0", ""
	cfg.Topics = []config.TopicSpec{{Name: "cmds"}}
	cfg.Egress = []config.EgressSpec{{Topic: "cmds", MQTTTopic: "devices/{key}/cmd"}}

	// The position of a log that was longer: offset 50 of a partition
	// that now ends at 0.
	l, err := spoollog.Open(cfg.Data, spoollog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Meta().PutCursor("mqtt.egress", "cmds\x00devices/{key}/cmd\x000", binary.BigEndian.AppendUint64(nil, 50)); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	srv := startServerStoppable(t, cfg)
	var pump received
	pc := mqttClient(t, srv.s, "pump1", true, pump.handler)
	defer pc.Disconnect(50)
	if tok := pc.Subscribe("devices/pump1/cmd", 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	produceTo(t, srv.s, "cmds", "pump1", "start")
	if got := pump.wait(t, 1); got[0] != "devices/pump1/cmd=start" {
		t.Errorf("pump1 got %q", got)
	}
}
