package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	spoollog "github.com/spoolmq/spool/log"
)

// Dump of a damaged segment names the topic and partition it belongs to,
// and the repair command for its data directory.
func TestDumpErrorNamesPartition(t *testing.T) {
	dir := t.TempDir()
	l, err := spoollog.Open(dir, spoollog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := spoollog.DefaultTopicConfig()
	cfg.Partitions = 3
	tp, err := l.CreateTopic("sensors", cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := tp.Partition(2)
	for i := 0; i < 5; i++ {
		if _, err := p.AppendRecords([]spoollog.Record{{Value: []byte("reading")}}, spoollog.DefaultBatchOptions); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	seg := filepath.Join(dir, "topics", "sensors", "2", "00000000000000000000.log")
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	b[70] ^= 0xff // inside the first batch's records: a CRC mismatch
	if err := os.WriteFile(seg, b, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := spool(t, context.Background(), "log", "dump", filepath.Join(dir, "topics", "sensors", "2"))
	if code != 1 || !strings.Contains(stderr, `topic "sensors" partition 2`) || !strings.Contains(stderr, "'spool log repair "+dir+"'") {
		t.Errorf("spool log dump of damaged sensors/2: exit %d, stderr %q; want exit 1 naming topic \"sensors\" partition 2 and 'spool log repair %s'", code, strings.TrimSpace(stderr), dir)
	}

	// A copy outside a data directory has no topic or partition to name.
	copied := filepath.Join(t.TempDir(), "00000000000000000000.log")
	if err := os.WriteFile(copied, b, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = spool(t, context.Background(), "log", "dump", copied)
	if code != 1 || strings.Contains(stderr, "partition 0") || !strings.Contains(stderr, "corrupt segment "+copied+" at byte 0") {
		t.Errorf("spool log dump of a damaged copy: exit %d, stderr %q; want exit 1 naming the segment, no partition", code, strings.TrimSpace(stderr))
	}
}
