package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/spoolmq/spool/edge/config"
	spoollog "github.com/spoolmq/spool/log"
)

// topicJSON describes a topic. The config uses the keys and units of the
// YAML topic spec (config.TopicSpec), so it can be posted back as is.
type topicJSON struct {
	Name       string          `json:"name"`
	Config     topicConfigJSON `json:"config"`
	Partitions []partitionJSON `json:"partitions"`
	// Ingest counters since the log was opened (Topic.Appended).
	IngestedRecords int64 `json:"ingested_records"`
	IngestedBytes   int64 `json:"ingested_bytes"`
	// DroppedRecords counts records on_full: drop_oldest deleted before a
	// pinned reader (the bridge) had read them.
	DroppedRecords int64 `json:"dropped_records"`
}

type partitionJSON struct {
	Partition      int32  `json:"partition"`
	LogStartOffset int64  `json:"log_start_offset"`
	HighWatermark  int64  `json:"high_watermark"`
	SizeBytes      int64  `json:"size_bytes"`
	Error          string `json:"error,omitempty"` // a sticky I/O error stopping appends
}

type topicConfigJSON struct {
	Partitions      int32           `json:"partitions"`
	Sync            string          `json:"sync"`
	SyncInterval    config.Duration `json:"sync_interval"`
	Retention       config.Duration `json:"retention"`
	RetentionBytes  config.Size     `json:"retention_bytes"`
	SegmentBytes    config.Size     `json:"segment_bytes"`
	SegmentAge      config.Duration `json:"segment_age"`
	MaxMessageBytes config.Size     `json:"max_message_bytes"`
	OnFull          string          `json:"on_full"`
	CleanupPolicy   string          `json:"cleanup_policy"`
	DeleteRetention config.Duration `json:"delete_retention"`
	TimestampType   string          `json:"timestamp_type"`
	Preallocate     bool            `json:"preallocate"`
	Compression     string          `json:"compression"`
}

func configJSON(c spoollog.TopicConfig) topicConfigJSON {
	ts := "create_time"
	if c.TimestampType == spoollog.LogAppendTime {
		ts = "log_append_time"
	}
	return topicConfigJSON{
		Partitions:      c.Partitions,
		Sync:            string(c.Sync),
		SyncInterval:    config.Duration(c.SyncInterval),
		Retention:       config.Duration(c.Retention),
		RetentionBytes:  config.Size(c.RetentionBytes),
		SegmentBytes:    config.Size(c.SegmentBytes),
		SegmentAge:      config.Duration(c.SegmentAge),
		MaxMessageBytes: config.Size(c.MaxMessageBytes),
		OnFull:          string(c.OnFull),
		CleanupPolicy:   string(c.CleanupPolicy),
		DeleteRetention: config.Duration(c.DeleteRetention),
		TimestampType:   ts,
		Preallocate:     c.Preallocate,
		Compression:     c.Compression.String(),
	}
}

func describe(t *spoollog.Topic) topicJSON {
	recs, bytes := t.Appended()
	d := topicJSON{
		Name:            t.Name(),
		Config:          configJSON(t.Config()),
		IngestedRecords: recs,
		IngestedBytes:   bytes,
		DroppedRecords:  t.DroppedRecords(),
		Partitions:      []partitionJSON{},
	}
	for _, p := range t.Partitions() {
		pj := partitionJSON{
			Partition:      p.ID(),
			LogStartOffset: p.LogStartOffset(),
			HighWatermark:  p.HighWatermark(),
			SizeBytes:      p.Size(),
		}
		if err := p.Err(); err != nil {
			pj.Error = err.Error()
		}
		d.Partitions = append(d.Partitions, pj)
	}
	return d
}

// GET /api/v1/topics → {"topics": [topic, ...]}, sorted by name.
func (a *api) listTopics(w http.ResponseWriter, r *http.Request) {
	out := struct {
		Topics []topicJSON `json:"topics"`
	}{Topics: []topicJSON{}}
	for _, name := range a.l.Topics() {
		t, err := a.l.Topic(name)
		if err != nil {
			continue // deleted meanwhile
		}
		out.Topics = append(out.Topics, describe(t))
	}
	writeJSON(w, http.StatusOK, out)
}

