// Package httpapi is Spool's HTTP interface: health and readiness probes,
// Prometheus metrics, and a JSON API over the commit log to list, create,
// describe and delete topics, produce records and read them back (one
// request, a long poll, or a Server-Sent Events stream).
//
//	GET    /healthz                                        200 "ok"
//	GET    /readyz                                         200, or 503 with the reason
//	GET    /metrics                                        Prometheus text 0.0.4
//	GET    /api/v1/topics                                  200
//	POST   /api/v1/topics                           (auth) 201, 400, 409
//	GET    /api/v1/topics/{topic}                          200, 404
//	DELETE /api/v1/topics/{topic}                   (auth) 204, 404
//	POST   /api/v1/topics/{topic}/records           (auth) 200, 400, 404, 413, 507
//	GET    /api/v1/topics/{topic}/partitions/{p}/records   200, 400, 404, 416; SSE with
//	                                                       Accept: text/event-stream or ?follow=1
//
// (auth): when Options.Token is set, the request needs "Authorization:
// Bearer <token>", or gets 401. Reads, probes and metrics need none.
// Every API error is a JSON object {"error": "..."}.
//
// Record payloads (keys, values, headers) are never logged.
package httpapi

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/spoolmq/spool/edge/metrics"
	spoollog "github.com/spoolmq/spool/log"
)

// DefaultMaxBodyBytes bounds a request body when Options.MaxBodyBytes is 0.
const DefaultMaxBodyBytes = 4 << 20

// Options configure the handler.
type Options struct {
	// Log is the commit log the API serves. Required.
	Log *spoollog.Log
	// Registry is exposed on /metrics. New registers the log's metrics
	// (RegisterLogMetrics) and the API's request counters in it; when nil,
	// New uses a registry of its own.
	Registry *metrics.Registry
	// Token, when not empty, is the bearer token required by every write
	// and admin endpoint (create and delete topics, produce).
	Token string
	// Ready reports readiness for /readyz; nil means always ready.
	Ready func() error
	// Logger receives request errors; it discards when nil.
	Logger *slog.Logger
	// DefaultTopic is the configuration topics created over HTTP start
	// from; the zero value means spoollog.DefaultTopicConfig().
	DefaultTopic spoollog.TopicConfig
	// MaxBodyBytes bounds a request body (DefaultMaxBodyBytes when 0).
	MaxBodyBytes int64
	// Bridge, when set, is the state of the bridge links that
	// GET /api/v1/bridge returns (as JSON: {"links": [...], "downstream": [...]}).
	Bridge func() any
	// Sensors, when set, is the state of the sensors and actuators that
	// GET /api/v1/sensors returns ({"sensors": [...], "actuators": [...]}).
	Sensors func() any
	// Context, when set, ends long polls and event streams when it is
	// done. http.Server.Shutdown waits for running handlers without
	// cancelling them, so pass the context whose cancellation starts the
	// shutdown (or set http.Server.BaseContext to it).
	Context context.Context
}

// api is the handler's state.
type api struct {
	opts Options
	l    *spoollog.Log
	lg   *slog.Logger
	reg  *metrics.Registry
	mux  *http.ServeMux
	reqs requestCounts

	// pollWaiting, when set (by tests), is called when a long poll or a
	// stream has read everything and starts to wait for more.
	pollWaiting func()
}

// New returns the HTTP handler.
func New(opts Options) http.Handler {
	if opts.Log == nil {
		panic("httpapi: Options.Log is nil")
	}
	if opts.DefaultTopic == (spoollog.TopicConfig{}) {
		opts.DefaultTopic = spoollog.DefaultTopicConfig()
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.Context == nil {
		opts.Context = context.Background()
	}
	a := &api{opts: opts, l: opts.Log, lg: opts.Logger, reg: opts.Registry, mux: http.NewServeMux()}
	if a.lg == nil {
		a.lg = slog.New(slog.DiscardHandler)
	}
	if a.reg == nil {
		a.reg = metrics.NewRegistry()
	}
	RegisterLogMetrics(a.reg, a.l)
	a.reg.Register("spool_http", metrics.CollectorFunc(a.reqs.collect))

	a.handle("GET /healthz", routeHealth, false, a.healthz)
	a.handle("GET /readyz", routeReady, false, a.readyz)
	a.handle("GET /metrics", routeMetrics, false, a.metrics)
	a.handle("GET /api/v1/topics", routeTopics, false, a.listTopics)
	a.handle("POST /api/v1/topics", routeTopics, true, a.createTopic)
	a.handle("GET /api/v1/topics/{topic}", routeTopic, false, a.describeTopic)
	a.handle("DELETE /api/v1/topics/{topic}", routeTopic, true, a.deleteTopic)
	a.handle("POST /api/v1/topics/{topic}/records", routeProduce, true, a.produce)
	a.handle("GET /api/v1/topics/{topic}/partitions/{partition}/records", routeRead, false, a.read)
	a.handle("GET /api/v1/bridge", routeBridge, false, a.bridge)
	a.handle("GET /api/v1/sensors", routeSensors, false, a.sensors)

	// Paths that exist with other methods: a JSON 405 rather than the
	// mux's plain text one. Unknown API paths: a JSON 404.
	for path, allow := range map[string]string{
		"/api/v1/topics":                                        "GET, POST",
		"/api/v1/topics/{topic}":                                "GET, DELETE",
		"/api/v1/topics/{topic}/records":                        "POST",
		"/api/v1/topics/{topic}/partitions/{partition}/records": "GET",
	} {
		a.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed; use "+allow)
		})
	}
	a.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.URL.Path)
	})
	return a
}

