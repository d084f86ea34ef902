package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	spoollog "github.com/spoolmq/spool/log"
)

// testHash is a bcrypt hash of "change-me" (spool passwd, cost 10).
const testHash = "$2a$10$LjyasThUX/t7idgai6Wix.b371xOiUM.r0V8pyPYol/YetPqWdVwW"

// testSCRAM is a SCRAM-SHA-256 credential for the password "secret".
const testSCRAM = "SCRAM-SHA-256$4096:i1Mqj83gNjsqz4ZHf4fDnQ==$enHzoHkqr+v5jN9jZpyZg1d14etVVYVMkEzBJxFcEXY=:4BUQi3NIUhtaXMcOyD6Ptr7z7EE5Zz3p+Q8gHW20tUA="

func parse(t *testing.T, in string) (Config, error) {
	t.Helper()
	return Parse(strings.NewReader(in))
}

func TestParseEmptyIsDefault(t *testing.T) {
	for _, in := range []string{
		"",
		"\n\n",
		"# nothing but a comment\n",
		"---\n",
		"mqtt:\n", // a section whose keys are all commented out
		"mqtt:\n  # addr: 0.0.0.0:1883\n",
		"disk_budget:\n", // a null value keeps the default
	} {
		c, err := parse(t, in)
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		if !reflect.DeepEqual(c, Default()) {
			t.Errorf("%q: got %+v, want Default() %+v", in, c, Default())
		}
	}
}

func TestDefaultValidates(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if !c.LoopbackOnly() || !c.AnonymousAllowed() {
		t.Error("the default config must listen on loopback only and so allow anonymous clients")
	}
}

// TestParseOverDefaults checks that a file changes only the keys it names.
func TestParseOverDefaults(t *testing.T) {
	c, err := parse(t, `
data: /var/lib/spool
disk_budget: 2GiB
mqtt:
  max_inflight: 16
  tls:
    addr: 127.0.0.1:8883
log:
  level: debug
`)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Data = "/var/lib/spool"
	want.DiskBudget = 2 << 30
	want.MQTT.MaxInflight = 16
	want.MQTT.TLS.Addr = "127.0.0.1:8883"
	want.Log.Level = "debug"
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got  %+v\nwant %+v", c, want)
	}
}

