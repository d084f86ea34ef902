package log

// EachRecord calls fn for every record at or after from in data, the
// whole batches a Read returned, skipping control batches (transaction
// markers). It returns the offset after the last batch, where the next
// Read starts, and stops at the first damaged batch or error of fn,
// returning the offset after the batches fully handled.
func EachRecord(data []byte, from int64, fn func(Record) error) (int64, error) {
	next := from
	for len(data) > 0 {
		h, err := ParseBatchHeader(data)
		if err != nil {
			return next, err
		}
		if h.Size() > len(data) {
			return next, ErrBatchLength
		}
		_, recs, err := DecodeRecords(data[:h.Size()])
		if err != nil {
			return next, err
		}
		data = data[h.Size():]
		if !h.Control() {
			for _, r := range recs {
				if r.Offset < from {
					continue
				}
				if err := fn(r); err != nil {
					return next, err
				}
			}
		}
		next = max(next, h.LastOffset()+1)
	}
	return next, nil
}
