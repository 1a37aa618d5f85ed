package engine

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/batonflow/baton/events"
	"github.com/batonflow/baton/expr"
	"github.com/batonflow/baton/policy"
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
	// evalFor gives the evaluator of a namespace's limits, for calls
	// whose context carries their policy.
	evalFor func(policy.EffectiveLimits) *expr.Evaluator
	// logger hears, at debug level, why an event did not match.
	logger *slog.Logger
}

// listenCursorPrefix names the stored start positions of an invocation's
// listens, which are removed when it ends.
func listenCursorPrefix(invocation string) string { return "listen/" + invocation + "/" }

func (x *listenExecutor) Execute(ctx context.Context, req *CallRequest) (CallResult, error) {
	// The core passes `to` as written but for the correlations' `expect`
	// values, which it evaluated against the task's data.
	to, _ := req.Args["to"].(map[string]any)
	strategy, err := events.ParseStrategy(to, to)
	if err != nil {
		return CallResult{}, problem.Configuration("%s: listen.to: %v", req.Name, err).At(req.Ref + "/listen/to")
	}
	read, _ := req.Args["read"].(string)
	eval := x.eval
	if eff := policy.FromContext(ctx); eff != nil && x.evalFor != nil {
		// The filters are the invocation's expressions: its namespace's
		// limits bound them.
		eval = x.evalFor(eff.Limits)
	}
	c := events.NewConsumption(strategy, eval, read)
	if x.logger != nil {
		c.SetLogger(x.logger.With("invocation", req.Invocation, "task", req.Task))
	}
	stream, _ := req.Args["stream"].(bool)
	start, hasStart := position(req.Args["start"])
	if !hasStart {
		last, err := x.log.Last(ctx)
		if err != nil {
			return CallResult{}, fmt.Errorf("listen: reading the event log: %w", err)
		}
		start, err = x.log.Store().EventCursor(ctx, listenCursorPrefix(req.Invocation)+req.Task+"/"+fmt.Sprint(req.Attempt), last)
		if err != nil {
			return CallResult{}, fmt.Errorf("listen: recording the start position: %w", err)
		}
	}
	pos := start
	if after, ok := position(req.Args["after"]); ok && stream {
		// A foreach's later call: consume again what the earlier calls
		// consumed, which rebuilds the strategy's state (which filters
		// matched, what was correlated, whether until holds), then go on.
		if err := x.scan(ctx, &pos, after, c); err != nil {
			return CallResult{}, err.At(req.Ref + "/listen/to")
		}
	}
	consumed := len(c.Consumed())
	for {
		if c.Done() {
			if stream {
				return CallResult{Output: map[string]any{"done": true}}, nil
			}
			return CallResult{Output: c.Output(), Info: map[string]any{"eventSeq": pos}}, nil
		}
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
			if stream && len(c.Consumed()) > consumed {
				ev := events.Read(c.Consumed()[consumed], read)
				return CallResult{Output: map[string]any{"event": ev, "start": start, "after": pos}, Info: map[string]any{"eventSeq": pos}}, nil
			}
			if c.Done() {
				break
			}
		}
		if c.Done() || len(page) == 500 {
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

// scan offers the logged events after *pos up to and including until.
func (x *listenExecutor) scan(ctx context.Context, pos *int64, until int64, c *events.Consumption) *problem.Problem {
	for *pos < until {
		page, err := x.log.Read(ctx, store.EventFilter{After: *pos, Limit: 500})
		if err != nil {
			return problem.Runtime("listen: reading the event log: %v", err)
		}
		if len(page) == 0 {
			return nil
		}
		for _, le := range page {
			if le.Seq > until {
				return nil
			}
			*pos = le.Seq
			if _, p := c.Offer(le.Event); p != nil {
				return p
			}
		}
	}
	return nil
}

// position reads an event log position that went through the history as
// a JSON number.
func position(v any) (int64, bool) {
	switch n := v.(type) {
	case float64:
		return int64(n), true
	case int64:
		return n, true
	case int:
		return int64(n), true
	}
	return 0, false
}
