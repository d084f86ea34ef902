package kafka_test

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/spoolmq/spool/edge/kafka"
	spoollog "github.com/spoolmq/spool/log"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// rawConn speaks the Kafka framing over a bare connection, so that tests
// can send what no client library would.
type rawConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(testTimeout))
	return &rawConn{t: t, c: c, r: bufio.NewReader(c)}
}

// frame sends a size-prefixed frame.
func (rc *rawConn) frame(body []byte) {
	rc.t.Helper()
	if _, err := rc.c.Write(binary.BigEndian.AppendUint32(nil, uint32(len(body)))); err != nil {
		rc.t.Fatal(err)
	}
	if _, err := rc.c.Write(body); err != nil {
		rc.t.Fatal(err)
	}
}

// request sends req at version v with correlation id corr.
func (rc *rawConn) request(req kmsg.Request, v int16, corr int32) {
	rc.t.Helper()
	req.SetVersion(v)
	b := binary.BigEndian.AppendUint16(nil, uint16(req.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(v))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	b = binary.BigEndian.AppendUint16(b, 4)
	b = append(b, "test"...)
	if req.IsFlexible() {
		b = append(b, 0)
	}
	rc.frame(req.AppendTo(b))
}

// response reads one answer into resp and checks its correlation id.
func (rc *rawConn) response(resp kmsg.Response, v int16, corr int32) {
	rc.t.Helper()
	var size [4]byte
	if _, err := io.ReadFull(rc.r, size[:]); err != nil {
		rc.t.Fatalf("read response: %v", err)
	}
	b := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(rc.r, b); err != nil {
		rc.t.Fatal(err)
	}
	if got := int32(binary.BigEndian.Uint32(b)); got != corr {
		rc.t.Fatalf("correlation id %d, want %d", got, corr)
	}
	b = b[4:]
	resp.SetVersion(v)
	if resp.IsFlexible() && resp.Key() != kmsg.ApiVersions.Int16() {
		b = b[1:] // header tags
	}
	if err := resp.ReadFrom(b); err != nil {
		rc.t.Fatalf("decode %T: %v", resp, err)
	}
}

// closed reports whether the broker closed the connection.
func (rc *rawConn) closed() bool {
	_ = rc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := rc.r.ReadByte()
	return errors.Is(err, io.EOF)
}

// TestBadFrames: frames that cannot be parsed close the connection and
// are counted; the broker keeps serving everyone else.
func TestBadFrames(t *testing.T) {
	tb := startBroker(t, kafka.Options{MaxRequestSize: 1 << 20})
	cases := map[string][]byte{
		"oversized":         binary.BigEndian.AppendUint32(nil, 2<<20),
		"negative size":     binary.BigEndian.AppendUint32(nil, 0xffffffff),
		"too short":         {0, 0, 0, 3, 0, 0, 0},
		"unknown key":       append(binary.BigEndian.AppendUint32(nil, 10), 0x7f, 0x00, 0, 0, 0, 0, 0, 1, 0, 0),
		"truncated body":    append(binary.BigEndian.AppendUint32(nil, 12), 0, 3, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0),
		"body cut by close": append(binary.BigEndian.AppendUint32(nil, 1000), 0, 3, 0, 1),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			rc := dialRaw(t, tb.addr())
			if _, err := rc.c.Write(b); err != nil {
				t.Fatal(err)
			}
			if name == "body cut by close" {
				rc.c.(*net.TCPConn).CloseWrite()
			}
			if !rc.closed() {
				t.Fatal("the connection stayed open")
			}
		})
	}
	if got := tb.S.Stats().BadRequests.Load(); got != int64(len(cases)) {
		t.Errorf("%d bad requests counted, want %d", got, len(cases))
	}
	// Still serving.
	tb.createTopic("after", 1)
}

