package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"runtime/trace"
	"time"

	"github.com/spoolmq/spool/edge/kafka"
	spoollog "github.com/spoolmq/spool/log"
	"github.com/twmb/franz-go/pkg/kgo"
)

// benchKafkaResult is the JSON summary line of one phase of spool bench
// kafka.
type benchKafkaResult struct {
	Phase         string  `json:"phase"` // produce (kgo), fetch, produce_wire (benchKafkaWire), or engine (spool bench log with the same batches)
	Records       int64   `json:"records"`
	Size          int     `json:"size"`
	BatchBytes    int     `json:"batch_bytes"`
	Partitions    int     `json:"partitions"`
	Sync          string  `json:"sync"`
	Seconds       float64 `json:"seconds"`
	RecordsPerSec float64 `json:"records_per_s"`
	MBPerSec      float64 `json:"mb_per_s"`
	Fsyncs        int64   `json:"fsyncs,omitempty"`
	// CycleMicros is the mean time from one fsync to the next: with the
	// same batches per fsync on both sides, the produce phases' excess
	// over the engine's is the round trip through the protocol and the
	// client, the ratio's whole cost.
	CycleMicros float64 `json:"cycle_us,omitempty"`
}

// withCycle sets r's CycleMicros from its seconds and fsyncs.
func (r benchKafkaResult) withCycle() benchKafkaResult {
	if r.Fsyncs > 0 {
		r.CycleMicros = r.Seconds / float64(r.Fsyncs) * 1e6
	}
	return r
}

// runBenchKafka produces records through the Kafka listener with kgo,
// fetches them back, and appends the same records to the engine directly
// in the same run, printing one JSON line per phase and the ratios.
func runBenchKafka(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("spool bench kafka", stderr)
	records := fs.Int64("records", 500_000, "records to produce")
	size := fs.Int("size", 200, "value bytes per record")
	batchBytes := fs.Int("batch-bytes", 16<<10, "producer batch size (kgo ProducerBatchMaxBytes)")
	partitions := fs.Int("partitions", 1, "partitions of the topic")
	sync := fs.String("sync", "always", "the topic's sync policy")
	dir := fs.String("dir", "", "directory for the temporary logs (default: the system temp dir)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the Kafka phases to this file")
	traceFile := fs.String("trace", "", "write an execution trace of the Kafka phases to this file")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return fail(stderr, "%v", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fail(stderr, "%v", err)
		}
		defer pprof.StopCPUProfile()
	}
	if *traceFile != "" {
		f, err := os.Create(*traceFile)
		if err != nil {
			return fail(stderr, "%v", err)
		}
		defer f.Close()
		if err := trace.Start(f); err != nil {
			return fail(stderr, "%v", err)
		}
		defer trace.Stop()
	}
	if *records < 1 || *size < 0 || *partitions < 1 || *batchBytes < 1024 {
		return fail(stderr, "--records, --partitions must be positive and --batch-bytes at least 1024")
	}
	bp := benchKafkaParams{records: *records, size: *size, batchBytes: *batchBytes, partitions: *partitions, sync: spoollog.SyncPolicy(*sync), dir: *dir}
	produce, fetch, wire, err := benchKafka(ctx, bp)
	if err != nil {
		return fail(stderr, "bench kafka: %v", err)
	}
	engine, err := benchKafkaEngine(ctx, bp)
	if err != nil {
		return fail(stderr, "bench kafka: engine: %v", err)
	}
	produce, wire, engine = produce.withCycle(), wire.withCycle(), engine.withCycle()
	for _, r := range []benchKafkaResult{produce, fetch, wire, engine} {
		line, _ := json.Marshal(r)
		fmt.Fprintln(stdout, string(line))
	}
	fmt.Fprintf(stdout, "{\"produce_to_engine\":%.3f,\"produce_wire_to_engine\":%.3f,\"fetch_mb_per_s\":%.1f}\n",
		produce.RecordsPerSec/engine.RecordsPerSec, wire.RecordsPerSec/engine.RecordsPerSec, fetch.MBPerSec)
	return 0
}

type benchKafkaParams struct {
	records    int64
	size       int
	batchBytes int
	partitions int
	sync       spoollog.SyncPolicy
	dir        string
}

func (bp benchKafkaParams) topicConfig() spoollog.TopicConfig {
	cfg := spoollog.DefaultTopicConfig()
	cfg.Partitions = int32(bp.partitions)
	cfg.Sync = bp.sync
	cfg.SegmentBytes = 256 << 20
	cfg.MaxMessageBytes = 16 << 20
	return cfg
}

// benchValues makes the records' values and keys once, so that both
// paths send the same bytes.
func benchValues(n, size int) (keys, values [][]byte) {
	rng := rand.New(rand.NewPCG(1, 2))
	keys, values = make([][]byte, n), make([][]byte, n)
	for i := range n {
		v := make([]byte, size)
		for j := range v {
			v[j] = byte('a' + rng.IntN(26))
		}
		keys[i], values[i] = fmt.Appendf(nil, "sensor-%d", rng.IntN(1000)), v
	}
	return keys, values
}

