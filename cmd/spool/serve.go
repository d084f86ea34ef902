package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spoolmq/spool/edge"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg := edge.DefaultConfig()
	fs := newFlagSet("spool serve", stderr)
	fs.StringVar(&cfg.DataDir, "data", cfg.DataDir, "data directory")
	budget := fs.String("disk-budget", "0", "bound on the bytes of all segments, e.g. 2GiB (0: none)")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	var err error
	if cfg.DiskBudget, err = parseBytes(*budget); err != nil {
		return fail(stderr, "--disk-budget: %v", err)
	}
	lg, err := newLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		return fail(stderr, "%v", err)
	}

	ctx, stop := signalContext(ctx, lg)
	defer stop()
	srv, err := edge.Open(cfg, lg)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	lg.Info("spool serving", "version", version, "data", cfg.DataDir)
	if err := srv.Run(ctx); err != nil {
		return fail(stderr, "%v", err)
	}
	lg.Info("spool stopped")
	return 0
}

// signalContext is cancelled by the first SIGINT or SIGTERM, so that the
// appliance drains and flushes; a second signal exits at once.
func signalContext(parent context.Context, lg *slog.Logger) (context.Context, func()) {
	ctx, cancel := context.WithCancel(parent)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		select {
		case s := <-sigs:
			lg.Info("signal received, stopping (send again to exit at once)", "signal", s.String())
			cancel()
		case <-ctx.Done():
			return
		}
		s := <-sigs
		lg.Error("second signal, exiting without flushing", "signal", s.String())
		os.Exit(1)
	}()
	return ctx, func() { signal.Stop(sigs); cancel() }
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %q is not debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: %q is not text or json", format)
}
