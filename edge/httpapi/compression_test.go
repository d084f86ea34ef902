package httpapi

import (
	"net/http"
	"strings"
	"testing"

	spoollog "github.com/spoolmq/spool/log"
)

// A topic's compression is set and shown under the config file's key;
// an unknown codec is refused with the key named.
func TestTopicCompressionSetting(t *testing.T) {
	e := newEnv(t, spoollog.Options{}, nil)
	e.createTopic("packed", map[string]any{"compression": "lz4"})
	e.createTopic("plain", nil)
	for name, want := range map[string]string{"packed": "lz4", "plain": "zstd"} {
		var d topicJSON
		e.must(http.StatusOK, "GET", "/api/v1/topics/"+name, nil, &d)
		if d.Config.Compression != want {
			t.Errorf("%s: compression %q, want %q", name, d.Config.Compression, want)
		}
	}
	code, body := e.do("POST", "/api/v1/topics", map[string]any{"name": "bad", "config": map[string]any{"compression": "brotli"}})
	if code != http.StatusBadRequest || !strings.Contains(string(body), "compression") {
		t.Errorf("compression brotli: %d %s, want 400 naming compression", code, body)
	}
}
