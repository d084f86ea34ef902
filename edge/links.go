package edge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spoolmq/spool/bridge"
	"github.com/spoolmq/spool/edge/config"
	spoollog "github.com/spoolmq/spool/log"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// links are the bridge links of the appliance: mirrors upstream and
// downstream copies.
type links struct {
	all   []*bridge.KafkaLink
	mqtt  []*bridge.MQTTLink
	down  []*bridge.KafkaDownstream
	mdown []*bridge.MQTTDownstream
	watch []watched
	log   *spoollog.Log
	wg    sync.WaitGroup
}

// watched is a link whose topics can grow: "*" takes topics created
// later, and any mirrored topic may get partitions.
type watched struct {
	spec config.LinkSpec
	add  func(topics ...string) (int, error)
}

// discoverEvery is how often links look for new topics and partitions.
var discoverEvery = 5 * time.Second

// newLinks builds the configured links. It runs before the log's
// housekeeping starts, so that their retention pins hold from the start.
func newLinks(cfg config.Config, l *spoollog.Log, lg *slog.Logger) (*links, error) {
	ls := &links{log: l}
	for i, spec := range cfg.Links {
		if err := ls.add(cfg, spec, l, lg); err != nil {
			ls.close()
			return nil, fmt.Errorf("links[%d] (%s): %w", i, spec.Name, err)
		}
	}
	return ls, nil
}

func (ls *links) add(cfg config.Config, spec config.LinkSpec, l *spoollog.Log, lg *slog.Logger) error {
	if spec.MQTT.URL != "" {
		return ls.addMQTT(cfg, spec, l, lg)
	}
	opts, err := linkOptions(cfg, spec, l, lg)
	if err != nil {
		return err
	}
	if len(opts.Topics) > 0 || opts.EveryTopic {
		k, err := bridge.NewKafkaLink(opts)
		if err != nil {
			return err
		}
		ls.all = append(ls.all, k)
		ls.watch = append(ls.watch, watched{spec, k.AddTopics})
	}
	if len(spec.Downstream) == 0 {
		return nil
	}
	topics := map[string]string{}
	for _, d := range spec.Downstream {
		topics[d.From] = d.To
	}
	d, err := bridge.NewKafkaDownstream(bridge.KafkaDownstreamOptions{
		Name: spec.Name, Site: cfg.EdgeID, Seeds: opts.Seeds, ClientOpts: opts.ClientOpts, Topics: topics, Log: l,
		Logger: lg.With("component", "bridge", "link", spec.Name),
	})
	if err != nil {
		return err
	}
	ls.down = append(ls.down, d)
	return nil
}

// addMQTT builds a link to an upstream MQTT broker.
func (ls *links) addMQTT(cfg config.Config, spec config.LinkSpec, l *spoollog.Log, lg *slog.Logger) error {
	m := spec.MQTT
	opts := bridge.MQTTLinkOptions{
		Name: spec.Name, Site: cfg.EdgeID, Broker: m.URL, Username: m.User, Password: m.Password,
		Log: l, Topics: linkTopics(spec, l), EveryTopic: slices.Contains(spec.Topics, "*"), Topic: m.Topic, Envelope: m.Envelope, Version: mqttVersion(m.Protocol),
		MaxMessageBytes: int(m.MaxMessageBytes),
		DeliveryTimeout: spec.DeliveryTimeout.D(), Logger: lg.With("component", "bridge", "link", spec.Name),
	}
	if strings.HasPrefix(m.URL, "ssl://") || m.TLS.Enabled || m.TLS.CA != "" || m.TLS.Cert != "" {
		tc, err := clientTLS(m.TLS)
		if err != nil {
			return fmt.Errorf("mqtt.%w", err)
		}
		opts.TLS = tc
	}
	if len(opts.Topics) > 0 || opts.EveryTopic {
		k, err := bridge.NewMQTTLink(opts)
		if err != nil {
			return err
		}
		ls.mqtt = append(ls.mqtt, k)
		ls.watch = append(ls.watch, watched{spec, k.AddTopics})
	}
	if len(spec.Downstream) == 0 {
		return nil
	}
	filters := map[string]string{}
	for _, d := range spec.Downstream {
		filters[d.From] = d.To
	}
	d, err := bridge.NewMQTTDownstream(bridge.MQTTDownstreamOptions{
		Name: spec.Name, Site: cfg.EdgeID, Broker: m.URL, TLS: opts.TLS, Username: m.User, Password: m.Password,
		Filters: filters, Log: l, Logger: lg.With("component", "bridge", "link", spec.Name),
	})
	if err != nil {
		return err
	}
	ls.mdown = append(ls.mdown, d)
	return nil
}

// mqttVersion is the protocol level of a protocol name: 4 is MQTT 3.1.1.
func mqttVersion(protocol string) int {
	if protocol == "5" {
		return 5
	}
	return 4
}

// linkTopics resolves a link's topics ("*": every topic there is now,
// but those the link itself copies down from upstream: mirrored back up,
// a destination of "{topic}" would make a loop).
func linkTopics(spec config.LinkSpec, l *spoollog.Log) []string {
	var topics []string
	down := map[string]bool{}
	for _, d := range spec.Downstream {
		down[d.To] = true
	}
	for _, t := range spec.Topics {
		if t == "*" {
			for _, name := range l.Topics() {
				if !down[name] {
					topics = append(topics, name)
				}
			}
			continue
		}
		topics = append(topics, t)
	}
	seen := map[string]bool{}
	unique := topics[:0]
	for _, t := range topics {
		if !seen[t] {
			seen[t] = true
			unique = append(unique, t)
		}
	}
	return unique
}

