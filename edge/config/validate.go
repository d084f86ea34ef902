package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	spoollog "github.com/spoolmq/spool/log"
	"golang.org/x/crypto/bcrypt"
)

// Validate reports every invalid setting, each naming its key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.Data == "" {
		bad("data", "must not be empty")
	}
	if c.DiskBudget < 0 {
		bad("disk_budget", "must not be negative")
	}
	if c.MaintainInterval <= 0 {
		bad("maintain_interval", "must be positive")
	}
	if c.MemoryLimit < 0 {
		bad("memory_limit", "must not be negative")
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		bad("log.format", "%q is not text or json", c.Log.Format)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not debug, info, warn or error", c.Log.Level)
	}

	m := &c.MQTT
	addrsOK := true
	for _, l := range []struct{ key, addr string }{
		{"mqtt.addr", m.Addr}, {"mqtt.tls.addr", m.TLS.Addr}, {"mqtt.websocket", m.WebSocket}, {"http.addr", c.HTTP.Addr},
		{"kafka.addr", c.Kafka.Addr}, {"kafka.advertised", c.Kafka.Advertised},
		{"kafka.tls.addr", c.Kafka.TLS.Addr}, {"kafka.tls.advertised", c.Kafka.TLS.Advertised},
	} {
		if l.addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(l.addr); err != nil {
			addrsOK = false
			bad(l.key, "%q is not host:port", l.addr)
		}
	}
	if m.TLS.Addr != "" && (m.TLS.Cert == "" || m.TLS.Key == "") {
		bad("mqtt.tls", "addr is set but cert or key is missing")
	}
	if m.MaxPacketSize < 64 || m.MaxPacketSize > 256<<20 {
		bad("mqtt.max_packet_size", "%v is not between 64B and 256MiB", m.MaxPacketSize)
	}
	if m.MaxClients < 1 {
		bad("mqtt.max_clients", "must be at least 1")
	}
	if m.MaxInflight < 1 || m.MaxInflight > 65535 {
		bad("mqtt.max_inflight", "%d is not between 1 and 65535", m.MaxInflight)
	}
	if m.MaxKeepalive.D() < time.Second || m.MaxKeepalive.D().Seconds() > 65535 {
		// MQTT counts keepalive in whole seconds, and 0 means none.
		bad("mqtt.max_keepalive", "must be between 1s and 65535s")
	}
	if m.SessionExpiry < 0 || m.SessionExpiry.D().Seconds() > 1<<32-1 {
		bad("mqtt.session_expiry", "must be between 0 and 136y")
	}
	if m.MaxQueued < 1 {
		bad("mqtt.max_queued", "must be at least 1")
	}

	if c.Kafka.MaxRequestSize < 1<<10 || c.Kafka.MaxRequestSize > 1<<30 {
		bad("kafka.max_request_size", "%v is not between 1KiB and 1GiB", c.Kafka.MaxRequestSize)
	}
	if c.Kafka.TLS.Addr != "" && (c.Kafka.TLS.Cert == "" || c.Kafka.TLS.Key == "") {
		bad("kafka.tls", "addr is set but cert or key is missing")
	}
	if addrsOK && !c.KafkaAnonymousAllowed() && len(c.Auth.Users) == 0 && (c.Kafka.Addr != "" || c.Kafka.TLS.Addr != "") {
		bad("auth.users", "none configured, anonymous access is off and Kafka listens beyond loopback: no client could connect")
	}

	// Listening beyond loopback needs credentials: a bearer token for the
	// HTTP API, and users for MQTT unless anonymous access is asked for.
	if hostPort(c.HTTP.Addr) && !isLoopback(c.HTTP.Addr) && c.HTTP.Token == "" {
		bad("http.token", "required when http.addr (%s) listens beyond loopback", c.HTTP.Addr)
	}
	if addrsOK && !c.mqttLoopbackOnly() && !c.AnonymousAllowed() && len(c.Auth.Users) == 0 &&
		(c.MQTT.Addr != "" || c.MQTT.TLS.Addr != "" || c.MQTT.WebSocket != "") {
		bad("auth.users", "none configured, anonymous access is off and MQTT listens beyond loopback: no client could connect")
	}
	users := map[string]bool{}
	for i, u := range c.Auth.Users {
		key := "auth.users[" + strconv.Itoa(i) + "]"
		switch {
		case u.Name == "":
			bad(key+".name", "must not be empty")
		case users[u.Name]:
			bad(key+".name", "user %q is listed twice", u.Name)
		}
		users[u.Name] = true
		// bcrypt.Cost parses the hash's version, cost and length, so a
		// truncated or mangled hash, which no password would ever match, is
		// reported here rather than as failed logins.
		if _, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil || !strings.HasPrefix(u.PasswordHash, "$2") {
			bad(key+".password_hash", "must be a bcrypt hash (make one with `spool passwd`)")
		}
		mechs := map[string]bool{}
		for j, sc := range u.SCRAM {
			c, err := ParseSCRAM(sc)
			switch {
			case err != nil:
				bad(fmt.Sprintf("%s.scram[%d]", key, j), "%v", err)
			case mechs[c.Mechanism]:
				bad(fmt.Sprintf("%s.scram[%d]", key, j), "a second %s credential", c.Mechanism)
			}
			mechs[c.Mechanism] = true
		}
		validateACL(key+".acl", u.ACL, bad)
	}
	validateACL("auth.anonymous_acl", c.Auth.AnonymousACL, bad)

	topics := map[string]bool{}
	for i, t := range c.Topics {
		key := "topics[" + strconv.Itoa(i) + "]"
		if err := spoollog.ValidateTopicName(t.Name); err != nil {
			bad(key+".name", "%v", err)
		} else if topics[t.Name] {
			bad(key+".name", "topic %q is listed twice", t.Name)
		}
		topics[t.Name] = true
		if _, err := t.TopicConfig(spoollog.DefaultTopicConfig()); err != nil {
			errs = append(errs, fmt.Errorf("%s.%w", key, err))
		}
	}
	if len(c.Links) > 0 {
		if c.EdgeID == "" {
			bad("edge_id", "required by links: it names this site upstream")
		} else if err := spoollog.ValidateTopicName(c.EdgeID); err != nil {
			bad("edge_id", "%v (it becomes part of upstream topic names)", err)
		}
	}
	links := map[string]bool{}
	for i, l := range c.Links {
		key := "links[" + strconv.Itoa(i) + "]"
		switch {
		case l.Name == "" || spoollog.ValidateTopicName(l.Name) != nil:
			bad(key+".name", "%q is not a name of letters, digits, '.', '_' and '-'", l.Name)
		case links[l.Name]:
			bad(key+".name", "link %q is listed twice", l.Name)
		}
		links[l.Name] = true
		isMQTT := l.MQTT.URL != ""
		switch {
		case isMQTT && len(l.Kafka.Brokers) > 0:
			bad(key, "both kafka and mqtt are set: a link has one upstream")
		case isMQTT:
			if u, err := url.Parse(l.MQTT.URL); err != nil || (u.Scheme != "tcp" && u.Scheme != "ssl") || u.Host == "" {
				bad(key+".mqtt.url", "%q is not tcp://host:port or ssl://host:port", l.MQTT.URL)
			}
			if p := l.MQTT.Protocol; p != "" && p != "3.1.1" && p != "5" {
				bad(key+".mqtt.protocol", "%q is not 3.1.1 or 5", p)
			}
			if l.MQTT.MaxMessageBytes < 0 || l.MQTT.MaxMessageBytes > 1<<28 {
				bad(key+".mqtt.max_message_bytes", "%v is not between 0 and 256MiB (MQTT's largest packet)", l.MQTT.MaxMessageBytes)
			}
			if (l.MQTT.TLS.Cert == "") != (l.MQTT.TLS.Key == "") {
				bad(key+".mqtt.tls", "cert and key go together")
			}
		case len(l.Kafka.Brokers) == 0:
			bad(key+".kafka.brokers", "at least one host:port is required (or an mqtt.url)")
		}
		for j, b := range l.Kafka.Brokers {
			for _, one := range strings.Split(b, ",") {
				if _, _, err := net.SplitHostPort(strings.TrimSpace(one)); err != nil {
					bad(fmt.Sprintf("%s.kafka.brokers[%d]", key, j), "%q is not host:port", one)
				}
			}
		}
		if (l.Kafka.TLS.Cert == "") != (l.Kafka.TLS.Key == "") {
			bad(key+".kafka.tls", "cert and key go together")
		}
		switch sa := l.Kafka.SASL; sa.Mechanism {
		case "":
			if sa.User != "" || sa.Password != "" {
				bad(key+".kafka.sasl.mechanism", "required with a user or password")
			}
		case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
			if sa.User == "" || sa.Password == "" {
				bad(key+".kafka.sasl", "user and password are required")
			}
		default:
			bad(key+".kafka.sasl.mechanism", "%q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", sa.Mechanism)
		}
		if len(l.Topics) == 0 && len(l.Downstream) == 0 {
			bad(key+".topics", "list the topics to mirror (\"*\" for all), or downstream topics")
		}
		for j, d := range l.Downstream {
			dk := fmt.Sprintf("%s.downstream[%d]", key, j)
			if isMQTT && (!validFilter(d.From) || strings.HasPrefix(d.From, "$share/")) {
				bad(dk+".from", "%q is not an MQTT topic filter (shared subscriptions are not supported)", d.From)
			} else if !isMQTT && spoollog.ValidateTopicName(d.From) != nil {
				bad(dk+".from", "%q is not a topic name", d.From)
			}
			if spoollog.ValidateTopicName(d.To) != nil {
				bad(dk+".to", "%q is not a topic name", d.To)
			}
		}
		for j, t := range l.Topics {
			if t != "*" && spoollog.ValidateTopicName(t) != nil {
				bad(fmt.Sprintf("%s.topics[%d]", key, j), "%q is not a topic name or *", t)
			}
		}
		if l.Partitioning != "" && l.Partitioning != "keep" && l.Partitioning != "rehash" {
			bad(key+".partitioning", "%q is not keep or rehash", l.Partitioning)
		}
		switch l.Compression {
		case "", "none", "gzip", "snappy", "lz4", "zstd":
		default:
			bad(key+".compression", "%q is not none, gzip, snappy, lz4 or zstd", l.Compression)
		}
		if l.BatchBytes < 0 || l.BatchBytes > 64<<20 {
			bad(key+".batch_bytes", "%v is not between 0 and 64MiB", l.BatchBytes)
		}
		if l.Bandwidth < 0 {
			bad(key+".bandwidth", "must not be negative")
		}
		if l.ExactlyOnce && l.MQTT.URL != "" {
			bad(key+".exactly_once", "needs a Kafka upstream (transactions); this link is MQTT")
		}
		if l.OffsetsTopic != "" {
			if err := spoollog.ValidateTopicName(l.OffsetsTopic); err != nil {
				bad(key+".offsets_topic", "%v", err)
			}
		}
		seenPrio := map[string]bool{}
		for j, p := range l.Priorities {
			pk := key + ".priorities[" + strconv.Itoa(j) + "]"
			switch {
			case l.MQTT.URL != "":
				bad(pk, "priorities apply to the bandwidth limit of Kafka links; this link is MQTT")
			case seenPrio[p.Topic]:
				bad(pk+".topic", "%q has a priority already", p.Topic)
			case !slices.Contains(l.Topics, p.Topic) && !slices.Contains(l.Topics, "*"):
				bad(pk+".topic", "%q is not one of the link's topics", p.Topic)
			}
			seenPrio[p.Topic] = true
		}
		if l.DeliveryTimeout < 0 {
			bad(key+".delivery_timeout", "must not be negative")
		}
	}
	for i, e := range c.Egress {
		key := "egress[" + strconv.Itoa(i) + "]"
		if err := spoollog.ValidateTopicName(e.Topic); err != nil {
			bad(key+".topic", "%v", err)
		}
		if _, err := ParseTemplate(e.MQTTTopic); err != nil {
			bad(key+".mqtt_topic", "%v", err)
		}
		if e.QoS != nil && (*e.QoS < 0 || *e.QoS > 2) {
			bad(key+".qos", "%d is not 0, 1 or 2", *e.QoS)
		}
		if e.Start != "" && e.Start != "latest" && e.Start != "earliest" {
			bad(key+".start", "%q is not latest or earliest", e.Start)
		}
	}
	for i, r := range c.Routes {
		key := "routes[" + strconv.Itoa(i) + "]"
		if !validFilter(r.Match) {
			bad(key+".match", "%q is not an MQTT topic filter", r.Match)
		}
		if err := spoollog.ValidateTopicName(r.Topic); err != nil {
			bad(key+".topic", "%v", err)
		}
		if _, err := ParseKey(r.Key); err != nil {
			bad(key+".key", "%v", err)
		}
	}
	c.validateSensors(bad)
	c.validateHomeAssistant(bad)
	return errors.Join(errs...)
}