// GET /api/v1/topics/{topic}
func (a *api) describeTopic(w http.ResponseWriter, r *http.Request) {
	t, err := a.l.Topic(r.PathValue("topic"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, describe(t))
}

// DELETE /api/v1/topics/{topic} → 204.
func (a *api) deleteTopic(w http.ResponseWriter, r *http.Request) {
	if err := a.l.DeleteTopic(r.PathValue("topic")); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// POST /api/v1/topics with {"name": "...", "config": {...}} → 201 and
// the topic's description; 409 when it exists; 400 for an invalid name or
// config, naming the key.
func (a *api) createTopic(w http.ResponseWriter, r *http.Request) {
	name, cfg, err := a.parseCreate(r.Body)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if err := spoollog.ValidateTopicName(name); err != nil {
		a.fail(w, r, badRequest(err.Error()))
		return
	}
	// The log refuses names that differ only by '.' and '_' (they share
	// metric names) with a plain error: check first, for a 409.
	for _, other := range a.l.Topics() {
		if other != name && strings.ReplaceAll(other, ".", "_") == strings.ReplaceAll(name, ".", "_") {
			a.fail(w, r, &requestError{http.StatusConflict,
				fmt.Sprintf("topic %q collides with existing topic %q ('.' and '_' are the same in metric names)", name, other)})
			return
		}
	}
	t, err := a.l.CreateTopic(name, cfg)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/topics/"+name)
	writeJSON(w, http.StatusCreated, describe(t))
}

// parseCreate reads the create body. The config object has the keys of
// the YAML topic spec; it is decoded by the YAML decoder (JSON is YAML)
// with unknown keys refused, one key at a time so that an error names the
// key, e.g. `config.retention: "7x" is not a duration such as 30s`.
func (a *api) parseCreate(body io.Reader) (string, spoollog.TopicConfig, error) {
	var req struct {
		Name   string          `json:"name"`
		Config json.RawMessage `json:"config"`
	}
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := decodeOne(dec, &req); err != nil {
		return "", spoollog.TopicConfig{}, err
	}
	if req.Name == "" {
		return "", spoollog.TopicConfig{}, badRequest(`"name" is required`)
	}
	var settings map[string]json.RawMessage
	if len(req.Config) > 0 && string(req.Config) != "null" {
		if err := json.Unmarshal(req.Config, &settings); err != nil {
			return "", spoollog.TopicConfig{}, badRequest(`"config" must be an object of topic settings`)
		}
		// A map keeps the last of a repeated key: refuse it instead, as
		// the config file does.
		if k, dup := duplicateKey(req.Config); dup {
			return "", spoollog.TopicConfig{}, badRequest(fmt.Sprintf("config.%s: given twice", k))
		}
	}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		one, _ := json.Marshal(map[string]json.RawMessage{k: settings[k]})
		if err := decodeSpec(one, new(config.TopicSpec)); err != nil {
			return "", spoollog.TopicConfig{}, badRequest(specError(k, err))
		}
	}
	// Every key is known and valid on its own: decode them together.
	var spec config.TopicSpec
	if len(settings) > 0 {
		all, _ := json.Marshal(settings)
		if err := decodeSpec(all, &spec); err != nil {
			return "", spoollog.TopicConfig{}, badRequest("config: " + linePrefix.ReplaceAllString(err.Error(), ""))
		}
	}
	if spec.Name != "" && spec.Name != req.Name {
		return "", spoollog.TopicConfig{}, badRequest(fmt.Sprintf("config.name %q differs from name %q; give the name only at the top level", spec.Name, req.Name))
	}
	cfg, err := spec.TopicConfig(a.opts.DefaultTopic)
	if err != nil {
		return "", spoollog.TopicConfig{}, badRequest("config." + err.Error())
	}
	return req.Name, cfg, nil
}

func decodeSpec(b []byte, s *config.TopicSpec) error { return config.DecodeTopicSpec(b, s) }

// duplicateKey finds a key given twice at the top of the JSON object obj
// (which has been decoded once already, so it is well formed).
func duplicateKey(obj []byte) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if _, err := dec.Token(); err != nil { // {
		return "", false
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		k, _ := tok.(string)
		if seen[k] {
			return k, true
		}
		seen[k] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return "", false
		}
	}
	return "", false
}

var (
	linePrefix = regexp.MustCompile(`^(yaml: )?line \d+: `)
	lineSuffix = regexp.MustCompile(` \(line \d+\)$`)
)

// specError words an error of config.DecodeTopicSpec about key k.
func specError(k string, err error) string {
	msg := lineSuffix.ReplaceAllString(linePrefix.ReplaceAllString(err.Error(), ""), "")
	if msg == k+": unknown key" {
		return fmt.Sprintf("unknown config key %q", "config."+k)
	}
	return "config." + msg
}

// decodeOne decodes exactly one JSON value from dec into v.
func decodeOne(dec *json.Decoder, v any) error {
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return err
		}
		if errors.Is(err, io.EOF) {
			return badRequest("empty body: want a JSON object")
		}
		return badRequest("invalid JSON body: " + strings.TrimPrefix(err.Error(), "json: "))
	}
	if dec.More() {
		return badRequest("invalid JSON body: more than one value")
	}
	return nil
}