// TestParseErrors checks the whole message of each parse error: it names
// the key's full path, the way Validate does, and its line.
func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		// Unknown keys.
		{"unknown_top_level", "dta: /tmp/x\n", "dta: unknown key (line 1)"},
		{"unknown_nested_flow", "mqtt: {adr: x}\n", "mqtt.adr: unknown key (line 1)"},
		{"unknown_nested_block", "mqtt:\n  addr: 127.0.0.1:1883\n  max_inflihgt: 3\n", "mqtt.max_inflihgt: unknown key (line 3)"},
		{"unknown_two_levels", "mqtt:\n  tls:\n    crt: a.pem\n", "mqtt.tls.crt: unknown key (line 3)"},
		{"unknown_in_topic", "topics:\n  - name: a\n  - name: b\n    partiton: 3\n", "topics[1].partiton: unknown key (line 4)"},
		{"unknown_in_route", "routes:\n  - match: a/#\n    topic: a\n    keys: none\n", "routes[0].keys: unknown key (line 4)"},
		{"unknown_in_user", "auth:\n  users:\n    - name: u\n      password: x\n", "auth.users[0].password: unknown key (line 4)"},
		{"unknown_in_acl_rule", "auth:\n  anonymous_acl:\n    - filter: '#'\n      acces: read\n", "auth.anonymous_acl[0].acces: unknown key (line 4)"},
		{"unknown_in_user_acl", "auth: {users: [{name: u, acl: [{filter: a, acess: read}]}]}\n", "auth.users[0].acl[0].acess: unknown key (line 1)"},
		{"unknown_in_log", "log: {formt: json}\n", "log.formt: unknown key (line 1)"},
		{"key_with_space", "\"max inflight\": 3\n", `"max inflight": unknown key (line 1)`},
		{"empty_key", "mqtt: {'': 3}\n", `mqtt."": unknown key (line 1)`},
		{"mapping_as_key", "mqtt: {? {a: 1} : 3}\n", "mqtt: expected a key, got a mapping (line 1)"},

		// Scalars of the wrong kind.
		{"string_for_int", "mqtt:\n  max_clients: lots\n", `mqtt.max_clients: "lots" is not an integer (line 2)`},
		{"quoted_int", "mqtt: {max_inflight: \"12\"}\n", `mqtt.max_inflight: "12" is not an integer (line 1)`},
		{"int_with_unit", "topics: [{name: t, partitions: 3x}]\n", `topics[0].partitions: "3x" is not an integer (line 1)`},
		{"string_for_bool", "mqtt: {retain: maybe}\n", `mqtt.retain: expected true or false, got "maybe" (line 1)`},
		{"int_for_bool", "auth: {allow_anonymous: 1}\n", "auth.allow_anonymous: expected true or false, got 1 (line 1)"},
		{"int32_overflow", "topics:\n  - name: t\n    partitions: 3000000000\n", "topics[0].partitions: 3000000000 is not between -2147483648 and 2147483647 (line 3)"},

		// Fractional numbers, which yaml.v3 would truncate.
		{"fraction_for_int32", "topics:\n  - name: t\n    partitions: 2.9\n", "topics[0].partitions: 2.9 is not an integer (line 3)"},
		{"fraction_for_int", "mqtt: {max_clients: 1.5}\n", "mqtt.max_clients: 1.5 is not an integer (line 1)"},
		{"whole_float_for_int", "mqtt: {max_queued: 100.0}\n", "mqtt.max_queued: 100.0 is not an integer (line 1)"},
		{"exponent_for_int", "mqtt: {max_queued: 1e3}\n", "mqtt.max_queued: 1e3 is not an integer (line 1)"},

		// Lists and mappings where they do not belong.
		{"list_for_string", "data: [a, b]\n", "data: expected a string, got a list (line 1)"},
		{"flow_list_for_string", "topics: [{name: t, sync: [a]}]\n", "topics[0].sync: expected a string, got a list (line 1)"},
		{"flow_mapping_for_string", "routes: [{match: '#', topic: {name: t}}]\n", "routes[0].topic: expected a string, got a mapping (line 1)"},
		{"block_list_for_string", "topics:\n  - name: t\n    sync:\n      - always\n", "topics[0].sync: expected a string, got a list (line 4)"},
		{"list_for_bool", "auth: {allow_anonymous: [true]}\n", "auth.allow_anonymous: expected true or false, got a list (line 1)"},
		{"scalar_for_section", "mqtt: 3\n", "mqtt: expected a mapping, got 3 (line 1)"},
		{"list_for_section", "mqtt:\n  - addr: x\n", "mqtt: expected a mapping, got a list (line 2)"},
		{"list_for_list_item", "topics: [[a]]\n", "topics[0]: expected a mapping, got a list (line 1)"},
		{"string_for_list_item", "auth: {users: [u]}\n", `auth.users[0]: expected a mapping, got "u" (line 1)`},
		{"map_for_list", "topics: {name: t}\n", "topics: expected a list, got a mapping (line 1)"},
		{"string_for_list", "routes: none\n", `routes: expected a list, got "none" (line 1)`},
		{"list_for_document", "- data: x\n", "expected a mapping, got a list (line 1)"},
		{"string_for_document", "data\n", `expected a mapping, got "data" (line 1)`},

		// Sizes and durations: their own message, under the key path.
		{"bad_size", "\ndisk_budget: 5XB\n", `disk_budget: "5XB" is not a size such as 512MiB, 2GB or 1048576 (line 2)`},
		{"bad_topic_size", "topics:\n  - name: t\n    segment_bytes: huge\n", `topics[0].segment_bytes: "huge" is not a size such as 512MiB, 2GB or 1048576 (line 3)`},
		{"list_for_size", "disk_budget: [1]\n", "disk_budget: expected a size such as 512MiB (line 1)"},
		{"bad_duration", "maintain_interval: 30\n", `maintain_interval: "30" is not a duration such as 30s, 15m or 7d (line 1)`},
		{"overflowing_duration", "topics:\n  - name: t\n    retention: 300000d\n", `topics[0].retention: "300000d" is longer than 106751d, the longest duration (line 3)`},
		{"empty_duration", "maintain_interval: \"\"\n", `maintain_interval: "" is not a duration such as 30s, 15m or 7d (line 1)`},
		{"mapping_for_duration", "mqtt: {max_keepalive: {s: 1}}\n", "mqtt.max_keepalive: expected a duration such as 30s or 7d (line 1)"},

		// Duplicate keys.
		{"duplicate_key", "data: a\ndata: b\n", "data: duplicate key, first on line 1 (line 2)"},
		{"duplicate_nested_key", "mqtt:\n  addr: a\n  tls: {}\n  addr: b\n", "mqtt.addr: duplicate key, first on line 2 (line 4)"},
		{"duplicate_flow_key", "topics: [{name: a}, {name: b, sync: always, sync: never}]\n", "topics[1].sync: duplicate key, first on line 1 (line 1)"},
		{"duplicate_section", "mqtt: {addr: a}\nmqtt: {retain: false}\n", "mqtt: duplicate key, first on line 1 (line 2)"},

		// YAML syntax errors stay yaml's.
		{"syntax", "mqtt:\n  addr: [\n", "yaml: line 2: did not find expected node content"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(t, tc.in)
			if err == nil {
				t.Fatal("parsed without error")
			}
			if err.Error() != tc.want {
				t.Errorf("error\n  %s\nwant\n  %s", err, tc.want)
			}
		})
	}
}

// TestParseReportsEveryError: one run names every bad key, in the order of
// the file, not just the first.
func TestParseReportsEveryError(t *testing.T) {
	_, err := parse(t, `dta: x
disk_budget: lots
mqtt:
  adr: y
  max_clients: 1.5
  retain: maybe
  addr: a
  addr: b
topics:
  - {name: t, sync: [always]}
  - nme: z
    retention: soon
    partitions: 2
auth: []
`)
	want := []string{
		"dta: unknown key (line 1)",
		`disk_budget: "lots" is not a size such as 512MiB, 2GB or 1048576 (line 2)`,
		"mqtt.adr: unknown key (line 4)",
		"mqtt.max_clients: 1.5 is not an integer (line 5)",
		`mqtt.retain: expected true or false, got "maybe" (line 6)`,
		"mqtt.addr: duplicate key, first on line 7 (line 8)",
		"topics[0].sync: expected a string, got a list (line 10)",
		"topics[1].nme: unknown key (line 11)",
		`topics[1].retention: "soon" is not a duration such as 30s, 15m or 7d (line 12)`,
		"auth: expected a mapping, got a list (line 14)",
	}
	if err == nil {
		t.Fatal("parsed without error")
	}
	if got := err.Error(); got != strings.Join(want, "\n") {
		t.Errorf("errors\n%s\nwant\n%s", got, strings.Join(want, "\n"))
	}
	if j, ok := err.(interface{ Unwrap() []error }); !ok || len(j.Unwrap()) != len(want) {
		t.Errorf("want %d joined errors, got %T", len(want), err)
	}
}