func validateACL(key string, rules []ACLRule, bad func(key, format string, args ...any)) {
	for j, r := range rules {
		k := key + "[" + strconv.Itoa(j) + "]"
		if !validFilter(r.Filter) {
			bad(k+".filter", "%q is not an MQTT topic filter", r.Filter)
		}
		if r.Access != "read" && r.Access != "write" && r.Access != "readwrite" {
			bad(k+".access", "%q is not read, write or readwrite", r.Access)
		}
	}
}

// validFilter checks MQTT filter syntax: + fills a whole level, # is last.
func validFilter(f string) bool {
	if f == "" {
		return false
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		if strings.Contains(l, "#") && (l != "#" || i != len(levels)-1) {
			return false
		}
		if strings.Contains(l, "+") && l != "+" {
			return false
		}
	}
	return true
}

// AnonymousAllowed resolves auth.allow_anonymous: when it is not set,
// anonymous clients are allowed only if no MQTT listener leaves the host.
func (c *Config) AnonymousAllowed() bool {
	if c.Auth.AllowAnonymous != nil {
		return *c.Auth.AllowAnonymous
	}
	return c.mqttLoopbackOnly()
}

// mqttLoopbackOnly reports whether every MQTT listener is bound to a
// loopback address (HTTP has its own credential, the token).
func (c *Config) mqttLoopbackOnly() bool {
	for _, addr := range []string{c.MQTT.Addr, c.MQTT.TLS.Addr, c.MQTT.WebSocket} {
		if addr != "" && !isLoopback(addr) {
			return false
		}
	}
	return true
}

