package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// compressionCodecs are the --compression names, Kafka's compression.type
// values.
var compressionCodecs = map[string]kgo.CompressionCodec{
	"none":   kgo.NoCompression(),
	"gzip":   kgo.GzipCompression(),
	"snappy": kgo.SnappyCompression(),
	"lz4":    kgo.Lz4Compression(),
	"zstd":   kgo.ZstdCompression(),
}

// runProduce sends each line of in as one record, like
// kafka-console-producer.sh: acks=all and idempotent, so a record reported
// produced is on every in-sync replica exactly once, in order per partition.
func runProduce(ctx context.Context, args []string, in io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("spool produce", stderr)
	k := addKafkaFlags(fs)
	key := fs.String("key", "", "key of every record (default: none, null keys)")
	sep := fs.String("key-separator", "", "split each line into key SEP value at the first SEP")
	var headers kvFlag
	fs.Var(&headers, "header", "header key=value on every record, repeatable")
	compression := fs.String("compression", "none", "batch compression: none, gzip, snappy, lz4 or zstd")
	partition := fs.Int("partition", -1, "produce every record to this partition (default: by key, murmur2 like the Java client; keyless records stick to a partition per batch)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: spool produce TOPIC [flags] < lines\nSends each line of stdin as one record and reports the count on stderr.")
		fs.PrintDefaults()
	}
	pos, code := parseInterspersed(fs, args)
	if code >= 0 {
		return code
	}
	if len(pos) != 1 || pos[0] == "" {
		fs.Usage()
		return 2
	}
	topic := pos[0]
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["key"] && set["key-separator"] {
		fmt.Fprintln(stderr, "spool produce: --key and --key-separator exclude each other")
		return 2
	}
	if set["key-separator"] && *sep == "" {
		fmt.Fprintln(stderr, "spool produce: --key-separator is empty")
		return 2
	}
	codec, ok := compressionCodecs[*compression]
	if !ok {
		fmt.Fprintf(stderr, "spool produce: --compression %q is not none, gzip, snappy, lz4 or zstd\n", *compression)
		return 2
	}
	if *partition < -1 || *partition > 1<<31-1 {
		fmt.Fprintf(stderr, "spool produce: --partition %d is not a partition number\n", *partition)
		return 2
	}

	partitioner := kgo.StickyKeyPartitioner(nil)
	if *partition >= 0 {
		partitioner = kgo.ManualPartitioner()
	}
	cl, err := k.connect(ctx,
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(codec),
		kgo.RecordPartitioner(partitioner),
		kgo.RecordDeliveryTimeout(k.timeout),
	)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	defer cl.Close()

	// Look the topic up first: kgo would retry an unknown topic for
	// several metadata refreshes and then fail every record with it.
	parts, err := topicPartitions(ctx, cl, topic)
	if err != nil {
		return fail(stderr, "produce to %s: %v", topic, err)
	}
	if *partition >= parts {
		return fail(stderr, "produce to %s: --partition %d, but the topic has partitions 0 to %d", topic, *partition, parts-1)
	}

	var hdrs []kgo.RecordHeader
	for _, h := range headers {
		hdrs = append(hdrs, kgo.RecordHeader{Key: h.key, Value: []byte(h.value)})
	}
	p := &producer{cl: cl, topic: topic}

	// A signal stops reading; what was read is still flushed. Records are
	// produced with a context that no signal cancels, since cancelling it
	// would fail buffered records instead of sending them.
	sigCtx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	prodCtx := context.WithoutCancel(ctx)
	lines, readErr := readLines(sigCtx, in)
	var inputErr error
	eof := false
read:
	for p.failure() == nil {
		var l []byte
		select {
		case <-sigCtx.Done():
			fmt.Fprintln(stderr, "spool: interrupted; flushing the records read so far")
			break read
		case line, more := <-lines:
			if !more {
				eof = true
				break read
			}
			l = line
		}
		p.lines++
		r := &kgo.Record{Topic: topic, Headers: hdrs, Value: l}
		switch {
		case set["key"]:
			r.Key = []byte(*key)
		case *sep != "":
			kb, vb, found := bytes.Cut(l, []byte(*sep))
			if !found {
				inputErr = fmt.Errorf("line %d has no key separator %q", p.lines, *sep)
				break read
			}
			r.Key, r.Value = kb, vb
		}
		if *partition >= 0 {
			r.Partition = int32(*partition)
		}
		p.produce(prodCtx, r, p.lines)
	}
	// Bounded: every buffered record is delivered or fails within its
	// delivery timeout; the margin covers a request in flight at that time.
	fctx, cancel := context.WithTimeout(prodCtx, 2*k.timeout+5*time.Second)
	defer cancel()
	flushErr := cl.Flush(fctx)

	n, failed, first := p.result()
	fmt.Fprintf(stderr, "spool: produced %d records to %s\n", n, topic)
	switch {
	case first != nil:
		return fail(stderr, "produce to %s: %d of %d records failed; the first, from line %d: %v", topic, failed, n+failed, first.line, first.err)
	case flushErr != nil:
		return fail(stderr, "produce to %s: %d records not acknowledged: %v", topic, p.sent-n, flushErr)
	case inputErr != nil:
		return fail(stderr, "produce to %s: %v", topic, inputErr)
	}
	if eof {
		if err := <-readErr; err != nil {
			return fail(stderr, "produce to %s: reading stdin: %v", topic, err)
		}
	}
	return 0
}

// producer counts what the client's promises report.
type producer struct {
	cl    *kgo.Client
	topic string
	lines int   // lines read; owned by the reading loop
	sent  int64 // records handed to the client; owned by the reading loop

	mu     sync.Mutex // guards the fields below, written by promises
	ok     int64
	failed int64
	first  *produceErr
}

type produceErr struct {
	line int
	err  error
}

func (p *producer) produce(ctx context.Context, r *kgo.Record, line int) {
	p.sent++
	p.cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if err == nil {
			p.ok++
			return
		}
		p.failed++
		if p.first == nil {
			p.first = &produceErr{line, err}
		}
	})
}

func (p *producer) failure() *produceErr {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.first
}

func (p *producer) result() (ok, failed int64, first *produceErr) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ok, p.failed, p.first
}

// readLines sends each line of in, without its line ending, until EOF or
// ctx is done. A read blocked on a terminal cannot be interrupted, so the
// reading runs in its own goroutine; the error channel yields the read
// error, if any, once lines is closed.
func readLines(ctx context.Context, in io.Reader) (<-chan []byte, <-chan error) {
	lines := make(chan []byte)
	errc := make(chan error, 1)
	go func() {
		defer close(errc)
		defer close(lines)
		br := bufio.NewReaderSize(in, 64<<10)
		for {
			line, err := br.ReadBytes('\n')
			if len(line) > 0 {
				line = bytes.TrimSuffix(line, []byte("\n"))
				line = bytes.TrimSuffix(line, []byte("\r"))
				select {
				case lines <- line:
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					errc <- err
				}
				return
			}
		}
	}()
	return lines, errc
}

// topicPartitions returns the partition count of an existing topic.
func topicPartitions(ctx context.Context, cl *kgo.Client, topic string) (int, error) {
	td, err := describeTopic(ctx, kadm.NewClient(cl), topic)
	if err != nil {
		return 0, err
	}
	if len(td.Partitions) == 0 {
		return 0, fmt.Errorf("topic %q has no partitions", topic)
	}
	return len(td.Partitions), nil
}
