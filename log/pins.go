package log

// Pins let a reader (a bridge link) hold retention below its position.

// Pin holds retention below offset for the named reader (a bridge link's
// cursor): records at or after the lowest pin are only deleted by an
// on_full: drop_oldest policy, and then counted.
func (p *Partition) Pin(name string, offset int64) {
	p.pinsMu.Lock()
	p.pins[name] = offset
	p.pinsMu.Unlock()
}

// Unpin removes a pin.
func (p *Partition) Unpin(name string) {
	p.pinsMu.Lock()
	delete(p.pins, name)
	p.pinsMu.Unlock()
}

// minPin returns the lowest pinned offset, or -1 when there is no pin.
func (p *Partition) minPin() int64 {
	p.pinsMu.Lock()
	defer p.pinsMu.Unlock()
	low := int64(-1)
	for _, o := range p.pins {
		if low < 0 || o < low {
			low = o
		}
	}
	return low
}
