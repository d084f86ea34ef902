package bridge

import (
	"math/rand/v2"
	"time"
)

// backoff is exponential backoff with full jitter. Jitter matters at the
// edge: after a shared uplink comes back, many links (and many boards)
// would otherwise retry in lockstep. It is owned by one goroutine.
type backoff struct {
	min, max time.Duration
	attempt  int
}

// next returns how long to wait before the next attempt, a random duration
// in [d/2, d] where d doubles per attempt from min up to max. The lower half
// is kept so that a retry is never immediate.
func (b *backoff) next() time.Duration {
	d := b.min << min(b.attempt, 30)
	if d > b.max || d <= 0 {
		d = b.max
	}
	b.attempt++
	half := d / 2
	return half + rand.N(d-half+1)
}

// reset is called after a success.
func (b *backoff) reset() { b.attempt = 0 }