func benchKafka(ctx context.Context, bp benchKafkaParams) (produce, fetch, wire benchKafkaResult, err error) {
	dir, err := os.MkdirTemp(bp.dir, "spool-bench-kafka-")
	if err != nil {
		return produce, fetch, wire, err
	}
	defer os.RemoveAll(dir)
	l, err := spoollog.Open(dir, spoollog.Options{})
	if err != nil {
		return produce, fetch, wire, err
	}
	defer l.Close()
	if _, err := l.CreateTopic("bench", bp.topicConfig()); err != nil {
		return produce, fetch, wire, err
	}
	srv, err := kafka.New(kafka.Options{Addr: "127.0.0.1:0", Log: l, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return produce, fetch, wire, err
	}
	if err := srv.Listen(); err != nil {
		return produce, fetch, wire, err
	}
	go srv.Serve()
	defer srv.Close()
	addr := srv.Addr().String()

	const distinct = 4096
	keys, values := benchValues(distinct, bp.size)
	p, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("bench"),
		kgo.ProducerBatchMaxBytes(int32(bp.batchBytes)), kgo.ProducerLinger(5*time.Millisecond),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.MaxBufferedRecords(100_000))
	if err != nil {
		return produce, fetch, wire, err
	}
	defer p.Close()
	errc := make(chan error, 1)
	done := make(chan struct{})
	var acked int64
	start := time.Now()
	for i := range bp.records {
		r := &kgo.Record{Key: keys[i%distinct], Value: values[i%distinct]}
		p.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				select {
				case errc <- err:
				default:
				}
			}
			if acked++; acked == bp.records {
				close(done)
			}
		})
	}
	select {
	case <-done:
	case err := <-errc:
		return produce, fetch, wire, err
	case <-ctx.Done():
		return produce, fetch, wire, ctx.Err()
	}
	elapsed := time.Since(start)
	select {
	case err := <-errc:
		return produce, fetch, wire, err
	default:
	}
	payload := float64(bp.records) * float64(bp.size+len(keys[0]))
	produce = benchKafkaResult{Phase: "produce", Records: bp.records, Size: bp.size, BatchBytes: bp.batchBytes,
		Partitions: bp.partitions, Sync: string(bp.sync), Seconds: elapsed.Seconds(),
		RecordsPerSec: float64(bp.records) / elapsed.Seconds(), MBPerSec: payload / elapsed.Seconds() / 1e6,
		Fsyncs: l.Stats().Fsyncs}

	c, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("bench"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxBytes(64<<20), kgo.FetchMaxPartitionBytes(16<<20))
	if err != nil {
		return produce, fetch, wire, err
	}
	defer c.Close()
	var got int64
	start = time.Now()
	for got < bp.records {
		fs := c.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			return produce, fetch, wire, err
		}
		got += int64(fs.NumRecords())
	}
	elapsed = time.Since(start)
	fetch = benchKafkaResult{Phase: "fetch", Records: got, Size: bp.size, BatchBytes: bp.batchBytes, Partitions: bp.partitions,
		Sync: string(bp.sync), Seconds: elapsed.Seconds(), RecordsPerSec: float64(got) / elapsed.Seconds(), MBPerSec: payload / elapsed.Seconds() / 1e6}

	if _, err := l.CreateTopic("bench-wire", bp.topicConfig()); err != nil {
		return produce, fetch, wire, err
	}
	before := l.Stats().Fsyncs
	wire, err = benchKafkaWire(ctx, addr, "bench-wire", bp)
	wire.Fsyncs = l.Stats().Fsyncs - before
	return produce, fetch, wire, err
}

// benchKafkaEngine appends the same records in batches of the same size
// straight to a log, one appender per partition keeping five batches in
// flight as kgo does, for the produce phase to be compared with.
func benchKafkaEngine(ctx context.Context, bp benchKafkaParams) (benchKafkaResult, error) {
	keys, _ := benchValues(1, bp.size)
	perRecord := bp.size + len(keys[0]) + 12 // value, key, record framing
	batch := max(1, (bp.batchBytes-61)/perRecord)
	res, err := benchLog(ctx, benchLogParams{
		records: bp.records, size: bp.size, writers: bp.partitions, batch: batch, inflight: 5,
		sync: bp.sync, dir: bp.dir, prealloc: true, encode: false,
	})
	if err != nil {
		return benchKafkaResult{}, err
	}
	return benchKafkaResult{Phase: "engine", Records: res.Records, Size: bp.size, BatchBytes: bp.batchBytes, Partitions: bp.partitions,
		Sync: res.Sync, Seconds: res.Seconds, RecordsPerSec: res.RecordsPerSec, MBPerSec: float64(res.Records) * float64(bp.size+len(keys[0])) / res.Seconds / 1e6,
		Fsyncs: res.Fsyncs}, nil
}
