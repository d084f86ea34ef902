package edge

import (
	"strconv"
	"time"

	"github.com/spoolmq/spool/bridge"
	"github.com/spoolmq/spool/edge/metrics"
)

// registerBridgeMetrics exposes each link's health, read at scrape time.
func registerBridgeMetrics(reg *metrics.Registry, ls *links) {
	reg.Register("bridge", metrics.CollectorFunc(func(e *metrics.Emitter) {
		for _, h := range ls.health() {
			link := metrics.L("link", h.Link)
			for _, st := range []bridge.State{bridge.StateConnecting, bridge.StateDraining, bridge.StateCaughtUp, bridge.StateFailing} {
				v := 0.0
				if h.State == st {
					v = 1
				}
				e.Gauge("spool_bridge_link_state", "1 for the link's current state (connecting, draining, caught_up, failing).", v, link, metrics.L("state", string(st)))
			}
			e.Gauge("spool_bridge_throughput_records_per_second", "Records acknowledged upstream per second, recently.", h.RecordsPerSec, link)
			e.Gauge("spool_bridge_throughput_bytes_per_second", "Key and value bytes acknowledged upstream per second, recently.", h.BytesPerSec, link)
			for _, p := range h.Partitions {
				tp := []metrics.Label{link, metrics.L("topic", p.Topic), metrics.L("partition", strconv.Itoa(int(p.Partition)))}
				e.Gauge("spool_bridge_lag_records", "Records not yet acknowledged upstream.", float64(p.Lag), tp...)
				e.Gauge("spool_bridge_lag_bytes", "Estimated stored bytes of the records not yet acknowledged upstream.", float64(p.LagBytes), tp...)
				age := 0.0
				if !p.OldestUnmirrored.IsZero() {
					age = max(time.Since(p.OldestUnmirrored).Seconds(), 0)
				}
				e.Gauge("spool_bridge_oldest_unmirrored_age_seconds", "Age of the oldest record not yet acknowledged upstream; 0 when caught up.", age, tp...)
				e.Counter("spool_bridge_mirrored_records_total", "Records acknowledged upstream.", float64(p.Records), tp...)
				e.Counter("spool_bridge_mirrored_bytes_total", "Key and value bytes acknowledged upstream.", float64(p.Bytes), tp...)
				e.Counter("spool_bridge_gap_records_total", "Offsets deleted locally (drop_oldest, DeleteRecords) before they were mirrored.", float64(p.Gaps), tp...)
				e.Counter("spool_bridge_skipped_records_total", "Records the upstream refused on their own as too large (MESSAGE_TOO_LARGE): skipped, logged, kept in the local log.", float64(p.Skipped), tp...)
			}
		}
	}))
}
