package httpapi

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	spoollog "github.com/spoolmq/spool/log"
)

// TestCreateTopicFractionalPartitions: a topic config over the API is
// decoded by the config file's rules: "partitions": 2.9 is a 400 naming
// config.partitions, not a topic with 2 partitions.
func TestCreateTopicFractionalPartitions(t *testing.T) {
	e := newEnv(t, spoollog.Options{}, nil)
	status, body := e.do("POST", "/api/v1/topics", `{"name":"frac","config":{"partitions":2.9}}`)
	if status != http.StatusBadRequest || !strings.Contains(string(body), "config.partitions") {
		t.Fatalf("partitions: 2.9 answered %d %s; want 400 naming config.partitions", status, body)
	}
}

// TestLongPollEndsWhenTopicDeleted: deleting a topic wakes a long poll on
// it (a closed partition's notify channel is closed), which ends at once
// with 404 rather than waiting out its wait and answering an empty list.
func TestLongPollEndsWhenTopicDeleted(t *testing.T) {
	e := newEnv(t, spoollog.Options{}, nil)
	waiting := make(chan struct{}, 1)
	e.a.pollWaiting = func() {
		select {
		case waiting <- struct{}{}:
		default:
		}
	}
	e.createTopic("gone", nil)
	const wait = 3 * time.Second
	type result struct {
		status int
		body   []byte
		took   time.Duration
	}
	done := make(chan result, 1)
	go func() {
		start := time.Now()
		status, b := e.do("GET", recordsPath("gone", 0, "offset=0&wait="+wait.String()), nil)
		done <- result{status, b, time.Since(start)}
	}()
	<-waiting
	e.must(http.StatusNoContent, "DELETE", "/api/v1/topics/gone", nil, nil)
	r := <-done
	if r.status != http.StatusNotFound || r.took >= wait {
		t.Fatalf("long poll on a deleted topic answered %d %s after %v; want 404 before the wait of %v ends",
			r.status, r.body, r.took, wait)
	}
}

// TestSSEEndsWhenTopicDeleted: a stream following a topic gets its
// "event: error" as soon as the topic is deleted, not at the next
// heartbeat 15 s later.
func TestSSEEndsWhenTopicDeleted(t *testing.T) {
	e := newEnv(t, spoollog.Options{}, nil)
	waiting := make(chan struct{}, 1)
	e.a.pollWaiting = func() {
		select {
		case waiting <- struct{}{}:
		default:
		}
	}
	e.createTopic("sse-gone", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	resp := e.send(ctx, "GET", recordsPath("sse-gone", 0, "follow=1"), nil)
	defer resp.Body.Close()
	<-waiting
	e.must(http.StatusNoContent, "DELETE", "/api/v1/topics/sse-gone", nil, nil)
	ev, err := readEvent(bufio.NewReader(resp.Body))
	if err != nil || ev.event != "error" {
		t.Fatalf("stream of a deleted topic: %+v, %v within 3s; want an error event", ev, err)
	}
}
