// Package metrics is a small Prometheus exposition library: counters,
// gauges and histograms, with or without labels, and func collectors that
// compute samples at scrape time. It writes the Prometheus text format,
// version 0.0.4, and nothing else; it exists so that the binary does not
// carry the Prometheus client library.
//
// # Hot path
//
// Counters, gauges and histograms are updated with atomic operations and
// no locks. A labelled metric's child is found with With, which takes the
// vector's mutex: call it once and keep the child.
//
//	appended := reg.NewCounterVec("spool_mqtt_publishes_total", "...", "topic")
//	c := appended.With("sensors") // once
//	c.Inc()                       // per publish: one atomic add
//
// # Scrape
//
// Gather calls every collector (in the order of their ids), merges the
// samples into families by name, and sorts the families by name and the
// series of a family by their labels, so the output is stable. Each family
// gets one "# HELP" and one "# TYPE" line. A sample that contradicts its
// family (another type or help text, a duplicate series, an invalid name)
// is dropped and reported in Gather's error; the rest is still written.
package metrics

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
)

// ContentType is the Content-Type of the text format WriteText writes.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Type is a metric family's type.
type Type uint8

const (
	CounterType Type = iota + 1
	GaugeType
	HistogramType
)

func (t Type) String() string {
	switch t {
	case CounterType:
		return "counter"
	case GaugeType:
		return "gauge"
	case HistogramType:
		return "histogram"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Label is one label of a series.
type Label struct{ Name, Value string }

// L builds a Label.
func L(name, value string) Label { return Label{name, value} }

// Collector adds samples to a scrape.
type Collector interface {
	Collect(e *Emitter)
}

// CollectorFunc is a func collector: it computes its samples when scraped,
// for values that live elsewhere (a partition's high watermark, the disk
// usage). It is called on the scraping goroutine and must not block long.
type CollectorFunc func(e *Emitter)

// Collect calls f.
func (f CollectorFunc) Collect(e *Emitter) { f(e) }

// Registry holds the collectors a scrape calls. Its methods are safe for
// concurrent use.
type Registry struct {
	mu         sync.Mutex // guards collectors
	collectors map[string]registered
}

type registered struct {
	c      Collector
	static bool // made by a New method
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{collectors: map[string]registered{}}
}

// Register adds c under id, replacing what was registered under that id
// before (so a component that is restarted re-registers safely). Func
// collectors use it; metrics made with the New methods are registered
// under their family name, and replacing one of those panics.
func (r *Registry) Register(id string, c Collector) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.collectors[id]; ok && old.static {
		panic(fmt.Sprintf("metrics: Register(%q) would replace a metric made by a New method", id))
	}
	r.collectors[id] = registered{c: c}
}

// Unregister removes the collector registered under id and reports
// whether there was one. Metrics made by the New methods stay.
func (r *Registry) Unregister(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	old, ok := r.collectors[id]
	if ok && old.static {
		return false
	}
	delete(r.collectors, id)
	return ok
}

// mustRegister registers a metric made by a New method under its name. A
// second metric of the same name is a programming error: it panics.
func (r *Registry) mustRegister(name string, c Collector) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.collectors[name]; ok {
		panic(fmt.Sprintf("metrics: %q registered twice", name))
	}
	r.collectors[name] = registered{c: c, static: true}
}

// Family is one gathered metric family.
type Family struct {
	Name   string
	Help   string
	Type   Type
	Series []Series // sorted by labels
}

// Series is one labelled sample of a family: Value for counters and
// gauges, Histogram for histograms.
type Series struct {
	Labels    []Label
	Value     float64
	Histogram *HistogramSnapshot
}

