package sqlite

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/problem"
)

// Times are stored as Unix nanoseconds: integers sort and compare exactly,
// which listing and cursors rely on. Zero means "not set".
func timeToNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func nanosToTime(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// encodeJSON returns nil for a nil value so that the column holds SQL NULL
// rather than the text "null".
func encodeJSON(v any) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	return json.Marshal(v)
}

func encodeProblem(p *problem.Problem) ([]byte, error) {
	if p == nil {
		return nil, nil
	}
	return json.Marshal(p)
}

func decodeJSON(b []byte) (any, error) {
	if b == nil {
		return nil, nil
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	return v, nil
}

func decodeProblem(b []byte) (*problem.Problem, error) {
	if b == nil {
		return nil, nil
	}
	var p problem.Problem
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// decodeEvent restores an event from its stored JSON. The seq column is
// authoritative: the blob holds the event as the caller passed it, whose Seq
// may have been left for the store to assign.
func decodeEvent(seq int64, b []byte) (core.Event, error) {
	var ev core.Event
	if err := json.Unmarshal(b, &ev); err != nil {
		return core.Event{}, err
	}
	ev.Seq = seq
	return ev, nil
}

// terminalStatus maps a terminal event to the status it leaves the
// invocation in.
func terminalStatus(t core.EventType) core.Status {
	switch t {
	case core.InvocationCompleted:
		return core.StatusCompleted
	case core.InvocationFaulted:
		return core.StatusFaulted
	case core.InvocationCancelled:
		return core.StatusCancelled
	}
	return core.StatusRunning
}

// A cursor names the last invocation of a page; the next page starts right
// after it in (started_at, id) descending order.
func encodeCursor(startedAt int64, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(startedAt, 10) + ":" + id))
}

func decodeCursor(c string) (startedAt int64, id string, err error) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, "", badCursor(c)
	}
	nanos, id, ok := strings.Cut(string(raw), ":")
	if !ok {
		return 0, "", badCursor(c)
	}
	startedAt, err = strconv.ParseInt(nanos, 10, 64)
	if err != nil {
		return 0, "", badCursor(c)
	}
	return startedAt, id, nil
}

// badCursor is a problem document so that the API answers 400 rather than
// 500 for a cursor a client mangled.
func badCursor(c string) error {
	return problem.New(problem.TypeBadRequest, http.StatusBadRequest, "Bad Request", fmt.Sprintf("invalid cursor %q", c))
}

const (
	defaultListLimit = 100
	maxListLimit     = 1000
)

func listLimit(n int) int {
	switch {
	case n <= 0:
		return defaultListLimit
	case n > maxListLimit:
		return maxListLimit
	}
	return n
}
