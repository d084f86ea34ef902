package metrics

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"sync/atomic"
	"time"
)

// Histogram counts observations in buckets. Observe is lock-free: one
// atomic add for the bucket and a compare-and-swap for the sum.
type Histogram struct {
	bounds []float64       // ascending upper bounds, without +Inf
	counts []atomic.Uint64 // per bucket, not cumulative; the last is +Inf
	sum    atomic.Uint64   // math.Float64bits of the sum
}

func newHistogram(bounds []float64) *Histogram {
	return &Histogram{bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
}

// Observe records v in the first bucket whose upper bound is at least v.
func (h *Histogram) Observe(v float64) {
	h.counts[sort.SearchFloat64s(h.bounds, v)].Add(1)
	addFloat(&h.sum, v)
}

// ObserveDuration records d in seconds, Prometheus's unit of time.
func (h *Histogram) ObserveDuration(d time.Duration) { h.Observe(d.Seconds()) }

// Snapshot returns the current counts. Concurrent observations may be
// half seen (counted but not yet summed); the count is always the sum of
// the buckets.
func (h *Histogram) Snapshot() HistogramSnapshot {
	s := HistogramSnapshot{UpperBounds: h.bounds, Counts: make([]uint64, len(h.counts))}
	for i := range h.counts {
		s.Counts[i] = h.counts[i].Load()
	}
	s.Sum = math.Float64frombits(h.sum.Load())
	return s
}

// HistogramSnapshot is a histogram's state, as a func collector computes
// it from counters kept elsewhere (the log's fsync latencies).
type HistogramSnapshot struct {
	// UpperBounds are the buckets' inclusive upper bounds, ascending,
	// without the implicit +Inf.
	UpperBounds []float64
	// Counts are per bucket, not cumulative: Counts[i] counts observations
	// in (UpperBounds[i-1], UpperBounds[i]], and the last element, at
	// len(UpperBounds), those above every bound.
	Counts []uint64
	// Sum is the sum of the observed values.
	Sum float64
}

// Count is the number of observations.
func (s HistogramSnapshot) Count() uint64 {
	var n uint64
	for _, c := range s.Counts {
		n += c
	}
	return n
}

func (s HistogramSnapshot) validate() error {
	if len(s.Counts) != len(s.UpperBounds)+1 {
		return fmt.Errorf("%d counts for %d bounds: want one more count than bounds (+Inf)", len(s.Counts), len(s.UpperBounds))
	}
	return checkBounds(s.UpperBounds)
}

func checkBounds(bounds []float64) error {
	for i, b := range bounds {
		if math.IsNaN(b) || math.IsInf(b, 0) {
			return fmt.Errorf("bucket bound %v: must be finite (+Inf is implicit)", b)
		}
		if i > 0 && b <= bounds[i-1] {
			return errors.New("bucket bounds must be strictly ascending")
		}
	}
	return nil
}

// DurationBuckets converts duration bounds to seconds.
func DurationBuckets(ds []time.Duration) []float64 {
	b := make([]float64, len(ds))
	for i, d := range ds {
		b[i] = d.Seconds()
	}
	return b
}

// HistogramVec is a histogram family with labels.
type HistogramVec struct{ v *vec[Histogram] }

// With returns the histogram for the label values, creating it empty.
func (hv *HistogramVec) With(values ...string) *Histogram { return hv.v.with(values) }

// Delete removes the series for the label values.
func (hv *HistogramVec) Delete(values ...string) bool { return hv.v.delete(values) }

// Collect implements Collector.
func (hv *HistogramVec) Collect(e *Emitter) {
	for _, c := range hv.v.snapshot() {
		e.Histogram(hv.v.name, hv.v.help, c.m.Snapshot(), c.labels...)
	}
}

// NewHistogram registers and returns a histogram without labels.
func (r *Registry) NewHistogram(name, help string, buckets []float64) *Histogram {
	return r.NewHistogramVec(name, help, buckets).With()
}

// NewHistogramVec registers and returns a histogram family with the given
// bucket upper bounds (ascending, finite) and label names. It panics on
// invalid buckets or names, or an already registered name.
func (r *Registry) NewHistogramVec(name, help string, buckets []float64, labels ...string) *HistogramVec {
	if err := checkBounds(buckets); err != nil {
		panic(fmt.Sprintf("metrics: %s: %v", name, err))
	}
	bounds := slices.Clone(buckets)
	hv := &HistogramVec{newVec(name, help, labels, func() *Histogram { return newHistogram(bounds) })}
	r.mustRegister(name, hv)
	return hv
}
