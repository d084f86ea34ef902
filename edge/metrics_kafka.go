package edge

import (
	"github.com/spoolmq/spool/edge/kafka"
	"github.com/spoolmq/spool/edge/metrics"
)

// registerKafkaMetrics exposes the Kafka listener's counters, read at
// scrape time.
func registerKafkaMetrics(reg *metrics.Registry, k *kafka.Server) {
	reg.Register("kafka", metrics.CollectorFunc(func(e *metrics.Emitter) {
		s := k.Stats()
		e.Gauge("spool_kafka_connections", "Kafka client connections open now.", float64(s.Connections.Load()))
		e.Counter("spool_kafka_requests_total", "Kafka requests handled.", float64(s.Requests.Load()))
		e.Counter("spool_kafka_bad_requests_total", "Kafka connections closed for a malformed, oversized or unknown request.", float64(s.BadRequests.Load()))
		e.Counter("spool_kafka_auth_failures_total", "Kafka connections refused for failed SASL or for requests before authenticating.", float64(s.AuthFailures.Load()))
		e.Counter("spool_kafka_produced_batches_total", "Record batches appended by Kafka producers.", float64(s.ProducedBatch.Load()))
		e.Counter("spool_kafka_produce_errors_total", "Partitions of produce requests answered with an error.", float64(s.ProduceErrors.Load()))
	}))
}
