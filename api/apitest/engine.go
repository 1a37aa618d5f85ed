// Package apitest provides an in-memory engine that satisfies api.Engine,
// for tests of the API, the client and the CLI that need predictable
// invocations rather than real workflow execution.
package apitest

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/lang"
	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/store"
)

// Outcome is how a fake invocation ends. A nil *Outcome leaves it running
// until Finish or CancelInvocation ends it.
type Outcome struct {
	Status core.Status
	Output any
	Error  *problem.Problem
}

// Engine is an in-memory stand-in for the workflow engine. Documents are
// parsed and validated with the real dsl parser, so validation errors are
// the real ones; invocations end as Decide says instead of executing.
type Engine struct {
	// Decide returns the outcome of a new invocation. Nil means every
	// invocation completes at once with its input as output.
	Decide func(wf *store.Workflow, input any) *Outcome
	// Now is the engine's clock; nil means time.Now.
	Now func() time.Time
	// Waiting, when set, is called each time Wait starts waiting for a
	// running invocation, so a test can end the invocation exactly while a
	// long-poll holds: a handler that does not wait never calls it.
	Waiting func(id string)

	mu          sync.Mutex
	workflows   []*store.Workflow
	invocations []*store.Invocation // in creation order
	histories   map[string][]core.Event
	ended       map[string]chan struct{}
}

// NewEngine returns an empty fake engine.
func NewEngine() *Engine {
	return &Engine{
		histories: map[string][]core.Event{},
		ended:     map[string]chan struct{}{},
	}
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now().UTC()
	}
	return time.Now().UTC()
}

// ApplyDocument parses src as the real engine does and stores it.
func (e *Engine) ApplyDocument(ctx context.Context, filename string, src []byte, opts lang.Options) (*store.Workflow, error) {
	parsed, _, err := lang.Parse(filename, src, opts)
	if err != nil {
		return nil, err
	}
	doc := parsed.Document
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, wf := range e.workflows {
		if wf.Namespace == doc.Namespace && wf.Name == doc.Name && wf.Version == doc.Version {
			if string(wf.Source) != string(src) {
				return nil, fmt.Errorf("workflow %s/%s version %s: %w", doc.Namespace, doc.Name, doc.Version, store.ErrConflict)
			}
			return cloneWorkflow(wf), nil
		}
	}
	wf := &store.Workflow{
		Namespace: doc.Namespace,
		Name:      doc.Name,
		Version:   doc.Version,
		Format:    "dsl",
		Source:    slices.Clone(src),
		CreatedAt: e.now(),
	}
	e.workflows = append(e.workflows, wf)
	return cloneWorkflow(wf), nil
}

func cloneWorkflow(wf *store.Workflow) *store.Workflow {
	c := *wf
	c.Source = slices.Clone(wf.Source)
	return &c
}

// GetWorkflow returns a version, or the newest one when version is "".
func (e *Engine) GetWorkflow(ctx context.Context, namespace, name, version string) (*store.Workflow, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	wf := e.findWorkflow(namespace, name, version)
	if wf == nil {
		return nil, fmt.Errorf("workflow %s/%s: %w", namespace, name, store.ErrNotFound)
	}
	return cloneWorkflow(wf), nil
}

func (e *Engine) findWorkflow(namespace, name, version string) *store.Workflow {
	var found *store.Workflow
	for _, wf := range e.workflows {
		if wf.Namespace == namespace && wf.Name == name && (version == "" || wf.Version == version) {
			found = wf // later entries are newer
		}
	}
	return found
}

// ListWorkflows returns every version ordered by namespace, name and
// creation, as stores do.
func (e *Engine) ListWorkflows(ctx context.Context) ([]*store.Workflow, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]*store.Workflow, 0, len(e.workflows))
	for _, wf := range e.workflows {
		out = append(out, cloneWorkflow(wf))
	}
	slices.SortStableFunc(out, func(a, b *store.Workflow) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return out, nil
}

// DeleteWorkflow removes a version, or every version when version is "".
func (e *Engine) DeleteWorkflow(ctx context.Context, namespace, name, version string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	before := len(e.workflows)
	e.workflows = slices.DeleteFunc(e.workflows, func(wf *store.Workflow) bool {
		return wf.Namespace == namespace && wf.Name == name && (version == "" || wf.Version == version)
	})
	if len(e.workflows) == before {
		return fmt.Errorf("workflow %s/%s: %w", namespace, name, store.ErrNotFound)
	}
	return nil
}

// Invoke starts an invocation and ends it at once when Decide says so.
func (e *Engine) Invoke(ctx context.Context, namespace, name, version string, input any) (*store.Invocation, error) {
	e.mu.Lock()
	wf := e.findWorkflow(namespace, name, version)
	if wf == nil {
		e.mu.Unlock()
		return nil, fmt.Errorf("workflow %s/%s: %w", namespace, name, store.ErrNotFound)
	}
	wf = cloneWorkflow(wf)
	now := e.now()
	inv := &store.Invocation{
		ID:        fmt.Sprintf("inv-%04d", len(e.invocations)+1),
		Namespace: wf.Namespace,
		Workflow:  wf.Name,
		Version:   wf.Version,
		Status:    core.StatusRunning,
		Input:     input,
		StartedAt: now,
		Durable:   true,
	}
	e.invocations = append(e.invocations, inv)
	e.histories[inv.ID] = []core.Event{{Seq: 1, Type: core.InvocationStarted, Time: now, Input: input}}
	e.ended[inv.ID] = make(chan struct{})
	started := *inv
	e.mu.Unlock()

	decide := e.Decide
	if decide == nil {
		decide = func(_ *store.Workflow, input any) *Outcome {
			return &Outcome{Status: core.StatusCompleted, Output: input}
		}
	}
	if out := decide(wf, input); out != nil {
		if err := e.Finish(inv.ID, *out); err != nil {
			return nil, err
		}
	}
	return &started, nil
}

