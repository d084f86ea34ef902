package edge

import (
	"github.com/spoolmq/spool/edge/metrics"
	"github.com/spoolmq/spool/sensors"
)

// registerSensorMetrics exposes the sensors' and actuators' state, read
// at scrape time.
func registerSensorMetrics(reg *metrics.Registry, m *sensors.Manager) {
	reg.Register("sensors", metrics.CollectorFunc(func(e *metrics.Emitter) {
		for _, s := range m.Sensors() {
			l := []metrics.Label{metrics.L("sensor", s.Name), metrics.L("driver", s.Driver)}
			up := 0.0
			if s.State == sensors.StateRunning || s.State == sensors.StateFinished {
				up = 1
			}
			e.Gauge("spool_sensor_up", "1 while the sensor's hardware works (running, or a replay that finished), 0 while it is failed or starting.", up, l...)
			e.Counter("spool_sensor_readings_total", "Readings stored in the log.", float64(s.Readings), l...)
			e.Counter("spool_sensor_dropped_total", "Readings the log refused (on_full: reject, full disk), dropped and not stored.", float64(s.Dropped), l...)
			e.Counter("spool_sensor_failures_total", "Hardware failures (missing pin or bus, read errors); each is retried with backoff.", float64(s.Failures), l...)
			if s.LastReading != nil {
				e.Gauge("spool_sensor_last_reading_timestamp_seconds", "Time of the sensor's last reading.", float64(s.LastReading.Time.UnixMilli())/1000, l...)
				for _, v := range s.LastReading.Values {
					e.Gauge("spool_sensor_value", "The sensor's last reading, one series per value (unit in the label).", v.Value, append(l, metrics.L("value", v.Name), metrics.L("unit", v.Unit))...)
				}
			}
		}
		for _, a := range m.Actuators() {
			l := metrics.L("actuator", a.Name)
			on := 0.0
			if a.Output == "on" {
				on = 1
			}
			e.Gauge("spool_actuator_on", "1 when the actuator's stored output state is on.", on, l)
			e.Counter("spool_actuator_commands_total", "Command records applied.", float64(a.Applied), l)
			e.Counter("spool_actuator_invalid_total", "Records of the command topic that are not a command (skipped and logged).", float64(a.Invalid), l)
			up := 0.0
			if a.State == sensors.StateRunning {
				up = 1
			}
			e.Gauge("spool_actuator_up", "1 while the actuator's pin works.", up, l)
		}
	}))
}
