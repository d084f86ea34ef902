package metrics_test

import (
	"bytes"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spoolmq/spool/edge/metrics"
	"github.com/spoolmq/spool/edge/metrics/metricstest"
)

// scrape writes reg's text and parses it back with the strict checker.
func scrape(t *testing.T, reg *metrics.Registry) (string, []metricstest.Family) {
	t.Helper()
	var buf bytes.Buffer
	if err := reg.WriteText(&buf); err != nil {
		t.Fatalf("WriteText: %v", err)
	}
	fams, err := metricstest.Parse(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, buf.String())
	}
	return buf.String(), fams
}

func TestCountersAndGauges(t *testing.T) {
	reg := metrics.NewRegistry()
	c := reg.NewCounter("spool_things_total", "Things seen.")
	c.Inc()
	c.Add(41)
	g := reg.NewGauge("spool_level", "A level.")
	g.Set(2.5)
	g.Add(-1)
	g.Inc()
	g.Dec()
	cv := reg.NewCounterVec("spool_events_total", "Events by topic and partition.", "topic", "partition")
	// Children are kept by the caller: With returns the same child.
	a := cv.With("a", "1")
	if cv.With("a", "1") != a {
		t.Fatal("With returned a different child for the same labels")
	}
	a.Add(3)
	cv.With("a", "10").Inc()
	cv.With("a", "9").Add(2)
	cv.With("gone", "0").Inc()
	if !cv.Delete("gone", "0") {
		t.Fatal("Delete found nothing")
	}

	text, fams := scrape(t, reg)
	for _, tc := range []struct {
		family, sample string
		labels         []string
		want           float64
	}{
		{"spool_things_total", "spool_things_total", nil, 42},
		{"spool_level", "spool_level", nil, 1.5},
		{"spool_events_total", "spool_events_total", []string{"topic", "a", "partition", "1"}, 3},
		{"spool_events_total", "spool_events_total", []string{"topic", "a", "partition", "9"}, 2},
		{"spool_events_total", "spool_events_total", []string{"topic", "a", "partition", "10"}, 1},
	} {
		f := metricstest.Find(fams, tc.family)
		if f == nil {
			t.Fatalf("family %s missing:\n%s", tc.family, text)
		}
		got, ok := f.Value(tc.sample, tc.labels...)
		if !ok || got != tc.want {
			t.Errorf("%s%v = %v (found %v), want %v", tc.sample, tc.labels, got, ok, tc.want)
		}
	}
	if f := metricstest.Find(fams, "spool_events_total"); len(f.Samples) != 3 || f.Type != "counter" || f.Help != "Events by topic and partition." {
		t.Errorf("spool_events_total: %+v", f)
	}
	if strings.Contains(text, "gone") {
		t.Errorf("deleted series still written:\n%s", text)
	}
	// Families sorted by name; partitions in numeric order.
	wantOrder := []string{"spool_events_total", "spool_level", "spool_things_total"}
	for i, f := range fams {
		if f.Name != wantOrder[i] {
			t.Fatalf("family %d is %s, want %s", i, f.Name, wantOrder[i])
		}
	}
	i1, i9, i10 := strings.Index(text, `partition="1"`), strings.Index(text, `partition="9"`), strings.Index(text, `partition="10"`)
	if !(i1 < i9 && i9 < i10) {
		t.Errorf("series not in partition order:\n%s", text)
	}
	// Labels written in name order regardless of declaration order.
	if !strings.Contains(text, `spool_events_total{partition="1",topic="a"} 3`+"\n") {
		t.Errorf("unexpected sample line:\n%s", text)
	}
}

