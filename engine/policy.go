package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/expr"
	"github.com/batonflow/baton/policy"
	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/store"
)

// Policies resolves a namespace's policy (package policy): the
// capabilities its workflows may use, its egress rules and its limits.
// *policy.Service is the implementation.
type Policies interface {
	Effective(ctx context.Context, namespace string) (*policy.Effective, error)
}

// unrestricted is the policy of an engine without Options.Policies: the
// user's own process, with every capability and the default limits.
var unrestricted = policy.Unrestricted()

// policyFor returns a namespace's policy. When it cannot be read the
// engine refuses rather than guesses: the error becomes the caller's.
func (e *Engine) policyFor(ctx context.Context, namespace string) (*policy.Effective, error) {
	if e.opts.Policies == nil {
		return unrestricted, nil
	}
	eff, err := e.opts.Policies.Effective(ctx, namespace)
	if err != nil {
		return nil, fmt.Errorf("namespace %s: %w", namespace, err)
	}
	return eff, nil
}

// evaluatorFor returns the evaluator of a namespace's expression limits.
// Evaluators cache compiled programs, so there is one per distinct set of
// limits (in practice a handful), not one per invocation.
func (e *Engine) evaluatorFor(l policy.EffectiveLimits) *expr.Evaluator {
	limits := l.Expression()
	limits.Time = e.opts.ExpressionLimits.Time
	if ev, ok := e.evals.Load(limits); ok {
		return ev.(*expr.Evaluator)
	}
	ev, _ := e.evals.LoadOrStore(limits, expr.NewEvaluatorWithLimits(limits))
	return ev.(*expr.Evaluator)
}

// namespaceEvaluator is the evaluator of a namespace's current limits,
// for its expressions evaluated outside an invocation (schedule.on).
func (e *Engine) namespaceEvaluator(ctx context.Context, namespace string) (*expr.Evaluator, error) {
	eff, err := e.policyFor(ctx, namespace)
	if err != nil {
		return nil, err
	}
	return e.evaluatorFor(eff.Limits), nil
}

// admitStart applies the limits that bound starting an invocation: its
// input's size and, for a subflow, how deep it would nest.
func (e *Engine) admitStart(ctx context.Context, eff *policy.Effective, parent, namespace string, input any) error {
	if n, err := jsonSize(input); err != nil {
		return problem.Validation("the input is not JSON data: %v", err)
	} else if n > eff.Limits.InputBytes {
		return policy.LimitProblem(http.StatusRequestEntityTooLarge, "limits.inputBytes",
			"the input is %d bytes, more than the %d bytes namespace %s allows", n, eff.Limits.InputBytes, namespace)
	}
	if parent == "" {
		return nil
	}
	depth, err := e.depth(ctx, parent, eff.Limits.SubflowDepth)
	if err != nil {
		return err
	}
	if depth+1 > eff.Limits.SubflowDepth {
		return policy.LimitProblem(http.StatusTooManyRequests, "limits.subflowDepth",
			"a subflow of invocation %s would nest %d deep, more than the %d namespace %s allows", parent, depth+1, eff.Limits.SubflowDepth, namespace)
	}
	return nil
}

// depth is how many ancestors an invocation has, counted up to max+1.
func (e *Engine) depth(ctx context.Context, id string, max int) (int, error) {
	n := 0
	for n <= max {
		inv, err := e.GetInvocation(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			// The chain ends at an ancestor that is gone (deleted).
			return n, nil
		}
		if err != nil {
			return 0, fmt.Errorf("reading the parent invocation %s: %w", id, err)
		}
		if inv.Parent == "" {
			return n, nil
		}
		id = inv.Parent
		n++
	}
	return n, nil
}

func jsonSize(v any) (int64, error) {
	if raw, ok := v.(json.RawMessage); ok {
		return int64(len(raw)), nil
	}
	b, err := json.Marshal(v)
	return int64(len(b)), err
}

