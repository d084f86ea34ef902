package kafka

import (
	"crypto/tls"
	"testing"
	"time"

	spoollog "github.com/spoolmq/spool/log"
)

// With a plain and a TLS listener, the plain one fails (closed under it,
// not by Close): Serve reports it at once, for edge.Run to shut down,
// while the TLS one still accepts.
func TestServeReportsOneFailingListener(t *testing.T) {
	l, err := spoollog.Open(t.TempDir(), spoollog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s, err := New(Options{Log: l, Addr: "127.0.0.1:0", TLSAddr: "127.0.0.1:0", TLS: &tls.Config{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	time.Sleep(100 * time.Millisecond)
	s.listeners[0].ln.Close() // the plain listener dies
	select {
	case err := <-served:
		if err == nil {
			t.Fatal("Serve returned nil after the plain listener failed")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Serve did not report the failed plain listener within 3s (it waits for the TLS listener too)")
	}
}