func TestEscaping(t *testing.T) {
	reg := metrics.NewRegistry()
	weird := "back\\slash \"quoted\"\nnew line, {braces}=é"
	reg.NewCounterVec("spool_escaped_total", "Help with a \\ backslash\nand a newline and \"quotes\".", "v").With(weird).Inc()
	reg.Register("func", metrics.CollectorFunc(func(e *metrics.Emitter) {
		e.Gauge("spool_func_gauge", "From a func.", 7, metrics.L("path", `C:\dir\"x"`))
	}))

	text, fams := scrape(t, reg)
	wantLines := []string{
		`# HELP spool_escaped_total Help with a \\ backslash\nand a newline and "quotes".`,
		`spool_escaped_total{v="back\\slash \"quoted\"\nnew line, {braces}=é"} 1`,
		`spool_func_gauge{path="C:\\dir\\\"x\""} 7`,
	}
	for _, l := range wantLines {
		if !strings.Contains(text, l+"\n") {
			t.Errorf("missing line %s in:\n%s", l, text)
		}
	}
	f := metricstest.Find(fams, "spool_escaped_total")
	if f.Help != "Help with a \\ backslash\nand a newline and \"quotes\"." {
		t.Errorf("help round trip: %q", f.Help)
	}
	if got := f.Samples[0].Labels["v"]; got != weird {
		t.Errorf("label value round trip: %q, want %q", got, weird)
	}
	if got := metricstest.Find(fams, "spool_func_gauge").Samples[0].Labels["path"]; got != `C:\dir\"x"` {
		t.Errorf("func label round trip: %q", got)
	}
}

func TestHistogram(t *testing.T) {
	reg := metrics.NewRegistry()
	h := reg.NewHistogram("spool_latency_seconds", "Latency.", []float64{0.001, 0.01, 0.1, 1})
	obs := []float64{0.0005, 0.001, 0.002, 0.05, 0.05, 0.5, 3, 10}
	var sum float64
	for _, v := range obs {
		h.Observe(v)
		sum += v
	}
	hv := reg.NewHistogramVec("spool_size_bytes", "Sizes.", []float64{10, 100}, "topic")
	hv.With("b").Observe(5)
	hv.With("a").Observe(50)
	hv.With("a").Observe(500)

	text, fams := scrape(t, reg)
	f := metricstest.Find(fams, "spool_latency_seconds")
	if f == nil || f.Type != "histogram" {
		t.Fatalf("histogram family missing:\n%s", text)
	}
	// Inclusive upper bounds: 0.001 lands in le="0.001".
	for le, want := range map[string]float64{"0.001": 2, "0.01": 3, "0.1": 5, "1": 6, "+Inf": 8} {
		if got, ok := f.Value("spool_latency_seconds_bucket", "le", le); !ok || got != want {
			t.Errorf("bucket le=%s = %v, want %v", le, got, want)
		}
	}
	if got, _ := f.Value("spool_latency_seconds_count"); got != float64(len(obs)) {
		t.Errorf("count = %v, want %d", got, len(obs))
	}
	if got, _ := f.Value("spool_latency_seconds_sum"); math.Abs(got-sum) > 1e-9 {
		t.Errorf("sum = %v, want %v", got, sum)
	}
	sf := metricstest.Find(fams, "spool_size_bytes")
	if got, ok := sf.Value("spool_size_bytes_bucket", "topic", "a", "le", "100"); !ok || got != 1 {
		t.Errorf("topic a le=100: %v %v", got, ok)
	}
	if got, ok := sf.Value("spool_size_bytes_count", "topic", "b"); !ok || got != 1 {
		t.Errorf("topic b count: %v %v", got, ok)
	}
	// Series a (buckets, sum, count) precede series b.
	if strings.Index(text, `topic="a"`) > strings.Index(text, `topic="b"`) ||
		strings.LastIndex(text, `spool_size_bytes_count{topic="a"}`) > strings.Index(text, `spool_size_bytes_bucket{topic="b"`) {
		t.Errorf("histogram series interleaved:\n%s", text)
	}
}

func TestHistogramConcurrent(t *testing.T) {
	reg := metrics.NewRegistry()
	h := reg.NewHistogram("spool_h_seconds", "H.", metrics.DurationBuckets([]time.Duration{time.Millisecond, time.Second}))
	c := reg.NewCounter("spool_c_total", "C.")
	const workers, each = 8, 1000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				h.ObserveDuration(time.Duration(w*i) * time.Microsecond)
				c.Inc()
			}
		})
	}
	// Scrapes while observing must stay consistent (checked by Parse).
	for range 20 {
		scrape(t, reg)
	}
	wg.Wait()
	_, fams := scrape(t, reg)
	if got, _ := metricstest.Find(fams, "spool_h_seconds").Value("spool_h_seconds_count"); got != workers*each {
		t.Errorf("count = %v, want %d", got, workers*each)
	}
	if got, _ := metricstest.Find(fams, "spool_c_total").Value("spool_c_total"); got != workers*each {
		t.Errorf("counter = %v, want %d", got, workers*each)
	}
}

