package mqtt

// Egress: records of a log topic delivered to MQTT subscribers, so that a
// command produced over Kafka or HTTP (or mirrored down from the data
// center) reaches the device subscribed to its MQTT topic. Each partition
// has a follower that reads from its stored position, delivers through
// mochi like any publish (to live subscribers and to the queues of
// persistent sessions), and stores its new position after each read. The
// position pins retention, so undelivered records are not deleted by it.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/spoolmq/spool/edge/config"
	spoollog "github.com/spoolmq/spool/log"
)

// nsEgress holds the egress positions: "topic NUL template NUL partition" → next offset.
const nsEgress = "mqtt.egress"

type egress struct {
	spec  config.EgressSpec
	tmpl  config.Template
	qos   byte
	topic *spoollog.Topic
}

type egressStats struct {
	delivered, fromMQTT atomic.Int64
	skipped             atomic.Int64 // no MQTT topic for it, or mochi refused it (both logged)
	headersDropped      atomic.Int64 // headers no MQTT 5 property can carry
}

// headerUpstreamTopic marks a record the bridge stored from upstream
// (bridge.HeaderUpstreamTopic, which this package cannot import).
const headerUpstreamTopic = "spool.upstream.topic"

// deliveredLive reports whether a record is an MQTT publish this broker
// took in and delivered live to topic already: it carries ingest's
// headers, naming topic, and was not stored by the bridge from upstream
// (where the headers came from another edge's ingest). A record that
// goes to another MQTT topic than the one it was published on is
// delivered there.
func deliveredLive(header func(string) ([]byte, bool), topic string) bool {
	if _, ok := header(HeaderQoS); !ok {
		return false
	}
	if _, ok := header(headerUpstreamTopic); ok {
		return false
	}
	published, ok := header(HeaderTopic)
	return ok && string(published) == topic
}