// Gather collects every registered collector (metrics made by the New
// methods first, then func collectors, each in id order, so the first
// definition of a family is deterministic) and returns the families
// sorted by name. The error lists the samples that were dropped; the
// families are usable even when it is not nil.
func (r *Registry) Gather() ([]Family, error) {
	r.mu.Lock()
	ids := make([]string, 0, len(r.collectors))
	for id := range r.collectors {
		ids = append(ids, id)
	}
	// Metrics made by New methods first, so that they define their
	// families; then func collectors; each in id order.
	slices.SortFunc(ids, func(a, b string) int {
		if sa, sb := r.collectors[a].static, r.collectors[b].static; sa != sb {
			if sa {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	cs := make([]Collector, len(ids))
	for i, id := range ids {
		cs[i] = r.collectors[id].c
	}
	r.mu.Unlock()

	// Collectors run outside the lock: func collectors read other
	// components' state and may register nothing while doing so.
	e := &Emitter{families: map[string]*family{}}
	for _, c := range cs {
		c.Collect(e)
	}
	return e.finish()
}

// WriteText gathers and writes the text format to w. Dropped samples are
// reported in the error after everything else was written; a write error
// is returned as is.
func (r *Registry) WriteText(w io.Writer) error {
	fams, gerr := r.Gather()
	if err := WriteText(w, fams); err != nil {
		return err
	}
	return gerr
}

// Emitter receives the samples of one scrape. Collectors call its
// methods; it is not safe for concurrent use.
type Emitter struct {
	families map[string]*family
	errs     []error
}

type family struct {
	Family
	seen map[string]bool // label keys of the series, to refuse duplicates
}

// Counter adds a counter sample. v must not be negative.
func (e *Emitter) Counter(name, help string, v float64, labels ...Label) {
	if v < 0 {
		e.errs = append(e.errs, fmt.Errorf("%s%s: negative counter value %v", name, labelString(labels), v))
		return
	}
	e.add(name, help, CounterType, Series{Labels: labels, Value: v})
}

// Gauge adds a gauge sample.
func (e *Emitter) Gauge(name, help string, v float64, labels ...Label) {
	e.add(name, help, GaugeType, Series{Labels: labels, Value: v})
}

// Histogram adds a histogram series. The snapshot is kept until the scrape
// is written: do not modify it afterwards.
func (e *Emitter) Histogram(name, help string, h HistogramSnapshot, labels ...Label) {
	if err := h.validate(); err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s%s: %w", name, labelString(labels), err))
		return
	}
	for _, l := range labels {
		if l.Name == "le" {
			e.errs = append(e.errs, fmt.Errorf("%s%s: label \"le\" is reserved for histogram buckets", name, labelString(labels)))
			return
		}
	}
	e.add(name, help, HistogramType, Series{Labels: labels, Histogram: &h})
}

func (e *Emitter) add(name, help string, typ Type, s Series) {
	if err := e.check(name, help, typ, s.Labels); err != nil {
		e.errs = append(e.errs, err)
		return
	}
	f := e.families[name]
	if f == nil {
		f = &family{Family: Family{Name: name, Help: help, Type: typ}, seen: map[string]bool{}}
		e.families[name] = f
	}
	s.Labels = sortedLabels(s.Labels)
	key := labelString(s.Labels)
	if f.seen[key] {
		e.errs = append(e.errs, fmt.Errorf("%s%s: duplicate series", name, key))
		return
	}
	f.seen[key] = true
	f.Series = append(f.Series, s)
}

func (e *Emitter) check(name, help string, typ Type, labels []Label) error {
	if !validMetricName(name) {
		return fmt.Errorf("invalid metric name %q", name)
	}
	for i, l := range labels {
		if !validLabelName(l.Name) {
			return fmt.Errorf("%s: invalid label name %q", name, l.Name)
		}
		if !utf8.ValidString(l.Value) {
			return fmt.Errorf("%s: label %s: value is not valid UTF-8", name, l.Name)
		}
		for _, o := range labels[:i] {
			if o.Name == l.Name {
				return fmt.Errorf("%s: label %s given twice", name, l.Name)
			}
		}
	}
	if !utf8.ValidString(help) {
		return fmt.Errorf("%s: help is not valid UTF-8", name)
	}
	if f := e.families[name]; f != nil {
		if f.Type != typ {
			return fmt.Errorf("%s: emitted as %v but the family is a %v", name, typ, f.Type)
		}
		if f.Help != help {
			return fmt.Errorf("%s: help %q differs from the family's %q", name, help, f.Help)
		}
	}
	return nil
}

// finish checks histogram names against the other families and sorts.
func (e *Emitter) finish() ([]Family, error) {
	for _, f := range e.families {
		if f.Type != HistogramType {
			continue
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if o := e.families[f.Name+suffix]; o != nil {
				e.errs = append(e.errs, fmt.Errorf("%s: clashes with the samples of histogram %s: dropped", o.Name, f.Name))
				delete(e.families, o.Name)
			}
		}
	}
	fams := make([]Family, 0, len(e.families))
	for _, f := range e.families {
		slices.SortStableFunc(f.Series, func(a, b Series) int { return compareLabels(a.Labels, b.Labels) })
		fams = append(fams, f.Family)
	}
	slices.SortFunc(fams, func(a, b Family) int { return strings.Compare(a.Name, b.Name) })
	return fams, errors.Join(e.errs...)
}

// sortedLabels returns labels sorted by name, copying only when needed.
func sortedLabels(ls []Label) []Label {
	if slices.IsSortedFunc(ls, func(a, b Label) int { return strings.Compare(a.Name, b.Name) }) {
		return ls
	}
	ls = slices.Clone(ls)
	slices.SortFunc(ls, func(a, b Label) int { return strings.Compare(a.Name, b.Name) })
	return ls
}

// compareLabels orders series by their label values in name order;
// values that are both decimal integers (partition numbers) compare as
// numbers, so partition 10 follows partition 9.
func compareLabels(a, b []Label) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if c := strings.Compare(a[i].Name, b[i].Name); c != 0 {
			return c
		}
		if c := compareValues(a[i].Value, b[i].Value); c != 0 {
			return c
		}
	}
	return len(a) - len(b)
}

func compareValues(a, b string) int {
	if isDigits(a) && isDigits(b) {
		a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
		if len(a) != len(b) {
			return len(a) - len(b)
		}
	}
	return strings.Compare(a, b)
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// labelString renders labels for error messages and duplicate detection.
func labelString(ls []Label) string {
	if len(ls) == 0 {
		return ""
	}
	return string(appendLabels(nil, ls, "", ""))
}

// validMetricName: [a-zA-Z_:][a-zA-Z0-9_:]*
func validMetricName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c == ':' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// validLabelName: [a-zA-Z_][a-zA-Z0-9_]*, and not the reserved __ prefix.
func validLabelName(s string) bool {
	if s == "" || strings.HasPrefix(s, "__") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}
