package sensors

import (
	"fmt"
	"time"

	"github.com/jonboulle/clockwork"
	"periph.io/x/conn/v3/gpio"
)

// edgeWaiter tells a pin that fails from one that is quiet: WaitForEdge
// answers false for both, and a line whose reads fail answers at once,
// over and over. Many early answers in a row are a hardware failure.
type edgeWaiter struct {
	pin   gpio.PinIO
	clock clockwork.Clock
	name  string
	early int
}

const maxEarly = 100

func (w *edgeWaiter) wait(timeout time.Duration) (bool, error) {
	start := w.clock.Now()
	if w.pin.WaitForEdge(timeout) {
		w.early = 0
		return true, nil
	}
	if w.clock.Since(start) < timeout/2 {
		if w.early++; w.early >= maxEarly {
			return false, fmt.Errorf("pin %s: waiting for an edge fails at once (line gone or taken?)", w.name)
		}
	} else {
		w.early = 0
	}
	return false, nil
}
