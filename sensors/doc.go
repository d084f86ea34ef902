// Package sensors turns the sensors wired to the board (GPIO inputs and
// pulse counters, a BME280 on I2C, DS18B20s on 1-wire) and simulated ones
// into records of the commit log, and drives GPIO outputs from command
// records. It uses periph.io for the hardware and knows nothing of the
// appliance around it: edge builds a Manager from the configuration.
//
// # Records
//
// Every reading is one record in the sensor's topic: the key is the
// sensor's name (so one sensor's readings stay in order in one
// partition), the value is JSON, and the header content-type is
// application/json:
//
//	{"sensor":"climate","driver":"bme280","time":"2026-12-01T08:00:00.000Z",
//	 "values":{"humidity":65.3056,"pressure":1009.426953125,"temperature":23.72},
//	 "units":{"humidity":"%RH","pressure":"hPa","temperature":"°C"}}
//
// The record timestamp is the reading's time, from the Manager's clock
// (injectable, so tests run without sleeping).
//
// # Failures
//
// A sensor whose pin or bus is missing or refuses access is marked
// failed, with an error naming the sensor, the pin or bus and what is
// missing; it is retried with capped, jittered backoff while the others
// go on. A reading the log refuses (on_full: reject, a full disk) is
// dropped and counted, never queued: a sensor produces forever, and an
// unbounded queue would only move the failure to the memory limit.
//
// # Actuators
//
// An actuator follows a topic and drives a GPIO output from each command
// record, {"state":"on"} / {"state":"off"} or {"pulse":"500ms"}. The
// position after the command and the state it leaves are stored before
// the pin is driven, so a command is applied at most once even across a
// crash, and after a restart the pin is set back to its stored state.
package sensors
