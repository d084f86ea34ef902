package mqtt_test

// The TLS listener: server certificates, plaintext refused on the TLS
// port, and client certificates when a client CA is configured.

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/spoolmq/spool/edge/config"
	"github.com/spoolmq/spool/edge/internal/testpki"
)

// testCA is a certificate authority made for one test.
type testCA struct{ *testpki.CA }

func newTestCA(t *testing.T, name string) *testCA { return &testCA{testpki.NewCA(t, name)} }

func (ca *testCA) issue(t *testing.T, cn string, server bool) (certPEM, keyPEM []byte) {
	return ca.Issue(t, cn, server)
}

func (ca *testCA) pool() *x509.CertPool { return ca.Pool() }

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// tlsSetup serves TLS with a certificate from ca (and plain TCP), asking
// for client certificates signed by clientCA when it is not nil.
func tlsSetup(t *testing.T, ca, clientCA *testCA) setup {
	dir := t.TempDir()
	certPEM, keyPEM := ca.issue(t, "spool-test", true)
	tl := config.TLSListener{
		Addr: "127.0.0.1:0",
		Cert: writeFile(t, dir, "server.pem", certPEM),
		Key:  writeFile(t, dir, "server.key", keyPEM),
	}
	if clientCA != nil {
		tl.ClientCA = writeFile(t, dir, "client-ca.pem", clientCA.PEM)
	}
	return setup{mqtt: func(m *config.MQTTConfig) { m.TLS = tl }}
}

func TestTLS(t *testing.T) {
	ca := newTestCA(t, "spool test CA")
	tb := startBroker(t, tlsSetup(t, ca, nil))
	tlsAddr := tb.B.Addr("tls")
	if tlsAddr == nil {
		t.Fatal(`Addr("tls") is nil with a TLS listener configured`)
	}

	c := pahoConnect(t, pahoOptions("ssl://"+tlsAddr.String(), "tls-client").
		SetTLSConfig(&tls.Config{RootCAs: ca.pool(), MinVersion: tls.VersionTLS12}))
	if err := waitToken(t, c.Publish("secure/a", 1, false, "over-tls")); err != nil {
		t.Fatalf("publish over TLS: %v", err)
	}
	if got := values(tb.records("mqtt", 0)); !slices.Equal(got, []string{"over-tls"}) {
		t.Fatalf("log holds %q", got)
	}

	// Plain MQTT on the TLS port is refused.
	if _, err := pahoTry(t, pahoOptions("tcp://"+tlsAddr.String(), "plain-on-tls")); err == nil {
		t.Errorf("a plaintext client connected to the TLS listener")
	}
	// A client that does not trust the server's CA does not connect.
	other := newTestCA(t, "other CA")
	if _, err := pahoTry(t, pahoOptions("ssl://"+tlsAddr.String(), "untrusting").
		SetTLSConfig(&tls.Config{RootCAs: other.pool()})); err == nil {
		t.Errorf("a client connected without trusting the server certificate")
	}
	if got := tb.count("mqtt"); got != 1 {
		t.Errorf("log holds %d records, want 1", got)
	}
}

func TestTLSClientCertificates(t *testing.T) {
	ca := newTestCA(t, "spool test CA")
	clientCA := newTestCA(t, "device CA")
	tb := startBroker(t, tlsSetup(t, ca, clientCA))
	url := "ssl://" + tb.B.Addr("tls").String()

	// No client certificate: refused.
	if _, err := pahoTry(t, pahoOptions(url, "no-cert").
		SetTLSConfig(&tls.Config{RootCAs: ca.pool()})); err == nil {
		t.Errorf("a client without a certificate connected")
	}
	// A certificate from another CA: refused.
	rogue := newTestCA(t, "rogue CA")
	rc, rk := rogue.issue(t, "device-x", false)
	rogueCert, err := tls.X509KeyPair(rc, rk)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pahoTry(t, pahoOptions(url, "rogue-cert").
		SetTLSConfig(&tls.Config{RootCAs: ca.pool(), Certificates: []tls.Certificate{rogueCert}})); err == nil {
		t.Errorf("a client with a certificate from an unknown CA connected")
	}

	// A certificate signed by the client CA: accepted.
	cc, ck := clientCA.issue(t, "device-1", false)
	cert, err := tls.X509KeyPair(cc, ck)
	if err != nil {
		t.Fatal(err)
	}
	c := pahoConnect(t, pahoOptions(url, "device-1").
		SetTLSConfig(&tls.Config{RootCAs: ca.pool(), Certificates: []tls.Certificate{cert}}))
	if err := waitToken(t, c.Publish("secure/b", 1, false, "with-cert")); err != nil {
		t.Fatalf("publish with a client certificate: %v", err)
	}
	if got := values(tb.records("mqtt", 0)); !slices.Equal(got, []string{"with-cert"}) {
		t.Fatalf("log holds %q", got)
	}
}
