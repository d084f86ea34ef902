package log

import (
	"bytes"
	"testing"
)

// A roll that seals a segment while an appender makes room (between its
// retention pass and its look at what a pin holds) leaves a segment that
// retention may delete and no pin holds: makeRoom deletes it, never takes
// it for one a reader has not read (a spurious ErrFull, which MQTT turns
// into refused publishes).
func TestMakeRoomAfterConcurrentRoll(t *testing.T) {
	l := openTestLog(t, t.TempDir(), Options{})
	defer l.Close()
	cfg := testConfig()
	cfg.Sync = SyncNever
	cfg.Preallocate = false
	cfg.SegmentBytes = 64 << 10
	cfg.RetentionBytes = 64 << 10
	cfg.Retention = -1
	cfg.Compression = CodecNone
	tp, err := l.CreateTopic("r", cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := tp.Partition(0)
	big := func() []Record { return []Record{{Value: bytes.Repeat([]byte("x"), 10<<10)}} }
	for len(p.segments) < 2 || p.active().size < 50<<10 {
		if _, err := p.AppendRecords(big(), DefaultBatchOptions); err != nil {
			t.Fatal(err)
		}
	}
	// One sealed segment of about 64 KiB, which retention keeps (the
	// active one holds less than retention_bytes), and the active one.
	rolled := false
	testHookMakeRoom = func() {
		if rolled {
			return
		}
		rolled = true
		for n := len(p.segments); len(p.segments) == n; {
			if _, err := p.AppendRecords(big(), DefaultBatchOptions); err != nil {
				t.Error(err)
				return
			}
		}
	}
	defer func() { testHookMakeRoom = nil }()
	if err := p.makeRoom(cfg, p.retainedBytes()-20<<10); err != nil {
		t.Fatalf("make room after a concurrent roll, no reader pinning anything: %v", err)
	}
	if !rolled {
		t.Fatal("setup: makeRoom's loop never ran")
	}
}
