package log

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// MaxDecompressedBatch bounds what one stored batch may decompress to when
// Spool itself reads its records (compaction, timestamp lookups, dumps).
// A producer's batch is at most max_message_bytes compressed; a few bytes
// of zstd or gzip can claim gigabytes, which must not take down a board
// with 512 MB of memory. franz-go's own decompressor bounds batches only at
// 2 GiB, so decoding goes to the same libraries directly, with this bound.
const MaxDecompressedBatch = 64 << 20

// ErrDecompressedTooLarge: a batch decompresses to more than
// MaxDecompressedBatch.
var ErrDecompressedTooLarge = fmt.Errorf("batch decompresses to more than %d bytes", MaxDecompressedBatch)

var zstdDecoders = sync.Pool{New: func() any {
	d, err := zstd.NewReader(nil, zstd.WithDecoderLowmem(true), zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderMaxMemory(MaxDecompressedBatch))
	if err != nil {
		panic(err) // only invalid options fail
	}
	return d
}}

// xerialPrefix starts snappy data framed the way the Java producer writes
// it: a 16-byte header, then blocks each prefixed by a big-endian length.
var xerialPrefix = []byte{130, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

// decompress returns the records section of a compressed batch.
func decompress(c Codec, src []byte) ([]byte, error) {
	switch c {
	case CodecGzip:
		r, err := gzip.NewReader(bytes.NewReader(src))
		if err != nil {
			return nil, err
		}
		return readBounded(r)
	case CodecSnappy:
		return decompressSnappy(src)
	case CodecLz4:
		return readBounded(lz4.NewReader(bytes.NewReader(src)))
	case CodecZstd:
		d := zstdDecoders.Get().(*zstd.Decoder)
		defer zstdDecoders.Put(d)
		out, err := d.DecodeAll(src, nil)
		if errors.Is(err, zstd.ErrDecoderSizeExceeded) {
			return nil, ErrDecompressedTooLarge
		}
		return out, err
	}
	return nil, fmt.Errorf("unknown compression codec %d", c)
}

func readBounded(r io.Reader) ([]byte, error) {
	var out bytes.Buffer
	n, err := out.ReadFrom(io.LimitReader(r, MaxDecompressedBatch+1))
	if err != nil {
		return nil, err
	}
	if n > MaxDecompressedBatch {
		return nil, ErrDecompressedTooLarge
	}
	return out.Bytes(), nil
}

// decompressSnappy decodes raw or xerial-framed snappy, checking each
// block's stated length before allocating for it.
func decompressSnappy(src []byte) ([]byte, error) {
	if !(len(src) > 16 && bytes.HasPrefix(src, xerialPrefix)) {
		return snappyBlock(nil, src)
	}
	var out []byte
	for rest := src[16:]; len(rest) > 0; {
		if len(rest) < 4 {
			return nil, errors.New("malformed xerial snappy framing")
		}
		n := binary.BigEndian.Uint32(rest)
		rest = rest[4:]
		if uint64(n) > uint64(len(rest)) {
			return nil, errors.New("malformed xerial snappy framing")
		}
		var err error
		if out, err = snappyBlock(out, rest[:n]); err != nil {
			return nil, err
		}
		rest = rest[n:]
	}
	return out, nil
}

func snappyBlock(dst, block []byte) ([]byte, error) {
	n, err := s2.DecodedLen(block)
	if err != nil {
		return nil, err
	}
	if len(dst)+n > MaxDecompressedBatch {
		return nil, ErrDecompressedTooLarge
	}
	out, err := s2.Decode(nil, block)
	if err != nil {
		return nil, err
	}
	return append(dst, out...), nil
}
