package log

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// readChunk is how much a batchReader reads at once: enough to cover an
// index interval of small batches in one system call.
const readChunk = 64 << 10

// batchReader reads batches sequentially from a segment file through a
// buffer, so that scanning headers costs a system call per chunk, not per
// batch.
type batchReader struct {
	f     File
	limit int64 // bytes beyond limit are never read
	buf   []byte
	start int64 // file position of buf[0]
}

// at returns the n bytes at pos. The slice is valid until the next call.
func (r *batchReader) at(pos int64, n int) ([]byte, error) {
	if pos >= r.start && pos+int64(n) <= r.start+int64(len(r.buf)) {
		return r.buf[pos-r.start:][:n], nil
	}
	if pos+int64(n) > r.limit {
		return nil, io.ErrUnexpectedEOF
	}
	size := int64(max(n, readChunk))
	size = min(size, r.limit-pos)
	if int64(cap(r.buf)) < size {
		r.buf = make([]byte, size)
	}
	r.buf = r.buf[:size]
	got, err := r.f.ReadAt(r.buf, pos)
	if got < n {
		r.buf = r.buf[:0]
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	r.buf, r.start = r.buf[:got], pos
	return r.buf[:n], nil
}

// openSegmentFile opens a segment file for the offline tools and returns a
// reader over its whole length. The caller closes the file.
func openSegmentFile(path string) (*os.File, *batchReader, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, 0, err
	}
	return f, &batchReader{f: osFile{f}, limit: fi.Size()}, fi.Size(), nil
}

// errEndOfData is returned by next at a zero batch length: the start of
// zero-filled preallocation, or the end mark written in a recycled file
// (recycle.go), where the data ends.
var errEndOfData = errors.New("end of data")

// header reads and sanity-checks the batch header at pos, without the CRC.
func (r *batchReader) header(pos int64) (BatchHeader, error) {
	b, err := r.at(pos, batchHeaderSize)
	if err != nil {
		if pos == r.limit {
			return BatchHeader{}, io.EOF
		}
		if pos < r.limit && r.limit-pos < batchHeaderSize && zeroFrom(r, pos, r.limit) {
			// Preallocated zeros too short to hold a header.
			return BatchHeader{}, errEndOfData
		}
		return BatchHeader{}, fmt.Errorf("%w: %v", ErrBatchTruncated, err)
	}
	h := parseBatchHeader(b)
	switch {
	case h.Length == 0 && h.Magic == 0:
		return h, errEndOfData
	case h.Length < batchHeaderSize-batchLogOverhead:
		return h, fmt.Errorf("%w: %d", ErrBatchLength, h.Length)
	case h.Magic != batchMagic:
		return h, fmt.Errorf("%w: %d", ErrBatchMagic, h.Magic)
	case pos+int64(h.Size()) > r.limit:
		return h, fmt.Errorf("%w: batch of %d bytes at %d passes the end at %d", ErrBatchTruncated, h.Size(), pos, r.limit)
	}
	return h, nil
}

// batch reads the whole batch at pos and checks it, CRC included.
func (r *batchReader) batch(pos int64) (BatchHeader, []byte, error) {
	h, err := r.header(pos)
	if err != nil {
		return h, nil, err
	}
	b, err := r.at(pos, h.Size())
	if err != nil {
		return h, nil, fmt.Errorf("%w: %v", ErrBatchTruncated, err)
	}
	h, err = ParseBatchHeader(b)
	return h, b, err
}
