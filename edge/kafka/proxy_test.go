package kafka_test

import (
	"encoding/binary"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// cuttingProxy forwards connections to target, but for the next budget
// produce requests it drops the broker's answer and closes the
// connection: the client sees its request fail although the broker
// stored the records, and must retry.
type cuttingProxy struct {
	ln     net.Listener
	target atomic.Pointer[string] // the broker's address
	budget atomic.Int32           // produce answers still to drop
	cut    atomic.Int32
	wg     sync.WaitGroup
}

func newCuttingProxy(t *testing.T) *cuttingProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	px := &cuttingProxy{ln: ln}
	px.wg.Add(1)
	go px.accept()
	t.Cleanup(func() { ln.Close(); px.wg.Wait() })
	return px
}

func (px *cuttingProxy) addr() string { return px.ln.Addr().String() }
func (px *cuttingProxy) cuts() int    { return int(px.cut.Load()) }

func (px *cuttingProxy) accept() {
	defer px.wg.Done()
	for {
		c, err := px.ln.Accept()
		if err != nil {
			return
		}
		px.wg.Add(1)
		go px.serve(c)
	}
}

// readFrame reads one size-prefixed Kafka frame.
func readFrame(r io.Reader) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return nil, err
	}
	f := make([]byte, 4+binary.BigEndian.Uint32(size[:]))
	copy(f, size[:])
	_, err := io.ReadFull(r, f[4:])
	return f, err
}

func (px *cuttingProxy) serve(c net.Conn) {
	defer px.wg.Done()
	defer c.Close()
	s, err := net.Dial("tcp", *px.target.Load())
	if err != nil {
		return
	}
	defer s.Close()
	// The broker answers in request order: the keys of the requests sent,
	// in order, say what each answer is.
	keys := make(chan int16, 1024)
	go func() {
		defer s.Close()
		for {
			f, err := readFrame(c)
			if err != nil || len(f) < 6 {
				return
			}
			key := int16(binary.BigEndian.Uint16(f[4:]))
			acks := int16(1)
			if key == kmsg.Produce.Int16() {
				acks = produceAcks(f)
			}
			if acks != 0 {
				keys <- key
			}
			if _, err := s.Write(f); err != nil {
				return
			}
		}
	}()
	for {
		f, err := readFrame(s)
		if err != nil {
			return
		}
		if <-keys == kmsg.Produce.Int16() && px.budget.Add(-1) >= 0 {
			px.cut.Add(1)
			return
		}
		if _, err := c.Write(f); err != nil {
			return
		}
	}
}

// produceAcks decodes a produce request's acks: with acks=0 no answer comes.
func produceAcks(f []byte) int16 {
	var h struct{ version int16 }
	h.version = int16(binary.BigEndian.Uint16(f[6:]))
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(h.version)
	// Header: size, key, version, correlation id, client id (nullable string).
	pos := 12
	if n := int16(binary.BigEndian.Uint16(f[pos:])); n > 0 {
		pos += int(n)
	}
	pos += 2
	if req.IsFlexible() {
		pos++ // empty header tags
	}
	if err := req.ReadFrom(f[pos:]); err != nil {
		return 1
	}
	return req.Acks
}