func TestFuncCollectors(t *testing.T) {
	reg := metrics.NewRegistry()
	snap := metrics.HistogramSnapshot{UpperBounds: []float64{1, 2}, Counts: []uint64{1, 0, 2}, Sum: 9}
	// Two collectors contribute to one family; HELP and TYPE appear once.
	for _, topic := range []string{"b", "a"} {
		reg.Register("topic-"+topic, metrics.CollectorFunc(func(e *metrics.Emitter) {
			e.Counter("spool_topic_records_total", "Records.", 5, metrics.L("topic", topic))
			e.Histogram("spool_topic_wait_seconds", "Wait.", snap, metrics.L("topic", topic))
		}))
	}
	text, fams := scrape(t, reg)
	if n := strings.Count(text, "# HELP spool_topic_records_total "); n != 1 {
		t.Errorf("HELP written %d times:\n%s", n, text)
	}
	if n := strings.Count(text, "# TYPE spool_topic_wait_seconds histogram\n"); n != 1 {
		t.Errorf("TYPE written %d times:\n%s", n, text)
	}
	f := metricstest.Find(fams, "spool_topic_wait_seconds")
	if got, ok := f.Value("spool_topic_wait_seconds_bucket", "topic", "a", "le", "2"); !ok || got != 1 {
		t.Errorf("cumulative le=2: %v", got)
	}
	if got, ok := f.Value("spool_topic_wait_seconds_count", "topic", "b"); !ok || got != 3 {
		t.Errorf("count: %v", got)
	}
	if strings.Index(text, `{topic="a"}`) > strings.Index(text, `{topic="b"}`) {
		t.Errorf("series not sorted:\n%s", text)
	}

	// Re-registering an id replaces the collector.
	reg.Register("topic-b", metrics.CollectorFunc(func(e *metrics.Emitter) {}))
	if _, fams := scrape(t, reg); len(metricstest.Find(fams, "spool_topic_records_total").Samples) != 1 {
		t.Error("replaced collector still collected")
	}
	if !reg.Unregister("topic-a") || reg.Unregister("topic-a") {
		t.Error("Unregister")
	}
	if text, _ := scrape(t, reg); text != "" {
		t.Errorf("empty registry wrote %q", text)
	}
}

func TestConflictsDropped(t *testing.T) {
	reg := metrics.NewRegistry()
	reg.NewCounter("spool_x_total", "X.").Inc()
	reg.Register("bad", metrics.CollectorFunc(func(e *metrics.Emitter) {
		e.Gauge("spool_x_total", "X.", 1, metrics.L("a", "b"))                  // other type
		e.Counter("spool_x_total", "Other help.", 1, metrics.L("a", "c"))       // other help
		e.Counter("spool_x_total", "X.", 2)                                     // duplicate series
		e.Counter("spool_neg_total", "N.", -1)                                  // negative counter
		e.Gauge("0bad", "B.", 1)                                                // bad name
		e.Gauge("spool_ok", "OK.", 1, metrics.L("__reserved", "x"))             // bad label
		e.Gauge("spool_ok", "OK.", 1, metrics.L("bad", "\xff"))                 // bad UTF-8
		e.Gauge("spool_ok", "OK.", 1, metrics.L("a", "x"), metrics.L("a", "y")) // label twice
		e.Histogram("spool_h", "H.", metrics.HistogramSnapshot{UpperBounds: []float64{2, 1}, Counts: []uint64{0, 0, 0}})
		e.Histogram("spool_h2", "H.", metrics.HistogramSnapshot{UpperBounds: []float64{1}, Counts: []uint64{0}})
		e.Histogram("spool_h3", "H.", metrics.HistogramSnapshot{UpperBounds: []float64{1}, Counts: []uint64{0, 1}})
		e.Gauge("spool_h3_count", "Clash.", 1)
		e.Gauge("spool_ok", "OK.", 3)
	}))
	var buf bytes.Buffer
	err := reg.WriteText(&buf)
	if err == nil {
		t.Fatal("no error for conflicting samples")
	}
	for _, want := range []string{"emitted as gauge", "differs", "duplicate series", "negative", `"0bad"`, "__reserved", "UTF-8", "given twice", "ascending", "counts for", "clashes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	fams, perr := metricstest.Parse(&buf)
	if perr != nil {
		t.Fatalf("output with dropped samples does not parse: %v\n%s", perr, buf.String())
	}
	if f := metricstest.Find(fams, "spool_x_total"); len(f.Samples) != 1 || f.Samples[0].Value != 1 {
		t.Errorf("spool_x_total: %+v", f)
	}
	if f := metricstest.Find(fams, "spool_ok"); f == nil || len(f.Samples) != 1 {
		t.Errorf("spool_ok: %+v", f)
	}
	if metricstest.Find(fams, "spool_h3_count") != nil || metricstest.Find(fams, "spool_h3") == nil {
		t.Error("histogram clash not resolved in the histogram's favour")
	}
}

func TestRegisterPanics(t *testing.T) {
	for name, fn := range map[string]func(r *metrics.Registry){
		"twice":        func(r *metrics.Registry) { r.NewCounter("a_total", ""); r.NewGauge("a_total", "") },
		"bad name":     func(r *metrics.Registry) { r.NewCounter("a-b", "") },
		"le label":     func(r *metrics.Registry) { r.NewHistogramVec("h", "", []float64{1}, "le") },
		"bad buckets":  func(r *metrics.Registry) { r.NewHistogram("h", "", []float64{1, math.Inf(1)}) },
		"wrong arity":  func(r *metrics.Registry) { r.NewCounterVec("c_total", "", "a").With() },
		"dup label":    func(r *metrics.Registry) { r.NewGaugeVec("g", "", "a", "a") },
		"bad label":    func(r *metrics.Registry) { r.NewGaugeVec("g", "", "a-b") },
		"unsorted bkt": func(r *metrics.Registry) { r.NewHistogram("h", "", []float64{2, 1}) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			fn(metrics.NewRegistry())
		})
	}
}

