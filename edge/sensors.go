package edge

import (
	"log/slog"

	"github.com/spoolmq/spool/edge/config"
	spoollog "github.com/spoolmq/spool/log"
	"github.com/spoolmq/spool/sensors"
)

// newSensors builds the sensors and actuators of the config, or returns
// nil when it has none (and then the hardware is never touched).
func newSensors(cfg config.Config, l *spoollog.Log, onReading func(sensors.Reading), lg *slog.Logger) (*sensors.Manager, error) {
	if len(cfg.Sensors) == 0 && len(cfg.Actuators) == 0 {
		return nil, nil
	}
	opts := sensors.Options{Log: l, Logger: lg, OnReading: onReading}
	for _, s := range cfg.Sensors {
		opts.Sensors = append(opts.Sensors, s.Spec())
	}
	for _, a := range cfg.Actuators {
		opts.Actuators = append(opts.Actuators, a.Spec())
	}
	return sensors.New(opts)
}

// sensorState is GET /api/v1/sensors.
func sensorState(m *sensors.Manager) map[string]any {
	st := map[string]any{"sensors": []sensors.SensorStatus{}, "actuators": []sensors.ActuatorStatus{}}
	if m != nil {
		st["sensors"], st["actuators"] = m.Sensors(), m.Actuators()
	}
	return st
}