func linkOptions(cfg config.Config, spec config.LinkSpec, l *spoollog.Log, lg *slog.Logger) (bridge.KafkaLinkOptions, error) {
	unique := linkTopics(spec, l)
	var seeds []string
	for _, b := range spec.Kafka.Brokers {
		for _, one := range strings.Split(b, ",") {
			if one = strings.TrimSpace(one); one != "" {
				seeds = append(seeds, one)
			}
		}
	}
	extra, err := kafkaClientOpts(spec.Kafka)
	if err != nil {
		return bridge.KafkaLinkOptions{}, err
	}
	return bridge.KafkaLinkOptions{
		Name: spec.Name, Site: cfg.EdgeID, Seeds: seeds, ClientOpts: extra, Log: l, Topics: unique, EveryTopic: slices.Contains(spec.Topics, "*"),
		Destination: spec.Destination, Partitioning: bridge.Partitioning(spec.Partitioning),
		BatchBytes: int32(spec.BatchBytes), Compression: spec.Compression, DeliveryTimeout: spec.DeliveryTimeout.D(),
		BandwidthBytesPerSec: int64(spec.Bandwidth), Priorities: priorities(spec),
		ExactlyOnce: spec.ExactlyOnce, OffsetsTopic: spec.OffsetsTopic,
		Logger: lg.With("component", "bridge", "link", spec.Name),
	}, nil
}

func priorities(spec config.LinkSpec) map[string]int {
	m := map[string]int{}
	for _, p := range spec.Priorities {
		m[p.Topic] = p.Priority
	}
	return m
}

// clientTLS builds a client TLS configuration; errors name the key below
// the peer ("tls.ca: ...").
func clientTLS(t config.ClientTLS) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, fmt.Errorf("tls.ca: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, errors.New("tls.ca: no certificates found")
		}
	}
	if t.Cert != "" {
		pair, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, fmt.Errorf("tls.cert: %w", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}

// kafkaClientOpts turns a peer's TLS and SASL settings into kgo options.
func kafkaClientOpts(p config.KafkaPeer) ([]kgo.Opt, error) {
	var opts []kgo.Opt
	t := p.TLS
	if t.Enabled || t.CA != "" || t.Cert != "" || t.ServerName != "" {
		tc, err := clientTLS(t)
		if err != nil {
			return nil, fmt.Errorf("kafka.%w", err)
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	var m sasl.Mechanism
	switch s := p.SASL; s.Mechanism {
	case "":
	case "PLAIN":
		m = plain.Auth{User: s.User, Pass: s.Password}.AsMechanism()
	case "SCRAM-SHA-256":
		m = scram.Auth{User: s.User, Pass: s.Password}.AsSha256Mechanism()
	case "SCRAM-SHA-512":
		m = scram.Auth{User: s.User, Pass: s.Password}.AsSha512Mechanism()
	default:
		return nil, fmt.Errorf("kafka.sasl.mechanism %q", s.Mechanism)
	}
	if m != nil {
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

// run starts every link under ctx.
func (ls *links) run(ctx context.Context, lg *slog.Logger) {
	for _, k := range ls.all {
		ls.wg.Go(func() {
			if err := k.Run(ctx); err != nil && ctx.Err() == nil {
				lg.Error("bridge link stopped", "link", k.Health().Link, "error", err)
			}
		})
	}
	for _, k := range ls.mqtt {
		ls.wg.Go(func() {
			if err := k.Run(ctx); err != nil && ctx.Err() == nil {
				lg.Error("bridge link stopped", "link", k.Health().Link, "error", err)
			}
		})
	}
	for _, d := range ls.down {
		ls.wg.Go(func() {
			if err := d.Run(ctx); err != nil && ctx.Err() == nil {
				lg.Error("bridge downstream stopped", "link", d.Health().Name, "error", err)
			}
		})
	}
	for _, d := range ls.mdown {
		ls.wg.Go(func() {
			if err := d.Run(ctx); err != nil && ctx.Err() == nil {
				lg.Error("bridge downstream stopped", "link", d.Health().Name, "error", err)
			}
		})
	}
	if len(ls.watch) > 0 {
		ls.wg.Go(func() { ls.discover(ctx, lg) })
	}
}

// discover adds to the links, every discoverEvery, the topics created and
// the partitions added since they started.
func (ls *links) discover(ctx context.Context, lg *slog.Logger) {
	t := time.NewTicker(discoverEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, w := range ls.watch {
			topics := linkTopics(w.spec, ls.log)
			n, err := w.add(topics...)
			if err != nil && ctx.Err() == nil {
				// A topic deleted between listing and adding: the next
				// pass sees the list without it.
				lg.Warn("bridge link: adding new topics failed", "link", w.spec.Name, "error", err)
			}
			if n > 0 {
				lg.Info("bridge link mirrors new partitions", "link", w.spec.Name, "partitions", n)
			}
		}
	}
}

// downHealth is every downstream copy's snapshot.
func (ls *links) downHealth() []bridge.DownstreamHealth {
	out := make([]bridge.DownstreamHealth, 0, len(ls.down)+len(ls.mdown))
	for _, d := range ls.down {
		out = append(out, d.Health())
	}
	for _, d := range ls.mdown {
		out = append(out, d.Health())
	}
	return out
}

// close stops the links (after their Run returned) and releases their pins.
func (ls *links) close() {
	ls.wg.Wait()
	for _, k := range ls.all {
		_ = k.Close()
	}
	for _, k := range ls.mqtt {
		_ = k.Close()
	}
}

// health is every link's snapshot.
func (ls *links) health() []bridge.Health {
	out := make([]bridge.Health, 0, len(ls.all)+len(ls.mqtt))
	for _, k := range ls.all {
		out = append(out, k.Health())
	}
	for _, k := range ls.mqtt {
		out = append(out, k.Health())
	}
	return out
}
