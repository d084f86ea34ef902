package sensors

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
)

// replay emits the rows of a CSV file, one per interval. The file is read
// and checked whole when the sensor opens, so a bad cell is an error
// naming its line before any reading, not halfway through.
type replay struct {
	spec  ReplaySpec
	names []Value // Name and Unit of each value column
	cols  []int   // the CSV column of each value
	rows  [][]float64
}

func newReplay(s *ReplaySpec) (*replay, error) {
	if s.File == "" {
		return nil, errors.New("file is not set")
	}
	return &replay{spec: *s}, nil
}

func (d *replay) open(Hardware) error {
	f, err := os.Open(d.spec.File)
	if err != nil {
		return err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.Comment = '#'
	r.TrimLeadingSpace = true
	all, err := r.ReadAll()
	if err != nil {
		return fmt.Errorf("%s: %w", d.spec.File, err)
	}
	if len(all) < 2 {
		return fmt.Errorf("%s: a header row and at least one row of values are needed", d.spec.File)
	}
	d.names, d.cols, d.rows = nil, nil, nil
	for i, h := range all[0] {
		name, unit := strings.TrimSpace(h), ""
		if n, u, ok := strings.Cut(name, "["); ok && strings.HasSuffix(u, "]") {
			name, unit = strings.TrimSpace(n), strings.TrimSuffix(u, "]")
		}
		if strings.EqualFold(name, "time") {
			continue
		}
		if name == "" {
			return fmt.Errorf("%s: column %d has no name", d.spec.File, i+1)
		}
		d.names = append(d.names, Value{Name: name, Unit: unit})
		d.cols = append(d.cols, i)
	}
	for _, rec := range all[1:] {
		row := make([]float64, len(d.cols))
		for j, c := range d.cols {
			v, err := strconv.ParseFloat(strings.TrimSpace(rec[c]), 64)
			// NaN and infinities parse, but JSON cannot carry them: each
			// would be a reading the log never gets.
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("%s: data row %d, column %s: %q is not a number", d.spec.File, len(d.rows)+1, d.names[j].Name, rec[c])
			}
			row[j] = v
		}
		d.rows = append(d.rows, row)
	}
	return nil
}

func (d *replay) close() error { return nil }

// errReplayDone ends a replay without Loop: not a failure, so the sensor
// is not retried, but its state says it has nothing more to send.
var errReplayDone = errors.New("replay finished: every row was sent")

func (d *replay) run(ctx context.Context, r *runner) error {
	i := 0
	return r.every(ctx, func(context.Context) ([]Value, error) {
		if i == len(d.rows) {
			if !d.spec.Loop {
				return nil, errReplayDone
			}
			i = 0
		}
		values := make([]Value, len(d.cols))
		for j := range d.cols {
			values[j] = Value{Name: d.names[j].Name, Unit: d.names[j].Unit, Value: d.rows[i][j]}
		}
		i++
		return values, nil
	})
}
