package sensors

import (
	"encoding/json"
	"time"

	spoollog "github.com/spoolmq/spool/log"
)

// ContentType is the content-type header of every reading record.
const ContentType = "application/json"

// HeaderContentType is the header that carries ContentType, named as
// MQTT ingest names it so consumers read both alike.
const HeaderContentType = "content-type"

// Value is one measured quantity of a reading.
type Value struct {
	Name  string
	Value float64
	Unit  string // empty for a unitless value such as a level
}

// Reading is what a sensor measured at one time.
type Reading struct {
	Sensor string
	Driver string
	Time   time.Time
	Values []Value
}

// readingJSON is the record value. Maps marshal with sorted keys, so the
// same reading always encodes to the same bytes.
type readingJSON struct {
	Sensor string             `json:"sensor"`
	Driver string             `json:"driver"`
	Time   string             `json:"time"`
	Values map[string]float64 `json:"values"`
	Units  map[string]string  `json:"units,omitempty"`
}

// MarshalJSON encodes the reading as the record value documented in the
// package doc.
func (r Reading) MarshalJSON() ([]byte, error) {
	j := readingJSON{
		Sensor: r.Sensor,
		Driver: r.Driver,
		Time:   r.Time.UTC().Format("2006-01-02T15:04:05.000Z07:00"),
		Values: make(map[string]float64, len(r.Values)),
	}
	for _, v := range r.Values {
		j.Values[v.Name] = v.Value
		if v.Unit != "" {
			if j.Units == nil {
				j.Units = map[string]string{}
			}
			j.Units[v.Name] = v.Unit
		}
	}
	return json.Marshal(j)
}

// Record is the log record of the reading.
func (r Reading) Record() (spoollog.Record, error) {
	value, err := r.MarshalJSON()
	if err != nil {
		return spoollog.Record{}, err
	}
	return spoollog.Record{
		Timestamp: r.Time.UnixMilli(),
		Key:       []byte(r.Sensor),
		Value:     value,
		Headers:   []spoollog.Header{{Key: HeaderContentType, Value: []byte(ContentType)}},
	}, nil
}
