package edge

import (
	"strconv"

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
			for _, p := range h.Partitions {
				tp := []metrics.Label{link, metrics.L("topic", p.Topic), metrics.L("partition", strconv.Itoa(int(p.Partition)))}
				e.Gauge("spool_bridge_lag_records", "Records not yet acknowledged upstream.", float64(p.Lag), tp...)
				e.Counter("spool_bridge_mirrored_records_total", "Records acknowledged upstream.", float64(p.Records), tp...)
				e.Counter("spool_bridge_mirrored_bytes_total", "Key and value bytes acknowledged upstream.", float64(p.Bytes), tp...)
				e.Counter("spool_bridge_gap_records_total", "Offsets deleted locally (drop_oldest, DeleteRecords) before they were mirrored.", float64(p.Gaps), tp...)
			}
		}
	}))
}
