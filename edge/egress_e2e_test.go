package edge

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/spoolmq/spool/edge/config"
	"github.com/twmb/franz-go/pkg/kgo"
)

type received struct {
	mu   sync.Mutex
	msgs []string // topic=payload
}

func (r *received) handler(_ paho.Client, m paho.Message) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m.Topic()+"="+string(m.Payload()))
	r.mu.Unlock()
}

func (r *received) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.msgs...)
}

func (r *received) wait(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for len(r.get()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("got %q, want %d messages", r.get(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return r.get()
}

func mqttClient(t *testing.T, srv *Server, id string, clean bool, h paho.MessageHandler) paho.Client {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + srv.Broker().Addr("tcp").String()).
		SetClientID(id).SetCleanSession(clean).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).
		SetDefaultPublishHandler(h))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	return c
}

func produceTo(t *testing.T, srv *Server, topic, key, value string) {
	t.Helper()
	p, err := kgo.NewClient(kgo.SeedBrokers(srv.Kafka().Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := p.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(key), Value: []byte(value)}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// TestEgressDeliversCommands: a command produced over Kafka reaches the
// device subscribed to the MQTT topic its key names; an offline device
// with a persistent session gets it when it comes back; a record that
// came in over MQTT is not delivered a second time; after a restart the
// egress goes on from where it was, delivering nothing twice.
func TestEgressDeliversCommands(t *testing.T) {
	cfg := config.Default()
	cfg.Data = t.TempDir()
	cfg.MQTT.Addr, cfg.Kafka.Addr, cfg.HTTP.Addr = "127.0.0.1:0", "127.0.0.1:0", ""
	cfg.Routes = []config.RouteSpec{{Match: "devices/+/cmd", Topic: "cmds", Key: "level:1"}}
	cfg.Egress = []config.EgressSpec{{Topic: "cmds", MQTTTopic: "devices/{key}/cmd"}}
	srv := startServerStoppable(t, cfg)

	var pump, valve received
	pc := mqttClient(t, srv.s, "pump1", true, pump.handler)
	if tok := pc.Subscribe("devices/pump1/cmd", 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	vc := mqttClient(t, srv.s, "valve7", false, valve.handler)
	if tok := vc.Subscribe("devices/valve7/cmd", 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	vc.Disconnect(50)

	produceTo(t, srv.s, "cmds", "pump1", `{"state":"on"}`)
	produceTo(t, srv.s, "cmds", "valve7", `{"state":"off"}`)
	if got := pump.wait(t, 1); got[0] != `devices/pump1/cmd={"state":"on"}` {
		t.Errorf("pump1 got %q", got)
	}

	// An operator publishing over MQTT: delivered live once, not again by
	// the egress that follows the same topic.
	op := mqttClient(t, srv.s, "ops", true, nil)
	if tok := op.Publish("devices/pump1/cmd", 1, false, "manual"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	pump.wait(t, 2)
	time.Sleep(200 * time.Millisecond)
	if got := pump.get(); len(got) != 2 || got[1] != "devices/pump1/cmd=manual" {
		t.Errorf("pump1 got %q, want the command and the manual one once", got)
	}
	if st := srv.s.Broker().Stats(); st.EgressFromMQTT != 1 || st.EgressDelivered != 2 {
		t.Errorf("egress stats %+v: want 2 delivered and the MQTT record passed over", st)
	}
	op.Disconnect(50)
	pc.Disconnect(50)

	// The restart: a new command after it is delivered, the old ones not again.
	srv = srv.restart(t)
	vc = mqttClient(t, srv.s, "valve7", false, valve.handler)
	if got := valve.wait(t, 1); got[0] != `devices/valve7/cmd={"state":"off"}` {
		t.Errorf("valve7 got %q from its session", got)
	}
	pump = received{}
	pc = mqttClient(t, srv.s, "pump1b", true, pump.handler)
	if tok := pc.Subscribe("devices/pump1/cmd", 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	produceTo(t, srv.s, "cmds", "pump1", `{"state":"off"}`)
	pump.wait(t, 1)
	time.Sleep(200 * time.Millisecond)
	if got := pump.get(); len(got) != 1 || got[0] != `devices/pump1/cmd={"state":"off"}` {
		t.Errorf("after the restart pump1 got %q, want only the new command", got)
	}
	if got := valve.get(); len(got) != 1 {
		t.Errorf("valve7 got %q, want its one command", got)
	}
	pc.Disconnect(50)
	vc.Disconnect(50)
}

// runningServer is a server that a test can restart on the same data.
type runningServer struct {
	s      *Server
	cfg    config.Config
	cancel context.CancelFunc
	done   chan error
}

func startServerStoppable(t *testing.T, cfg config.Config) *runningServer {
	t.Helper()
	srv, err := Open(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rs := &runningServer{s: srv, cfg: cfg, cancel: cancel, done: make(chan error, 1)}
	ready := make(chan struct{})
	go func() { rs.done <- srv.Run(ctx, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-rs.done:
		t.Fatalf("run: %v", err)
	}
	t.Cleanup(func() { rs.stop(t) })
	return rs
}

func (rs *runningServer) stop(t *testing.T) {
	t.Helper()
	if rs.cancel == nil {
		return
	}
	rs.cancel()
	rs.cancel = nil
	if err := <-rs.done; err != nil {
		t.Errorf("run: %v", err)
	}
}

func (rs *runningServer) restart(t *testing.T) *runningServer {
	t.Helper()
	rs.stop(t)
	return startServerStoppable(t, rs.cfg)
}
