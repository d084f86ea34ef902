package edge

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/spoolmq/spool/edge/config"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"golang.org/x/crypto/bcrypt"
)

// TestKafkaSharesTopicsWithMQTTAndHTTP: a record published over MQTT is
// consumed over Kafka with its key and MQTT headers; a record produced
// over Kafka is read back over HTTP; /metrics counts the Kafka requests.
func TestKafkaSharesTopicsWithMQTTAndHTTP(t *testing.T) {
	cfg := config.Default()
	cfg.Data = t.TempDir()
	cfg.MQTT.Addr, cfg.Kafka.Addr, cfg.HTTP.Addr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	srv := startServer(t, cfg)
	kafkaAddr := srv.Kafka().Addr().String()

	mc := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + srv.Broker().Addr("tcp").String()).
		SetClientID("dev").SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
	if tok := mc.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("mqtt connect: %v", tok.Error())
	}
	defer mc.Disconnect(100)
	if tok := mc.Publish("devices/pump1/temp", 1, false, "21.5"); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := kgo.NewClient(kgo.SeedBrokers(kafkaAddr), kgo.ConsumeTopics("mqtt"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var rec *kgo.Record
	for rec == nil {
		fs := c.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("no record consumed over Kafka")
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		if rs := fs.Records(); len(rs) > 0 {
			rec = rs[0]
		}
	}
	if string(rec.Key) != "devices/pump1/temp" || string(rec.Value) != "21.5" || len(rec.Headers) == 0 ||
		rec.Headers[0].Key != "mqtt.topic" || string(rec.Headers[0].Value) != "devices/pump1/temp" {
		t.Errorf("consumed key %q value %q headers %v", rec.Key, rec.Value, rec.Headers)
	}

	// Kafka → HTTP, on a topic the producer's metadata request creates.
	p, err := kgo.NewClient(kgo.SeedBrokers(kafkaAddr), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.ProduceSync(ctx, &kgo.Record{Topic: "cmds", Key: []byte("pump1"), Value: []byte(`{"state":"on"}`)}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	var out struct {
		Records []struct {
			Key   string `json:"key"`
			Value string `json:"value"`
		} `json:"records"`
	}
	getJSON(t, "http://"+srv.HTTPAddr().String()+"/api/v1/topics/cmds/partitions/0/records?offset=earliest", &out)
	if len(out.Records) != 1 || out.Records[0].Key != "pump1" || out.Records[0].Value != `{"state":"on"}` {
		t.Errorf("HTTP read %+v", out.Records)
	}

	resp, err := http.Get("http://" + srv.HTTPAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if !containsLine(string(body), "spool_kafka_produced_batches_total 1") {
		t.Errorf("/metrics lacks the produced batch:\n%s", body)
	}
}

// TestKafkaSASLFromConfig: with anonymous access off, the config's users
// log in over SASL/SCRAM with the credentials `spool passwd --scram`
// prints, and a client without SASL is refused.
func TestKafkaSASLFromConfig(t *testing.T) {
	cfg := config.Default()
	cfg.Data = t.TempDir()
	cfg.MQTT.Addr, cfg.Kafka.Addr, cfg.HTTP.Addr = "", "127.0.0.1:0", ""
	off := false
	cfg.Auth.AllowAnonymous = &off
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := config.MakeSCRAM("SCRAM-SHA-256", "pw")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Auth.Users = []config.User{{Name: "dash", PasswordHash: string(hash), SCRAM: []string{cred}}}
	srv := startServer(t, cfg)
	addr := srv.Kafka().Addr().String()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ok, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.SASL(scram.Auth{User: "dash", Pass: "pw"}.AsSha256Mechanism()))
	if err != nil {
		t.Fatal(err)
	}
	defer ok.Close()
	if _, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, ok); err != nil {
		t.Errorf("SCRAM login: %v", err)
	}
	anon, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RequestRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	if _, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, anon); err == nil {
		t.Error("a client without SASL was served")
	}
}