// KafkaAnonymousAllowed reports whether Kafka clients may skip SASL: as
// auth.allow_anonymous says, or, when it is not set, while every Kafka
// listener is bound to loopback.
func (c *Config) KafkaAnonymousAllowed() bool {
	if c.Auth.AllowAnonymous != nil {
		return *c.Auth.AllowAnonymous
	}
	for _, addr := range []string{c.Kafka.Addr, c.Kafka.TLS.Addr} {
		if addr != "" && !isLoopback(addr) {
			return false
		}
	}
	return true
}

// LoopbackOnly reports whether every listener is bound to a loopback address.
func (c *Config) LoopbackOnly() bool {
	for _, addr := range []string{c.MQTT.Addr, c.MQTT.TLS.Addr, c.MQTT.WebSocket, c.HTTP.Addr, c.Kafka.Addr, c.Kafka.TLS.Addr} {
		if addr != "" && !isLoopback(addr) {
			return false
		}
	}
	return true
}

func hostPort(addr string) bool {
	_, _, err := net.SplitHostPort(addr)
	return err == nil
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// TopicConfig applies the spec's settings over base.
func (t TopicSpec) TopicConfig(base spoollog.TopicConfig) (spoollog.TopicConfig, error) {
	c := base
	if t.Partitions != nil {
		c.Partitions = *t.Partitions
	}
	if t.Sync != nil {
		c.Sync = spoollog.SyncPolicy(*t.Sync)
	}
	if t.SyncInterval != nil {
		c.SyncInterval = t.SyncInterval.D()
	}
	if t.Retention != nil {
		c.Retention = t.Retention.D()
	}
	if t.RetentionBytes != nil {
		c.RetentionBytes = int64(*t.RetentionBytes)
	}
	if t.SegmentBytes != nil {
		c.SegmentBytes = int64(*t.SegmentBytes)
	}
	if t.SegmentAge != nil {
		c.SegmentAge = t.SegmentAge.D()
	}
	if t.MaxMessageBytes != nil {
		if *t.MaxMessageBytes > 1<<30 {
			return c, fmt.Errorf("max_message_bytes: %v is above 1GiB", *t.MaxMessageBytes)
		}
		c.MaxMessageBytes = int32(*t.MaxMessageBytes)
	}
	if t.OnFull != nil {
		c.OnFull = spoollog.OnFull(*t.OnFull)
	}
	if t.CleanupPolicy != nil {
		c.CleanupPolicy = spoollog.CleanupPolicy(*t.CleanupPolicy)
	}
	if t.DeleteRetention != nil {
		c.DeleteRetention = t.DeleteRetention.D()
	}
	if t.TimestampType != nil {
		switch *t.TimestampType {
		case "create_time", "CreateTime":
			c.TimestampType = spoollog.CreateTime
		case "log_append_time", "LogAppendTime":
			c.TimestampType = spoollog.LogAppendTime
		default:
			return c, fmt.Errorf("timestamp_type: %q is not create_time or log_append_time", *t.TimestampType)
		}
	}
	if t.Preallocate != nil {
		c.Preallocate = *t.Preallocate
	}
	if t.Compression != nil {
		codec, err := spoollog.ParseCodec(*t.Compression)
		if err != nil {
			return c, fmt.Errorf("compression: %w", err)
		}
		c.Compression = codec
	}
	return c, c.Validate()
}
