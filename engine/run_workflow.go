package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/store"
)

// childIDSpace scopes the name-based UUIDs of subflow invocations.
var childIDSpace = uuid.MustParse("9d7c2f0e-3b1a-4e55-8c6d-2a4f7e9b1c38")

// childID is the id of the subflow a call starts: derived from the call's
// id seed (core.CallIDSeed), so a parent that executes the call again after a crash
// finds the child it started before instead of starting a second one.
func childID(seed string) string {
	return uuid.NewSHA1(childIDSpace, []byte(seed)).String()
}

// invokeChild starts the subflow of a `run: workflow` call, or returns the
// one an earlier execution of the same call started.
func (e *Engine) invokeChild(ctx context.Context, parentID, seed, namespace, name, version string, input any) (*store.Invocation, error) {
	id := childID(seed)
	// A child started before a restart and not resumed yet is resumed
	// first: the start below would otherwise hold its id live for a
	// moment, and its resumption would take it for live and skip it.
	e.recovery.ensure(ctx, id)
	inv, err := e.start(ctx, id, parentID, namespace, name, version, input)
	if err == nil {
		return inv, nil
	}
	if !errors.Is(err, store.ErrConflict) {
		return nil, err
	}
	existing, getErr := e.GetInvocation(ctx, id)
	if getErr != nil {
		return nil, fmt.Errorf("subflow %s exists but cannot be read: %w", id, getErr)
	}
	if existing.Parent != parentID {
		return nil, fmt.Errorf("subflow id %s belongs to invocation %q, not %s: %w", id, existing.Parent, parentID, store.ErrConflict)
	}
	return existing, nil
}

func (e *Engine) isLive(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.live[id] != nil
}

// subflowExecutor runs `run: workflow`: the subflow is an invocation of
// its own, with its own history, whose row names the parent.
type subflowExecutor struct{ e *Engine }

func (x *subflowExecutor) Execute(ctx context.Context, req *CallRequest) (CallResult, error) {
	e := x.e
	run, err := parseRunArgs("workflow", req.Args)
	if err != nil {
		return CallResult{}, err
	}
	namespace, _ := run.spec["namespace"].(string)
	name, _ := run.spec["name"].(string)
	if namespace == "" || name == "" {
		return CallResult{}, problem.Configuration("run.workflow: namespace and name must be non-empty strings")
	}
	// A namespace is a tenant: its workflows start subflows of their own
	// namespace only, or one team could run another's workflows (with
	// that team's secrets) and read their outputs.
	if req.Workflow != nil && namespace != req.Workflow.Document.Namespace {
		return CallResult{}, problem.Configuration("run.workflow: %s/%s is in another namespace; a workflow of %s runs subflows of its own namespace only",
			namespace, name, req.Workflow.Document.Namespace)
	}
	version, _ := run.spec["version"].(string)
	if version == "latest" {
		version = ""
	}
	// Without `input` the subflow receives the task's input, as a
	// function call would.
	input, hasInput := run.spec["input"]
	if !hasInput {
		input = req.Input
	}
	target := namespace + "/" + name
	if version != "" {
		target += "@" + version
	}
	child, err := e.invokeChild(ctx, req.Invocation, req.Call.IDSeed(req.Invocation), namespace, name, version, input)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return CallResult{}, problem.Configuration("run.workflow: workflow %s is not stored", target)
		}
		return CallResult{}, fmt.Errorf("run.workflow %s: %w", target, err)
	}
	info := map[string]any{"subflow": child.ID}
	if !run.await {
		return CallResult{Output: req.Input, Info: info}, nil
	}
	if child.Status == core.StatusRunning && !child.Durable && !e.isLive(child.ID) {
		// A subflow without history that is not running here was lost
		// with the engine that ran it; nothing will ever finish it.
		return CallResult{}, problem.Runtime("run.workflow: subflow %s (invocation %s) has no history and was lost when its engine stopped", target, child.ID)
	}
	done, err := e.Wait(ctx, child.ID)
	if err != nil {
		if ctx.Err() == nil {
			return CallResult{}, fmt.Errorf("run.workflow %s: waiting for invocation %s: %w", target, child.ID, err)
		}
		// The parent no longer wants the result (cancelled, timed out,
		// lost a race): the subflow stops too. When the engine itself is
		// closing, the subflow stays running and resumes with its parent.
		if e.ctx.Err() == nil {
			reason := fmt.Sprintf("parent %s stopped waiting for it: %v", req.Invocation, context.Cause(ctx))
			if cancelErr := e.CancelInvocation(context.WithoutCancel(ctx), child.ID, reason); cancelErr != nil && !errors.Is(cancelErr, store.ErrConflict) {
				e.log.Warn("cannot cancel subflow", "invocation", child.ID, "parent", req.Invocation, "err", cancelErr)
			}
		}
		return CallResult{}, fmt.Errorf("run.workflow %s: %w", target, ctx.Err())
	}
	switch done.Status {
	case core.StatusCompleted:
		if run.ret == "none" {
			return CallResult{Info: info}, nil
		}
		return CallResult{Output: done.Output, Info: info}, nil
	case core.StatusFaulted:
		if done.Error != nil {
			return CallResult{}, done.Error
		}
		return CallResult{}, problem.Runtime("run.workflow: subflow %s (invocation %s) faulted", target, child.ID)
	default:
		return CallResult{}, problem.Runtime("run.workflow: subflow %s (invocation %s) was %s", target, child.ID, done.Status)
	}
}
