package edge

import (
	"fmt"
	"log/slog"

	"github.com/spoolmq/spool/edge/config"
	"github.com/spoolmq/spool/edge/kafka"
	spoollog "github.com/spoolmq/spool/log"
)

// newKafka builds the Kafka listener from the config: its addresses, TLS,
// and the auth users as SASL credentials.
func newKafka(cfg config.Config, l *spoollog.Log, lg *slog.Logger) (*kafka.Server, error) {
	k := cfg.Kafka
	opts := kafka.Options{
		Addr:             k.Addr,
		Advertised:       k.Advertised,
		TLSAddr:          k.TLS.Addr,
		TLSAdvertised:    k.TLS.Advertised,
		AutoCreateTopics: k.AutoCreateTopics,
		MaxRequestSize:   int(k.MaxRequestSize),
		RequireSASL:      !cfg.KafkaAnonymousAllowed(),
		Users:            map[string]kafka.Credentials{},
		Log:              l,
		Logger:           lg,
	}
	if k.TLS.Addr != "" {
		tc, err := k.TLS.Listener().ServerConfig()
		if err != nil {
			return nil, fmt.Errorf("kafka.tls: %w", err)
		}
		opts.TLS = tc
	}
	for _, u := range cfg.Auth.Users {
		c := kafka.Credentials{BcryptHash: u.PasswordHash, SCRAM: map[string]config.SCRAMCredential{}}
		for _, s := range u.SCRAM {
			sc, err := config.ParseSCRAM(s) // checked by Validate
			if err != nil {
				return nil, fmt.Errorf("auth.users %s: %w", u.Name, err)
			}
			c.SCRAM[sc.Mechanism] = sc
		}
		opts.Users[u.Name] = c
	}
	return kafka.New(opts)
}