func TestValueFormatting(t *testing.T) {
	reg := metrics.NewRegistry()
	reg.Register("f", metrics.CollectorFunc(func(e *metrics.Emitter) {
		e.Gauge("g_big", "", 1<<40)
		e.Gauge("g_frac", "", 0.00005)
		e.Gauge("g_inf", "", math.Inf(1))
		e.Gauge("g_nan", "", math.NaN())
		e.Gauge("g_neg", "", -3)
	}))
	text, fams := scrape(t, reg)
	for _, l := range []string{"g_big 1099511627776", "g_frac 5e-05", "g_inf +Inf", "g_nan NaN", "g_neg -3", "# HELP g_big \n"} {
		if !strings.Contains(text, l) {
			t.Errorf("missing %q in:\n%s", l, text)
		}
	}
	if len(fams) != 5 {
		t.Errorf("%d families", len(fams))
	}
}

// The checker itself must refuse broken expositions, or the tests above
// prove nothing.
func TestCheckerRefuses(t *testing.T) {
	for name, text := range map[string]string{
		"no type":        "x 1\n",
		"two helps":      "# HELP x a\n# HELP x b\n# TYPE x gauge\nx 1\n",
		"two types":      "# TYPE x gauge\n# TYPE x gauge\nx 1\n",
		"type after":     "# TYPE x gauge\nx 1\n# TYPE x gauge\n",
		"bad escape":     "# TYPE x gauge\nx{a=\"\\t\"} 1\n",
		"unquoted":       "# TYPE x gauge\nx{a=b} 1\n",
		"duplicate":      "# TYPE x gauge\nx{a=\"1\"} 1\nx{a=\"1\"} 2\n",
		"interleaved":    "# TYPE x gauge\n# TYPE y gauge\nx 1\ny 1\nx{a=\"b\"} 1\n",
		"negative count": "# TYPE x counter\nx -1\n",
		"bad value":      "# TYPE x gauge\nx one\n",
		"no inf":         "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
		"decreasing":     "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
		"count mismatch": "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 1\n",
		"no sum":         "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",
		"le unordered":   "# TYPE h histogram\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
	} {
		if _, err := metricstest.Parse(strings.NewReader(text)); err == nil {
			t.Errorf("%s: accepted:\n%s", name, text)
		}
	}
	ok := "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1.5\nh_count 2\n# TYPE x gauge\nx{a=\"\\\\\\\"\\n\"} 1 1700000000000\n"
	if _, err := metricstest.Parse(strings.NewReader(ok)); err != nil {
		t.Errorf("valid exposition refused: %v", err)
	}
}
