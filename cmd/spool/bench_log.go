package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	spoollog "github.com/spoolmq/spool/log"
)

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) > 0 && args[0] == "log":
		return runBenchLog(ctx, args[1:], stdout, stderr)
	case len(args) > 0 && args[0] == "kafka":
		return runBenchKafka(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintln(stderr, "usage: spool bench log|kafka [flags]")
	return 2
}

// benchLogResult is the JSON summary line of one run.
type benchLogResult struct {
	Records        int64   `json:"records"`
	Size           int     `json:"size"`
	Writers        int     `json:"writers"`
	Batch          int     `json:"batch"`
	Inflight       int     `json:"inflight"`
	Sync           string  `json:"sync"`
	Codec          string  `json:"codec"`
	Encode         bool    `json:"encode"`
	Seconds        float64 `json:"seconds"`
	RecordsPerSec  float64 `json:"records_per_s"`
	MBPerSec       float64 `json:"mb_per_s"`
	Fsyncs         int64   `json:"fsyncs"`
	RecordsPerSync float64 `json:"records_per_fsync"`
	FsyncMeanUs    float64 `json:"fsync_mean_us"`
	P50us          float64 `json:"p50_us"`
	P99us          float64 `json:"p99_us"`
	// Steady: the appends went into recycled segment files (--steady).
	Steady bool `json:"steady,omitempty"`
}

func runBenchLog(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("spool bench log", stderr)
	records := fs.Int64("records", 1_000_000, "records to append in all")
	size := fs.Int("size", 200, "value bytes per record")
	writers := fs.Int("writers", 64, "concurrent appenders")
	batch := fs.Int("batch", 1, "records per append")
	inflight := fs.Int("inflight", 1, "appends each writer keeps in flight (pipelining, like a Kafka producer or an MQTT connection)")
	syncs := fs.String("sync", "always", "sync policy, or a comma-separated list run one after another (always,never)")
	codec := fs.String("codec", "none", "batch compression: none, gzip, snappy, lz4, zstd")
	prealloc := fs.Bool("preallocate", true, "zero-fill the active segment ahead of writes (the topic default)")
	encode := fs.Bool("encode", true, "encode every batch in the writer, as Spool does for MQTT; false appends a batch encoded once, as a Kafka producer delivers it")
	dir := fs.String("dir", "", "directory for the temporary log (default: the system temp dir)")
	segmentBytes := fs.Int64("segment-bytes", 256<<20, "segment size")
	steady := fs.Bool("steady", false, "measure the steady state of a log at its retention limit: size retention keeps one sealed segment, and the log is filled (untimed) until a segment starts in the file of one retention deleted, as every later one does")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile to this file")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	c, err := spoollog.ParseCodec(*codec)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	if *writers < 1 || *batch < 1 || *inflight < 1 || *records < 1 || *size < 0 {
		return fail(stderr, "--records, --writers, --batch and --inflight must be positive")
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
	var results []benchLogResult
	for _, s := range strings.Split(*syncs, ",") {
		res, err := benchLog(ctx, benchLogParams{
			records: *records, size: *size, writers: *writers, batch: *batch,
			inflight: *inflight, sync: spoollog.SyncPolicy(s), codec: c, dir: *dir, prealloc: *prealloc, encode: *encode,
			segmentBytes: *segmentBytes, steady: *steady,
		})
		if err != nil {
			return fail(stderr, "bench log: %v", err)
		}
		line, _ := json.Marshal(res)
		fmt.Fprintln(stdout, string(line))
		results = append(results, res)
	}
	if len(results) == 2 {
		fmt.Fprintf(stdout, "{\"ratio\":%.3f,\"of\":%q,\"to\":%q}\n",
			results[0].RecordsPerSec/results[1].RecordsPerSec, results[0].Sync, results[1].Sync)
	}
	return 0
}

type benchLogParams struct {
	records  int64
	size     int
	writers  int
	batch    int
	inflight int
	sync     spoollog.SyncPolicy
	codec    spoollog.Codec
	dir      string
	prealloc bool
	encode   bool
	// segmentBytes is the topic's segment size (256 MiB when 0).
	segmentBytes int64
	steady       bool
}

