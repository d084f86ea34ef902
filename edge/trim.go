package edge

import (
	"context"
	"time"

	spoollog "github.com/spoolmq/spool/log"
)

// trimWhenIdle returns the memory the Go heap no longer uses to the
// operating system once the appliance has gone quiet: nothing appended for
// a whole interval, after something was. A board with 512 MB then sees the
// idle footprint, not the peak of the last burst. It checks at the
// housekeeping interval (no work of its own beyond that) and trims once per
// quiet period, so an idle appliance stays idle.
func trimWhenIdle(ctx context.Context, l *spoollog.Log, every time.Duration, free func()) {
	t := time.NewTicker(every)
	defer t.Stop()
	last, trimmed := int64(-1), false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st := l.Stats()
		now := st.AppendedBytes + st.Fsyncs
		if now != last {
			last, trimmed = now, false
			continue
		}
		if !trimmed {
			free()
			trimmed = true
		}
	}
}
