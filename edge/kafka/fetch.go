package kafka

import (
	"reflect"
	"time"

	spoollog "github.com/spoolmq/spool/log"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// maxFetchWait caps a client's MaxWaitMillis, so that a long poll always
// ends and the connection can serve its next request.
const maxFetchWait = 30 * time.Second

// fetch returns stored batches as they are on disk. It waits up to
// MaxWaitMillis for MinBytes to be available, waking when any requested
// partition gets new durable data. Like Kafka, it returns at least one
// whole batch of the first partition with data even when the batch is
// larger than the limits, so that a consumer always makes progress;
// every later partition stays within MaxBytes.
//
// Spool keeps no fetch sessions: it answers session id 0, which tells the
// client to send full requests.
func (s *Server) fetch(_ *connState, req *request) kmsg.Response {
	r := req.body.(*kmsg.FetchRequest)
	wait := min(time.Duration(max(r.MaxWaitMillis, 0))*time.Millisecond, maxFetchWait)
	var deadline <-chan time.Time
	for {
		var notify []<-chan struct{}
		if wait > 0 {
			notify = make([]<-chan struct{}, 0, 4)
		}
		resp, n := s.readFetch(r, &notify)
		if n >= int(r.MinBytes) || wait <= 0 || n < 0 {
			return resp
		}
		if deadline == nil {
			t := time.NewTimer(wait)
			defer t.Stop()
			deadline = t.C
		}
		if !waitAny(notify, deadline, s.ctx.Done()) {
			// Timed out or shutting down: answer with what there is now.
			resp, _ = s.readFetch(r, nil)
			return resp
		}
	}
}

// readFetch reads every requested partition once. n is the number of
// record bytes returned, or -1 when an error is worth answering at once.
// With notify set, it collects each partition's notification channel,
// taken before its read, so that no append between the read and the wait
// is missed.
func (s *Server) readFetch(r *kmsg.FetchRequest, notify *[]<-chan struct{}) (*kmsg.FetchResponse, int) {
	resp := r.ResponseKind().(*kmsg.FetchResponse)
	budget := int(r.MaxBytes)
	if budget <= 0 {
		budget = 50 << 20 // fetch.max.bytes' default
	}
	n, urgent := 0, false
	for _, rt := range r.Topics {
		st := kmsg.NewFetchResponseTopic()
		st.Topic = rt.Topic
		t, terr := s.log.Topic(rt.Topic)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewFetchResponseTopicPartition()
			sp.Partition = rp.Partition
			// Empty, not null: librdkafka refuses a null record set (size -1).
			sp.RecordBatches = []byte{}
			sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = -1, -1, -1
			var p *spoollog.Partition
			var refused bool // zstd for a Fetch below v10
			err := terr
			if err == nil {
				p, err = t.Partition(rp.Partition)
			}
			if err == nil {
				if notify != nil && *notify != nil {
					*notify = append(*notify, p.Notify())
				}
				limit := min(int(rp.PartitionMaxBytes), budget)
				if n == 0 {
					limit = max(limit, 1) // the first batch with data, whatever its size
				}
				committed := r.IsolationLevel == 1
				if limit > 0 && rp.FetchOffset != p.HighWatermark() {
					var data []byte
					if committed {
						// Up to the last stable offset, with the aborted
						// transactions the consumer is to skip.
						data, err = p.ReadCommitted(rp.FetchOffset, limit)
						if data == nil {
							// Nothing below the LSO (a consumer caught up
							// with a pending transaction): an empty record
							// set, not a null one, which librdkafka fails to
							// parse, dropping the whole response
							// (TestTxnRdkafkaProducerReadCommitted).
							data = []byte{}
						}
					} else {
						data, err = p.Read(rp.FetchOffset, limit)
					}
					if err == nil && r.Version < 10 {
						data, refused = beforeZstd(data)
					}
					if err == nil && !refused && (n == 0 || len(data) <= budget) {
						sp.RecordBatches = data
						n += len(data)
						budget -= len(data)
					}
					if committed && err == nil && len(sp.RecordBatches) > 0 {
						for _, a := range p.AbortedTxns(rp.FetchOffset, p.LastStableOffset()) {
							sp.AbortedTransactions = append(sp.AbortedTransactions,
								kmsg.FetchResponseTopicPartitionAbortedTransaction{ProducerID: a.ProducerID, FirstOffset: a.First})
						}
					}
				}
				// Taken after the read, so that the high watermark answered
				// covers every batch returned (appends go on meanwhile).
				sp.HighWatermark = p.HighWatermark()
				sp.LastStableOffset, sp.LogStartOffset = p.LastStableOffset(), p.LogStartOffset()
				if refused {
					// As Kafka's FetchResponse.partitionResponse: no records, no offsets.
					sp.ErrorCode = kerr.UnsupportedCompressionType.Code
					sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = -1, -1, -1
					urgent = true
				}
			}
			if err != nil {
				sp.ErrorCode = errorCode(err)
				urgent = true
				if sp.ErrorCode == kerr.KafkaStorageError.Code {
					s.lg.Error("fetch failed", "topic", rt.Topic, "partition", rp.Partition, "offset", rp.FetchOffset, "error", err)
				}
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	if urgent {
		// Kafka answers at once when a partition has an error, with the
		// data of the others, whatever MinBytes says.
		return resp, -1
	}
	return resp, n
}

// beforeZstd keeps the batches of data ahead of its first zstd one, which
// a client fetching below v10 cannot decode (KIP-110); refused when that
// is the first batch. Kafka refuses these fetches for a topic it
// compresses with zstd itself (KafkaApis.maybeConvertFetchedData); Spool
// keeps zstd batches among others (a producer's, or its own merges), so it
// looks at each. Cutting before a later one is what Kafka's down-conversion
// does: the consumer reads up to it, and its fetch from there gets the
// error (LazyDownConversionRecordsSend).
func beforeZstd(data []byte) (kept []byte, refused bool) {
	switch i := zstdAt(data); {
	case i < 0:
		return data, false
	case i == 0:
		return nil, true
	default:
		return data[:i], false
	}
}

// waitAny waits until one of the channels in chs is closed (true), or
// deadline or done (false).
func waitAny(chs []<-chan struct{}, deadline <-chan time.Time, done <-chan struct{}) bool {
	if len(chs) == 1 {
		select {
		case <-chs[0]:
			return true
		case <-deadline:
		case <-done:
		}
		return false
	}
	cases := make([]reflect.SelectCase, 0, len(chs)+2)
	cases = append(cases,
		reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(deadline)},
		reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(done)})
	for _, c := range chs {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(c)})
	}
	i, _, _ := reflect.Select(cases)
	return i >= 2
}