// Finish ends a running invocation with the given outcome, waking Wait.
func (e *Engine) Finish(id string, out Outcome) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	inv := e.findInvocation(id)
	if inv == nil {
		return fmt.Errorf("invocation %s: %w", id, store.ErrNotFound)
	}
	if inv.Status != core.StatusRunning {
		return fmt.Errorf("invocation %s has ended: %w", id, store.ErrConflict)
	}
	e.finishLocked(inv, out)
	return nil
}

func (e *Engine) finishLocked(inv *store.Invocation, out Outcome) {
	now := e.now()
	inv.Status, inv.Output, inv.Error, inv.EndedAt = out.Status, out.Output, out.Error, now
	ev := core.Event{Time: now, Output: out.Output, Error: out.Error}
	switch out.Status {
	case core.StatusCompleted:
		ev.Type = core.InvocationCompleted
	case core.StatusFaulted:
		ev.Type = core.InvocationFaulted
	default:
		ev.Type = core.InvocationCancelled
	}
	e.appendLocked(inv.ID, ev)
	close(e.ended[inv.ID])
}

func (e *Engine) appendLocked(id string, ev core.Event) {
	h := e.histories[id]
	ev.Seq = int64(len(h) + 1)
	e.histories[id] = append(h, ev)
}

func (e *Engine) findInvocation(id string) *store.Invocation {
	for _, inv := range e.invocations {
		if inv.ID == id {
			return inv
		}
	}
	return nil
}

// Wait blocks until the invocation ends or ctx is done.
func (e *Engine) Wait(ctx context.Context, id string) (*store.Invocation, error) {
	e.mu.Lock()
	ended, ok := e.ended[id]
	e.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("invocation %s: %w", id, store.ErrNotFound)
	}
	select {
	case <-ended:
	default:
		if e.Waiting != nil {
			e.Waiting(id)
		}
	}
	select {
	case <-ended:
		return e.GetInvocation(ctx, id)
	case <-ctx.Done():
		inv, err := e.GetInvocation(context.WithoutCancel(ctx), id)
		if err != nil {
			return nil, err
		}
		return inv, ctx.Err()
	}
}

// GetInvocation returns a copy of the invocation's row.
func (e *Engine) GetInvocation(ctx context.Context, id string) (*store.Invocation, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	inv := e.findInvocation(id)
	if inv == nil {
		return nil, fmt.Errorf("invocation %s: %w", id, store.ErrNotFound)
	}
	c := *inv
	return &c, nil
}

// ListInvocations pages through the invocations newest first; the cursor is
// the offset of the next page.
func (e *Engine) ListInvocations(ctx context.Context, f store.InvocationFilter) ([]*store.Invocation, string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	offset := 0
	if f.Cursor != "" {
		n, err := strconv.Atoi(f.Cursor)
		if err != nil || n < 0 {
			return nil, "", problem.Newf(problem.TypeBadRequest, 400, "Bad Request", "invalid cursor %q", f.Cursor)
		}
		offset = n
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	var matched []*store.Invocation
	for i := len(e.invocations) - 1; i >= 0; i-- {
		inv := e.invocations[i]
		if (f.Namespace == "" || inv.Namespace == f.Namespace) &&
			(f.Workflow == "" || inv.Workflow == f.Workflow) &&
			(f.Status == "" || inv.Status == f.Status) {
			c := *inv
			matched = append(matched, &c)
		}
	}
	if offset >= len(matched) {
		return nil, "", nil
	}
	end := min(offset+limit, len(matched))
	next := ""
	if end < len(matched) {
		next = strconv.Itoa(end)
	}
	return matched[offset:end], next, nil
}

// CancelInvocation cancels a running invocation at once, for reason (may
// be empty), as the engine records it.
func (e *Engine) CancelInvocation(ctx context.Context, id, reason string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	inv := e.findInvocation(id)
	if inv == nil {
		return fmt.Errorf("invocation %s: %w", id, store.ErrNotFound)
	}
	if inv.Status != core.StatusRunning {
		return fmt.Errorf("invocation %s has ended: %w", id, store.ErrConflict)
	}
	req := core.CancelRequest(reason)
	req.Time = e.now()
	e.appendLocked(id, req)
	e.finishLocked(inv, Outcome{Status: core.StatusCancelled, Error: core.CancelledError(reason)})
	return nil
}

// History returns a copy of the invocation's events.
func (e *Engine) History(ctx context.Context, id string) ([]core.Event, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	h, ok := e.histories[id]
	if !ok {
		return nil, fmt.Errorf("invocation %s: %w", id, store.ErrNotFound)
	}
	return slices.Clone(h), nil
}
