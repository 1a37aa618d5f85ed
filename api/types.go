package api

import (
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/store"
)

// The types below are the API's wire format. The client package decodes
// into the same types, so a field renamed here is renamed for both sides.

// WorkflowRef names one version of a workflow.
type WorkflowRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Version   string `json:"version"`
}

// WorkflowSummary is a workflow version as listed by GET /v1/workflows.
type WorkflowSummary struct {
	Namespace string    `json:"namespace"`
	Name      string    `json:"name"`
	Version   string    `json:"version"`
	Format    string    `json:"format"`
	CreatedAt time.Time `json:"createdAt"`
}

// WorkflowList is the body of GET /v1/workflows.
type WorkflowList struct {
	Items []WorkflowSummary `json:"items"`
}

// Workflow is one stored workflow version with its source, together with
// every version stored under the same name.
type Workflow struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Version   string `json:"version"`
	// Versions lists every stored version of the workflow, oldest first.
	Versions  []string  `json:"versions"`
	Format    string    `json:"format"`
	Source    string    `json:"source"`
	CreatedAt time.Time `json:"createdAt"`
}

// InvocationID is the body of 202 responses that start or cancel an
// invocation.
type InvocationID struct {
	ID string `json:"id"`
}

// Invocation is an invocation's state.
type Invocation struct {
	ID       string      `json:"id"`
	Workflow WorkflowRef `json:"workflow"`
	Status   core.Status `json:"status"`
	Input    any         `json:"input"`
	// Output is null until the invocation completes.
	Output    any              `json:"output"`
	Error     *problem.Problem `json:"error,omitempty"`
	StartedAt time.Time        `json:"startedAt"`
	// EndedAt is absent while the invocation runs.
	EndedAt *time.Time `json:"endedAt,omitempty"`
	// Parent is the invocation that started this one as a subflow.
	Parent string `json:"parent,omitempty"`
}

// Ended reports whether the invocation has reached a final status.
func (inv *Invocation) Ended() bool {
	return inv.Status != "" && inv.Status != core.StatusRunning
}

// InvocationList is a page of GET /v1/invocations.
type InvocationList struct {
	Items []Invocation `json:"items"`
	// NextCursor continues the listing; it is empty on the last page.
	NextCursor string `json:"nextCursor"`
}

// History is the body of GET /v1/invocations/{id}/history.
type History struct {
	Items []core.Event `json:"items"`
}

// Health is the body of GET /healthz.
type Health struct {
	Status string `json:"status"`
}

func workflowSummaryFrom(wf *store.Workflow) WorkflowSummary {
	return WorkflowSummary{
		Namespace: wf.Namespace,
		Name:      wf.Name,
		Version:   wf.Version,
		Format:    wf.Format,
		CreatedAt: wf.CreatedAt.UTC(),
	}
}

func invocationFrom(inv *store.Invocation) Invocation {
	out := Invocation{
		ID:        inv.ID,
		Workflow:  WorkflowRef{Namespace: inv.Namespace, Name: inv.Workflow, Version: inv.Version},
		Status:    inv.Status,
		Input:     inv.Input,
		Output:    inv.Output,
		Error:     inv.Error,
		StartedAt: inv.StartedAt.UTC(),
		Parent:    inv.Parent,
	}
	if !inv.EndedAt.IsZero() {
		ended := inv.EndedAt.UTC()
		out.EndedAt = &ended
	}
	return out
}
