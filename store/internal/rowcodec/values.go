package rowcodec

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/store"
)

// EncodeJSON returns nil for a nil value so that the column holds SQL NULL
// rather than the text "null", which would read back as a present value.
func EncodeJSON(v any) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	return json.Marshal(v)
}

// EncodeProblem is EncodeJSON for a problem document; a typed nil pointer
// must also become SQL NULL, which EncodeJSON's interface check misses.
func EncodeProblem(p *problem.Problem) ([]byte, error) {
	if p == nil {
		return nil, nil
	}
	return json.Marshal(p)
}

// DecodeJSON is EncodeJSON's inverse: SQL NULL reads back as a nil value.
func DecodeJSON(b []byte) (any, error) {
	if b == nil {
		return nil, nil
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	return v, nil
}

// DecodeProblem is EncodeProblem's inverse: SQL NULL reads back as no
// problem.
func DecodeProblem(b []byte) (*problem.Problem, error) {
	if b == nil {
		return nil, nil
	}
	var p problem.Problem
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// DecodeEvent restores an event from its stored JSON. The seq column is
// authoritative: the blob holds the event as the caller passed it, whose Seq
// may have been left for the store to assign.
func DecodeEvent(seq int64, b []byte) (core.Event, error) {
	var ev core.Event
	if err := json.Unmarshal(b, &ev); err != nil {
		return core.Event{}, err
	}
	ev.Seq = seq
	return ev, nil
}

// DecodeInvocationValues fills the JSON-valued fields of an invocation
// scanned from its row. The backends scan the other columns themselves,
// because their drivers hand back times in different shapes.
func DecodeInvocationValues(inv *store.Invocation, input, output, errJSON []byte) error {
	var err error
	if inv.Input, err = DecodeJSON(input); err != nil {
		return fmt.Errorf("invocation %s: input: %w", inv.ID, err)
	}
	if inv.Output, err = DecodeJSON(output); err != nil {
		return fmt.Errorf("invocation %s: output: %w", inv.ID, err)
	}
	if inv.Error, err = DecodeProblem(errJSON); err != nil {
		return fmt.Errorf("invocation %s: error: %w", inv.ID, err)
	}
	return nil
}

// Nanos stores a time as Unix nanoseconds: integers sort and compare
// exactly, which listing, cursors and compare-and-swap updates rely on.
// Zero means "not set", so the zero time survives a round trip.
func Nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// FromNanos is Nanos's inverse. Times come back in UTC so that values read
// from the store compare equal however the writer's time was zoned.
func FromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
