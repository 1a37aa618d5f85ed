package rowcodec

import (
	"fmt"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/store"
)

// EncodedEvent is an event already turned into JSON by the calling
// goroutine, so that encoding runs in parallel and a backend's single
// writer only binds bytes.
type EncodedEvent struct {
	// Seq is as given by the caller; 0 lets the store assign the next one.
	Seq  int64
	Data []byte
}

// Terminal is what a terminal event, or an invocation created already
// finished, writes into the invocation row.
type Terminal struct {
	Status  core.Status
	Output  []byte
	Error   []byte
	EndedAt time.Time
	// Reopen marks the InvocationRedriven event of a redrive, which sets
	// a faulted or cancelled invocation running again (its outcome
	// cleared); it is appended alone and only to an ended invocation.
	Reopen bool
}

// EncodeEvents turns events into JSON in the caller's goroutine and picks
// out the terminal event, which must be the last one: an event after it
// would reopen a history the invocation row already calls closed.
func EncodeEvents(id string, events []core.Event) ([]EncodedEvent, *Terminal, error) {
	if len(events) == 0 {
		return nil, nil, nil
	}
	enc := make([]EncodedEvent, len(events))
	var term *Terminal
	for i := range events {
		ev := &events[i]
		if term != nil {
			return nil, nil, fmt.Errorf("invocation %s: event %s follows the terminal event: %w", id, ev.Type, store.ErrConflict)
		}
		if ev.Type == core.InvocationRedriven {
			if len(events) != 1 {
				return nil, nil, fmt.Errorf("invocation %s: an %s event is appended alone: %w", id, ev.Type, store.ErrConflict)
			}
			term = &Terminal{Status: core.StatusRunning, Reopen: true}
		}
		data, err := EncodeJSON(ev)
		if err != nil {
			return nil, nil, fmt.Errorf("invocation %s: encode %s event: %w", id, ev.Type, err)
		}
		enc[i] = EncodedEvent{Seq: ev.Seq, Data: data}
		if ev.Terminal() {
			term = &Terminal{Status: TerminalStatus(ev.Type), EndedAt: ev.Time}
			if term.Output, err = EncodeJSON(ev.Output); err != nil {
				return nil, nil, fmt.Errorf("invocation %s: encode output: %w", id, err)
			}
			if term.Error, err = EncodeProblem(ev.Error); err != nil {
				return nil, nil, fmt.Errorf("invocation %s: encode error: %w", id, err)
			}
		}
	}
	return enc, term, nil
}

// InvocationRow is what a creation inserts into the invocations row besides
// its id and outcome.
type InvocationRow struct {
	Namespace, Workflow, Version, Parent string
	Status                               core.Status
	Input                                []byte
	StartedAt                            time.Time
	Durable                              bool
}

// EncodeCreation prepares, in the caller's goroutine, everything that
// creating inv with its first events writes: the row, the encoded events,
// and the outcome when the invocation is created already finished. It
// fills in what the caller may leave out (status running, start now), so
// that every backend stores the same row for the same call.
func EncodeCreation(inv *store.Invocation, events []core.Event) (*InvocationRow, []EncodedEvent, *Terminal, error) {
	if inv.ID == "" {
		return nil, nil, nil, BadRequest("invocation id must not be empty")
	}
	enc, term, err := EncodeEvents(inv.ID, events)
	if err != nil {
		return nil, nil, nil, err
	}
	if term != nil && term.Reopen {
		return nil, nil, nil, fmt.Errorf("invocation %s: a new invocation cannot be redriven: %w", inv.ID, store.ErrConflict)
	}
	input, err := EncodeJSON(inv.Input)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("invocation %s: encode input: %w", inv.ID, err)
	}
	status := inv.Status
	if status == "" {
		status = core.StatusRunning
	}
	startedAt := inv.StartedAt
	if startedAt.IsZero() {
		startedAt = time.Now()
	}
	row := &InvocationRow{
		Namespace: inv.Namespace, Workflow: inv.Workflow, Version: inv.Version, Parent: inv.Parent,
		Status: status, Input: input, StartedAt: startedAt, Durable: inv.Durable,
	}
	if term == nil && status != core.StatusRunning {
		// A row created already finished keeps the caller's outcome.
		if term, err = finishedInvocation(inv); err != nil {
			return nil, nil, nil, err
		}
	}
	return row, enc, term, nil
}

// finishedInvocation is the Terminal of an invocation created already
// finished without a terminal event.
func finishedInvocation(inv *store.Invocation) (*Terminal, error) {
	output, err := EncodeJSON(inv.Output)
	if err != nil {
		return nil, fmt.Errorf("invocation %s: encode output: %w", inv.ID, err)
	}
	errJSON, err := EncodeProblem(inv.Error)
	if err != nil {
		return nil, fmt.Errorf("invocation %s: encode error: %w", inv.ID, err)
	}
	return &Terminal{Status: inv.Status, Output: output, Error: errJSON, EndedAt: inv.EndedAt}, nil
}

// TerminalStatus maps a terminal event to the status it leaves the
// invocation in; any other event leaves it running.
func TerminalStatus(t core.EventType) core.Status {
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

// CheckSeqs verifies that explicitly numbered events continue a history
// whose last event is lastSeq, without gaps or repeats: a caller that
// numbers its events is asserting where they go, and a mismatch means it
// raced another writer.
func CheckSeqs(id string, lastSeq int64, events []EncodedEvent) error {
	next := lastSeq
	for _, ev := range events {
		next++
		if ev.Seq != 0 && ev.Seq != next {
			return fmt.Errorf("invocation %s: event seq %d does not follow %d: %w", id, ev.Seq, next-1, store.ErrConflict)
		}
	}
	return nil
}
