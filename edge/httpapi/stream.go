package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	spoollog "github.com/spoolmq/spool/log"
)

// stream serves the records endpoint as Server-Sent Events: one event per
// record, following the partition until the client goes away or
// Options.Context ends.
//
//	id: <offset>
//	data: {"offset":..,"timestamp":..,"key":..,"value":..,"headers":[..]}
//
// It starts at Last-Event-ID + 1 when the client sends that header (the
// browser's EventSource does on reconnect), else at the offset parameter
// (default: the log start; earliest, latest). A start below the log start
// is 416 as for a plain read. If retention deletes records the stream has
// not sent yet, it sends
//
//	event: error
//	data: {"error": "...", "log_start_offset": S}
//
// and ends, rather than skipping them silently. An idle stream sends a
// ": ping" comment every 15 seconds.
func (a *api) stream(w http.ResponseWriter, r *http.Request, t *spoollog.Topic, p *spoollog.Partition, params readParams) {
	from, err := resolveOffset(params.offset, p)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if id := strings.TrimSpace(r.Header.Get("Last-Event-ID")); id != "" {
		last, err := strconv.ParseInt(id, 10, 64)
		if err != nil || last < -1 {
			a.fail(w, r, badRequest(fmt.Sprintf("Last-Event-ID: %q is not an offset", id)))
			return
		}
		from = last + 1
	}
	if from < p.LogStartOffset() {
		outOfRange(w, p, from)
		return
	}

	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Time{}) // a stream outlives the server's write timeout
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return
	}

	ping := time.NewTicker(heartbeat)
	defer ping.Stop()
	deleted := func() bool {
		if cur, err := a.l.Topic(t.Name()); err == nil && cur == t {
			return false
		}
		w.Write([]byte("event: error\ndata: {\"error\":\"topic deleted\"}\n\n"))
		rc.Flush()
		return true
	}
	buf := make([]byte, 0, 4096)
	next := from
	for {
		notify := p.Notify()
		recs, nx, err := fetch(p, next, params.limit, params.maxBytes)
		if err != nil {
			if !errors.Is(err, spoollog.ErrOffsetOutOfRange) {
				a.logFailure(r, errorStatus(err), err)
			}
			buf = append(buf[:0], "event: error\ndata: {\"error\":"...)
			buf = appendString(buf, err.Error())
			buf = append(buf, `,"log_start_offset":`...)
			buf = strconv.AppendInt(buf, p.LogStartOffset(), 10)
			buf = append(buf, "}\n\n"...)
			w.Write(buf)
			rc.Flush()
			return
		}
		next = nx
		if len(recs) > 0 {
			buf = buf[:0]
			for i := range recs {
				buf = append(buf, "id: "...)
				buf = strconv.AppendInt(buf, recs[i].Offset, 10)
				buf = append(buf, "\ndata: "...)
				buf = appendRecordJSON(buf, &recs[i]) // one line: JSON escapes newlines
				buf = append(buf, "\n\n"...)
			}
			if _, err := w.Write(buf); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
			continue
		}
		if a.pollWaiting != nil {
			a.pollWaiting()
		}
		select {
		case <-notify:
			// A deleted partition closes its notify channel for good.
			if deleted() {
				return
			}
		case <-ping.C:
			if deleted() {
				return
			}
			if _, err := w.Write([]byte(": ping\n\n")); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		case <-r.Context().Done():
			return
		case <-a.opts.Context.Done():
			return
		}
	}
}
