package bridge

// MQTTDownstream carries messages from an upstream MQTT broker into local
// topics: commands published in the data center reach the edge, where
// egress rules deliver them to devices. It subscribes with QoS 1 in a
// persistent session (clean session off), so the broker queues what is
// published while the edge is offline, and acknowledges a message only
// once it is durable in the local log: a crash or outage redelivers it
// (at least once), never loses it.

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	spoollog "github.com/spoolmq/spool/log"
)

// MQTTDownstreamOptions configure an MQTTDownstream.
type MQTTDownstreamOptions struct {
	Name, Site string
	// Broker is tcp://host:port or ssl://host:port; TLS, Username and
	// Password as for MQTTLinkOptions.
	Broker             string
	TLS                *tls.Config
	Username, Password string
	// ClientID names the persistent session upstream, default
	// "spool-<site>-<name>-down".
	ClientID string
	// Filters maps an upstream MQTT topic filter to the local topic its
	// messages go to (which must exist). A message becomes a record keyed
	// by its MQTT topic, with the header spool.upstream.topic.
	Filters map[string]string
	Log     *spoollog.Log
	// KeepAlive (30 s), ConnectTimeout (10 s), BackoffMin and BackoffMax
	// (100 ms, 10 s) as for MQTTLinkOptions.
	KeepAlive, ConnectTimeout time.Duration
	BackoffMin, BackoffMax    time.Duration
	Logger                    *slog.Logger
}

// MQTTDownstream is a downstream link from an MQTT broker.
type MQTTDownstream struct {
	opts   MQTTDownstreamOptions
	lg     *slog.Logger
	locals map[string]*spoollog.Topic
	order  []string // the filters, most specific (longest) first, then by name

	downCounters
}

// NewMQTTDownstream checks the options; the local topics must exist.
func NewMQTTDownstream(opts MQTTDownstreamOptions) (*MQTTDownstream, error) {
	switch {
	case opts.Name == "":
		return nil, errors.New("bridge downstream: name is empty")
	case opts.Broker == "":
		return nil, fmt.Errorf("bridge downstream %s: no broker", opts.Name)
	case len(opts.Filters) == 0:
		return nil, fmt.Errorf("bridge downstream %s: no topic filters", opts.Name)
	}
	if opts.ClientID == "" {
		opts.ClientID = "spool-" + opts.Site + "-" + opts.Name + "-down"
	}
	if opts.KeepAlive <= 0 {
		opts.KeepAlive = 30 * time.Second
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 10 * time.Second
	}
	if opts.BackoffMin <= 0 {
		opts.BackoffMin = 100 * time.Millisecond
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	d := &MQTTDownstream{opts: opts, lg: opts.Logger.With("downstream", opts.Name), locals: map[string]*spoollog.Topic{}}
	for filter, local := range opts.Filters {
		t, err := opts.Log.Topic(local)
		if err != nil {
			return nil, fmt.Errorf("bridge downstream %s: %s: %w", opts.Name, filter, err)
		}
		d.locals[filter] = t
		d.order = append(d.order, filter)
	}
	slices.SortFunc(d.order, func(a, b string) int {
		if c := cmp.Compare(len(b), len(a)); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	return d, nil
}

// Health is a snapshot.
func (d *MQTTDownstream) Health() DownstreamHealth { return d.health(d.opts.Name) }

// Run subscribes until ctx ends, reconnecting with backoff.
func (d *MQTTDownstream) Run(ctx context.Context) error {
	bo := backoff{min: d.opts.BackoffMin, max: d.opts.BackoffMax}
	for ctx.Err() == nil {
		connected, err := d.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if connected {
			bo.reset()
		}
		d.fail(err)
		wait := bo.next()
		d.lg.Warn("downstream connection failed", "err", err, "retry_in", wait)
		sleep(ctx, wait)
	}
	return nil
}

// session is one connection: it ends when the connection is lost, a
// message cannot be stored (so it is not acknowledged and the broker
// redelivers it on the next connection), or ctx ends.
func (d *MQTTDownstream) session(ctx context.Context) (bool, error) {
	conn, drop := context.WithCancelCause(ctx)
	defer drop(nil)
	o := mqtt.NewClientOptions().AddBroker(d.opts.Broker).SetClientID(d.opts.ClientID).
		SetProtocolVersion(4).
		SetCleanSession(false). // the broker keeps what comes while we are away
		SetAutoReconnect(false).SetConnectRetry(false).
		SetAutoAckDisabled(true). // PUBACK once stored, not on receipt
		SetOrderMatters(true).
		SetKeepAlive(d.opts.KeepAlive).SetPingTimeout(min(d.opts.KeepAlive, 10*time.Second)).
		SetConnectTimeout(d.opts.ConnectTimeout).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) { drop(fmt.Errorf("connection lost: %w", err)) })
	if d.opts.TLS != nil {
		o.SetTLSConfig(d.opts.TLS)
	}
	if d.opts.Username != "" {
		o.SetUsername(d.opts.Username).SetPassword(d.opts.Password)
	}
	// Messages of the persistent session can arrive before Subscribe
	// returns: the default handler routes them by filter too.
	o.SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { d.receive(conn, drop, m) })
	cl := mqtt.NewClient(o)
	tok := cl.Connect()
	if !tok.WaitTimeout(d.opts.ConnectTimeout+time.Second) || tok.Error() != nil {
		cl.Disconnect(0)
		err := tok.Error()
		if err == nil {
			err = errors.New("no CONNACK")
		}
		return false, fmt.Errorf("connect %s: %w", d.opts.Broker, err)
	}
	filters := map[string]byte{}
	for f := range d.opts.Filters {
		filters[f] = 1
	}
	st := cl.SubscribeMultiple(filters, nil)
	if !st.WaitTimeout(d.opts.ConnectTimeout) || st.Error() != nil {
		cl.Disconnect(0)
		return true, fmt.Errorf("subscribe: %v", st.Error())
	}
	// A refused subscription (0x80) or one granted at QoS 0 (nothing kept
	// while the edge is away) is no error to paho: check each grant.
	for f, granted := range st.(*mqtt.SubscribeToken).Result() {
		if granted != 1 {
			cl.Disconnect(0)
			return true, fmt.Errorf("subscribe %s: the broker granted %#x, not QoS 1", f, granted)
		}
	}
	d.lg.Info("downstream subscribed", "broker", d.opts.Broker, "filters", len(filters))
	<-conn.Done()
	cl.Disconnect(250)
	if ctx.Err() != nil {
		return true, nil
	}
	return true, context.Cause(conn)
}

