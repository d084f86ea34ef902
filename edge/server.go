// Package edge is the appliance: it wires the commit log to the listeners
// (MQTT, Kafka, HTTP) and runs them under one context. Today it runs the
// log and its housekeeping; the listeners come with the next issues.
package edge

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	spoollog "github.com/spoolmq/spool/log"
)

// Config is the appliance's configuration.
type Config struct {
	// DataDir holds meta.db and the topics.
	DataDir string
	// DiskBudget bounds the bytes of all segments; 0 means no bound.
	DiskBudget int64
	// MaintainInterval is how often retention, compaction and recovery run.
	MaintainInterval time.Duration
}

// DefaultConfig returns the configuration used when nothing is said.
func DefaultConfig() Config {
	return Config{DataDir: "./spool-data", MaintainInterval: 30 * time.Second}
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.DataDir == "":
		return fmt.Errorf("data: must not be empty")
	case c.DiskBudget < 0:
		return fmt.Errorf("disk_budget: must not be negative")
	case c.MaintainInterval <= 0:
		return fmt.Errorf("maintain_interval: must be positive")
	}
	return nil
}

// Server is a running appliance.
type Server struct {
	cfg Config
	lg  *slog.Logger
	log *spoollog.Log
}

// Open opens the data directory, recovering every partition.
func Open(cfg Config, lg *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	start := time.Now()
	l, err := spoollog.Open(cfg.DataDir, spoollog.Options{Logger: lg.With("component", "log"), DiskBudget: cfg.DiskBudget})
	if err != nil {
		return nil, err
	}
	lg.Info("log opened", "data", cfg.DataDir, "topics", len(l.Topics()), "bytes", l.UsedBytes(), "took", time.Since(start).Round(time.Millisecond))
	return &Server{cfg: cfg, lg: lg, log: l}, nil
}

// Log returns the commit log.
func (s *Server) Log() *spoollog.Log { return s.log }

// Run serves until ctx ends, then flushes and closes the log. The error is
// the first failure, including an fsync error surfaced by Close.
func (s *Server) Run(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- s.log.Run(ctx, s.cfg.MaintainInterval) }()
	<-ctx.Done()
	err := <-done
	s.lg.Info("shutting down: flushing the log")
	if cerr := s.log.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}