// validProperty reports whether s can be an MQTT 5 string property.
func validProperty(s string) bool {
	return len(s) <= 65535 && utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

func (b *Broker) buildEgress(opts Options) error {
	for i, spec := range opts.Egress {
		tmpl, err := config.ParseTemplate(spec.MQTTTopic)
		if err != nil {
			return fmt.Errorf("egress[%d].mqtt_topic: %w", i, err)
		}
		t, err := opts.Log.Topic(spec.Topic)
		if err != nil {
			return fmt.Errorf("egress[%d].topic: %w", i, err)
		}
		qos := byte(1)
		if spec.QoS != nil {
			qos = byte(*spec.QoS)
		}
		b.egress = append(b.egress, &egress{spec: spec, tmpl: tmpl, qos: qos, topic: t})
	}
	return nil
}

// startEgress starts a follower per partition of every egress.
func (b *Broker) startEgress() {
	b.egressStop = make(chan struct{})
	for _, e := range b.egress {
		for _, p := range e.topic.Partitions() {
			b.egressWG.Add(1)
			go func() {
				defer b.egressWG.Done()
				b.follow(e, p)
			}()
		}
	}
}

// stopEgress stops the followers; their positions are stored.
func (b *Broker) stopEgress() {
	if b.egressStop != nil {
		close(b.egressStop)
		b.egressWG.Wait()
	}
}

func egressKey(e *egress, p *spoollog.Partition) string {
	return e.spec.Topic + "\x00" + e.spec.MQTTTopic + "\x00" + strconv.Itoa(int(p.ID()))
}

// follow delivers one partition's records from its stored position on.
func (b *Broker) follow(e *egress, p *spoollog.Partition) {
	meta, key := b.meta, egressKey(e, p)
	pin := "egress:" + key
	defer p.Unpin(pin)
	// The end of what is committed: a transaction pending there is
	// delivered once it commits.
	offset := p.LastStableOffset()
	if e.spec.Start == "earliest" {
		offset = p.LogStartOffset()
	}
	if v, ok, err := meta.GetCursor(nsEgress, key); err == nil && ok && len(v) == 8 {
		offset = int64(binary.BigEndian.Uint64(v))
	} else if err != nil {
		b.lg.Error("reading an egress position failed; starting at the end", "topic", e.spec.Topic, "partition", p.ID(), "error", err)
	}
	lg := b.lg.With("egress", e.spec.Topic, "partition", p.ID(), "mqtt_topic", e.spec.MQTTTopic)
	var backoff time.Duration
	for {
		p.Pin(pin, offset)
		notify := p.Notify()
		data, err := p.ReadCommitted(offset, 1<<20)
		if errors.Is(err, spoollog.ErrOffsetOutOfRange) && offset < p.LogStartOffset() {
			// Deleted before delivery (drop_oldest, DeleteRecords): counted
			// by the log for the pin; go on from what is left.
			lg.Warn("egress records deleted before delivery", "from", offset, "to", p.LogStartOffset())
			offset = p.LogStartOffset()
			continue
		}
		if errors.Is(err, spoollog.ErrOffsetOutOfRange) && offset > p.LogStartOffset() {
			// Past the end: the tail the position was stored after is
			// gone (a crash lost records not yet synced). Waiting for new
			// records to reach the old position would skip them: go on
			// from the end, as the actuators do.
			if hw := p.HighWatermark(); offset > hw {
				lg.Warn("stored egress position past the end of the partition; going on from its end", "stored", offset, "end", hw)
				offset = hw
				if err := meta.PutCursor(nsEgress, key, binary.BigEndian.AppendUint64(nil, uint64(offset))); err != nil {
					lg.Error("storing the egress position failed", "offset", offset, "error", err)
				}
			}
			continue
		}
		if err != nil {
			backoff = min(max(2*backoff, 100*time.Millisecond), 10*time.Second)
			lg.Error("egress read failed; retrying", "offset", offset, "error", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
				continue
			case <-b.egressStop:
				return
			}
		}
		backoff = 0
		if len(data) == 0 {
			select {
			case <-notify:
				continue
			case <-b.egressStop:
				return
			}
		}
		next, err := b.deliverBatches(e, p, data, offset, lg)
		if err != nil {
			lg.Error("egress found a damaged batch; stopped", "offset", offset, "error", err)
			<-b.egressStop
			return
		}
		if err := meta.PutCursor(nsEgress, key, binary.BigEndian.AppendUint64(nil, uint64(next))); err != nil {
			// Delivered but not remembered: after a restart they are
			// delivered again (at least once), never skipped.
			lg.Error("storing the egress position failed", "offset", next, "error", err)
		}
		offset = next
	}
}

// deliverBatches delivers the records at or after offset in data (whole
// batches) and returns the offset after them.
func (b *Broker) deliverBatches(e *egress, p *spoollog.Partition, data []byte, offset int64, lg *slog.Logger) (int64, error) {
	return p.EachCommitted(data, offset, func(r spoollog.Record) error {
		b.deliverRecord(e, p, r, lg)
		return nil
	})
}

func (b *Broker) deliverRecord(e *egress, p *spoollog.Partition, r spoollog.Record, lg *slog.Logger) {
	header := func(name string) ([]byte, bool) {
		for _, h := range r.Headers {
			if h.Key == name {
				return h.Value, true
			}
		}
		return nil, false
	}
	topic, err := e.tmpl.Render(config.RecordFields{Key: r.Key, Header: header, Partition: p.ID(), Topic: e.spec.Topic})
	if err != nil {
		b.egressStats.skipped.Add(1)
		lg.Warn("egress record skipped", "offset", r.Offset, "error", err)
		return
	}
	if deliveredLive(header, topic) {
		b.egressStats.fromMQTT.Add(1)
		return
	}
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: e.qos, Retain: e.spec.Retain},
		TopicName:   topic,
		Payload:     r.Value,
	}
	for _, h := range r.Headers {
		switch {
		case !validProperty(h.Key) || !validProperty(string(h.Value)):
			// MQTT 5 properties are UTF-8 strings without NUL of at most
			// 65535 bytes: a subscriber must disconnect on anything else,
			// and would get the same packet again on every reconnect.
			b.egressStats.headersDropped.Add(1)
		case h.Key == HeaderContentType:
			pk.Properties.ContentType = string(h.Value)
		default:
			pk.Properties.User = append(pk.Properties.User, packets.UserProperty{Key: h.Key, Val: string(h.Value)})
		}
	}
	if err := b.deliver(pk); err != nil {
		b.egressStats.skipped.Add(1)
		return
	}
	b.egressStats.delivered.Add(1)
}
