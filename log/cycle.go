package log

// A cycle is the unit of group commit: the batches queued together, made
// durable by one write and one fsync, acknowledged together.

// AppendResult tells where an appended batch landed.
type AppendResult struct {
	BaseOffset int64
	LastOffset int64
	// LogAppendTime is the broker timestamp given to the batch, or -1
	// when the topic keeps the producer's CreateTime.
	LogAppendTime int64
}

// cycle is one flush: the batches queued together, written with one write
// and acknowledged by one fsync.
type cycle struct {
	done chan struct{} // closed when the cycle is durable or failed
	err  error         // set before done is closed
	// durableBelow: when err is set, batches ending below this offset
	// were made durable anyway (by a roll's seal before the failure) and
	// succeeded; the rest failed.
	durableBelow int64
	async        []asyncAck
}

// result is what the append that got res learns from its cycle.
func (c *cycle) result(res AppendResult) error {
	if c.err != nil && res.LastOffset >= c.durableBelow {
		return c.err
	}
	return nil
}

type asyncAck struct {
	res AppendResult
	fn  func(AppendResult, error)
}

func newCycle() *cycle { return &cycle{done: make(chan struct{})} }

func (c *cycle) finish(err error, durableBelow int64) {
	c.err, c.durableBelow = err, durableBelow
	close(c.done)
	for _, a := range c.async {
		a.fn(a.res, c.result(a.res))
	}
}
