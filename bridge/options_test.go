package bridge

import (
	"context"
	"strings"
	"testing"
	"time"

	spoollog "github.com/spoolmq/spool/log"
)

func TestDestination(t *testing.T) {
	for _, tc := range []struct {
		tmpl, site, topic, want, err string
	}{
		{DefaultDestination, "pi-7", "sensors", "pi-7.sensors", ""},
		{"edge_{topic}", "x", "a.b", "edge_a.b", ""},
		{"all-sites", "x", "t", "all-sites", ""},
		{"{site}/{topic}", "x", "t", "", "not a valid Kafka topic name"},
		{"{site}.{topic}", "bad site", "t", "", "not a valid Kafka topic name"},
		{"{topic}", "x", "..", "", "not a valid Kafka topic name"},
	} {
		got, err := destination(tc.tmpl, tc.site, tc.topic)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q site %q topic %q: err %v, want %q", tc.tmpl, tc.site, tc.topic, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q site %q topic %q: %q, %v; want %q", tc.tmpl, tc.site, tc.topic, got, err, tc.want)
		}
	}
}

// TestBackoff: every wait is within [d/2, d] for d doubling from min to
// max, and reset starts over.
func TestBackoff(t *testing.T) {
	b := backoff{min: 100 * time.Millisecond, max: time.Second}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000, 1000}
	for round := range 2 {
		for i, w := range want {
			d, w := b.next(), w*time.Millisecond
			if d < w/2 || d > w {
				t.Fatalf("round %d attempt %d: %v not in [%v, %v]", round, i, d, w/2, w)
			}
		}
		b.reset()
	}
}

func TestOptionsRefused(t *testing.T) {
	l := newTestLog(t, spoollog.Options{})
	createTopic(t, l, "t", 1, nil)
	ok := KafkaLinkOptions{Name: "n", Site: "s", Seeds: []string{"127.0.0.1:1"}, Log: l, Topics: []string{"t"}}
	for _, tc := range []struct {
		name string
		edit func(*KafkaLinkOptions)
		err  string
	}{
		{"no name", func(o *KafkaLinkOptions) { o.Name = "" }, "link name is empty"},
		{"no site", func(o *KafkaLinkOptions) { o.Site = "" }, "site is empty"},
		{"no seeds", func(o *KafkaLinkOptions) { o.Seeds = nil }, "no seed brokers"},
		{"no log", func(o *KafkaLinkOptions) { o.Log = nil }, "no local log"},
		{"no topics", func(o *KafkaLinkOptions) { o.Topics = nil }, "no topics"},
		{"unknown topic", func(o *KafkaLinkOptions) { o.Topics = []string{"nope"} }, "unknown topic"},
		{"topic twice", func(o *KafkaLinkOptions) { o.Topics = []string{"t", "t"} }, "listed twice"},
		{"partitioning", func(o *KafkaLinkOptions) { o.Partitioning = "random" }, "not keep or rehash"},
		{"compression", func(o *KafkaLinkOptions) { o.Compression = "brotli" }, "unknown compression"},
		{"destination", func(o *KafkaLinkOptions) { o.Destination = "{site} {topic}" }, "not a valid Kafka topic name"},
	} {
		o := ok
		tc.edit(&o)
		if _, err := NewKafkaLink(o); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.err)
		}
	}
	k, err := NewKafkaLink(ok)
	if err != nil {
		t.Fatal(err)
	}
	k.Close()
}

// TestCloseReleasesPins: Close ends a running Run (here one that cannot
// reach its upstream), and releases the retention pins, so retention may
// then delete what the link had not mirrored. A closed link does not run
// again.
func TestCloseReleasesPins(t *testing.T) {
	l := newTestLog(t, spoollog.Options{})
	p := partition(t, createTopic(t, l, "t", 1, smallSegments), 0)
	for range 20 {
		appendBatch(t, p, 1, spoollog.CodecNone)
	}
	k, err := NewKafkaLink(KafkaLinkOptions{Name: "c", Site: "s", Seeds: []string{"127.0.0.1:1"}, Log: l, Topics: []string{"t"}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- k.Run(context.Background()) }()
	waitFor(t, "the link to start", func() bool {
		k.mu.Lock()
		defer k.mu.Unlock()
		return k.running
	})
	retainNothing(t, l, "t")
	if s := p.LogStartOffset(); s != 0 {
		t.Fatalf("retention deleted up to %d under the pin", s)
	}
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("Run did not return after Close")
	}
	if err := l.Maintain(); err != nil {
		t.Fatal(err)
	}
	if p.LogStartOffset() == 0 {
		t.Fatal("retention still held after Close")
	}
	if err := k.Run(context.Background()); err == nil {
		t.Fatal("Run after Close succeeded")
	}
}