// receive stores one message and then acknowledges it. paho calls it in
// arrival order (OrderMatters), so the local order is the upstream's.
func (d *MQTTDownstream) receive(conn context.Context, drop context.CancelCauseFunc, m mqtt.Message) {
	if conn.Err() != nil {
		return // not acknowledged: redelivered on the next connection
	}
	var t *spoollog.Topic
	for _, filter := range d.order {
		if matchFilter(filter, m.Topic()) {
			t = d.locals[filter]
			break
		}
	}
	if t == nil {
		d.lg.Warn("message on a topic no filter matches; acknowledged and not stored", "topic", m.Topic())
		d.dropped.Add(1)
		m.Ack()
		return
	}
	rec := spoollog.Record{Timestamp: time.Now().UnixMilli(), Key: []byte(m.Topic()), Value: m.Payload(),
		Headers: []spoollog.Header{{Key: HeaderUpstreamTopic, Value: []byte(m.Topic())}}}
	p, err := t.Partition(t.PartitionFor(rec.Key, len(rec.Value)))
	if err == nil {
		_, err = p.AppendRecords([]spoollog.Record{rec}, spoollog.DefaultBatchOptions)
	}
	switch {
	case errors.Is(err, spoollog.ErrTooLarge):
		// It can never be stored: acknowledged so it does not block
		// the session, and counted.
		d.dropped.Add(1)
		d.lg.Error("downstream message too large for its local topic; dropped", "topic", m.Topic(), "bytes", len(m.Payload()))
		m.Ack()
	case err != nil:
		d.fail(err)
		drop(fmt.Errorf("store a message of %s: %w", m.Topic(), err))
	default:
		d.copied.Add(1)
		m.Ack()
		d.committed.Add(1)
	}
}

// matchFilter reports whether an MQTT topic matches a filter (+ one
// level, # the rest).
func matchFilter(filter, topic string) bool {
	for {
		fl, frest, fmore := cut(filter)
		if fl == "#" {
			return true
		}
		tl, trest, tmore := cut(topic)
		if fl != "+" && fl != tl {
			return false
		}
		if !fmore || !tmore {
			return !fmore && !tmore || (fmore && frest == "#")
		}
		filter, topic = frest, trest
	}
}

func cut(s string) (level, rest string, more bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
