package qos

import "time"

// bucket is a token bucket: a namespace's start rate quota.
type bucket struct {
	tokens float64
	last   time.Time
}

// take spends a token at now under rate (tokens per second) and burst,
// or says how long until one is there.
func (b *bucket) take(now time.Time, rate float64, burst int) (bool, time.Duration) {
	capacity := float64(max(burst, 1))
	if b.last.IsZero() {
		b.tokens = capacity
	} else if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(capacity, b.tokens+dt*rate)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / rate * float64(time.Second))
}