func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// bridge returns the links' health as Options.Bridge gives it.
func (a *api) bridge(w http.ResponseWriter, r *http.Request) {
	var st any = map[string]any{"links": []any{}, "downstream": []any{}}
	if a.opts.Bridge != nil {
		st = a.opts.Bridge()
	}
	writeJSON(w, http.StatusOK, st)
}

// sensors returns the sensors' state as Options.Sensors gives it.
func (a *api) sensors(w http.ResponseWriter, r *http.Request) {
	var st any = map[string]any{"sensors": []any{}, "actuators": []any{}}
	if a.opts.Sensors != nil {
		st = a.opts.Sensors()
	}
	writeJSON(w, http.StatusOK, st)
}

// handle registers a route, counting its responses and, for auth routes,
// checking the bearer token first.
func (a *api) handle(pattern string, route route, auth bool, h http.HandlerFunc) {
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		defer func() { a.reqs.count(route, sw.status) }()
		if auth && !a.authorized(r) {
			sw.Header().Set("WWW-Authenticate", `Bearer realm="spool"`)
			writeError(sw, http.StatusUnauthorized, "missing or invalid bearer token")
			return
		}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(sw, r.Body, a.opts.MaxBodyBytes)
		}
		h(sw, r)
	})
}

func (a *api) authorized(r *http.Request) bool {
	if a.opts.Token == "" {
		return true
	}
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(token)), []byte(a.opts.Token)) == 1
}

func (a *api) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ok\n"))
}

func (a *api) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if a.opts.Ready != nil {
		if err := a.opts.Ready(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("not ready: " + err.Error() + "\n"))
			return
		}
	}
	w.Write([]byte("ready\n"))
}

func (a *api) metrics(w http.ResponseWriter, r *http.Request) {
	var buf strings.Builder
	if err := a.reg.WriteText(&buf); err != nil {
		// Dropped samples are a bug in a collector; the rest is served.
		a.lg.Warn("metrics: samples dropped", "err", err)
	}
	w.Header().Set("Content-Type", metrics.ContentType)
	w.Write([]byte(buf.String()))
}

// writeJSON writes v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "encode response: "+err.Error())
		return
	}
	writeRawJSON(w, status, b)
}

func writeRawJSON(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// writeError writes {"error": msg}.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// fail maps err to a status, logs server-side failures (never payloads:
// the log's errors name topics, partitions and sizes only) and writes it.
func (a *api) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := errorStatus(err)
	a.logFailure(r, status, err)
	writeError(w, status, err.Error())
}

// logFailure logs refusals and server-side failures.
func (a *api) logFailure(r *http.Request, status int, err error) {
	switch {
	case status == http.StatusInsufficientStorage || status == http.StatusServiceUnavailable:
		a.lg.Warn("request refused", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	case status >= 500:
		a.lg.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
}

// errorStatus maps the log's errors to HTTP statuses.
func errorStatus(err error) int {
	var (
		batchErr *spoollog.BatchError
		tooBig   *http.MaxBytesError
		reqErr   *requestError
	)
	switch {
	case errors.As(err, &reqErr):
		return reqErr.status
	case errors.As(err, &tooBig), errors.Is(err, spoollog.ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, spoollog.ErrFull): // also a full disk (ENOSPC)
		return http.StatusInsufficientStorage
	case errors.Is(err, spoollog.ErrUnknownTopic), errors.Is(err, spoollog.ErrUnknownPartition):
		return http.StatusNotFound
	case errors.Is(err, spoollog.ErrTopicExists):
		return http.StatusConflict
	case errors.Is(err, spoollog.ErrOffsetOutOfRange):
		return http.StatusRequestedRangeNotSatisfiable
	case errors.As(err, &batchErr):
		return http.StatusBadRequest
	case errors.Is(err, spoollog.ErrClosed):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// requestError is an error with its own status: a bad request body or
// parameter.
type requestError struct {
	status int
	msg    string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(msg string) error { return &requestError{http.StatusBadRequest, msg} }

// statusWriter remembers the status for the request counters. It passes
// Flush and the rest through Unwrap (http.ResponseController).
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// route names a group of endpoints in the request counters.
type route uint8

const (
	routeHealth route = iota
	routeReady
	routeMetrics
	routeTopics
	routeTopic
	routeProduce
	routeRead
	routeBridge
	routeSensors
	numRoutes
)

var routeNames = [numRoutes]string{"healthz", "readyz", "metrics", "topics", "topic", "produce", "read", "bridge", "sensors"}

// requestCounts counts responses per route and status class, lock-free.
type requestCounts [numRoutes][5]atomic.Uint64

func (c *requestCounts) count(r route, status int) {
	if status == 0 {
		status = http.StatusOK
	}
	if class := status/100 - 1; class >= 0 && class < 5 {
		c[r][class].Add(1)
	}
}

func (c *requestCounts) collect(e *metrics.Emitter) {
	for r := range numRoutes {
		for class := range 5 {
			if n := c[r][class].Load(); n > 0 {
				e.Counter("spool_http_requests_total", "HTTP API responses by route and status class.", float64(n),
					metrics.L("route", routeNames[r]), metrics.L("code", string(rune('1'+class))+"xx"))
			}
		}
	}
}
