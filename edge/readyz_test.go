package edge

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/spoolmq/spool/edge/config"
)

// Run binds and serves HTTP first and only then starts the MQTT broker
// and the Kafka listener: /readyz answers 503 until they are bound too
// (they may still fail to start). The MQTT TLS certificate is a FIFO here,
// which holds broker.Start until the test writes it.
func TestReadyzNotBeforeListeners(t *testing.T) {
	dir := t.TempDir()
	cert := filepath.Join(dir, "cert.pem")
	if err := syscall.Mkfifo(cert, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	cfg := config.Default()
	cfg.Data = filepath.Join(dir, "data")
	cfg.MQTT.Addr = ""
	cfg.MQTT.TLS = config.TLSListener{Addr: "127.0.0.1:0", Cert: cert, Key: filepath.Join(dir, "key.pem")}
	cfg.Kafka.Addr = ""
	cfg.HTTP.Addr = "127.0.0.1:0"
	srv, err := Open(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, func() { close(ready) }) }()
	defer func() {
		// Release broker.Start: a cert that is not PEM makes Run fail and return.
		if f, err := os.OpenFile(cert, os.O_WRONLY, 0); err == nil {
			f.Write([]byte("not a certificate\n"))
			f.Close()
		}
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("Run did not return")
		}
	}()

	deadline := time.Now().Add(10 * time.Second)
	for srv.HTTPAddr() == nil {
		if time.Now().After(deadline) {
			t.Fatal("HTTP not listening after 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	resp, err := http.Get("http://" + srv.HTTPAddr().String() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	select {
	case <-ready:
		t.Fatal("Run called ready although the MQTT TLS listener cannot be bound yet")
	default:
	}
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz before the MQTT listener is bound (ready not yet called): %d %q, want 503", resp.StatusCode, body)
	}
}
