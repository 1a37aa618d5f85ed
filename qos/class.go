// Package qos schedules Baton's work by quality of service: every start of
// a workflow and every call it makes is classified (a priority class, a
// flow that is its namespace, a deadline) and passes one of two gates.
// G1 admits workflow starts, G2 seats function and HTTP calls in the pools
// of their runtime. Between classes capacity is shared by weight with
// borrowing of idle seats (the critical class lends none of its reserve);
// within a class namespaces are served by weighted fair queuing; within a
// namespace, earliest deadline first, then first come first served.
//
// The queueing discipline (Queue) is pure and deterministic: no clock, no
// goroutines, no randomness, so tables of tests pin it down. Scheduler
// wraps it for the engine with waiting, quotas, time and metrics.
package qos

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"
)

// Class is a priority class. Lower values are served first.
type Class uint8

const (
	// System work is never queued: it is the engine's own and must not
	// wait behind tenants.
	System Class = iota
	// Critical work is latency sensitive; its reserved seats are never
	// lent to other classes.
	Critical
	// Standard is the default class.
	Standard
	// Batch is throughput work, the first to be shed under overload.
	Batch

	numClasses = 4
)

var classNames = [numClasses]string{"system", "critical", "standard", "batch"}

// Classes lists every class, highest priority first.
func Classes() []Class { return []Class{System, Critical, Standard, Batch} }

func (c Class) String() string {
	if int(c) < numClasses {
		return classNames[c]
	}
	return fmt.Sprintf("class(%d)", c)
}

// ParseClass reads a class name.
func ParseClass(s string) (Class, error) {
	for i, n := range classNames {
		if strings.EqualFold(strings.TrimSpace(s), n) {
			return Class(i), nil
		}
	}
	return 0, fmt.Errorf("unknown priority class %q: use %s", s, strings.Join(classNames[:], ", "))
}

// Reason says why a start was refused.
type Reason string

const (
	// ReasonQuota: the namespace exceeded its rate or running quota (429).
	ReasonQuota Reason = "quota_exceeded"
	// ReasonOverloaded: the queue is full or the start waited its longest
	// (503).
	ReasonOverloaded Reason = "overloaded"
	// ReasonInfeasible: the predicted wait is longer than the deadline
	// leaves (503).
	ReasonInfeasible Reason = "deadline_infeasible"
	// ReasonDeadline: the deadline passed while the start was queued (504).
	ReasonDeadline Reason = "deadline_exceeded"
)

// Reasons lists every reason, for metrics.
var Reasons = []Reason{ReasonQuota, ReasonOverloaded, ReasonInfeasible, ReasonDeadline}

// Rejection is a start that G1 refused. It is an error the API turns into
// a problem document with a Retry-After header.
type Rejection struct {
	Reason    Reason
	Class     Class
	Namespace string
	// RetryAfter is when the client should try again, jittered so that
	// clients refused together do not return together.
	RetryAfter time.Duration
	Detail     string
}

func (r *Rejection) Error() string {
	return fmt.Sprintf("%s: %s (class %s, namespace %s)", r.Reason, r.Detail, r.Class, r.Namespace)
}

// Status is the HTTP status of the rejection.
func (r *Rejection) Status() int {
	switch r.Reason {
	case ReasonQuota:
		return http.StatusTooManyRequests
	case ReasonDeadline:
		return http.StatusGatewayTimeout
	}
	return http.StatusServiceUnavailable
}

// RetryAfterSeconds is RetryAfter as the whole seconds of a Retry-After
// header, at least 1.
func (r *Rejection) RetryAfterSeconds() int {
	return max(1, int(math.Ceil(r.RetryAfter.Seconds())))
}

// AsRejection finds a Rejection in err's chain.
func AsRejection(err error) (*Rejection, bool) {
	var r *Rejection
	ok := errors.As(err, &r)
	return r, ok
}

// jitter spreads d (at least floor) over the whole seconds from d rounded
// up to 1.5d rounded up, with u uniform in [0,1): a crowd refused at once
// then comes back spread out, none of it before d. Whole seconds, because
// that is what Retry-After carries: spreading over [d, 1.5d) and rounding
// up after would answer a wait of 1s with 2s every time.
func jitter(d, floor time.Duration, u float64) time.Duration {
	d = max(d, floor)
	lo, hi := math.Ceil(d.Seconds()), math.Ceil(1.5*d.Seconds())
	return time.Duration(lo+math.Floor(u*(hi-lo+1))) * time.Second
}
