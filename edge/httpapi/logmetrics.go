package httpapi

import (
	"strconv"

	"github.com/spoolmq/spool/edge/metrics"
	spoollog "github.com/spoolmq/spool/log"
)

// logMetricsID is the id RegisterLogMetrics registers under.
const logMetricsID = "spool_log"

// RegisterLogMetrics registers a func collector that reads the log's
// state at scrape time:
//
//	spool_topics                             gauge      topics
//	spool_topic_partitions{topic}            gauge      partitions of the topic
//	spool_topic_ingested_records_total{topic} counter   records accepted for append since open
//	spool_topic_ingested_bytes_total{topic}  counter    batch bytes accepted since open
//	spool_topic_dropped_records_total{topic} counter    records on_full: drop_oldest deleted unread by a pinned reader
//	spool_partition_size_bytes{topic,partition}        gauge  bytes of the segment files
//	spool_partition_log_start_offset{topic,partition}  gauge  first stored offset
//	spool_partition_high_watermark{topic,partition}    gauge  offset after the last durable record
//	spool_partition_last_stable_offset{topic,partition} gauge where committed readers stop (below a pending transaction)
//	spool_partition_failed{topic,partition}  gauge      1 while a sticky I/O error stops appends
//	spool_disk_used_bytes                    gauge      bytes of all segment files (what the disk budget counts)
//	spool_fsyncs_total                       counter    fsyncs of segment files
//	spool_fsync_duration_seconds             histogram  fsync latency (buckets: log.FsyncBuckets)
//
// New calls it for Options.Log; registering again (for another log)
// replaces the previous registration.
func RegisterLogMetrics(reg *metrics.Registry, l *spoollog.Log) {
	bounds := metrics.DurationBuckets(spoollog.FsyncBuckets)
	reg.Register(logMetricsID, metrics.CollectorFunc(func(e *metrics.Emitter) {
		names := l.Topics()
		e.Gauge("spool_topics", "Number of topics.", float64(len(names)))
		for _, name := range names {
			t, err := l.Topic(name)
			if err != nil {
				continue // deleted since Topics
			}
			tl := metrics.L("topic", name)
			recs, bytes := t.Appended()
			e.Gauge("spool_topic_partitions", "Partitions of the topic.", float64(t.NumPartitions()), tl)
			e.Counter("spool_topic_ingested_records_total", "Records accepted for append to the topic since the log was opened.", float64(recs), tl)
			e.Counter("spool_topic_ingested_bytes_total", "Record batch bytes accepted for append to the topic since the log was opened.", float64(bytes), tl)
			e.Counter("spool_topic_dropped_records_total", "Records deleted by on_full: drop_oldest before a pinned reader (the bridge) had read them.", float64(t.DroppedRecords()), tl)
			for _, p := range t.Partitions() {
				pl := metrics.L("partition", strconv.Itoa(int(p.ID())))
				e.Gauge("spool_partition_size_bytes", "Bytes of the partition's segment files.", float64(p.Size()), tl, pl)
				e.Gauge("spool_partition_log_start_offset", "First offset still stored in the partition.", float64(p.LogStartOffset()), tl, pl)
				e.Gauge("spool_partition_high_watermark", "Offset after the partition's last durable record.", float64(p.HighWatermark()), tl, pl)
				e.Gauge("spool_partition_last_stable_offset", "Offset committed readers stop before: the first of a pending transaction, else the high watermark.", float64(p.LastStableOffset()), tl, pl)
				failed := 0.0
				if p.Err() != nil {
					failed = 1
				}
				e.Gauge("spool_partition_failed", "1 while a sticky I/O error stops appends to the partition.", failed, tl, pl)
			}
		}
		st := l.Stats()
		e.Gauge("spool_disk_used_bytes", "Bytes of all segment files and of the deleted ones kept for reuse, as the disk budget counts them.", float64(st.UsedBytes))
		e.Counter("spool_segments_recycled_total", "Segments started in the file of a segment retention deleted, written over instead of zero-filled.", float64(st.SegmentsRecycled))
		e.Counter("spool_fsyncs_total", "Fsyncs of segment files.", float64(st.Fsyncs))
		counts := make([]uint64, len(st.FsyncCounts))
		for i, c := range st.FsyncCounts {
			counts[i] = uint64(c)
		}
		if len(counts) == len(bounds)+1 {
			e.Histogram("spool_fsync_duration_seconds", "Latency of segment fsyncs.",
				metrics.HistogramSnapshot{UpperBounds: bounds, Counts: counts, Sum: st.FsyncTime.Seconds()})
		}
	}))
}
