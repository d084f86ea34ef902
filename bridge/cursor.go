package bridge

import (
	"encoding/binary"
	"fmt"
	"strconv"

	spoollog "github.com/spoolmq/spool/log"
)

// Cursors live in the metadata store under namespace "bridge." + link name,
// one key per mirrored partition: topic + "/" + partition number (Kafka topic
// names cannot contain '/'). The value is the next local offset to mirror,
// 8 bytes big-endian. This encoding is part of the on-disk format.

func cursorNamespace(link string) string { return "bridge." + link }

func cursorKey(topic string, partition int32) string {
	return topic + "/" + strconv.FormatInt(int64(partition), 10)
}

func encodeCursor(offset int64) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(offset))
}

// loadCursor returns the stored cursor, or -1 when there is none (the link
// never mirrored this partition).
func loadCursor(m *spoollog.Meta, ns, key string) (int64, error) {
	v, ok, err := m.GetCursor(ns, key)
	if err != nil || !ok {
		return -1, err
	}
	if len(v) != 8 {
		return -1, fmt.Errorf("bridge cursor %s %s: %d bytes, want 8", ns, key, len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), nil
}
