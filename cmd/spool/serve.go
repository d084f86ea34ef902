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
	"time"

	"github.com/spoolmq/spool/edge"
	"github.com/spoolmq/spool/edge/config"
	spoollog "github.com/spoolmq/spool/log"
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
	// from names where each override came from, for its errors.
	set, from := map[string]bool{}, map[string]string{}
	fs.Visit(func(f *flag.Flag) { set[f.Name], from[f.Name] = true, "--"+f.Name })
	for name := range overrideKeys {
		env := "SPOOL_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok && !set[name] {
			if err := fs.Set(name, v); err != nil {
				return fail(stderr, "%s: %v", env, err)
			}
			set[name], from[name] = true, env
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
			return fail(stderr, "%s: %v", from["disk-budget"], err)
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
		return fail(stderr, "invalid configuration:\n%s", nameOverrides(err, from))
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
	// serving ends when shutdown begins: a signal, or a listener that
	// failed. The watchdog pings only until then, and systemd hears
	// STOPPING=1 before the drain, however long that takes.
	serving, endServing := context.WithCancel(ctx)
	defer endServing()
	go func() {
		select {
		case <-serving.Done():
		case <-srv.Stopping():
		}
		endServing()
		sd.stop("shutting down")
	}()
	err = srv.Run(ctx, func() {
		lg.Info("spool serving", "version", version, "data", cfg.Data)
		sd.ready(servingStatus(srv.Log()))
		go sd.watchdog(serving, servingProbe(srv.Log()))
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

// overrideKeys maps the settings flags and SPOOL_* variables override to
// their config keys.
var overrideKeys = map[string]string{
	"data": "data", "mqtt-addr": "mqtt.addr", "kafka-addr": "kafka.addr", "http-addr": "http.addr",
	"disk-budget": "disk_budget", "log-format": "log.format", "log-level": "log.level",
}

// nameOverrides adds to each line of a validation error about an
// overridden key where its value came from: "log.level (from
// SPOOL_LOG_LEVEL): ...", so that the user looks in the right place.
func nameOverrides(err error, from map[string]string) string {
	lines := strings.Split(err.Error(), "\n")
	for i, line := range lines {
		for name, key := range overrideKeys {
			if src, ok := from[name]; ok && strings.HasPrefix(line, key+":") {
				lines[i] = key + " (from " + src + ")" + strings.TrimPrefix(line, key)
			}
		}
	}
	return strings.Join(lines, "\n")
}

// servingStatus is the systemd STATUS line while serving.
func servingStatus(l *spoollog.Log) string {
	return fmt.Sprintf("serving %d topics, %d bytes on disk, %d records appended since start",
		len(l.Topics()), l.UsedBytes(), l.Stats().AppendedRecords)
}

// servingProbe checks, before each watchdog ping, that the log makes
// progress: no write or fsync has run for longer than the watchdog
// interval (a disk that stopped answering). Listing the topics takes the
// log's lock, so a probe that blocks there withholds the ping too.
func servingProbe(l *spoollog.Log) func(time.Duration) (string, error) {
	return func(interval time.Duration) (string, error) {
		if err := l.Stalled(interval); err != nil {
			return "", err
		}
		return servingStatus(l), nil
	}
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
