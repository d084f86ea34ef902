package log

// EachRecord calls fn for every record at or after from in data, the
// whole batches a Read returned, skipping control batches (transaction
// markers). It returns the offset after the last batch handled, where the
// next Read starts, and stops at the first damaged batch or error of fn,
// returning the offset after the batches fully handled before it.
func EachRecord(data []byte, from int64, fn func(Record) error) (int64, error) {
	return eachRecord(data, from, nil, fn)
}

// eachRecord is EachRecord that also skips the batches skip reports.
func eachRecord(data []byte, from int64, skip func(BatchHeader) bool, fn func(Record) error) (int64, error) {
	next := from
	err := SplitBatches(data, func(h BatchHeader, batch []byte) error {
		if !h.Control() && (skip == nil || !skip(h)) {
			_, recs, err := DecodeRecords(batch)
			if err != nil {
				return err
			}
			for _, r := range recs {
				if r.Offset < from {
					continue // the first batch may start below from
				}
				if err := fn(r); err != nil {
					return err
				}
			}
		}
		next = max(next, h.LastOffset()+1)
		return nil
	})
	return next, err
}