// TestParseNull: a key set to null (or left empty) keeps its default, and
// leaves an optional setting unset.
func TestParseNull(t *testing.T) {
	c, err := parse(t, `
data: ~
disk_budget: null
maintain_interval:
log: {format: null, level: debug}
mqtt:
  max_clients: ~
  retain: null
  tls: ~
  max_keepalive: ~
auth:
  allow_anonymous: null
  users: ~
topics:
  - name: t
    partitions: null
    sync: ~
    retention:
    preallocate: null
  - ~
routes: null
`)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Log.Level = "debug"
	want.Topics = []TopicSpec{{Name: "t"}, {}}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got  %+v\nwant %+v", c, want)
	}
}

// TestParseFields checks values that decode: optional topic settings are
// set only when present, and the YAML forms yaml.v3 accepts still work.
func TestParseFields(t *testing.T) {
	c, err := parse(t, `
mqtt: {max_clients: 0x10, max_queued: 1_000, retain: no, max_packet_size: 2048}
auth: {allow_anonymous: false, users: [{name: u, acl: [{filter: '#', access: read}]}]}
topics:
  - {name: a, partitions: 3, sync: 5, preallocate: yes, retention: forever, segment_bytes: 16MiB}
  - {name: b}
`)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.MQTT.MaxClients, want.MQTT.MaxQueued, want.MQTT.Retain, want.MQTT.MaxPacketSize = 16, 1000, false, 2048
	want.Auth.AllowAnonymous = new(false)
	want.Auth.Users = []User{{Name: "u", ACL: []ACLRule{{Filter: "#", Access: "read"}}}}
	want.Topics = []TopicSpec{
		{Name: "a", Partitions: new(int32(3)), Sync: new("5"), Preallocate: new(true), Retention: new(Forever), SegmentBytes: new(Size(16 << 20))},
		{Name: "b"},
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got  %+v\nwant %+v", c, want)
	}
}

// TestParseAnchors: aliases and merge keys work as in yaml.v3, the keys
// written next to a merge winning over the merged ones.
func TestParseAnchors(t *testing.T) {
	c, err := parse(t, `
topics:
  - &base {name: a, sync: never, partitions: 2}
  - {<<: *base, name: b, partitions: 4}
  - <<: [{sync: always}, *base]
    name: c
routes:
  - &r {match: 'a/#', topic: a}
  - *r
`)
	if err != nil {
		t.Fatal(err)
	}
	want := []TopicSpec{
		{Name: "a", Sync: new("never"), Partitions: new(int32(2))},
		{Name: "b", Sync: new("never"), Partitions: new(int32(4))},
		{Name: "c", Sync: new("always"), Partitions: new(int32(2))},
	}
	if !reflect.DeepEqual(c.Topics, want) {
		t.Errorf("topics %+v, want %+v", c.Topics, want)
	}
	if r := (RouteSpec{Match: "a/#", Topic: "a"}); !reflect.DeepEqual(c.Routes, []RouteSpec{r, r}) {
		t.Errorf("routes %+v", c.Routes)
	}
	_, err = parse(t, "mqtt: {<<: {adr: 1}}\n")
	if err == nil || err.Error() != "mqtt.adr: unknown key (line 1)" {
		t.Errorf("error in a merged mapping: %v", err)
	}
}