// runningLimit refuses a start when its namespace has as many invocations
// running on this engine as its policy allows. e.mu is held.
func (e *Engine) runningLimitLocked(eff *policy.Effective, namespace string) error {
	if limit := eff.Limits.RunningInvocations; e.running[namespace] >= limit {
		return policy.LimitProblem(http.StatusTooManyRequests, "limits.runningInvocations",
			"namespace %s has %d invocations running, the most it may", namespace, limit)
	}
	return nil
}

// cancelSubtree cancels the live subflows of an invocation, and theirs,
// so that cancelling a root stops everything it started (detached
// subflows included) without waiting for each level to notice.
func (e *Engine) cancelSubtree(id string) {
	// Children still waiting to be resumed are resumed now (or their
	// resumption awaited), to be cancelled with the others.
	for _, child := range e.recovery.pendingChildren(id) {
		e.recovery.ensure(e.ctx, child)
	}
	e.mu.Lock()
	var children []*instance
	for _, in := range e.live {
		if in.inv.Parent == id {
			children = append(children, in)
		}
	}
	e.mu.Unlock()
	for _, child := range children {
		child.cancel(parentCancelled(id))
		e.cancelSubtree(child.inv.ID)
	}
}

// checkCall applies the policy to a call about to run: capabilities again
// (a workflow applied before its namespace's policy was tightened), and
// the script time limit. The returned context carries the policy (its
// egress guard among it) to the executor.
func (e *Engine) checkCall(ctx context.Context, in *instance, c *core.Call) (context.Context, context.CancelFunc, *problem.Problem) {
	eff, err := e.policyFor(ctx, in.inv.Namespace)
	if err != nil {
		return ctx, func() {}, problem.Configuration("%s: %v", c.Name, err)
	}
	ctx = policy.NewContext(ctx, eff)
	switch c.Function {
	case FunctionRunShell, FunctionRunScript, FunctionRunContainer:
		if p := eff.CheckRun(c.Function[len("run."):]); p != nil {
			return ctx, func() {}, p
		}
	}
	if c.Function == FunctionRunScript {
		ctx, cancel := context.WithTimeoutCause(ctx, eff.Limits.ScriptTimeout, errScriptTimeout)
		return ctx, cancel, nil
	}
	return ctx, func() {}, nil
}

var errScriptTimeout = errors.New("script time limit")

// scriptLimitProblem turns a script stopped by its time limit into the
// limit's problem.
func scriptLimitProblem(ctx context.Context, in *instance, c *core.Call) *problem.Problem {
	if c.Function != FunctionRunScript || !errors.Is(context.Cause(ctx), errScriptTimeout) {
		return nil
	}
	eff := policy.FromContext(ctx)
	limit := unrestricted.Limits.ScriptTimeout
	if eff != nil {
		limit = eff.Limits.ScriptTimeout
	}
	return policy.LimitProblem(http.StatusRequestTimeout, "limits.scriptTimeout",
		"%s: the script ran longer than the %s namespace %s allows", c.Name, limit, in.inv.Namespace)
}

// outputLimit faults a completed invocation whose output is larger than
// its namespace allows.
func (in *instance) outputLimit(output any) *problem.Problem {
	n, err := jsonSize(output)
	if err != nil || n <= in.limits.OutputBytes {
		return nil
	}
	return policy.LimitProblem(http.StatusRequestEntityTooLarge, "limits.outputBytes",
		"the output is %d bytes, more than the %d bytes namespace %s allows", n, in.limits.OutputBytes, in.inv.Namespace)
}

// historyLimit is the fault of an invocation whose history is full.
func (in *instance) historyLimit() *problem.Problem {
	return policy.LimitProblem(http.StatusInsufficientStorage, "limits.historyEvents",
		"the invocation's history reached %d events, the most namespace %s allows", in.limits.HistoryEvents, in.inv.Namespace)
}

// parentCancelled is the reason a child invocation is cancelled with when
// its parent is.
func parentCancelled(parent string) string {
	return "parent " + parent + " cancelled"
}
