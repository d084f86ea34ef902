package edge

import (
	"testing"
	"time"

	"github.com/spoolmq/spool/edge/config"
	"github.com/twmb/franz-go/pkg/kfake"
)

// An operator at edge A publishes a command over MQTT; edge A mirrors its
// "commands" topic upstream (headers copied, mqtt.qos included); edge B
// carries the upstream topic down into its own "commands" topic (headers
// copied again), where an egress delivers it to the device: the MQTT
// headers from A's ingest do not make B's egress take it for one of its
// own live deliveries.
func TestMirroredMQTTCommandReachesDeviceAtOtherEdge(t *testing.T) {
	up, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "edge-a.commands"))
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	one := int32(1)

	a := config.Default()
	a.Data = t.TempDir()
	a.MQTT.Addr, a.Kafka.Addr, a.HTTP.Addr = "127.0.0.1:0", "", ""
	a.EdgeID = "edge-a"
	a.Topics = []config.TopicSpec{{Name: "commands", Partitions: &one}}
	a.Routes = []config.RouteSpec{{Match: "ops/+/cmd", Topic: "commands", Key: "level:1"}}
	a.Links = []config.LinkSpec{{Name: "dc", Kafka: config.KafkaPeer{Brokers: up.ListenAddrs()}, Topics: []string{"commands"}}}
	srvA := startServer(t, a)

	b := config.Default()
	b.Data = t.TempDir()
	b.MQTT.Addr, b.Kafka.Addr, b.HTTP.Addr = "127.0.0.1:0", "", ""
	b.EdgeID = "edge-b"
	b.Topics = []config.TopicSpec{{Name: "commands", Partitions: &one}}
	b.Links = []config.LinkSpec{{Name: "dc", Kafka: config.KafkaPeer{Brokers: up.ListenAddrs()},
		Downstream: []config.DownstreamSpec{{From: "edge-a.commands", To: "commands"}}}}
	b.Egress = []config.EgressSpec{{Topic: "commands", MQTTTopic: "devices/{key}/cmd"}}
	srvB := startServer(t, b)

	var got received
	dev := mqttClient(t, srvB, "pump4", true, got.handler)
	defer dev.Disconnect(50)
	if tok := dev.Subscribe("devices/pump4/cmd", 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}

	op := mqttClient(t, srvA, "operator", true, nil)
	defer op.Disconnect(50)
	if tok := op.Publish("ops/pump4/cmd", 1, false, `{"rpm":900}`); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}

	// Wait until edge B stored the command, then give egress time.
	tp, err := srvB.Log().Topic("commands")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := tp.Partition(0)
	deadline := time.Now().Add(20 * time.Second)
	for p.HighWatermark() < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the command never reached edge B's log")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	if msgs := got.get(); len(msgs) != 1 || msgs[0] != `devices/pump4/cmd={"rpm":900}` {
		st := srvB.Broker().Stats()
		t.Fatalf("device at edge B got %q, want the command; egress delivered %d, passed over as from MQTT %d",
			msgs, st.EgressDelivered, st.EgressFromMQTT)
	}
}
