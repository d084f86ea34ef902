package edge

import (
	"github.com/spoolmq/spool/edge/metrics"
	"github.com/spoolmq/spool/edge/mqtt"
)

// registerMQTTMetrics exposes the broker's counters, read at scrape time.
func registerMQTTMetrics(reg *metrics.Registry, b *mqtt.Broker) {
	reg.Register("mqtt", metrics.CollectorFunc(func(e *metrics.Emitter) {
		s := b.Stats()
		e.Counter("spool_mqtt_publishes_received_total", "MQTT publishes received from clients.", float64(s.Received))
		e.Counter("spool_mqtt_publishes_unrouted_total", "Publishes that matched no route: delivered live, not stored.", float64(s.Unrouted))
		e.Counter("spool_mqtt_publishes_key_missing_total", "Routed publishes stored without a key because the topic level or JSON field was missing.", float64(s.KeyMissing))
		for _, reason := range []string{"full", "too_large", "error"} {
			e.Counter("spool_mqtt_publishes_rejected_total", "Publishes the log refused, by reason (MQTT 5: negative ack; 3.1.1: disconnect).", float64(s.Rejected[reason]), metrics.L("reason", reason))
		}
		e.Counter("spool_mqtt_qos0_dropped_total", "QoS 0 publishes the log refused (QoS 0 has no acknowledgement to refuse with).", float64(s.DroppedQoS0))
		for _, cause := range []string{"malformed", "too_large", "protocol", "io"} {
			e.Counter("spool_mqtt_disconnects_total", "Connections closed because of an error, by cause.", float64(s.Disconnects[cause]), metrics.L("cause", cause))
		}
		e.Counter("spool_mqtt_auth_failures_total", "Connections refused for a bad or missing user name or password.", float64(s.AuthFailures))
		e.Counter("spool_mqtt_acl_denied_total", "Publishes, subscriptions and deliveries an ACL refused.", float64(s.ACLDenied))
		e.Counter("spool_mqtt_session_write_errors_total", "Failed writes of MQTT sessions and retained messages to the metadata store.", float64(s.SessionWriteErr))
		e.Counter("spool_mqtt_deliveries_dropped_total", "Messages not delivered live to a subscriber whose queue was full (they remain in the log).", float64(s.DeliveriesDropped))
		e.Counter("spool_mqtt_egress_delivered_total", "Log records delivered to MQTT subscribers by egress rules.", float64(s.EgressDelivered))
		e.Counter("spool_mqtt_egress_skipped_total", "Log records an egress rule could not deliver: the MQTT topic template lacked the record's key or a header.", float64(s.EgressSkipped))
		e.Counter("spool_mqtt_egress_headers_dropped_total", "Record headers left out of egress deliveries: not valid as MQTT 5 user properties (not UTF-8, a NUL, over 65535 bytes).", float64(s.EgressHeadersDropped))
		e.Gauge("spool_mqtt_clients_connected", "MQTT clients connected now.", float64(s.Clients))
		e.Gauge("spool_mqtt_retained_messages", "Retained messages held.", float64(s.Retained))
		e.Gauge("spool_mqtt_subscriptions", "Active subscriptions.", float64(s.Subscriptions))
	}))
}
