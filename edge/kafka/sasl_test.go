package kafka_test

import (
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spoolmq/spool/edge/config"
	"github.com/spoolmq/spool/edge/internal/testpki"
	"github.com/spoolmq/spool/edge/kafka"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"golang.org/x/crypto/bcrypt"
)

// saslUsers makes the user "edge" with password "s3cret" for PLAIN and
// both SCRAM mechanisms.
func saslUsers(t *testing.T) map[string]kafka.Credentials {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	c := kafka.Credentials{BcryptHash: string(hash), SCRAM: map[string]config.SCRAMCredential{}}
	for _, mech := range []string{"SCRAM-SHA-256", "SCRAM-SHA-512"} {
		s, err := config.MakeSCRAM(mech, "s3cret")
		if err != nil {
			t.Fatal(err)
		}
		sc, err := config.ParseSCRAM(s)
		if err != nil {
			t.Fatal(err)
		}
		c.SCRAM[mech] = sc
	}
	return map[string]kafka.Credentials{"edge": c}
}

// produceOne produces one record with a fresh client using opts.
func produceOne(t *testing.T, addr string, opts ...kgo.Opt) error {
	t.Helper()
	c, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.AllowAutoTopicCreation()}, opts...)...)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.ProduceSync(ctx(t), &kgo.Record{Topic: "secure", Value: []byte("v")}).FirstErr()
}

// metadataOnce sends one metadata request (no retries) and returns its error.
func metadataOnce(t *testing.T, addr string, opts ...kgo.Opt) error {
	t.Helper()
	c, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.RequestRetries(0)}, opts...)...)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = kmsg.NewPtrMetadataRequest().RequestWith(ctx(t), c)
	return err
}

// TestSASL: with SASL required, PLAIN and both SCRAM mechanisms log in;
// a wrong password, an unknown user and a client without SASL are
// refused and counted, and store nothing.
func TestSASL(t *testing.T) {
	tb := startBroker(t, kafka.Options{RequireSASL: true, Users: saslUsers(t), AutoCreateTopics: true})
	for name, m := range map[string]sasl.Mechanism{
		"plain":  plain.Auth{User: "edge", Pass: "s3cret"}.AsMechanism(),
		"sha256": scram.Auth{User: "edge", Pass: "s3cret"}.AsSha256Mechanism(),
		"sha512": scram.Auth{User: "edge", Pass: "s3cret"}.AsSha512Mechanism(),
	} {
		if err := produceOne(t, tb.addr(), kgo.SASL(m)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, m := range map[string]sasl.Mechanism{
		"plain wrong password": plain.Auth{User: "edge", Pass: "guess"}.AsMechanism(),
		"scram wrong password": scram.Auth{User: "edge", Pass: "guess"}.AsSha256Mechanism(),
		"scram unknown user":   scram.Auth{User: "nobody", Pass: "s3cret"}.AsSha512Mechanism(),
		"plain unknown user":   plain.Auth{User: "nobody", Pass: "s3cret"}.AsMechanism(),
	} {
		err := metadataOnce(t, tb.addr(), kgo.SASL(m))
		if !errors.Is(err, kerr.SaslAuthenticationFailed) {
			t.Errorf("%s: %v, want SASL_AUTHENTICATION_FAILED", name, err)
		}
	}
	if err := metadataOnce(t, tb.addr()); err == nil || !strings.Contains(err.Error(), "SASL") {
		t.Errorf("no SASL: %v, want a closed connection", err)
	}
	if got := tb.S.Stats().AuthFailures.Load(); got < 5 {
		t.Errorf("%d authentication failures counted, want at least 5", got)
	}
	top, err := tb.Log.Topic("secure")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := top.Partition(0)
	if hw := p.HighWatermark(); hw != 3 {
		t.Errorf("%d records stored, want the 3 of the authenticated clients", hw)
	}
}

// TestKcatSASLAndTLS: librdkafka over TLS with SCRAM-SHA-512 (SASL_SSL)
// produces and consumes.
func TestKcatSASLAndTLS(t *testing.T) {
	ca := testpki.NewCA(t, "spool-test")
	tb := startBroker(t, kafka.Options{TLSAddr: "127.0.0.1:0", TLS: ca.ServerConfig(t), RequireSASL: true, Users: saslUsers(t), AutoCreateTopics: true})
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	tlsAddr := tb.S.ListenerAddr("tls").String()
	args := []string{"-b", tlsAddr, "-X", "security.protocol=SASL_SSL", "-X", "ssl.ca.location=" + caFile,
		"-X", "sasl.mechanisms=SCRAM-SHA-512", "-X", "sasl.username=edge", "-X", "sasl.password=s3cret"}
	kcatRaw(t, "over tls\n", append(args, "-P", "-t", "secure")...)
	out := kcatRaw(t, "", append(args, "-C", "-t", "secure", "-o", "beginning", "-e", "-f", `%s\n`)...)
	if strings.TrimSpace(out) != "over tls" {
		t.Fatalf("consumed %q", out)
	}

	// kgo over TLS with PLAIN; the metadata it gets names the TLS listener.
	c, err := kgo.NewClient(kgo.SeedBrokers(tlsAddr), kgo.DialTLSConfig(&tls.Config{RootCAs: ca.Pool()}),
		kgo.SASL(plain.Auth{User: "edge", Pass: "s3cret"}.AsMechanism()), kgo.ConsumeTopics("secure"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if rs := consumeN(t, c, 1); string(rs[0].Value) != "over tls" {
		t.Fatalf("kgo consumed %q", rs[0].Value)
	}
}
