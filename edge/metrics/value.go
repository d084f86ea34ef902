package metrics

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
)

// Counter is a monotonically increasing count. Its methods are atomic.
type Counter struct {
	v atomic.Uint64
}

// Inc adds one.
func (c *Counter) Inc() { c.v.Add(1) }

// Add adds n.
func (c *Counter) Add(n uint64) { c.v.Add(n) }

// Value returns the count.
func (c *Counter) Value() uint64 { return c.v.Load() }

// Gauge is a value that goes up and down. Its methods are atomic.
type Gauge struct {
	bits atomic.Uint64 // math.Float64bits of the value
}

// Set sets the value.
func (g *Gauge) Set(v float64) { g.bits.Store(math.Float64bits(v)) }

// Add adds d (which may be negative).
func (g *Gauge) Add(d float64) { addFloat(&g.bits, d) }

// Inc adds one.
func (g *Gauge) Inc() { g.Add(1) }

// Dec subtracts one.
func (g *Gauge) Dec() { g.Add(-1) }

// Value returns the value.
func (g *Gauge) Value() float64 { return math.Float64frombits(g.bits.Load()) }

// addFloat adds d to the float64 stored as bits in u.
func addFloat(u *atomic.Uint64, d float64) {
	for {
		old := u.Load()
		if u.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+d)) {
			return
		}
	}
}

// vec is a family of children of type T, one per label value tuple.
type vec[T any] struct {
	name, help string
	labels     []string
	make       func() *T

	mu       sync.Mutex // guards children
	children map[string]*child[T]
}

type child[T any] struct {
	labels []Label
	m      *T
}

func newVec[T any](name, help string, labels []string, mk func() *T) *vec[T] {
	if !validMetricName(name) {
		panic(fmt.Sprintf("metrics: invalid metric name %q", name))
	}
	for i, l := range labels {
		if !validLabelName(l) || l == "le" {
			panic(fmt.Sprintf("metrics: %s: invalid label name %q", name, l))
		}
		for _, o := range labels[:i] {
			if o == l {
				panic(fmt.Sprintf("metrics: %s: label %q given twice", name, l))
			}
		}
	}
	return &vec[T]{name: name, help: help, labels: labels, make: mk, children: map[string]*child[T]{}}
}

// with returns the child for values, creating it. It takes the vector's
// lock: callers keep the child rather than calling it per update.
func (v *vec[T]) with(values []string) *T {
	if len(values) != len(v.labels) {
		panic(fmt.Sprintf("metrics: %s has %d labels, got %d values", v.name, len(v.labels), len(values)))
	}
	key := strings.Join(values, "\xff")
	v.mu.Lock()
	defer v.mu.Unlock()
	if c, ok := v.children[key]; ok {
		return c.m
	}
	ls := make([]Label, len(values))
	for i, val := range values {
		ls[i] = Label{v.labels[i], val}
	}
	c := &child[T]{labels: ls, m: v.make()}
	v.children[key] = c
	return c.m
}

func (v *vec[T]) delete(values []string) bool {
	key := strings.Join(values, "\xff")
	v.mu.Lock()
	defer v.mu.Unlock()
	_, ok := v.children[key]
	delete(v.children, key)
	return ok
}

func (v *vec[T]) snapshot() []*child[T] {
	v.mu.Lock()
	defer v.mu.Unlock()
	cs := make([]*child[T], 0, len(v.children))
	for _, c := range v.children {
		cs = append(cs, c)
	}
	return cs
}

// CounterVec is a counter family with labels.
type CounterVec struct{ v *vec[Counter] }

// With returns the counter for the label values, in the order the labels
// were declared, creating it at zero. Keep the result.
func (cv *CounterVec) With(values ...string) *Counter { return cv.v.with(values) }

// Delete removes the series for the label values (a deleted topic's).
func (cv *CounterVec) Delete(values ...string) bool { return cv.v.delete(values) }

// Collect implements Collector.
func (cv *CounterVec) Collect(e *Emitter) {
	for _, c := range cv.v.snapshot() {
		e.Counter(cv.v.name, cv.v.help, float64(c.m.Value()), c.labels...)
	}
}

// GaugeVec is a gauge family with labels.
type GaugeVec struct{ v *vec[Gauge] }

// With returns the gauge for the label values, creating it at zero.
func (gv *GaugeVec) With(values ...string) *Gauge { return gv.v.with(values) }

// Delete removes the series for the label values.
func (gv *GaugeVec) Delete(values ...string) bool { return gv.v.delete(values) }

// Collect implements Collector.
func (gv *GaugeVec) Collect(e *Emitter) {
	for _, c := range gv.v.snapshot() {
		e.Gauge(gv.v.name, gv.v.help, c.m.Value(), c.labels...)
	}
}

// NewCounter registers and returns a counter without labels.
func (r *Registry) NewCounter(name, help string) *Counter {
	return r.NewCounterVec(name, help).With()
}

// NewCounterVec registers and returns a counter family with the given
// label names. It panics on an invalid or already registered name.
func (r *Registry) NewCounterVec(name, help string, labels ...string) *CounterVec {
	cv := &CounterVec{newVec(name, help, labels, func() *Counter { return new(Counter) })}
	r.mustRegister(name, cv)
	return cv
}

// NewGauge registers and returns a gauge without labels.
func (r *Registry) NewGauge(name, help string) *Gauge {
	return r.NewGaugeVec(name, help).With()
}

// NewGaugeVec registers and returns a gauge family with the given label
// names. It panics on an invalid or already registered name.
func (r *Registry) NewGaugeVec(name, help string, labels ...string) *GaugeVec {
	gv := &GaugeVec{newVec(name, help, labels, func() *Gauge { return new(Gauge) })}
	r.mustRegister(name, gv)
	return gv
}
