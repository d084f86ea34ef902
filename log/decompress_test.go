package log

import (
	"errors"
	"testing"
)

// TestDecompressionBomb: a small compressed batch that expands past
// MaxDecompressedBatch is refused with ErrDecompressedTooLarge for every
// codec, and one just under the bound decodes.
func TestDecompressionBomb(t *testing.T) {
	for _, c := range []Codec{CodecGzip, CodecSnappy, CodecLz4, CodecZstd} {
		t.Run(c.String(), func(t *testing.T) {
			opts := DefaultBatchOptions
			opts.Codec = c
			big := make([]byte, MaxDecompressedBatch+1024)
			bomb, err := AppendBatch(nil, []Record{{Value: big}}, opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(bomb) > 4<<20 {
				t.Fatalf("%v compressed %d zero bytes to %d: not a bomb", c, len(big), len(bomb))
			}
			if _, _, err := DecodeRecords(bomb); !errors.Is(err, ErrDecompressedTooLarge) {
				t.Fatalf("decode of a %d-byte batch expanding to %d bytes: %v, want ErrDecompressedTooLarge", len(bomb), len(big), err)
			}
			ok, err := AppendBatch(nil, []Record{{Value: big[:MaxDecompressedBatch/2]}}, opts)
			if err != nil {
				t.Fatal(err)
			}
			if _, recs, err := DecodeRecords(ok); err != nil || len(recs) != 1 || len(recs[0].Value) != MaxDecompressedBatch/2 {
				t.Fatalf("decode under the bound: %d records, %v", len(recs), err)
			}
		})
	}
}
