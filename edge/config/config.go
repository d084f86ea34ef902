// Package config is Spool's configuration: the YAML file `spool serve
// --config` reads, its defaults, and its validation. Unknown keys are
// errors that name the key's path and line, so a typo never silently
// falls back to a default.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole appliance configuration.
type Config struct {
	// Data is the data directory (meta.db and topics/).
	Data string `yaml:"data"`
	// DiskBudget bounds the bytes of all segments; 0 means no bound.
	DiskBudget Size `yaml:"disk_budget"`
	// MaintainInterval is how often retention and compaction run.
	MaintainInterval Duration `yaml:"maintain_interval"`
	// MemoryLimit is the Go runtime's soft memory limit, for a 512 MB
	// board by default; 0 leaves it unset. GOMEMLIMIT in the environment
	// wins over it.
	MemoryLimit Size `yaml:"memory_limit"`

	Log    LogConfig    `yaml:"log"`
	MQTT   MQTTConfig   `yaml:"mqtt"`
	Kafka  KafkaConfig  `yaml:"kafka"`
	HTTP   HTTPConfig   `yaml:"http"`
	Auth   AuthConfig   `yaml:"auth"`
	Topics []TopicSpec  `yaml:"topics"`
	Routes []RouteSpec  `yaml:"routes"`
	Egress []EgressSpec `yaml:"egress"`

	// EdgeID names this site upstream: the {site} of link destinations
	// and the spool.edge header of every mirrored record.
	EdgeID string     `yaml:"edge_id"`
	Links  []LinkSpec `yaml:"links"`

	// Sensors wired to the board (or simulated) whose readings become
	// records; Actuators are GPIO outputs driven by command records.
	Sensors   []SensorSpec   `yaml:"sensors"`
	Actuators []ActuatorSpec `yaml:"actuators"`
	// HomeAssistant announces the sensors to Home Assistant over the
	// embedded MQTT broker (MQTT discovery).
	HomeAssistant HomeAssistantConfig `yaml:"home_assistant"`
}

// HomeAssistantConfig is Home Assistant's MQTT discovery for the sensors:
// a retained config message per sensor value under DiscoveryPrefix, and
// each stored reading retained on StatePrefix/<node>/<sensor>/state.
type HomeAssistantConfig struct {
	Discovery       bool   `yaml:"discovery"`
	DiscoveryPrefix string `yaml:"discovery_prefix"`
	StatePrefix     string `yaml:"state_prefix"`
}

// LinkSpec mirrors local topics to an upstream Kafka cluster, or to an
// MQTT broker (one of kafka and mqtt).
type LinkSpec struct {
	Name  string    `yaml:"name"`
	Kafka KafkaPeer `yaml:"kafka"`
	MQTT  MQTTPeer  `yaml:"mqtt"`
	// Topics to mirror; "*" is every topic, also those created later (but
	// the targets of this link's downstream copies).
	Topics []string `yaml:"topics"`
	// Destination is the upstream topic: {site} and {topic} are replaced.
	// Default "{site}.{topic}".
	Destination string `yaml:"destination"`
	// Partitioning is keep (the same partition number, default) or rehash
	// (murmur2 of the key over the upstream partitions).
	Partitioning string `yaml:"partitioning"`
	// Compression of the upstream batches: none, gzip, snappy, lz4, zstd (default).
	Compression string `yaml:"compression"`
	// BatchBytes bounds an upstream record batch (default about 1MB).
	BatchBytes Size `yaml:"batch_bytes"`
	// Bandwidth bounds the average upstream rate of a Kafka link, in key
	// and value bytes per second before compression; 0 means no limit.
	Bandwidth Size `yaml:"bandwidth"`
	// Priorities rank the topics of a Kafka link for the bandwidth limit:
	// higher first; within one priority, new records before backlog.
	// Topics not listed have priority 0.
	Priorities []PrioritySpec `yaml:"priorities"`
	// ExactlyOnce mirrors in transactions that also commit the link's
	// cursors upstream (in OffsetsTopic), so read_committed consumers see
	// each record once across crashes and outages. Kafka links only.
	ExactlyOnce  bool   `yaml:"exactly_once"`
	OffsetsTopic string `yaml:"offsets_topic"`
	// DeliveryTimeout bounds one attempt to deliver a round of records
	// before the link backs off and resends (default 30s).
	DeliveryTimeout Duration `yaml:"delivery_timeout"`
	// Downstream copies upstream topics into local ones (commands for the
	// devices behind this edge), as the consumer group
	// "spool-<edge_id>-<name>", from the upstream topics' beginning.
	Downstream []DownstreamSpec `yaml:"downstream"`
}

