package sensors

import (
	"encoding/json"
	"sync"
	"time"
)

// Sensor states.
const (
	StateStarting = "starting" // opening its pin or bus
	StateRunning  = "running"  // producing readings
	StateFailed   = "failed"   // its hardware failed; retried at RetryAt
	StateFinished = "finished" // a replay without loop that sent every row
	StateStopped  = "stopped"
)

// SensorStatus is what the HTTP API and `spool sensors list` show.
type SensorStatus struct {
	Name        string    `json:"name"`
	Driver      string    `json:"driver"`
	Topic       string    `json:"topic"`
	State       string    `json:"state"`
	Readings    int64     `json:"readings"` // stored in the log
	Dropped     int64     `json:"dropped"`  // refused by the log, not stored
	Failures    int64     `json:"failures"` // hardware errors
	LastReading *Reading  `json:"last_reading,omitempty"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	RetryAt     time.Time `json:"retry_at,omitzero"`
	DropError   string    `json:"drop_error,omitempty"` // why the last reading was dropped
}

// status is a SensorStatus behind a lock, for the sensor's goroutine to
// write and scrapes to read.
type status struct {
	mu sync.Mutex
	s  SensorStatus
}

func (st *status) update(f func(s *SensorStatus)) {
	st.mu.Lock()
	defer st.mu.Unlock()
	f(&st.s)
}

func (st *status) get() SensorStatus {
	st.mu.Lock()
	defer st.mu.Unlock()
	s := st.s
	if s.LastReading != nil {
		r := *s.LastReading
		s.LastReading = &r
	}
	return s
}

// readingStatus is a Reading in the status: its values with units, not
// the record's two maps, so one value reads as one object.
type readingStatus struct {
	Time   time.Time     `json:"time"`
	Values []valueStatus `json:"values"`
}

type valueStatus struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit,omitempty"`
}

// MarshalJSON of a *Reading in a status (the record value is built by
// Reading.MarshalJSON on the value type).
func (st SensorStatus) MarshalJSON() ([]byte, error) {
	type plain SensorStatus
	out := struct {
		plain
		LastReading *readingStatus `json:"last_reading,omitempty"`
	}{plain: plain(st)}
	if r := st.LastReading; r != nil {
		rs := &readingStatus{Time: r.Time.UTC()}
		for _, v := range r.Values {
			rs.Values = append(rs.Values, valueStatus(v))
		}
		out.LastReading = rs
	}
	return json.Marshal(out)
}
