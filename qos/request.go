package qos

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Request headers that classify a start.
const (
	// HeaderClass asks for a priority class: lower than the workflow's
	// default always, higher only with the role to (see Request.MayRaise).
	HeaderClass = "Baton-Priority-Class"
	// HeaderDeadline is an absolute deadline (RFC 3339).
	HeaderDeadline = "Baton-Deadline"
	// HeaderTimeout is a relative deadline: a Go duration ("200ms") or
	// seconds ("0.2").
	HeaderTimeout = "Baton-Timeout"
	// HeaderFlow names the flow (namespace) of a response, with
	// HeaderClass, on rejections.
	HeaderFlow = "Baton-Flow"
)

// Request is what a client asked for a start: set by the API, read by the
// engine when it classifies the start. A start whose context holds no
// Request is asynchronous (an event, a schedule, a trigger) and is
// deferred rather than refused.
type Request struct {
	// Class is the class asked for, if HasClass.
	Class    Class
	HasClass bool
	// Deadline is the client's deadline; zero for none.
	Deadline time.Time
	// MayRaise says the caller may ask for a class above the workflow's
	// default.
	MayRaise bool
	// Deferred marks a client's start that is asynchronous all the same
	// (a hook: its caller hands over an event and wants no result). It is
	// deferred rather than refused for overload, and refused (429) only
	// over its namespace's quota, which its caller can retry.
	Deferred bool
}

type requestKey struct{}

// WithRequest attaches a client's request to ctx.
func WithRequest(ctx context.Context, r Request) context.Context {
	return context.WithValue(ctx, requestKey{}, r)
}

// RequestFrom returns the client's request in ctx.
func RequestFrom(ctx context.Context) (Request, bool) {
	r, ok := ctx.Value(requestKey{}).(Request)
	return r, ok
}

// ParseHeaders reads the classification headers of a request at now.
func ParseHeaders(h http.Header, now time.Time) (Request, error) {
	var r Request
	if v := h.Get(HeaderClass); v != "" {
		c, err := ParseClass(v)
		if err != nil {
			return r, fmt.Errorf("%s: %w", HeaderClass, err)
		}
		r.Class, r.HasClass = c, true
	}
	if v := h.Get(HeaderDeadline); v != "" {
		t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(v))
		if err != nil {
			return r, fmt.Errorf("%s %q: want an RFC 3339 time such as 2026-01-02T15:04:05.5Z", HeaderDeadline, v)
		}
		r.Deadline = t
	}
	if v := h.Get(HeaderTimeout); v != "" {
		d, err := ParseTimeout(v)
		if err != nil {
			return r, fmt.Errorf("%s: %w", HeaderTimeout, err)
		}
		if t := now.Add(d); r.Deadline.IsZero() || t.Before(r.Deadline) {
			r.Deadline = t
		}
	}
	return r, nil
}

// ParseTimeout reads a positive Go duration ("250ms") or a number of
// seconds ("0.25").
func ParseTimeout(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	d, err := time.ParseDuration(v)
	if err != nil {
		s, ferr := strconv.ParseFloat(v, 64)
		if ferr != nil || s != s || s > 1e9 {
			return 0, fmt.Errorf("%q: want a duration such as 250ms or a number of seconds", v)
		}
		d = time.Duration(s * float64(time.Second))
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q: want a positive duration", v)
	}
	return d, nil
}

// Classify is the class of a start: the workflow's default unless the
// request asks for another; asking for a higher one needs MayRaise, and
// the class must be one the namespace allows (allowed nil allows all but
// System). A default the namespace does not allow is lowered to the next
// allowed class.
func Classify(def Class, r Request, allowed []Class) (Class, error) {
	c := def
	if r.HasClass {
		if r.Class < def && !r.MayRaise {
			return 0, fmt.Errorf("%s %s is above the workflow's class %s: raising it needs the developer role in the namespace", HeaderClass, r.Class, def)
		}
		c = r.Class
	}
	if !r.HasClass && !classAllowed(c, allowed) {
		// A document's default the namespace does not allow falls to the
		// nearest allowed class below it, so that its asynchronous starts
		// still run.
		for k := c + 1; k < numClasses; k++ {
			if classAllowed(k, allowed) {
				return k, nil
			}
		}
	}
	if !classAllowed(c, allowed) {
		return 0, fmt.Errorf("priority class %s is not allowed in this namespace (policy qos.classes)", c)
	}
	return c, nil
}

func classAllowed(c Class, allowed []Class) bool {
	if allowed == nil {
		return c != System
	}
	for _, a := range allowed {
		if a == c {
			return true
		}
	}
	return false
}
