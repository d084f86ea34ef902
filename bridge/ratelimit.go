package bridge

import (
	"context"
	"sync"
	"time"
)

// limiter bounds a link's average upstream bandwidth (keys and values, as
// read from the local log, before compression): a token bucket holding one
// second's worth. A round takes its bytes and, when that overdraws the
// bucket, waits until the debt would be paid before it sends. A nil
// limiter does not limit.
type limiter struct {
	rate float64 // bytes per second

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

func newLimiter(bytesPerSec int64) *limiter {
	if bytesPerSec <= 0 {
		return nil
	}
	return &limiter{rate: float64(bytesPerSec), tokens: float64(bytesPerSec), last: time.Now()}
}

// wait takes n bytes from the bucket, waiting while it is in debt. It
// reports false when ctx ended first.
func (l *limiter) wait(ctx context.Context, n int64) bool {
	if l == nil {
		return true
	}
	l.mu.Lock()
	now := time.Now()
	l.tokens = min(l.rate, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	l.last = now
	l.tokens -= float64(n)
	debt := -l.tokens
	l.mu.Unlock()
	if debt <= 0 {
		return true
	}
	return sleep(ctx, time.Duration(debt/l.rate*float64(time.Second)))
}