// TestUnsupportedRequests: a request Spool does not serve, or a version
// it does not speak, is answered with UNSUPPORTED_VERSION on a connection
// that stays usable; ApiVersions at a future version answers v0 (KIP-511).
func TestUnsupportedRequests(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	rc := dialRaw(t, tb.addr())

	rc.request(kmsg.NewPtrDescribeACLsRequest(), 1, 1)
	acl := kmsg.NewPtrDescribeACLsResponse()
	rc.response(acl, 1, 1)
	if acl.ErrorCode != kerr.UnsupportedVersion.Code {
		t.Errorf("DescribeACLs: error %d, want UNSUPPORTED_VERSION", acl.ErrorCode)
	}

	rc.request(kmsg.NewPtrProduceRequest(), 2, 2) // below RecordBatch v2
	rc.response(kmsg.NewPtrProduceResponse(), 2, 2)

	// A newer ApiVersions than Spool speaks is answered at v0 with the
	// versions Spool does speak.
	rc.request(kmsg.NewPtrApiVersionsRequest(), 4, 3)
	av := kmsg.NewPtrApiVersionsResponse()
	rc.response(av, 0, 3)
	if av.ErrorCode != kerr.UnsupportedVersion.Code || len(av.ApiKeys) < 10 {
		t.Errorf("ApiVersions v4: error %d, %d keys", av.ErrorCode, len(av.ApiKeys))
	}
	rc.request(kmsg.NewPtrApiVersionsRequest(), 3, 5)
	av = kmsg.NewPtrApiVersionsResponse()
	rc.response(av, 3, 5)
	if av.ErrorCode != 0 || len(av.ApiKeys) < 10 {
		t.Errorf("ApiVersions v3: error %d, %d keys", av.ErrorCode, len(av.ApiKeys))
	}

	rc.request(kmsg.NewPtrMetadataRequest(), 12, 4)
	md := kmsg.NewPtrMetadataResponse()
	rc.response(md, 12, 4)
	if len(md.Brokers) != 1 || md.Brokers[0].NodeID != 0 {
		t.Errorf("metadata after unsupported requests: %+v", md.Brokers)
	}
}

// TestProduceBadBatches: a corrupt batch, an old message format and a
// batch over max.message.bytes are refused with Kafka's errors; nothing is
// stored.
func TestProduceBadBatches(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	tb.createTopic("bad", 1)
	c := tb.client()
	good, err := spoollog.AppendBatch(nil, []spoollog.Record{{Value: []byte("v")}}, spoollog.DefaultBatchOptions)
	if err != nil {
		t.Fatal(err)
	}
	corrupt := append([]byte(nil), good...)
	corrupt[len(corrupt)-1] ^= 0xff
	oldMagic := append([]byte(nil), good...)
	oldMagic[16] = 1
	big, err := spoollog.AppendBatch(nil, []spoollog.Record{{Value: make([]byte, 2<<20)}}, spoollog.DefaultBatchOptions)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		records []byte
		code    int16
	}{
		{"bad crc", corrupt, kerr.CorruptMessage.Code},
		{"magic 1", oldMagic, kerr.UnsupportedForMessageFormat.Code},
		{"truncated", good[:len(good)-3], kerr.CorruptMessage.Code},
		{"too large", big, kerr.MessageTooLarge.Code},
		{"empty", nil, kerr.InvalidRecord.Code},
	} {
		req := kmsg.NewPtrProduceRequest()
		req.Acks, req.TimeoutMillis = -1, 5000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = "bad"
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = tc.records
		rt.Partitions = []kmsg.ProduceRequestTopicPartition{rp}
		req.Topics = []kmsg.ProduceRequestTopic{rt}
		resp, err := req.RequestWith(ctx(t), c)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := resp.Topics[0].Partitions[0]; got.ErrorCode != tc.code || got.ErrorMessage == nil {
			t.Errorf("%s: error %v (%v), want %v", tc.name, kerr.ErrorForCode(got.ErrorCode), got.ErrorMessage, kerr.ErrorForCode(tc.code))
		}
	}
	top, _ := tb.Log.Topic("bad")
	p, _ := top.Partition(0)
	if hw := p.HighWatermark(); hw != 0 {
		t.Errorf("high watermark %d: a refused batch was stored", hw)
	}
}