func TestParseOneDocument(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"one", "data: x\n", true},
		{"leading_marker", "---\ndata: x\n", true},
		{"end_marker", "data: x\n...\n", true},
		{"two", "data: x\n---\ndata: y\n", false},
		{"stray_trailing_marker", "data: x\n---\n", false},
		{"second_is_unparsable", "data: x\n---\n: : [\n", false},
		{"second_after_end_marker", "data: x\n...\n{\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parse(t, tc.in)
			switch {
			case tc.ok && err != nil:
				t.Fatal(err)
			case tc.ok && c.Data != "x":
				t.Fatalf("data = %q", c.Data)
			case !tc.ok && (err == nil || !strings.Contains(err.Error(), "more than one YAML document")):
				t.Fatalf("error %v, want more than one YAML document", err)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte("data: /srv/spool\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(good)
	if err != nil || c.Data != "/srv/spool" || c.MQTT.MaxInflight != Default().MQTT.MaxInflight {
		t.Fatalf("Load = %+v, %v", c, err)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("dat: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), bad+": ") || !strings.Contains(err.Error(), "dat: unknown key (line 1)") {
		t.Errorf("Load of a bad file: %v; want the path and the key", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file: %v", err)
	}
}

// TestValidate parses each snippet over the defaults and checks that
// Validate reports exactly the listed keys, each at the start of an error.
func TestValidate(t *testing.T) {
	user := func(name, hash string) string {
		return "    - name: " + name + "\n      password_hash: '" + hash + "'\n"
	}
	for _, tc := range []struct {
		name, in string
		keys     []string // empty: valid
	}{
		{"defaults", "", nil},
		{"empty_data", "data: ''\n", []string{"data"}},
		{"negative_budget", "disk_budget: -1\n", []string{"disk_budget"}},
		{"zero_maintain", "maintain_interval: 0\n", []string{"maintain_interval"}},
		{"forever_maintain", "maintain_interval: forever\n", []string{"maintain_interval"}},
		{"negative_memory", "memory_limit: -1\n", []string{"memory_limit"}},
		{"log", "log: {format: xml, level: trace}\n", []string{"log.format", "log.level"}},

		{"addr_without_port", "mqtt: {addr: '127.0.0.1'}\n", []string{"mqtt.addr"}},
		{"addrs", "mqtt: {websocket: 'ws', tls: {addr: x, cert: c, key: k}}\nhttp: {addr: y}\n", []string{"mqtt.tls.addr", "mqtt.websocket", "http.addr"}},
		{"listeners_off", "mqtt: {addr: ''}\nhttp: {addr: ''}\n", nil},
		{"tls_without_cert", "mqtt: {tls: {addr: '127.0.0.1:8883', key: k.pem}}\n", []string{"mqtt.tls"}},
		{"tls_without_key", "mqtt: {tls: {addr: '127.0.0.1:8883', cert: c.pem}}\n", []string{"mqtt.tls"}},
		{"tls", "mqtt: {tls: {addr: '127.0.0.1:8883', cert: c.pem, key: k.pem}}\n", nil},
		{"packet_too_small", "mqtt: {max_packet_size: 63}\n", []string{"mqtt.max_packet_size"}},
		{"packet_smallest", "mqtt: {max_packet_size: 64}\n", nil},
		{"packet_largest", "mqtt: {max_packet_size: 256MiB}\n", nil},
		{"packet_too_large", "mqtt: {max_packet_size: 268435457}\n", []string{"mqtt.max_packet_size"}},
		{"mqtt_limits", "mqtt: {max_clients: 0, max_queued: 0, max_inflight: 0}\n", []string{"mqtt.max_clients", "mqtt.max_inflight", "mqtt.max_queued"}},
		{"inflight_too_large", "mqtt: {max_inflight: 65536}\n", []string{"mqtt.max_inflight"}},
		{"inflight_largest", "mqtt: {max_inflight: 65535}\n", nil},
		{"keepalive_zero", "mqtt: {max_keepalive: 0}\n", []string{"mqtt.max_keepalive"}},
		{"keepalive_forever", "mqtt: {max_keepalive: forever}\n", []string{"mqtt.max_keepalive"}},
		{"keepalive_too_long", "mqtt: {max_keepalive: 65536s}\n", []string{"mqtt.max_keepalive"}},
		{"keepalive_longest", "mqtt: {max_keepalive: 65535s}\n", nil},
		{"session_forever", "mqtt: {session_expiry: forever}\n", []string{"mqtt.session_expiry"}},
		{"session_zero", "mqtt: {session_expiry: 0}\n", nil},

		{"public_http_without_token", "http: {addr: '0.0.0.0:8080'}\n", []string{"http.token"}},
		{"public_http_with_token", "http: {addr: '0.0.0.0:8080', token: secret}\n", nil},
		{"public_mqtt_without_users", "mqtt: {addr: '0.0.0.0:1883'}\n", []string{"auth.users"}},
		{"public_mqtt_anonymous", "mqtt: {addr: '0.0.0.0:1883'}\nauth: {allow_anonymous: true}\n", nil},
		{"public_kafka", "kafka: {addr: '0.0.0.0:9092'}\n", []string{"auth.users"}},
		{"public_kafka_with_user", "kafka: {addr: '0.0.0.0:9092'}\nauth:\n  users:\n" + user("u", testHash), nil},
		{"kafka_tls_without_cert", "kafka: {tls: {addr: '127.0.0.1:9093'}}\n", []string{"kafka.tls"}},
		{"scram", "auth:\n  users:\n" + user("u", testHash) + "      scram: ['" + testSCRAM + "']\n", nil},
		{"bad_scram", "auth:\n  users:\n" + user("u", testHash) + "      scram: ['" + testSCRAM + "', 'SCRAM-SHA-256$10:xx$yy:zz', '" + testSCRAM + "']\n", []string{"auth.users[0].scram[1]", "auth.users[0].scram[2]"}},
		{"public_kafka_anonymous", "kafka: {addr: '0.0.0.0:9092', advertised: 'pi.local:9092'}\nauth: {allow_anonymous: true}\n", nil},
		{"bad_kafka_addr", "kafka: {addr: '9092', advertised: 'pi.local'}\n", []string{"kafka.addr", "kafka.advertised"}},
		{"kafka_request_size", "kafka: {max_request_size: 100}\n", []string{"kafka.max_request_size"}},
		{"public_mqtt_with_user", "mqtt: {addr: '0.0.0.0:1883'}\nauth:\n  users:\n" + user("u", testHash), nil},
		{"user", "auth:\n  users:\n" + user("u", testHash), nil},
		{"user_without_name", "auth:\n  users:\n" + user("", testHash), []string{"auth.users[0].name"}},
		{"duplicate_user", "auth:\n  users:\n" + user("u", testHash) + user("v", testHash) + user("u", testHash), []string{"auth.users[2].name"}},
		{"plaintext_password", "auth:\n  users:\n" + user("u", "change-me"), []string{"auth.users[0].password_hash"}},
		{"sha256_crypt", "auth:\n  users:\n" + user("u", "$5$rounds=5000$salt$Gbe6r2QKx7VbQ5jR8SxpDgz7oOr4iV1X3kq7xB3w9y/"), []string{"auth.users[0].password_hash"}},
		// These start with $2 but are not whole bcrypt hashes; no password
		// would ever match them.
		{"truncated_bcrypt", "auth:\n  users:\n" + user("u", testHash[:40]), []string{"auth.users[0].password_hash"}},
		{"bcrypt_prefix_only", "auth:\n  users:\n" + user("u", "$2a$10$"), []string{"auth.users[0].password_hash"}},
		{"bcrypt_bad_cost", "auth:\n  users:\n" + user("u", strings.Replace(testHash, "$10$", "$99$", 1)), []string{"auth.users[0].password_hash"}},
		{"acl", "auth:\n  anonymous_acl:\n    - {filter: 'sensors/#', access: read}\n    - {filter: '+/cmd', access: write}\n    - {filter: '#', access: readwrite}\n", nil},
		{"bad_acl_access", "auth:\n  users:\n" + user("u", testHash) + "      acl:\n        - {filter: 'a/#', access: read}\n        - {filter: 'a/#', access: rw}\n", []string{"auth.users[0].acl[1].access"}},
		{"bad_acl_filter", "auth:\n  users:\n" + user("u", testHash) + "      acl:\n        - {filter: 'a/#/b', access: read}\n", []string{"auth.users[0].acl[0].filter"}},
		{"bad_anonymous_acl", "auth:\n  anonymous_acl:\n    - {filter: 'a+/b', access: read}\n    - {filter: '', access: ''}\n", []string{"auth.anonymous_acl[0].filter", "auth.anonymous_acl[1].filter", "auth.anonymous_acl[1].access"}},

		{"topic", "topics:\n  - {name: telemetry, partitions: 3, sync: interval, sync_interval: 100ms, retention: forever, retention_bytes: -1}\n", nil},
		{"bad_sync", "topics:\n  - {name: t, sync: sometimes}\n", []string{"topics[0].sync"}},
		{"zero_partitions", "topics:\n  - {name: a}\n  - {name: t, partitions: 0}\n", []string{"topics[1].partitions"}},
		{"too_many_partitions", "topics:\n  - {name: t, partitions: 10001}\n", []string{"topics[0].partitions"}},
		{"duplicate_topic", "topics:\n  - {name: t}\n  - {name: u}\n  - {name: t}\n", []string{"topics[2].name"}},
		{"bad_topic_name", "topics:\n  - {name: 'a/b'}\n  - {name: ''}\n", []string{"topics[0].name", "topics[1].name"}},
		{"interval_without_period", "topics:\n  - {name: t, sync: interval, sync_interval: 0}\n", []string{"topics[0].sync_interval"}},
		{"small_segment", "topics:\n  - {name: t, segment_bytes: 1000}\n", []string{"topics[0].segment_bytes"}},
		{"huge_message", "topics:\n  - {name: t, max_message_bytes: 2GiB}\n", []string{"topics[0].max_message_bytes"}},
		{"message_above_segment", "topics:\n  - {name: t, segment_bytes: 1MiB, max_message_bytes: 2MiB}\n", []string{"topics[0].max_message_bytes"}},
		{"bad_on_full", "topics:\n  - {name: t, on_full: block}\n", []string{"topics[0].on_full"}},
		{"bad_cleanup", "topics:\n  - {name: t, cleanup_policy: archive}\n", []string{"topics[0].cleanup_policy"}},
		{"bad_timestamp_type", "topics:\n  - {name: t, timestamp_type: now}\n", []string{"topics[0].timestamp_type"}},
		{"bad_compression", "topics:\n  - {name: t, compression: brotli}\n", []string{"topics[0].compression"}},
		{"negative_delete_retention", "topics:\n  - {name: t, delete_retention: forever}\n", []string{"topics[0].delete_retention"}},

		{"egress", "egress:\n  - {topic: cmds, mqtt_topic: 'devices/{key}/cmd', qos: 2, start: earliest}\n  - {topic: cmds, mqtt_topic: 'site/{header:site}/{partition}/{topic}'}\n", nil},
		{"bad_egress", "egress:\n  - {topic: 'a/b', mqtt_topic: 'devices/+/cmd', qos: 3, start: now}\n  - {topic: c, mqtt_topic: '{nope}'}\n  - {topic: c, mqtt_topic: ''}\n  - {topic: c, mqtt_topic: 'x/{key'}\n",
			[]string{"egress[0].topic", "egress[0].mqtt_topic", "egress[0].qos", "egress[0].start", "egress[1].mqtt_topic", "egress[2].mqtt_topic", "egress[3].mqtt_topic"}},
		{"link", "edge_id: pi-1\nlinks:\n  - {name: up, kafka: {brokers: ['k:9092'], sasl: {mechanism: SCRAM-SHA-512, user: u, password: p}}, topics: ['*'], partitioning: rehash}\n", nil},
		{"mqtt_link", "edge_id: pi-1\nlinks:\n  - {name: m, mqtt: {url: 'ssl://b:8883', topic: '{site}/{topic}', max_message_bytes: 256KiB}, topics: [t]}\n", nil},
		{"bad_mqtt_max_message_bytes", "edge_id: pi-1\nlinks:\n  - {name: m, mqtt: {url: 'tcp://b:1883', max_message_bytes: 1GiB}, topics: [t]}\n", []string{"links[0].mqtt.max_message_bytes"}},
		{"bad_mqtt_link", "edge_id: pi-1\nlinks:\n  - {name: m, mqtt: {url: 'http://b'}, topics: [t], downstream: [{from: 'a/#/b', to: b}]}\n  - {name: n, mqtt: {url: 'tcp://b:1883'}, kafka: {brokers: ['k:9092']}, topics: [t]}\n",
			[]string{"links[0].mqtt.url", "links[0].downstream[0].from", "links[1]"}},
		{"link_without_edge_id", "links:\n  - {name: up, kafka: {brokers: ['k:9092']}, topics: [t]}\n", []string{"edge_id"}},
		{"bad_links", "edge_id: 'a b'\nlinks:\n  - {name: up, kafka: {brokers: ['k'], tls: {cert: c}, sasl: {mechanism: MD5}}, topics: [], partitioning: random, compression: brotli, batch_bytes: 1GiB}\n  - {name: up, kafka: {sasl: {mechanism: PLAIN}}, topics: ['a/b']}\n",
			[]string{"edge_id", "links[0].kafka.brokers[0]", "links[0].kafka.tls", "links[0].kafka.sasl.mechanism", "links[0].topics", "links[0].partitioning", "links[0].compression", "links[0].batch_bytes",
				"links[1].name", "links[1].kafka.brokers", "links[1].kafka.sasl", "links[1].topics[0]"}},
		{"routes", "routes:\n  - {match: 'devices/+/telemetry', topic: telemetry, key: 'level:1'}\n  - {match: '#', topic: mqtt}\n  - {match: 'a/#', topic: a, key: 'json:device.id'}\n  - {match: 'b', topic: b, key: client_id}\n  - {match: 'c', topic: c, key: none}\n", nil},
		{"bad_route_key", "routes:\n  - {match: 'a/#', topic: a, key: 'level:x'}\n", []string{"routes[0].key"}},
		{"unknown_route_key", "routes:\n  - {match: 'a/#', topic: a}\n  - {match: 'a/#', topic: a, key: payload}\n", []string{"routes[1].key"}},
		{"bad_route_match", "routes:\n  - {match: 'a/#/b', topic: a}\n", []string{"routes[0].match"}},
		{"empty_route", "routes:\n  - {}\n", []string{"routes[0].match", "routes[0].topic"}},
		{"bad_route_topic", "routes:\n  - {match: '#', topic: 'a b'}\n", []string{"routes[0].topic"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parse(t, tc.in)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			checkKeys(t, c.Validate(), tc.keys)
		})
	}
}

// TestValidateReportsEverything: one Validate names every bad key.
func TestValidateReportsEverything(t *testing.T) {
	c := Default()
	c.Data = ""
	c.MQTT.MaxInflight = 0
	c.MQTT.Addr, c.MQTT.WebSocket, c.HTTP.Addr = "mqtt", "ws", "http"
	c.MQTT.TLS.Addr = "127.0.0.1:8883"
	c.Auth.Users = []User{{Name: "u", PasswordHash: "secret"}, {Name: "u", PasswordHash: testHash}}
	c.Topics = []TopicSpec{{Name: "t", Sync: new("sometimes")}, {Name: "t"}}
	c.Routes = []RouteSpec{{Match: "a/#/b", Topic: "t", Key: "nope"}}
	err := c.Validate()
	checkKeys(t, err, []string{
		"data", "mqtt.addr", "mqtt.websocket", "http.addr", "mqtt.tls", "mqtt.max_inflight",
		"auth.users[0].password_hash", "auth.users[1].name",
		"topics[0].sync", "topics[1].name",
		"routes[0].match", "routes[0].key",
	})
	// The order is the order of the file, so two runs print the same.
	for range 20 {
		if again := c.Validate(); again.Error() != err.Error() {
			t.Fatalf("Validate is not deterministic:\n%v\n---\n%v", err, again)
		}
	}
}

// checkKeys requires err to hold exactly one error per key, each starting
// with "key: ".
func checkKeys(t *testing.T, err error, keys []string) {
	t.Helper()
	if len(keys) == 0 {
		if err != nil {
			t.Fatalf("Validate: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("Validate passed, want errors for %v", keys)
	}
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	var got []string
	for _, e := range errs {
		got = append(got, e.Error())
	}
	if len(got) != len(keys) {
		t.Fatalf("got %d errors, want %d (%v):\n%s", len(got), len(keys), keys, strings.Join(got, "\n"))
	}
	for _, k := range keys {
		found := false
		for _, g := range got {
			if strings.HasPrefix(g, k+": ") {
				found = true
			}
		}
		if !found {
			t.Errorf("no error names %q:\n%s", k, strings.Join(got, "\n"))
		}
	}
}

func TestValidFilter(t *testing.T) {
	for _, f := range []string{"#", "+", "a", "a/b", "a/+/c", "a/#", "+/+/#", "/", "/a", "a/", "$SYS/#", "devices/+/telemetry"} {
		if !validFilter(f) {
			t.Errorf("validFilter(%q) = false", f)
		}
	}
	for _, f := range []string{"", "a/#/b", "#/a", "a#", "a/b#", "##", "a+", "a/b+/c", "++", "+a/b"} {
		if validFilter(f) {
			t.Errorf("validFilter(%q) = true", f)
		}
	}
}

func TestParseKey(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Key
	}{
		{"", Key{Kind: KeyTopic}},
		{"topic", Key{Kind: KeyTopic}},
		{"none", Key{Kind: KeyNone}},
		{"client_id", Key{Kind: KeyClientID}},
		{"level:0", Key{Kind: KeyLevel, Level: 0}},
		{"level:1", Key{Kind: KeyLevel, Level: 1}},
		{"json:device", Key{Kind: KeyJSON, Path: []string{"device"}}},
		{"json:a.b.c", Key{Kind: KeyJSON, Path: []string{"a", "b", "c"}}},
	} {
		got, err := ParseKey(tc.in)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseKey(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"level:", "level:-1", "level:x", "level", "json:", "json:a..b", "json:.a", "json:a.", "Topic", "payload", "client-id"} {
		if got, err := ParseKey(in); err == nil {
			t.Errorf("ParseKey(%q) = %+v, want an error", in, got)
		}
	}
}

func TestAnonymousAllowed(t *testing.T) {
	for _, tc := range []struct {
		name                    string
		mqtt, tls, ws, http     string
		allow                   *bool
		loopback, wantAnonymous bool
	}{
		{name: "ipv4_loopback", mqtt: "127.0.0.1:1883", http: "127.0.0.1:8080", loopback: true, wantAnonymous: true},
		{name: "other_127", mqtt: "127.0.0.2:1883", loopback: true, wantAnonymous: true},
		{name: "ipv6_loopback", mqtt: "[::1]:1883", ws: "[::1]:8083", loopback: true, wantAnonymous: true},
		{name: "localhost", mqtt: "localhost:1883", tls: "localhost:8883", loopback: true, wantAnonymous: true},
		{name: "all_off", loopback: true, wantAnonymous: true},
		{name: "any_ipv4", mqtt: "0.0.0.0:1883", loopback: false, wantAnonymous: false},
		{name: "any_ipv6", mqtt: "[::]:1883", loopback: false, wantAnonymous: false},
		{name: "empty_host", mqtt: ":1883", loopback: false, wantAnonymous: false},
		{name: "lan_address", mqtt: "192.168.1.10:1883", loopback: false, wantAnonymous: false},
		{name: "hostname", mqtt: "spool.local:1883", loopback: false, wantAnonymous: false},
		{name: "one_public_listener", mqtt: "127.0.0.1:1883", http: "0.0.0.0:8080", loopback: false, wantAnonymous: true}, // HTTP has its own credential (the token)
		{name: "public_tls", mqtt: "127.0.0.1:1883", tls: "0.0.0.0:8883", loopback: false, wantAnonymous: false},
		{name: "public_websocket", ws: ":8083", loopback: false, wantAnonymous: false},
		{name: "bad_addr", mqtt: "127.0.0.1", loopback: false, wantAnonymous: false},
		{name: "explicit_true_public", mqtt: "0.0.0.0:1883", allow: new(true), loopback: false, wantAnonymous: true},
		{name: "explicit_false_loopback", mqtt: "127.0.0.1:1883", allow: new(false), loopback: true, wantAnonymous: false},
		{name: "explicit_true_loopback", mqtt: "127.0.0.1:1883", allow: new(true), loopback: true, wantAnonymous: true},
		{name: "explicit_false_public", mqtt: "0.0.0.0:1883", allow: new(false), loopback: false, wantAnonymous: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			c.MQTT.Addr, c.MQTT.TLS.Addr, c.MQTT.WebSocket, c.HTTP.Addr = tc.mqtt, tc.tls, tc.ws, tc.http
			c.Auth.AllowAnonymous = tc.allow
			if got := c.LoopbackOnly(); got != tc.loopback {
				t.Errorf("LoopbackOnly() = %v, want %v", got, tc.loopback)
			}
			if got := c.AnonymousAllowed(); got != tc.wantAnonymous {
				t.Errorf("AnonymousAllowed() = %v, want %v", got, tc.wantAnonymous)
			}
		})
	}
}

func TestAllowAnonymousYAML(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"mqtt: {addr: '0.0.0.0:1883'}\n", false},
		{"mqtt: {addr: '0.0.0.0:1883'}\nauth: {allow_anonymous: true}\n", true},
		{"auth: {allow_anonymous: false}\n", false},
		{"auth: {allow_anonymous: null}\n", true},
	} {
		c, err := parse(t, tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.AnonymousAllowed(); got != tc.want {
			t.Errorf("%q: AnonymousAllowed() = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestTopicConfigEmptySpecKeepsBase(t *testing.T) {
	base := spoollog.DefaultTopicConfig()
	got, err := TopicSpec{Name: "t"}.TopicConfig(base)
	if err != nil || !reflect.DeepEqual(got, base) {
		t.Fatalf("got %+v, %v; want the base %+v", got, err, base)
	}
	// A base that is not the default is kept too, including fields a
	// spec cannot set.
	base.IndexIntervalBytes = 128
	base.Partitions = 4
	base.TimestampType = spoollog.LogAppendTime
	got, err = TopicSpec{Name: "t", Retention: new(Forever)}.TopicConfig(base)
	if err != nil || got.IndexIntervalBytes != 128 || got.Partitions != 4 || got.Retention != -1 || got.TimestampType != spoollog.LogAppendTime {
		t.Fatalf("got %+v, %v", got, err)
	}
	got, err = TopicSpec{Name: "t", TimestampType: new("create_time")}.TopicConfig(base)
	if err != nil || got.TimestampType != spoollog.CreateTime {
		t.Fatalf("timestamp_type create_time over LogAppendTime: got %+v, %v", got, err)
	}
}

// TestTopicConfigFields sets one field at a time and checks that exactly
// that field of log.DefaultTopicConfig() changes.
func TestTopicConfigFields(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec TopicSpec
		want func(*spoollog.TopicConfig)
	}{
		{"partitions", TopicSpec{Partitions: new(int32(3))}, func(c *spoollog.TopicConfig) { c.Partitions = 3 }},
		{"sync", TopicSpec{Sync: new("never")}, func(c *spoollog.TopicConfig) { c.Sync = spoollog.SyncNever }},
		{"sync_interval", TopicSpec{SyncInterval: new(Duration(250 * time.Millisecond))}, func(c *spoollog.TopicConfig) { c.SyncInterval = 250 * time.Millisecond }},
		{"retention", TopicSpec{Retention: new(Duration(48 * time.Hour))}, func(c *spoollog.TopicConfig) { c.Retention = 48 * time.Hour }},
		{"retention_forever", TopicSpec{Retention: new(Forever)}, func(c *spoollog.TopicConfig) { c.Retention = -1 }},
		{"retention_bytes", TopicSpec{RetentionBytes: new(Size(1 << 30))}, func(c *spoollog.TopicConfig) { c.RetentionBytes = 1 << 30 }},
		{"segment_bytes", TopicSpec{SegmentBytes: new(Size(16 << 20))}, func(c *spoollog.TopicConfig) { c.SegmentBytes = 16 << 20 }},
		{"segment_age", TopicSpec{SegmentAge: new(Duration(time.Hour))}, func(c *spoollog.TopicConfig) { c.SegmentAge = time.Hour }},
		{"max_message_bytes", TopicSpec{MaxMessageBytes: new(Size(256 << 10))}, func(c *spoollog.TopicConfig) { c.MaxMessageBytes = 256 << 10 }},
		{"on_full", TopicSpec{OnFull: new("drop_oldest")}, func(c *spoollog.TopicConfig) { c.OnFull = spoollog.OnFullDropOldest }},
		{"cleanup_policy", TopicSpec{CleanupPolicy: new("compact,delete")}, func(c *spoollog.TopicConfig) { c.CleanupPolicy = spoollog.CleanupCompactDelete }},
		{"delete_retention", TopicSpec{DeleteRetention: new(Duration(2 * time.Hour))}, func(c *spoollog.TopicConfig) { c.DeleteRetention = 2 * time.Hour }},
		{"timestamp_type", TopicSpec{TimestampType: new("log_append_time")}, func(c *spoollog.TopicConfig) { c.TimestampType = spoollog.LogAppendTime }},
		{"timestamp_type_kafka", TopicSpec{TimestampType: new("LogAppendTime")}, func(c *spoollog.TopicConfig) { c.TimestampType = spoollog.LogAppendTime }},
		{"preallocate", TopicSpec{Preallocate: new(false)}, func(c *spoollog.TopicConfig) { c.Preallocate = false }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := spoollog.DefaultTopicConfig()
			tc.want(&want)
			if reflect.DeepEqual(want, spoollog.DefaultTopicConfig()) {
				t.Fatal("the case changes nothing; pick a value that differs from the default")
			}
			got, err := tc.spec.TopicConfig(spoollog.DefaultTopicConfig())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestTopicConfigAllFields(t *testing.T) {
	spec := TopicSpec{
		Name:            "t",
		Partitions:      new(int32(6)),
		Sync:            new("interval"),
		SyncInterval:    new(Duration(time.Second / 2)),
		Retention:       new(Duration(3 * 24 * time.Hour)),
		RetentionBytes:  new(Size(512 << 20)),
		SegmentBytes:    new(Size(8 << 20)),
		SegmentAge:      new(Duration(6 * time.Hour)),
		MaxMessageBytes: new(Size(64 << 10)),
		OnFull:          new("drop_oldest"),
		CleanupPolicy:   new("compact"),
		DeleteRetention: new(Duration(time.Hour)),
		TimestampType:   new("LogAppendTime"),
		Preallocate:     new(false),
		Compression:     new("lz4"),
	}
	got, err := spec.TopicConfig(spoollog.DefaultTopicConfig())
	if err != nil {
		t.Fatal(err)
	}
	want := spoollog.TopicConfig{
		Partitions:         6,
		Sync:               spoollog.SyncInterval,
		SyncInterval:       time.Second / 2,
		Retention:          3 * 24 * time.Hour,
		RetentionBytes:     512 << 20,
		SegmentBytes:       8 << 20,
		SegmentAge:         6 * time.Hour,
		MaxMessageBytes:    64 << 10,
		OnFull:             spoollog.OnFullDropOldest,
		CleanupPolicy:      spoollog.CleanupCompact,
		DeleteRetention:    time.Hour,
		TimestampType:      spoollog.LogAppendTime,
		IndexIntervalBytes: spoollog.DefaultTopicConfig().IndexIntervalBytes,
		Preallocate:        false,
		Compression:        spoollog.CodecLz4,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}

func TestTopicConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec TopicSpec
		want string
	}{
		{"partitions", TopicSpec{Partitions: new(int32(0))}, "partitions: "},
		{"sync", TopicSpec{Sync: new("sometimes")}, "sync: "},
		{"timestamp_type", TopicSpec{TimestampType: new("now")}, "timestamp_type: "},
		{"max_message_bytes", TopicSpec{MaxMessageBytes: new(Size(1<<30 + 1))}, "max_message_bytes: "},
		{"max_message_bytes_negative", TopicSpec{MaxMessageBytes: new(Size(-1))}, "max_message_bytes: "},
		{"segment_age_forever", TopicSpec{SegmentAge: new(Forever)}, "segment_age: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.spec.TopicConfig(spoollog.DefaultTopicConfig())
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to start with %q", err, tc.want)
			}
		})
	}
}

// TestEnvExpansion: ${NAME} is replaced in any value, typed by what it
// becomes; an unset variable is an error naming it and the key; a bare $
// (as in a bcrypt hash) is left alone.
func TestEnvExpansion(t *testing.T) {
	t.Setenv("SPOOL_TEST_CLIENTS", "42")
	t.Setenv("SPOOL_TEST_HOST", "127.0.0.1")
	c, err := Parse(strings.NewReader("mqtt:\n  addr: ${SPOOL_TEST_HOST}:1884\n  max_clients: ${SPOOL_TEST_CLIENTS}\nauth:\n  users:\n    - {name: u, password_hash: '" + testHash + "'}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.MQTT.Addr != "127.0.0.1:1884" || c.MQTT.MaxClients != 42 || c.Auth.Users[0].PasswordHash != testHash {
		t.Errorf("addr %q, max_clients %d, hash %q", c.MQTT.Addr, c.MQTT.MaxClients, c.Auth.Users[0].PasswordHash)
	}
	_, err = Parse(strings.NewReader("http:\n  token: ${SPOOL_TEST_UNSET}\n"))
	if err == nil || !strings.Contains(err.Error(), "http.token") || !strings.Contains(err.Error(), "SPOOL_TEST_UNSET") {
		t.Errorf("unset variable: %v", err)
	}
}