// benchLog appends to a fresh log in a temporary directory and removes it.
// Each writer encodes its batches as a producer would (the encoding is part
// of the measured cost) and appends with up to inflight appends pending.
func benchLog(ctx context.Context, bp benchLogParams) (benchLogResult, error) {
	dir, err := os.MkdirTemp(bp.dir, "spool-bench-")
	if err != nil {
		return benchLogResult{}, err
	}
	defer os.RemoveAll(dir)
	l, err := spoollog.Open(dir, spoollog.Options{})
	if err != nil {
		return benchLogResult{}, err
	}
	defer l.Close()
	cfg := spoollog.DefaultTopicConfig()
	cfg.Sync = bp.sync
	cfg.Preallocate = bp.prealloc
	cfg.SegmentBytes = cmp.Or(bp.segmentBytes, 256<<20)
	cfg.MaxMessageBytes = int32(min(64<<20, cfg.SegmentBytes))
	if bp.steady {
		cfg.RetentionBytes = cfg.SegmentBytes
	}
	if err := cfg.Validate(); err != nil {
		return benchLogResult{}, err
	}
	t, err := l.CreateTopic("bench", cfg)
	if err != nil {
		return benchLogResult{}, err
	}
	p, _ := t.Partition(0)
	if bp.steady {
		if err := benchFillToSteady(l, p, cfg); err != nil {
			return benchLogResult{}, err
		}
	}
	before := l.Stats()

	appends := (bp.records + int64(bp.batch) - 1) / int64(bp.batch)
	var next atomic.Int64 // appends handed out
	lat := make([][]time.Duration, bp.writers)
	errs := make(chan error, bp.writers)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range bp.writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- benchWriter(ctx, p, bp, &next, appends, &lat[w], uint64(w))
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		if err != nil {
			return benchLogResult{}, err
		}
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	q := func(f float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[min(len(all)-1, int(f*float64(len(all))))].Nanoseconds()) / 1e3
	}
	st := l.Stats()
	st.AppendedBytes -= before.AppendedBytes
	st.Fsyncs -= before.Fsyncs
	st.FsyncTime -= before.FsyncTime
	total := appends * int64(bp.batch)
	res := benchLogResult{
		Records: total, Size: bp.size, Writers: bp.writers, Batch: bp.batch, Inflight: bp.inflight,
		Sync: string(bp.sync), Codec: bp.codec.String(), Encode: bp.encode, Seconds: elapsed.Seconds(),
		RecordsPerSec: float64(total) / elapsed.Seconds(),
		MBPerSec:      float64(st.AppendedBytes) / elapsed.Seconds() / 1e6,
		Fsyncs:        st.Fsyncs,
		P50us:         q(0.50), P99us: q(0.99),
		Steady: bp.steady,
	}
	if st.Fsyncs > 0 {
		res.RecordsPerSync = float64(total) / float64(st.Fsyncs)
		res.FsyncMeanUs = float64(st.FsyncTime.Microseconds()) / float64(st.Fsyncs)
	}
	return res, nil
}

// benchFillToSteady appends untimed, without fsyncs, until the active
// segment is one that started in the file of a segment retention deleted.
func benchFillToSteady(l *spoollog.Log, p *spoollog.Partition, cfg spoollog.TopicConfig) error {
	fill := cfg
	fill.Sync = spoollog.SyncNever
	if err := l.AlterTopic("bench", fill); err != nil {
		return err
	}
	recs := make([]spoollog.Record, 1024)
	for i := range recs {
		recs[i] = spoollog.Record{Value: make([]byte, 1000)}
	}
	for l.Stats().SegmentsRecycled == 0 {
		if p.Size() > 4*cfg.SegmentBytes {
			return errors.New("--steady: retention keeps no segment file to recycle (segments under 1 MiB are deleted)")
		}
		if _, err := p.AppendRecords(recs, spoollog.DefaultBatchOptions); err != nil {
			return err
		}
	}
	return l.AlterTopic("bench", cfg)
}

func benchWriter(ctx context.Context, p *spoollog.Partition, bp benchLogParams, next *atomic.Int64, appends int64, lat *[]time.Duration, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, 1))
	recs := make([]spoollog.Record, bp.batch)
	for i := range recs {
		v := make([]byte, bp.size)
		for j := range v {
			v[j] = byte('a' + rng.IntN(26))
		}
		recs[i] = spoollog.Record{Key: fmt.Appendf(nil, "sensor-%d", rng.IntN(1000)), Value: v}
	}
	opts := spoollog.DefaultBatchOptions
	opts.Codec = bp.codec
	sem := make(chan struct{}, bp.inflight)
	var firstErr error
	var mu sync.Mutex
	var buf []byte
	for ctx.Err() == nil && next.Add(1) <= appends {
		now := time.Now()
		if bp.encode || buf == nil {
			for i := range recs {
				recs[i].Timestamp = now.UnixMilli()
			}
			var err error
			buf, err = spoollog.AppendBatch(buf[:0], recs, opts)
			if err != nil {
				return err
			}
		}
		if bp.inflight == 1 {
			// One append at a time: the synchronous call, as an MQTT
			// or HTTP handler makes it.
			_, err := p.Append(buf)
			*lat = append(*lat, time.Since(now))
			if err != nil {
				return err
			}
			continue
		}
		sem <- struct{}{}
		err := p.AppendAsync(buf, func(_ spoollog.AppendResult, err error) {
			d := time.Since(now)
			mu.Lock()
			*lat = append(*lat, d)
			if err != nil && firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
			<-sem
		})
		if err != nil {
			return err
		}
	}
	for range bp.inflight {
		sem <- struct{}{}
	}
	mu.Lock()
	defer mu.Unlock()
	return firstErr
}