// PrioritySpec gives a local topic its priority on a link.
type PrioritySpec struct {
	Topic    string `yaml:"topic"`
	Priority int    `yaml:"priority"`
}

// DownstreamSpec copies one upstream topic into a local topic.
type DownstreamSpec struct {
	From string `yaml:"from"`
	To   string `yaml:"to"`
}

// MQTTPeer is an upstream MQTT broker (MQTT 3.1.1, QoS 1).
type MQTTPeer struct {
	// URL is tcp://host:port or ssl://host:port.
	URL      string    `yaml:"url"`
	User     string    `yaml:"user"`
	Password string    `yaml:"password"`
	TLS      ClientTLS `yaml:"tls"`
	// Topic is the MQTT topic of each record: {site}, {topic},
	// {partition}, {key}. Default "{site}/{topic}".
	Topic string `yaml:"topic"`
	// Envelope publishes each record as JSON with its origin (edge, topic,
	// partition, offset), key and headers, so that upstream consumers can
	// tell a resend from a new record (MQTT 3.1.1 has no headers).
	Envelope bool `yaml:"envelope"`
	// Protocol is "3.1.1" (default) or "5". Over MQTT 5 the headers and
	// the origin travel as user properties.
	Protocol string `yaml:"protocol"`
	// MaxMessageBytes bounds one PUBLISH packet; a larger record is
	// skipped, counted and logged. 0: the broker's limit only (which MQTT
	// 3.1.1 cannot announce: set it to the broker's there).
	MaxMessageBytes Size `yaml:"max_message_bytes"`
}

// KafkaPeer is how to reach a Kafka cluster.
type KafkaPeer struct {
	Brokers []string  `yaml:"brokers"`
	TLS     ClientTLS `yaml:"tls"`
	SASL    SASL      `yaml:"sasl"`
}

// ClientTLS turns TLS on for a client connection when Enabled or any file
// is set.
type ClientTLS struct {
	Enabled bool `yaml:"enabled"`
	// CA verifies the server (default: the system's roots).
	CA string `yaml:"ca"`
	// Cert and Key are a client certificate, for servers that ask for one.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// ServerName overrides the name checked in the server's certificate.
	ServerName string `yaml:"server_name"`
}

// SASL is a client login: mechanism PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
type SASL struct {
	Mechanism string `yaml:"mechanism"`
	User      string `yaml:"user"`
	Password  string `yaml:"password"`
}

// LogConfig is how Spool writes its own log lines.
type LogConfig struct {
	Format string `yaml:"format"` // text or json
	Level  string `yaml:"level"`  // debug, info, warn, error
}

// MQTTConfig is the embedded MQTT broker.
type MQTTConfig struct {
	// Addr is the plain TCP listener; empty disables it.
	Addr string `yaml:"addr"`
	// TLS is the TLS listener, off unless its address is set.
	TLS TLSListener `yaml:"tls"`
	// WebSocket is the WebSocket listener address (path /mqtt... any path); empty disables it.
	WebSocket string `yaml:"websocket"`

	// MaxPacketSize bounds one MQTT packet; bigger ones are refused.
	MaxPacketSize Size `yaml:"max_packet_size"`
	// MaxClients bounds concurrent connections.
	MaxClients int `yaml:"max_clients"`
	// MaxInflight is, per client, how many QoS 1/2 publishes may wait for
	// their durable append (the MQTT 5 receive maximum we announce), and how
	// many outbound QoS 1/2 messages may be unacknowledged.
	MaxInflight int `yaml:"max_inflight"`
	// MaxKeepalive caps the keepalive a client may ask for.
	MaxKeepalive Duration `yaml:"max_keepalive"`
	// SessionExpiry caps how long a disconnected persistent session is kept.
	SessionExpiry Duration `yaml:"session_expiry"`
	// Retain turns retained messages on.
	Retain bool `yaml:"retain"`
	// MaxQueued bounds the messages buffered for one slow subscriber.
	MaxQueued int `yaml:"max_queued"`
}

