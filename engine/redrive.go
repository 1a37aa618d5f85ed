package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/batonflow/baton/cluster"
	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/store"
)

// RedriveInvocation continues a faulted or cancelled invocation as the same
// invocation, from the task that failed or was cut short (Step Functions'
// redrive): calls that completed keep their results and are not run
// again; the call that failed goes out again as a new execution (its
// idempotency key marked with the redrive). An InvocationRedriven event,
// written with the row set running again in one transaction, records it,
// so a crash at any point leaves either the ended invocation or one that
// the next start resumes. It fails with store.ErrConflict when the
// invocation is running, completed, keeps no history, or ended in a way
// that going on would repeat (the error says which). reason, when given,
// is recorded on the event (info.reason).
func (e *Engine) RedriveInvocation(ctx context.Context, id, reason string) (*store.Invocation, error) {
	if err := e.admitting(); err != nil {
		return nil, err
	}
	inv, err := e.GetInvocation(ctx, id)
	if err != nil {
		return nil, err
	}
	switch {
	case inv.Status == core.StatusRunning:
		return nil, fmt.Errorf("invocation %s is running; only a faulted or cancelled one is retried: %w", id, store.ErrConflict)
	case inv.Status == core.StatusCompleted:
		return nil, fmt.Errorf("invocation %s completed; run it again instead (rerun): %w", id, store.ErrConflict)
	case !inv.Durable:
		return nil, fmt.Errorf("invocation %s kept no history (baton.durability: none), so it cannot go on from where it stopped; rerun it: %w", id, store.ErrConflict)
	}
	def, err := e.definition(ctx, inv.Namespace, inv.Workflow, inv.Version)
	if err != nil {
		return nil, err
	}
	history, err := e.store.History(ctx, id)
	if err != nil {
		return nil, err
	}
	secrets, err := e.loadSecrets(ctx, def, false)
	if err != nil {
		return nil, err
	}
	eff, err := e.policyFor(ctx, inv.Namespace)
	if err != nil {
		return nil, err
	}
	ev, err := core.Redrive(def, core.Options{
		ID:        id,
		Secrets:   secrets,
		Runtime:   runtimeDescriptor(),
		Evaluator: e.evaluatorFor(eff.Limits),
		JS:        e.js,
	}, history)
	if errors.Is(err, core.ErrNotRedrivable) {
		return nil, fmt.Errorf("invocation %s cannot be retried: %w (%w)", id, err, store.ErrConflict)
	}
	if err != nil {
		return nil, err
	}
	ev.Seq = history[len(history)-1].Seq + 1
	ev.Time = time.Now().UTC()
	if reason != "" {
		ev.Info = map[string]any{"reason": reason}
	}
	// The seq makes the append conditional: of two concurrent redrives
	// one finds the seq taken and fails with ErrConflict.
	if err := e.store.Append(ctx, id, []core.Event{ev}, true); err != nil {
		return nil, err
	}
	e.watch.publish(id, []core.Event{ev})
	inv.Status, inv.Output, inv.Error, inv.EndedAt = core.StatusRunning, nil, nil, time.Time{}
	if err := e.resumeRedriven(ctx, inv); err != nil {
		// The redrive is recorded: the next start (or the partition's
		// owner) resumes it.
		e.log.Error("redriven invocation not resumed here", "invocation", id, "err", err)
	}
	snapshot := *inv
	return &snapshot, nil
}

func (e *Engine) resumeRedriven(ctx context.Context, inv *store.Invocation) error {
	if e.cluster == nil {
		return e.resume(ctx, inv, nil)
	}
	if fence, here := e.cluster.fenceFor(inv.ID); here {
		return e.resume(ctx, inv, fence)
	}
	e.cluster.announce(cluster.PartitionOf(inv.ID, e.cluster.cfg.Partitions))
	return nil
}

// RerunInvocation starts a new invocation of the workflow version another
// one ran, with that invocation's input, or with input when withInput is
// set. Its InvocationStarted event names the original (info.rerunOf).
func (e *Engine) RerunInvocation(ctx context.Context, id string, input any, withInput bool) (*store.Invocation, error) {
	if err := e.admitting(); err != nil {
		return nil, err
	}
	orig, err := e.GetInvocation(ctx, id)
	if err != nil {
		return nil, err
	}
	if !withInput {
		input = orig.Input
	}
	newID, err := uuid.NewV7()
	if err != nil {
		return nil, fmt.Errorf("engine: invocation id: %w", err)
	}
	inv, _, err := e.startOnce(ctx, newID.String(), "", orig.Namespace, orig.Workflow, orig.Version, input,
		nil, map[string]any{"rerunOf": id})
	return inv, err
}
