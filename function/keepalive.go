package function

import (
	"fmt"
	"strings"
	"time"
)

// KeepAlive decides how long idle instances live. The Manager asks it when
// an instance becomes idle and again at the time it names, until the
// instance is evicted or used. Policies that learn from traffic (idle-time
// histograms, predictions) may also implement Observer: the Manager then
// feeds them every lifecycle event.
//
// Decide is called without any Manager lock held, but must not call back
// into the Manager, and must be fast: it runs after every call that leaves
// an instance idle.
type KeepAlive interface {
	Decide(IdleState) Decision
}

// KeepAlivePolicies are the names of the keep-alive policies a function
// spec may ask for (Spec.KeepAlive); package prewarm implements them and
// docs/prewarming.md describes them.
var KeepAlivePolicies = []string{"on-demand", "fixed", "hybrid", "baton", "baton+hybrid"}

// ParseKeepAlive reads a keep-alive policy name: one of
// KeepAlivePolicies, or "fixed:" and a positive duration, returned as
// keep (zero without one).
func ParseKeepAlive(name string) (policy string, keep time.Duration, err error) {
	policy, param, hasParam := strings.Cut(name, ":")
	for _, known := range KeepAlivePolicies {
		if policy != known {
			continue
		}
		if !hasParam {
			return policy, 0, nil
		}
		if d, err := time.ParseDuration(param); policy == "fixed" && err == nil && d > 0 {
			return policy, d, nil
		}
		return "", 0, fmt.Errorf("keep-alive %q: only fixed takes a parameter, a positive duration such as fixed:30m", name)
	}
	return "", 0, fmt.Errorf("keep-alive %q must be one of %s (or fixed:DURATION)", name, strings.Join(KeepAlivePolicies, ", "))
}

// IdleState is what a keep-alive decision is made from.
type IdleState struct {
	// Function is the function's reference (Qualify), which Prepare takes.
	Function string
	Version  string
	// KeepAlive is the policy the function's spec asks for, if any.
	KeepAlive string
	Instance  string
	// IdleSince is when the instance last finished a call (or was
	// started, if it never served one).
	IdleSince time.Time
	Now       time.Time
	// PreparedFor is the time a Prepare asked an instance to be ready by,
	// when one is pending or recent; policies should keep an instance at
	// least until then.
	PreparedFor time.Time
	// Idle and Busy count the pool's instances at decision time, this one
	// included in Idle.
	Idle, Busy int
	Stats      Stats
}

// Stats sums up a function's traffic for keep-alive and prewarming
// policies.
type Stats struct {
	Invocations uint64
	Errors      uint64
	ColdStarts  uint64
	// LastInvocation is when the newest call arrived.
	LastInvocation time.Time
	// MeanInterArrival is an exponentially weighted mean of the time
	// between consecutive calls (zero until there were two).
	MeanInterArrival time.Duration
	// MeanDuration is an exponentially weighted mean of call durations.
	MeanDuration time.Duration
	// MeanColdStart is an exponentially weighted mean of cold starts.
	MeanColdStart time.Duration
}

// Decision is a keep-alive verdict.
type Decision struct {
	Evict bool
	// RecheckAt is when to ask again if the instance is still idle then.
	// A zero or past time is read as one second from now.
	RecheckAt time.Time
}

// IdleTimeout is the default policy: an instance idle for longer than the
// duration is evicted. A prepared instance is kept at least the duration
// past the time it was prepared for.
type IdleTimeout time.Duration

// DefaultKeepAlive evicts instances idle for ten minutes.
const DefaultKeepAlive = IdleTimeout(10 * time.Minute)

func (d IdleTimeout) Decide(s IdleState) Decision {
	from := s.IdleSince
	if s.PreparedFor.After(from) {
		from = s.PreparedFor
	}
	deadline := from.Add(time.Duration(d))
	if !s.Now.Before(deadline) {
		return Decision{Evict: true}
	}
	return Decision{RecheckAt: deadline}
}
