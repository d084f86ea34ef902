package main

// The Kafka-protocol subcommands (topic, produce, consume, group) talk to
// any Kafka cluster, Spool's own listener included, through franz-go. This
// file holds what they share: the connection flags, a client that fails
// fast when nothing answers, and flag parsing that accepts flags after the
// positional arguments.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

const (
	// defaultBrokers is where spool serve's Kafka listener binds by default.
	defaultBrokers = "127.0.0.1:9092"

	// maxDialTimeout bounds one TCP connect. A loopback or LAN broker
	// answers in milliseconds; kgo's own default of 10s would make a
	// black-holed address look like a hang.
	maxDialTimeout = 3 * time.Second

	// defaultKafkaTimeout is the budget of one request including its
	// retries, and of the first contact with the cluster.
	defaultKafkaTimeout = 15 * time.Second
)

// kafkaFlags are the connection flags of every Kafka-protocol subcommand.
type kafkaFlags struct {
	brokers string
	timeout time.Duration
	// SASL: the mechanism and user; the password comes from the
	// environment (SPOOL_KAFKA_PASSWORD), never from a flag that ps shows.
	mechanism, user string
	tls             bool
	tlsCA           string
}

func addKafkaFlags(fs *flag.FlagSet) *kafkaFlags {
	k := &kafkaFlags{}
	def := os.Getenv("SPOOL_BROKERS")
	if def == "" {
		def = defaultBrokers
	}
	fs.StringVar(&k.brokers, "brokers", def, "Kafka bootstrap brokers, host:port[,host:port] (env SPOOL_BROKERS)")
	fs.DurationVar(&k.timeout, "timeout", defaultKafkaTimeout, "how long a request may keep retrying before spool gives up")
	fs.StringVar(&k.mechanism, "sasl", "", "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (password in $SPOOL_KAFKA_PASSWORD)")
	fs.StringVar(&k.user, "user", os.Getenv("SPOOL_KAFKA_USER"), "SASL user name (env SPOOL_KAFKA_USER)")
	fs.BoolVar(&k.tls, "tls", false, "connect with TLS")
	fs.StringVar(&k.tlsCA, "tls-ca", "", "PEM file of the CA that signed the brokers' certificates (implies --tls; default: the system's)")
	return k
}

// security returns the client options for --sasl, --tls and --tls-ca.
func (k *kafkaFlags) security() ([]kgo.Opt, error) {
	var opts []kgo.Opt
	if k.tls || k.tlsCA != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if k.tlsCA != "" {
			pem, err := os.ReadFile(k.tlsCA)
			if err != nil {
				return nil, fmt.Errorf("--tls-ca: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--tls-ca %s: no certificates found", k.tlsCA)
			}
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if k.mechanism == "" {
		return opts, nil
	}
	pass, ok := os.LookupEnv("SPOOL_KAFKA_PASSWORD")
	if k.user == "" || !ok {
		return nil, errors.New("--sasl needs --user (or SPOOL_KAFKA_USER) and SPOOL_KAFKA_PASSWORD")
	}
	var m sasl.Mechanism
	switch strings.ToUpper(k.mechanism) {
	case "PLAIN":
		m = plain.Auth{User: k.user, Pass: pass}.AsMechanism()
	case "SCRAM-SHA-256":
		m = scram.Auth{User: k.user, Pass: pass}.AsSha256Mechanism()
	case "SCRAM-SHA-512":
		m = scram.Auth{User: k.user, Pass: pass}.AsSha512Mechanism()
	default:
		return nil, fmt.Errorf("--sasl %q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", k.mechanism)
	}
	return append(opts, kgo.SASL(m)), nil
}

func (k *kafkaFlags) seeds() ([]string, error) {
	var seeds []string
	for s := range strings.SplitSeq(k.brokers, ",") {
		if s = strings.TrimSpace(s); s != "" {
			seeds = append(seeds, s)
		}
	}
	if len(seeds) == 0 {
		return nil, errors.New("--brokers is empty")
	}
	if k.timeout <= 0 {
		return nil, fmt.Errorf("--timeout %v is not positive", k.timeout)
	}
	return seeds, nil
}

// connect returns a client that has answered one request. kgo connects
// lazily and retries dials for its whole retry budget, so without this
// first round trip an unreachable cluster shows up late, as some other
// request's timeout; with it, the command fails at once and says where it
// looked.
func (k *kafkaFlags) connect(ctx context.Context, extra ...kgo.Opt) (*kgo.Client, error) {
	seeds, err := k.seeds()
	if err != nil {
		return nil, err
	}
	sec, err := k.security()
	if err != nil {
		return nil, err
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.ClientID("spool"),
		kgo.DialTimeout(min(maxDialTimeout, k.timeout)),
		kgo.RequestTimeoutOverhead(k.timeout),
		kgo.RetryTimeout(k.timeout),
		// The first round trip (Ping) loads metadata without topics; the
		// topic's own then waits for the metadata minimum age (5s by
		// default), which a short-lived command should not sit through.
		kgo.MetadataMinAge(250 * time.Millisecond),
	}
	opts = append(opts, sec...)
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	if err := cl.Ping(pctx); err != nil {
		cl.Close()
		return nil, fmt.Errorf("no Kafka broker reachable at %s: %w", k.brokers, err)
	}
	return cl, nil
}

// admin returns an admin client over a connected client. Requests that
// carry a broker-side timeout (create and delete topics) get the same
// budget as the client's retries.
func (k *kafkaFlags) admin(ctx context.Context) (*kgo.Client, *kadm.Client, error) {
	cl, err := k.connect(ctx)
	if err != nil {
		return nil, nil, err
	}
	adm := kadm.NewClient(cl)
	adm.SetTimeoutMillis(int32(min(k.timeout, time.Hour).Milliseconds()))
	return cl, adm, nil
}

// parseInterspersed parses flags placed before, between or after the
// positional arguments ("spool topic create NAME --partitions 3"); the flag
// package alone stops at the first positional argument. It returns the
// positional arguments, or an exit code >= 0 as parseFlags does. After
// "--" everything is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, int) {
	var pos []string
	for {
		if code := parseFlags(fs, args); code >= 0 {
			return nil, code
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, -1
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), -1
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// nameArg parses a subcommand that takes exactly one name (a topic, a group).
func nameArg(fs *flag.FlagSet, args []string, usage string) (string, int) {
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: "+usage)
		fs.PrintDefaults()
	}
	pos, code := parseInterspersed(fs, args)
	if code >= 0 {
		return "", code
	}
	if len(pos) != 1 || pos[0] == "" {
		fs.Usage()
		return "", 2
	}
	return pos[0], -1
}

// kvFlag collects a repeatable key=value flag (--config, --header) in the
// order given; order matters for headers, which may repeat a key.
type kvFlag []kv

type kv struct{ key, value string }

func (f *kvFlag) String() string {
	var parts []string
	for _, p := range *f {
		parts = append(parts, p.key+"="+p.value)
	}
	return strings.Join(parts, ",")
}

func (f *kvFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not key=value", s)
	}
	*f = append(*f, kv{k, v})
	return nil
}

// listFlag collects a repeatable plain flag (--delete-config).
type listFlag []string

func (f *listFlag) String() string { return strings.Join(*f, ",") }

func (f *listFlag) Set(s string) error {
	if s == "" {
		return errors.New("empty value")
	}
	*f = append(*f, s)
	return nil
}
