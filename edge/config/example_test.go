package config

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	spoollog "github.com/spoolmq/spool/log"
	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"
)

const (
	examplePath = "../../configs/spool.yaml"
	// bridgePath documents the keys of links, which spool.yaml leaves out
	// (a link needs an upstream).
	bridgePath = "../../configs/bridge.yaml"
	// bridgeMQTTPath documents the MQTT upstream of links.
	bridgeMQTTPath = "../../configs/bridge-mqtt.yaml"
	// sensorsPath documents the sensors and actuators; sensorsSimPath is
	// the demo that runs anywhere.
	sensorsPath    = "../../configs/sensors.yaml"
	sensorsSimPath = "../../configs/sensors-sim.yaml"
)

// TestExampleConfig loads the annotated example the way spool serve does
// and checks a few values, so the file cannot drift from the structs.
func TestExampleConfig(t *testing.T) {
	c, err := Load(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate:\n%v", err)
	}

	if !c.LoopbackOnly() || !c.AnonymousAllowed() || c.Auth.AllowAnonymous != nil {
		t.Error("the example must keep every listener on loopback and leave allow_anonymous unset")
	}
	if c.MQTT.Addr != "127.0.0.1:1883" || c.HTTP.Addr != "127.0.0.1:8080" || c.DiskBudget != 2<<30 {
		t.Errorf("mqtt.addr %q, http.addr %q, disk_budget %v", c.MQTT.Addr, c.HTTP.Addr, c.DiskBudget)
	}

	if len(c.Auth.Users) != 1 {
		t.Fatalf("%d users, want 1", len(c.Auth.Users))
	}
	hash := []byte(c.Auth.Users[0].PasswordHash)
	if err := bcrypt.CompareHashAndPassword(hash, []byte("change-me")); err != nil {
		t.Errorf("the example's password_hash is not a hash of change-me, as its comment says: %v", err)
	}

	if len(c.Topics) != 2 || c.Topics[0].Name != "telemetry" || c.Topics[1].Name != "alarms" {
		t.Fatalf("topics %+v", c.Topics)
	}
	tel, err := c.Topics[0].TopicConfig(spoollog.DefaultTopicConfig())
	if err != nil {
		t.Fatal(err)
	}
	if tel.Partitions != 3 || tel.Sync != spoollog.SyncAlways || tel.Retention != 7*24*time.Hour {
		t.Errorf("telemetry: %+v", tel)
	}
	alarms, err := c.Topics[1].TopicConfig(spoollog.DefaultTopicConfig())
	if err != nil {
		t.Fatal(err)
	}
	if alarms.OnFull != spoollog.OnFullReject {
		t.Errorf("alarms: on_full %q", alarms.OnFull)
	}

	wantRoutes := []RouteSpec{
		{Match: "devices/+/telemetry", Topic: "telemetry", Key: "level:1"},
		{Match: "devices/+/alarm", Topic: "alarms", Key: "json:device"},
	}
	if !reflect.DeepEqual(c.Routes, wantRoutes) {
		t.Errorf("routes %+v, want %+v", c.Routes, wantRoutes)
	}
	for _, r := range c.Routes {
		if !slices.ContainsFunc(c.Topics, func(s TopicSpec) bool { return s.Name == r.Topic }) {
			t.Errorf("route %s goes to undeclared topic %q", r.Match, r.Topic)
		}
	}
}

// TestExampleConfigHasEveryKey requires the example to show every key of
// Config (for lists, in at least one item), so a new field gets documented
// there.
func TestExampleConfigHasEveryKey(t *testing.T) {
	have := map[string]bool{}
	for _, path := range []string{examplePath, bridgePath, bridgeMQTTPath, sensorsPath, sensorsSimPath} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		yamlKeys(doc.Content[0], "", have)
	}
	want := map[string]bool{}
	structKeys(reflect.TypeFor[Config](), "", want)
	if len(want) < 50 {
		t.Fatalf("found only %d keys in Config; structKeys is broken", len(want))
	}
	var missing []string
	for k := range want {
		if !have[k] {
			missing = append(missing, k)
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("the example configs lack these keys:\n%s", strings.Join(missing, "\n"))
	}
}

// yamlKeys records the dotted path of every mapping key under n; list
// items share the path "list[]".
func yamlKeys(n *yaml.Node, prefix string, into map[string]bool) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := prefix + n.Content[i].Value
			into[k] = true
			yamlKeys(n.Content[i+1], k+".", into)
		}
	case yaml.SequenceNode:
		for _, item := range n.Content {
			yamlKeys(item, strings.TrimSuffix(prefix, ".")+"[].", into)
		}
	}
}

// structKeys records the paths yamlKeys would find for a value of type t
// with every field set.
func structKeys(t reflect.Type, prefix string, into map[string]bool) {
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		k := prefix + name
		into[k] = true
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case ft.Kind() == reflect.Struct:
			structKeys(ft, k+".", into)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			structKeys(ft.Elem(), k+"[].", into)
		}
	}
}

// TestBridgeExampleConfig: the bridge example loads with the upstream
// named by the environment, and refuses to start without it.
func TestBridgeExampleConfig(t *testing.T) {
	t.Setenv("SPOOL_UPSTREAM_BROKERS", "10.0.0.5:9092,10.0.0.6:9092")
	c, err := Load(bridgePath)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate:\n%v", err)
	}
	if len(c.Links) != 1 || c.EdgeID != "site-1" {
		t.Fatalf("links %+v, edge_id %q", c.Links, c.EdgeID)
	}
	l := c.Links[0]
	if !slices.Equal(l.Kafka.Brokers, []string{"10.0.0.5:9092,10.0.0.6:9092"}) || !slices.Equal(l.Topics, []string{"*"}) ||
		l.Destination != "{site}.{topic}" || l.DeliveryTimeout.D() != 30*time.Second {
		t.Errorf("link %+v", l)
	}
	os.Unsetenv("SPOOL_UPSTREAM_BROKERS")
	if _, err := Load(bridgePath); err == nil || !strings.Contains(err.Error(), "SPOOL_UPSTREAM_BROKERS") {
		t.Errorf("without the variable: %v", err)
	}
}

// TestBridgeMQTTExampleConfig: the MQTT bridge example loads with the
// broker named by the environment.
func TestBridgeMQTTExampleConfig(t *testing.T) {
	t.Setenv("SPOOL_UPSTREAM_MQTT", "tcp://10.0.0.5:1883")
	c, err := Load(bridgeMQTTPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate:\n%v", err)
	}
	if len(c.Links) != 1 || c.Links[0].MQTT.URL != "tcp://10.0.0.5:1883" || !c.Links[0].MQTT.Envelope {
		t.Fatalf("links %+v", c.Links)
	}
}
