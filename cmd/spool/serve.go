package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/spoolmq/spool/edge"
	"github.com/spoolmq/spool/edge/config"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("spool serve", stderr)
	cfgPath := fs.String("config", "", "YAML config file (default: none, built-in defaults)")
	data := fs.String("data", "", "data directory (overrides data:; default ./spool-data)")
	mqttAddr := fs.String("mqtt-addr", "", "MQTT TCP listen address (overrides mqtt.addr; default 127.0.0.1:1883; \"off\" disables)")
	kafkaAddr := fs.String("kafka-addr", "", "Kafka listen address (overrides kafka.addr; default 127.0.0.1:9092; \"off\" disables)")
	httpAddr := fs.String("http-addr", "", "HTTP listen address (overrides http.addr; default 127.0.0.1:8080; \"off\" disables)")
	budget := fs.String("disk-budget", "", "bound on the bytes of all segments, e.g. 2GiB (overrides disk_budget; 0: none)")
	logFormat := fs.String("log-format", "", "log format: text or json (overrides log.format)")
	logLevel := fs.String("log-level", "", "log level: debug, info, warn, error (overrides log.level)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to this file until the process stops (for benchmarks)")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	cfg := config.Default()
	if *cfgPath != "" {
		var err error
		if cfg, err = config.Load(*cfgPath); err != nil {
			return fail(stderr, "%v", err)
		}
	}
	// Flags win over environment variables (SPOOL_DATA, SPOOL_MQTT_ADDR,
	// ...), which win over the config file.
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, name := range []string{"data", "mqtt-addr", "kafka-addr", "http-addr", "disk-budget", "log-format", "log-level"} {
		env := "SPOOL_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok && !set[name] {
			if err := fs.Set(name, v); err != nil {
				return fail(stderr, "%s: %v", env, err)
			}
			set[name] = true
		}
	}
	if set["data"] {
		cfg.Data = *data
	}
	if set["mqtt-addr"] {
		cfg.MQTT.Addr = offEmpty(*mqttAddr)
	}
	if set["kafka-addr"] {
		cfg.Kafka.Addr = offEmpty(*kafkaAddr)
	}
	if set["http-addr"] {
		cfg.HTTP.Addr = offEmpty(*httpAddr)
	}
	if set["disk-budget"] {
		n, err := config.ParseSize(*budget)
		if err != nil {
			return fail(stderr, "--disk-budget: %v", err)
		}
		cfg.DiskBudget = n
	}
	if set["log-format"] {
		cfg.Log.Format = *logFormat
	}
	if set["log-level"] {
		cfg.Log.Level = *logLevel
	}
	if err := cfg.Validate(); err != nil {
		return fail(stderr, "invalid configuration:\n%v", err)
	}
	lg, err := newLogger(stderr, cfg.Log.Format, cfg.Log.Level)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	if _, env := os.LookupEnv("GOMEMLIMIT"); cfg.MemoryLimit > 0 && !env {
		// A soft limit: the collector works harder near it, nothing fails.
		debug.SetMemoryLimit(int64(cfg.MemoryLimit))
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fail(stderr, "--cpuprofile: %v", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fail(stderr, "--cpuprofile: %v", err)
		}
		defer pprof.StopCPUProfile()
	}

	ctx, stop := signalContext(ctx, lg)
	defer stop()
	sd := newSDNotifier(lg)
	sd.status("opening the data directory %s", cfg.Data)
	srv, err := edge.Open(cfg, lg)
	if err != nil {
		sd.status("failed: %v", err)
		return fail(stderr, "%v", err)
	}
	// serving ends when shutdown begins: a signal, or Run returning after a
	// listener failed. The watchdog pings only until then.
	serving, endServing := context.WithCancel(ctx)
	defer endServing()
	go func() {
		<-serving.Done()
		sd.stop("shutting down")
	}()
	err = srv.Run(ctx, func() {
		lg.Info("spool serving", "version", version, "data", cfg.Data)
		sd.ready(servingStatus(srv))
		go sd.watchdog(serving, func() string { return servingStatus(srv) })
	})
	endServing()
	sd.stop("shutting down")
	if err != nil {
		sd.status("failed: %v", err)
		return fail(stderr, "%v", err)
	}
	sd.status("stopped")
	lg.Info("spool stopped")
	return 0
}

// servingStatus is the systemd STATUS line while serving. Listing the
// topics takes the log's lock, so it also probes that the log is not
// wedged before a watchdog ping.
func servingStatus(srv *edge.Server) string {
	return fmt.Sprintf("serving %d topics, %d bytes on disk, %d records appended since start",
		len(srv.Log().Topics()), srv.Log().UsedBytes(), srv.Log().Stats().AppendedRecords)
}

// offEmpty lets a flag disable a listener with "off".
func offEmpty(s string) string {
	if s == "off" {
		return ""
	}
	return s
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