// TLSListener is a TLS listener and its certificates.
type TLSListener struct {
	Addr string `yaml:"addr"`
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// ClientCA, when set, requires clients to present a certificate it signed.
	ClientCA string `yaml:"client_ca"`
}

// KafkaConfig is the Kafka wire protocol listener.
type KafkaConfig struct {
	// Addr is the listen address; empty disables it.
	Addr string `yaml:"addr"`
	// Advertised is the host:port clients are told to connect to, when it
	// differs from Addr (a wildcard address, NAT, a container).
	Advertised string `yaml:"advertised"`
	// AutoCreateTopics creates a topic (with the log's defaults) when a
	// client asks for its metadata, as Kafka's auto.create.topics.enable.
	AutoCreateTopics bool `yaml:"auto_create_topics"`
	// MaxRequestSize bounds one request; a bigger one closes the connection.
	MaxRequestSize Size `yaml:"max_request_size"`
	// TLS is the TLS listener, off unless its address is set.
	TLS KafkaTLS `yaml:"tls"`
}

// KafkaTLS is the Kafka TLS listener: a TLS listener and the address
// its clients are told.
type KafkaTLS struct {
	Addr       string `yaml:"addr"`
	Advertised string `yaml:"advertised"`
	Cert       string `yaml:"cert"`
	Key        string `yaml:"key"`
	ClientCA   string `yaml:"client_ca"`
}

// Listener is the TLS listener part of the Kafka TLS settings.
func (k KafkaTLS) Listener() TLSListener {
	return TLSListener{Addr: k.Addr, Cert: k.Cert, Key: k.Key, ClientCA: k.ClientCA}
}

// HTTPConfig is the HTTP API and metrics listener.
type HTTPConfig struct {
	// Addr is the listen address; empty disables HTTP.
	Addr string `yaml:"addr"`
	// Token, when set, is the bearer token the admin and write endpoints require.
	Token string `yaml:"token"`
}

// AuthConfig is who may connect and what they may do.
type AuthConfig struct {
	// AllowAnonymous lets clients connect without a user name (MQTT) or
	// without SASL (Kafka). When it is not set, anonymous access is allowed
	// only while the protocol's listeners are all bound to loopback.
	AllowAnonymous *bool `yaml:"allow_anonymous"`
	// AnonymousACL applies to anonymous clients; empty means full access.
	AnonymousACL []ACLRule `yaml:"anonymous_acl"`
	Users        []User    `yaml:"users"`
}

// User is a named account with a bcrypt password hash (`spool passwd`),
// for MQTT and Kafka SASL/PLAIN, and optionally SCRAM credentials for
// Kafka SASL/SCRAM (`spool passwd --scram`).
type User struct {
	Name         string `yaml:"name"`
	PasswordHash string `yaml:"password_hash"`
	// SCRAM lists stored SCRAM-SHA-256 and SCRAM-SHA-512 credentials.
	SCRAM []string `yaml:"scram"`
	// ACL lists what the user may do; an empty list allows everything.
	ACL []ACLRule `yaml:"acl"`
}

// ACLRule grants access to the MQTT topics matching Filter.
type ACLRule struct {
	Filter string `yaml:"filter"`
	// Access is read, write or readwrite.
	Access string `yaml:"access"`
}

