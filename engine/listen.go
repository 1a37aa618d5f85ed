package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/batonflow/baton/events"
	"github.com/batonflow/baton/expr"
	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/store"
)

// FunctionListen is the function name of the calls the core makes for
// `listen` tasks.
const FunctionListen = "listen"

// eventPoll bounds how long a waiting consumer goes without reading the
// log: appends by other engines sharing the store do not wake it.
const eventPoll = time.Second

// listenExecutor runs `listen` tasks against the event log. Where a
// listen starts reading is a position in the log stored under the call's
// idempotency key the first time the call runs: a listen re-issued after
// a restart reads from the same position, so it finds the events that
// arrived while the engine was down, and consuming the same events in the
// same order again yields the same result (no event is delivered twice to
// one listen, none is missed). Events logged before the listen started
// are not consumed, as the DSL says.
type listenExecutor struct {
	log  *events.Log
	eval *expr.Evaluator
}

// listenCursorPrefix names the stored start positions of an invocation's
// listens, which are removed when it ends.
func listenCursorPrefix(invocation string) string { return "listen/" + invocation + "/" }

func (x *listenExecutor) Execute(ctx context.Context, req *CallRequest) (CallResult, error) {
	if foreach, _ := req.Args["foreach"].(bool); foreach {
		return CallResult{}, problem.Configuration("%s: listen.foreach is not supported by Baton: events would be processed outside the durable history; listen in a loop instead", req.Name).At(req.Ref + "/foreach")
	}
	// The core passes `to` as written but for the correlations' `expect`
	// values, which it evaluated against the task's data.
	to, _ := req.Args["to"].(map[string]any)
	strategy, err := events.ParseStrategy(to, to)
	if err != nil {
		return CallResult{}, problem.Configuration("%s: listen.to: %v", req.Name, err).At(req.Ref + "/listen/to")
	}
	last, err := x.log.Last(ctx)
	if err != nil {
		return CallResult{}, fmt.Errorf("listen: reading the event log: %w", err)
	}
	pos, err := x.log.Store().EventCursor(ctx, listenCursorPrefix(req.Invocation)+req.Task+"/"+fmt.Sprint(req.Attempt), last)
	if err != nil {
		return CallResult{}, fmt.Errorf("listen: recording the start position: %w", err)
	}
	read, _ := req.Args["read"].(string)
	c := events.NewConsumption(strategy, x.eval, read)
	for {
		changed := x.log.Changed()
		page, err := x.log.Read(ctx, store.EventFilter{After: pos, Limit: 500})
		if err != nil {
			return CallResult{}, fmt.Errorf("listen: reading the event log: %w", err)
		}
		for _, le := range page {
			pos = le.Seq
			if _, p := c.Offer(le.Event); p != nil {
				return CallResult{}, p.At(req.Ref + "/listen/to")
			}
			if c.Done() {
				return CallResult{Output: c.Output(), Info: map[string]any{"eventSeq": le.Seq}}, nil
			}
		}
		if len(page) == 500 {
			continue
		}
		poll := time.NewTimer(eventPoll)
		select {
		case <-ctx.Done():
			poll.Stop()
			return CallResult{}, ctx.Err()
		case <-changed:
		case <-poll.C:
		}
		poll.Stop()
	}
}
