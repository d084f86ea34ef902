package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"slices"
	"time"

	spoollog "github.com/spoolmq/spool/log"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// wireInflight is how many produce requests the wire client keeps in
// flight on its connection, as kgo and librdkafka do (their default of 5).
const wireInflight = 5

// wireProduceVersion is the Produce version the wire client speaks: the
// newest before topic ids, as current clients negotiate with Spool.
const wireProduceVersion = 11

// The byte positions of a RecordBatch v2's fields the wire client patches.
const (
	batchCRCAt      = 17
	batchAttrsAt    = 21 // the CRC covers everything from here
	batchSequenceAt = 53
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// benchKafkaWire produces through the listener with a minimal client: the
// engine phase's batch, encoded once, sent in kmsg-encoded Produce requests
// on one connection with wireInflight of them in flight, idempotent (a
// producer id from InitProducerId, each batch's sequence and CRC patched).
//
// It isolates what the listener costs. The produce phase runs kgo's
// producer, whose per-record work (records, promises, batch encoding) runs
// on the same two cores as the broker and dominates there; this phase
// leaves the broker's side alone: reading frames, decoding, sequence
// checks, appends, answers.
func benchKafkaWire(ctx context.Context, addr, topic string, bp benchKafkaParams) (benchKafkaResult, error) {
	keys, values := benchValues(1, bp.size)
	perRecord := bp.size + len(keys[0]) + 12
	n := max(1, (bp.batchBytes-61)/perRecord)
	recs := make([]spoollog.Record, n)
	for i := range recs {
		recs[i] = spoollog.Record{Key: keys[0], Value: values[0], Timestamp: time.Now().UnixMilli()}
	}

	admin, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return benchKafkaResult{}, err
	}
	defer admin.Close()
	idResp, err := kmsg.NewPtrInitProducerIDRequest().RequestWith(ctx, admin)
	if err != nil {
		return benchKafkaResult{}, fmt.Errorf("InitProducerId: %w", err)
	}
	if err := kerr.ErrorForCode(idResp.ErrorCode); err != nil {
		return benchKafkaResult{}, fmt.Errorf("InitProducerId: %w", err)
	}
	opts := spoollog.DefaultBatchOptions
	opts.ProducerID, opts.ProducerEpoch, opts.BaseSequence = idResp.ProducerID, idResp.ProducerEpoch, 0
	batch, err := spoollog.AppendBatch(nil, recs, opts)
	if err != nil {
		return benchKafkaResult{}, err
	}

	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return benchKafkaResult{}, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	requests := (bp.records + int64(n) - 1) / int64(n)
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(wireProduceVersion)
	req.Acks, req.TimeoutMillis = -1, 30_000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rt.Partitions = append(rt.Partitions, kmsg.NewProduceRequestTopicPartition())
	req.Topics = append(req.Topics, rt)
	format := kmsg.NewRequestFormatter(kmsg.FormatterClientID("spool-bench"))
	w := bufio.NewWriterSize(conn, 64<<10)
	r := bufio.NewReaderSize(conn, 64<<10)
	var frame, answer []byte
	// One goroutine sends and reads: the first wireInflight requests go
	// out together, then each answer read lets the next request out.
	send := func(i int64) error {
		// Requests go round the partitions; each partition counts its
		// own sequence from 0 under the one producer id.
		rp := &req.Topics[0].Partitions[0]
		rp.Partition = int32(i % int64(bp.partitions))
		seq := (i / int64(bp.partitions)) * int64(n)
		binary.BigEndian.PutUint32(batch[batchSequenceAt:], uint32(seq))
		binary.BigEndian.PutUint32(batch[batchCRCAt:], crc32.Checksum(batch[batchAttrsAt:], castagnoli))
		rp.Records = batch
		frame = format.AppendRequest(frame[:0], req, int32(i))
		_, err := w.Write(frame)
		return err
	}
	start := time.Now()
	sent := int64(0)
	for got := int64(0); got < requests; got++ {
		for sent < requests && sent-got < wireInflight {
			if err := send(sent); err != nil {
				return benchKafkaResult{}, err
			}
			sent++
		}
		if err := w.Flush(); err != nil {
			return benchKafkaResult{}, err
		}
		var err error
		if answer, err = readProduceAnswer(r, answer, int32(got)); err != nil {
			return benchKafkaResult{}, err
		}
	}
	elapsed := time.Since(start)
	total := requests * int64(n)
	return benchKafkaResult{Phase: "produce_wire", Records: total, Size: bp.size, BatchBytes: bp.batchBytes,
		Partitions: bp.partitions, Sync: string(bp.sync), Seconds: elapsed.Seconds(),
		RecordsPerSec: float64(total) / elapsed.Seconds(),
		MBPerSec:      float64(total) * float64(bp.size+len(keys[0])) / elapsed.Seconds() / 1e6}, nil
}

// readProduceAnswer reads the answer to request corr into buf and fails
// on a refused batch.
func readProduceAnswer(r *bufio.Reader, buf []byte, corr int32) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return buf, fmt.Errorf("answer %d: %w", corr, err)
	}
	n := binary.BigEndian.Uint32(size[:])
	if n < 5 || n > 1<<20 {
		return buf, fmt.Errorf("answer %d: bad length %d", corr, n)
	}
	buf = slices.Grow(buf[:0], int(n))[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return buf, fmt.Errorf("answer %d: %w", corr, err)
	}
	if got := int32(binary.BigEndian.Uint32(buf)); got != corr {
		return buf, fmt.Errorf("answer %d: correlation id %d", corr, got)
	}
	resp := kmsg.NewPtrProduceResponse()
	resp.SetVersion(wireProduceVersion)
	// Flexible versions put an empty tag buffer after the correlation id.
	if err := resp.ReadFrom(buf[5:]); err != nil {
		return buf, fmt.Errorf("answer %d: %w", corr, err)
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return buf, fmt.Errorf("answer %d: partition %d: %w", corr, p.Partition, err)
			}
		}
	}
	return buf, nil
}