// TopicSpec declares a log topic and its settings. Unset fields keep the
// log's defaults (log.DefaultTopicConfig).
type TopicSpec struct {
	Name            string    `yaml:"name"`
	Partitions      *int32    `yaml:"partitions"`
	Sync            *string   `yaml:"sync"`
	SyncInterval    *Duration `yaml:"sync_interval"`
	Retention       *Duration `yaml:"retention"`
	RetentionBytes  *Size     `yaml:"retention_bytes"`
	SegmentBytes    *Size     `yaml:"segment_bytes"`
	SegmentAge      *Duration `yaml:"segment_age"`
	MaxMessageBytes *Size     `yaml:"max_message_bytes"`
	OnFull          *string   `yaml:"on_full"`
	CleanupPolicy   *string   `yaml:"cleanup_policy"`
	DeleteRetention *Duration `yaml:"delete_retention"`
	TimestampType   *string   `yaml:"timestamp_type"`
	Preallocate     *bool     `yaml:"preallocate"`
	Compression     *string   `yaml:"compression"`
}

// RouteSpec sends MQTT publishes matching Match to a log topic.
type RouteSpec struct {
	// Match is an MQTT topic filter (+ and # wildcards).
	Match string `yaml:"match"`
	// Topic is the log topic.
	Topic string `yaml:"topic"`
	// Key picks the record key: "topic" (the MQTT topic), "level:N" (the
	// N-th topic level, from 0), "json:a.b" (a field of a JSON payload),
	// "client_id", or "none".
	Key string `yaml:"key"`
}

// EgressSpec delivers the records of a log topic to MQTT subscribers: a
// command produced over Kafka or HTTP (or mirrored down from the data
// center) reaches the device subscribed to its MQTT topic.
type EgressSpec struct {
	// Topic is the log topic to follow.
	Topic string `yaml:"topic"`
	// MQTTTopic is the MQTT topic of each record, a template: {key}, the
	// record key; {header:NAME}, a header's value; {partition}; {topic}.
	MQTTTopic string `yaml:"mqtt_topic"`
	// QoS of the deliveries (default 1).
	QoS *int `yaml:"qos"`
	// Retain keeps the last record per MQTT topic as its retained message.
	Retain bool `yaml:"retain"`
	// Start is where a new egress begins: latest (default: only records
	// from now on) or earliest. After that its position is kept.
	Start string `yaml:"start"`
}

// Default is the configuration used without a config file: loopback
// listeners, data in ./spool-data, and every publish in topic "mqtt".
func Default() Config {
	return Config{
		Data:             "./spool-data",
		MaintainInterval: Duration(30 * time.Second),
		MemoryLimit:      128 << 20,
		HomeAssistant:    HomeAssistantConfig{DiscoveryPrefix: "homeassistant", StatePrefix: "spool"},
		Log:              LogConfig{Format: "text", Level: "info"},
		MQTT: MQTTConfig{
			Addr:          "127.0.0.1:1883",
			MaxPacketSize: 1 << 20,
			MaxClients:    1000,
			MaxInflight:   256,
			MaxKeepalive:  Duration(10 * time.Minute),
			SessionExpiry: Duration(24 * time.Hour),
			Retain:        true,
			MaxQueued:     1024,
		},
		Kafka: KafkaConfig{Addr: "127.0.0.1:9092", AutoCreateTopics: true, MaxRequestSize: 16 << 20},
		HTTP:  HTTPConfig{Addr: "127.0.0.1:8080"},
	}
}

// Load reads and validates a config file over the defaults.
func Load(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, err
	}
	defer f.Close()
	c, err := Parse(f)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse reads YAML over the defaults. It refuses unknown keys and does
// not validate; call Validate after applying overrides. Each error names
// its key path and line (see decode.go).
func Parse(r io.Reader) (Config, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return Config{}, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, err
	}
	c := Default()
	if err := decodeNode(&doc, &c, true); err != nil {
		return Config{}, err
	}
	// A second document is almost always a mistake (a stray ---). Anything
	// after the first document, even text that does not parse, is refused:
	// it is not read, so it must not look as if it were.
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return Config{}, errors.New("more than one YAML document")
	}
	return c, nil
}
