// Package store defines where Baton keeps its state: workflow definitions,
// the event history of every invocation, the invocation index that the API
// lists from, and the function registry. Implementations live in
// store/sqlite (the embedded default) and store/postgres (shared by several
// engine replicas); store/storetest holds the tests every implementation
// must pass.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/problem"
)

// Errors that implementations return (wrapped or as they are).
var (
	ErrNotFound = errors.New("not found")
	// ErrConflict is returned when a workflow version is stored again with
	// different content, or an invocation id is used twice.
	ErrConflict = errors.New("conflict")
	// ErrUnwaitedWriteFailed marks an error that a waited call reports on
	// behalf of an earlier write made without waiting: the caller's own
	// write committed, but something written before it did not.
	ErrUnwaitedWriteFailed = errors.New("an earlier unwaited write failed")
)

// Workflow is a stored workflow definition.
type Workflow struct {
	Namespace string
	Name      string
	Version   string
	// Format is the language of Source: "dsl" (Serverless Workflow 1.0)
	// or "fission" (Fission Workflows YAML).
	Format    string
	Source    []byte
	CreatedAt time.Time
}

// Invocation is a row of the invocation index. The history is the truth;
// this row is what it sums up to, kept for listing and lookups.
type Invocation struct {
	ID        string
	Namespace string
	Workflow  string
	Version   string
	Status    core.Status
	Input     any
	Output    any
	Error     *problem.Problem
	StartedAt time.Time
	EndedAt   time.Time // zero while running
	// Durable is false for invocations that opted out of history
	// (baton.durability: none); they are not recovered after a crash.
	Durable bool
	// Parent is the invocation that started this one as a subflow, if any.
	Parent string
}

// InvocationFilter selects invocations to list. Zero fields match all.
type InvocationFilter struct {
	Namespace string
	Workflow  string
	Status    core.Status
	// Limit caps the page size; implementations apply a default of 100 and
	// a maximum of 1000.
	Limit int
	// Cursor continues a listing where the previous page ended; it is
	// opaque to callers.
	Cursor string
}

// Function is a registered function version. Spec is the function layer's
// own JSON document (runtime, artifact, limits...); the store only keeps it.
type Function struct {
	Name      string
	Version   string
	Spec      []byte
	CreatedAt time.Time
}

// Store is Baton's persistent state. All methods are safe for concurrent
// use. Appends from concurrent callers share one transaction and one fsync
// (group commit).
type Store interface {
	// PutWorkflow stores a workflow version. Storing the same version with
	// the same source again succeeds; with another source it fails with
	// ErrConflict.
	PutWorkflow(ctx context.Context, wf *Workflow) error
	// GetWorkflow returns a version, or the newest one when version is "".
	GetWorkflow(ctx context.Context, namespace, name, version string) (*Workflow, error)
	// ListWorkflows returns every stored version, ordered by namespace,
	// name and creation.
	ListWorkflows(ctx context.Context) ([]*Workflow, error)
	// DeleteWorkflow removes a version, or all versions when version is "".
	// Invocations and their histories are kept.
	DeleteWorkflow(ctx context.Context, namespace, name, version string) error

	// CreateInvocation adds an invocation to the index together with the
	// first events of its history, in one transaction. When wait is true it
	// returns once they are durable.
	CreateInvocation(ctx context.Context, inv *Invocation, events []core.Event, wait bool) error
	// Append adds events to an invocation's history. A terminal event also
	// updates the invocation's row (status, output, error, endedAt) in the
	// same transaction. When wait is true it returns once the events are
	// durable; otherwise they are written with the next commit.
	Append(ctx context.Context, id string, events []core.Event, wait bool) error
	// History returns an invocation's events in order.
	History(ctx context.Context, id string) ([]core.Event, error)
	GetInvocation(ctx context.Context, id string) (*Invocation, error)
	// ListInvocations returns a page, newest first, and the cursor of the
	// next page ("" at the end).
	ListInvocations(ctx context.Context, f InvocationFilter) ([]*Invocation, string, error)
	// RunningInvocations returns every durable invocation whose status is
	// running: what a restarted engine must resume.
	RunningInvocations(ctx context.Context) ([]*Invocation, error)

	PutFunction(ctx context.Context, fn *Function) error
	// GetFunction returns a version, or the newest one when version is "".
	GetFunction(ctx context.Context, name, version string) (*Function, error)
	ListFunctions(ctx context.Context) ([]*Function, error)
	DeleteFunction(ctx context.Context, name, version string) error

	// Close flushes pending appends and releases the store.
	Close() error
}