// TestProduceDiskBudget: with the disk budget reached and on_full:
// reject, produce gets KAFKA_STORAGE_ERROR with a message (kgo retries
// it) and nothing is acknowledged or stored.
func TestProduceDiskBudget(t *testing.T) {
	tb := startBroker(t, kafka.Options{})
	tb.createTopic("full", 1)
	tb.close()
	// Reopen with a budget the next appends exceed.
	l, err := spoollog.Open(tb.dir, spoollog.Options{DiskBudget: 1})
	if err != nil {
		t.Fatal(err)
	}
	s, err := kafka.New(kafka.Options{Addr: "127.0.0.1:0", Log: l})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	defer func() { s.Close(); l.Close() }()
	c, err := kgo.NewClient(kgo.SeedBrokers(s.Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := rawProduce(t, c, "full", -1, -1, -1, 1)
	if got.ErrorCode != kerr.KafkaStorageError.Code || got.ErrorMessage == nil {
		t.Fatalf("produce at the budget: %v %v, want KAFKA_STORAGE_ERROR", kerr.ErrorForCode(got.ErrorCode), got.ErrorMessage)
	}
	// kgo retries a storage error until its delivery timeout: the record
	// is never reported as produced.
	kc, err := kgo.NewClient(kgo.SeedBrokers(s.Addr().String()), kgo.RecordDeliveryTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	if err := kc.ProduceSync(ctx(t), &kgo.Record{Topic: "full", Value: []byte("no room")}).FirstErr(); err == nil {
		t.Fatal("a produce at the disk budget succeeded")
	}
	top, _ := l.Topic("full")
	p, _ := top.Partition(0)
	if hw := p.HighWatermark(); hw != 0 {
		t.Errorf("high watermark %d after a refused produce", hw)
	}
}

// TestUnknownTopics: produce, fetch and list offsets of a topic or
// partition that does not exist answer UNKNOWN_TOPIC_OR_PARTITION; an
// invalid name asked in metadata answers INVALID_TOPIC_EXCEPTION and is
// not created.
func TestUnknownTopics(t *testing.T) {
	tb := startBroker(t, kafka.Options{AutoCreateTopics: true})
	tb.createTopic("known", 1)
	c := tb.client()
	if got := rawProduce(t, c, "nope", -1, -1, -1, 1); got.ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Errorf("produce to an unknown topic: %v", kerr.ErrorForCode(got.ErrorCode))
	}
	fetch := kmsg.NewPtrFetchRequest()
	fetch.MaxBytes = 1 << 20
	fetch.Topics = []kmsg.FetchRequestTopic{
		{Topic: "nope", Partitions: []kmsg.FetchRequestTopicPartition{{Partition: 0, PartitionMaxBytes: 1 << 20}}},
		{Topic: "known", Partitions: []kmsg.FetchRequestTopicPartition{{Partition: 5, PartitionMaxBytes: 1 << 20}}},
	}
	fr, err := fetch.RequestWith(ctx(t), c)
	if err != nil {
		t.Fatal(err)
	}
	for _, ft := range fr.Topics {
		if code := ft.Partitions[0].ErrorCode; code != kerr.UnknownTopicOrPartition.Code {
			t.Errorf("fetch %s: %v", ft.Topic, kerr.ErrorForCode(code))
		}
	}
	md := kmsg.NewPtrMetadataRequest()
	bad := "no/slashes"
	md.Topics = []kmsg.MetadataRequestTopic{{Topic: &bad}}
	md.AllowAutoTopicCreation = true
	mr, err := md.RequestWith(ctx(t), c)
	if err != nil {
		t.Fatal(err)
	}
	if code := mr.Topics[0].ErrorCode; code != kerr.InvalidTopicException.Code {
		t.Errorf("metadata of an invalid name: %v", kerr.ErrorForCode(code))
	}
	if got := tb.Log.Topics(); len(got) != 1 {
		t.Errorf("topics %v, want only known", got)
	}
}
