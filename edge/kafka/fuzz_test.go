package kafka

import (
	"encoding/binary"
	"net"
	"testing"

	spoollog "github.com/spoolmq/spool/log"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// frameOf encodes req at version v as the bytes of a request frame after
// its size: header, then body.
func frameOf(req kmsg.Request, v int16) []byte {
	req.SetVersion(v)
	b := binary.BigEndian.AppendUint16(nil, uint16(req.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(v))
	b = binary.BigEndian.AppendUint32(b, 7)
	b = binary.BigEndian.AppendUint16(b, 4)
	b = append(b, "fuzz"...)
	if req.IsFlexible() {
		b = append(b, 0)
	}
	return req.AppendTo(b)
}

// FuzzRequest decodes arbitrary request frames and, when they decode,
// handles them against a real log and encodes the answer: nothing may
// panic, whatever the bytes. The server's context is over, so that long
// polls and joins answer at once.
func FuzzRequest(f *testing.F) {
	l, err := spoollog.Open(f.TempDir(), spoollog.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { l.Close() })
	cfg := spoollog.DefaultTopicConfig()
	cfg.Partitions, cfg.Sync = 2, spoollog.SyncNever
	if _, err := l.CreateTopic("t", cfg); err != nil {
		f.Fatal(err)
	}
	s, err := New(Options{Log: l, AutoCreateTopics: true})
	if err != nil {
		f.Fatal(err)
	}
	s.cancel()
	c1, c2 := net.Pipe()
	f.Cleanup(func() { c1.Close(); c2.Close() })
	lis := &listener{name: "plain", host: "127.0.0.1", port: 9092}

	batch, _ := spoollog.AppendBatch(nil, []spoollog.Record{{Key: []byte("k"), Value: []byte("v")}}, spoollog.DefaultBatchOptions)
	produce := kmsg.NewPtrProduceRequest()
	produce.Acks = -1
	produce.Topics = []kmsg.ProduceRequestTopic{{Topic: "t", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: batch}}}}
	fetch := kmsg.NewPtrFetchRequest()
	fetch.MaxBytes = 1 << 20
	fetch.Topics = []kmsg.FetchRequestTopic{{Topic: "t", Partitions: []kmsg.FetchRequestTopicPartition{{Partition: 0, PartitionMaxBytes: 1 << 20}}}}
	join := kmsg.NewPtrJoinGroupRequest()
	join.Group, join.SessionTimeoutMillis, join.RebalanceTimeoutMillis, join.ProtocolType = "g", 10000, 10000, "consumer"
	join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{0, 0}}}
	commit := kmsg.NewPtrOffsetCommitRequest()
	commit.Group, commit.Generation = "g", -1
	commit.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 1, Offset: 5}}}}
	for _, seed := range []struct {
		req kmsg.Request
		v   int16
	}{
		{kmsg.NewPtrApiVersionsRequest(), 3}, {kmsg.NewPtrMetadataRequest(), 12}, {kmsg.NewPtrMetadataRequest(), 1},
		{produce, 9}, {produce, 3}, {fetch, 12}, {fetch, 4}, {kmsg.NewPtrListOffsetsRequest(), 7},
		{join, 9}, {commit, 8}, {kmsg.NewPtrOffsetFetchRequest(), 8}, {kmsg.NewPtrCreateTopicsRequest(), 7},
		{kmsg.NewPtrDescribeConfigsRequest(), 4}, {kmsg.NewPtrSASLHandshakeRequest(), 1}, {kmsg.NewPtrInitProducerIDRequest(), 4},
	} {
		f.Add(frameOf(seed.req, seed.v))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		req, err := parseRequest(frame)
		if err != nil {
			return
		}
		cs := &connState{c: c1, lis: lis, authed: true}
		if resp := s.handle(cs, req); resp != nil {
			_ = appendResponse(nil, req, resp)
		}
	})
}
