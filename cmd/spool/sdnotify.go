package main

// systemd integration for `spool serve` run by a Type=notify unit
// (configs/spool.service): the sd_notify protocol, one datagram of
// newline-separated KEY=VALUE assignments to the unix socket named by
// NOTIFY_SOCKET. Outside systemd (no NOTIFY_SOCKET) every call is a no-op.
//
// Lifecycle, as systemd sees it:
//
//	STATUS=opening ...        before the data directory is opened (recovery may take a while)
//	READY=1 + STATUS=serving  once every listener is bound (edge.Server.Run's ready callback)
//	WATCHDOG=1 + STATUS=...   every WATCHDOG_USEC/2 while serving, only when the unit sets WatchdogSec
//	STOPPING=1                when shutdown begins (signal, or a listener failed)
//
// A watchdog ping is sent only after a probe of the log's state returns, so
// a wedged log (a lock never released) stops the pings and systemd restarts
// the service; the pings end with the serving context, before shutdown.

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// sdNotifier sends notifications to systemd, when it asked for them.
type sdNotifier struct {
	lg *slog.Logger

	mu      sync.Mutex // guards stopped, and orders pings after STOPPING=1
	stopped bool       // STOPPING=1 was sent: no more watchdog pings
}

func newSDNotifier(lg *slog.Logger) *sdNotifier { return &sdNotifier{lg: lg} }

// notify sends the assignments in one datagram. A failure is logged, not
// returned: the appliance serves the same with or without a manager.
func (n *sdNotifier) notify(assignments ...string) {
	if _, err := daemon.SdNotify(false, strings.Join(assignments, "\n")); err != nil {
		n.lg.Warn("systemd notification failed", "err", err, "state", assignments[0])
	}
}

// status sends a free-form STATUS line (`systemctl status spool` shows it).
func (n *sdNotifier) status(format string, a ...any) {
	n.notify("STATUS=" + oneLine(fmt.Sprintf(format, a...)))
}

// ready tells systemd that start-up is done.
func (n *sdNotifier) ready(status string) {
	n.notify(daemon.SdNotifyReady, "STATUS="+oneLine(status))
}

// stop tells systemd, once, that shutdown has begun; no watchdog ping
// follows it.
func (n *sdNotifier) stop(status string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.stopped {
		n.stopped = true
		n.notify(daemon.SdNotifyStopping, "STATUS="+oneLine(status))
	}
}

// ping sends a watchdog ping unless shutdown has begun.
func (n *sdNotifier) ping(status string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.stopped {
		n.notify(daemon.SdNotifyWatchdog, "STATUS="+oneLine(status))
	}
}

// watchdog pings systemd at half the interval the unit's WatchdogSec set
// (WATCHDOG_USEC) until ctx ends; it returns at once when no watchdog is
// asked for. probe is called with the interval before each ping and gives
// its STATUS line; a probe that fails or blocks withholds the ping, so
// that systemd restarts a service that stopped making progress.
func (n *sdNotifier) watchdog(ctx context.Context, probe func(interval time.Duration) (string, error)) {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		n.lg.Warn("systemd watchdog not started", "err", err)
		return
	}
	if interval <= 0 {
		return
	}
	n.lg.Debug("systemd watchdog", "interval", interval, "ping_every", interval/2)
	tick := time.NewTicker(interval / 2)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		status, err := probe(interval)
		if err != nil {
			n.lg.Error("withholding the systemd watchdog ping", "error", err)
			n.status("%v", err)
			continue
		}
		n.ping(status)
	}
}

// oneLine keeps a value from starting another assignment.
func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }
