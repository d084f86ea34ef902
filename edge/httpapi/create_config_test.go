package httpapi

import (
	"net/http"
	"strings"
	"testing"

	spoollog "github.com/spoolmq/spool/log"
)

// POST /api/v1/topics decodes the config with the config file's decoder,
// but without expanding ${NAME}: a client must not be able to read the
// server's environment (secrets such as SPOOL_KAFKA_PASSWORD) through an
// echoed error message, nor configure topics from it.
func TestCreateTopicDoesNotExpandServerEnv(t *testing.T) {
	t.Setenv("SPOOL_TEST_SECRET", "hunter2-secret")
	e := newEnv(t, spoollog.Options{}, nil)
	status, b := e.do("POST", "/api/v1/topics", `{"name":"leak","config":{"retention":"${SPOOL_TEST_SECRET}"}}`)
	if strings.Contains(string(b), "hunter2-secret") {
		t.Errorf("create topic: %d %s: the server's environment variable was expanded and echoed to the client", status, b)
	}
	if status != http.StatusBadRequest {
		t.Errorf("create topic with retention ${...}: status %d, want 400: %s", status, b)
	}

	// Nor is an expanded value silently used.
	t.Setenv("SPOOL_TEST_RETENTION", "30d")
	status, b = e.do("POST", "/api/v1/topics", `{"name":"envret","config":{"retention":"${SPOOL_TEST_RETENTION}"}}`)
	if status == http.StatusCreated {
		t.Errorf("create topic with retention \"${SPOOL_TEST_RETENTION}\": 201, the server's environment configured the topic: %s", b)
	}
}

// A config key given twice is refused over HTTP as in the config file,
// rather than the last value silently winning.
func TestCreateTopicDuplicateConfigKey(t *testing.T) {
	e := newEnv(t, spoollog.Options{}, nil)
	status, b := e.do("POST", "/api/v1/topics", `{"name":"dup","config":{"partitions":1,"partitions":4}}`)
	if status != http.StatusBadRequest {
		t.Errorf("config with partitions given twice: status %d, want 400 naming the duplicate key: %s", status, b)
	}
}
