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
	// Version narrows Workflow to one version.
	Version string
	Status  core.Status
	// IDPrefix keeps invocations whose id starts with it, so a shortened
	// id copied from a log finds its invocation.
	IDPrefix string
	// StartedAfter and StartedBefore bound the start time: inclusive,
	// exclusive; zero leaves that side open.
	StartedAfter, StartedBefore time.Time
	// Limit caps the page size; implementations apply a default of 100 and
	// a maximum of 1000.
	Limit int
	// Cursor continues a listing where the previous page ended; it is
	// opaque to callers.
	Cursor string
}

// InvocationCounter is implemented by stores that count invocations by
// status under a filter (Limit and Cursor ignored, Status too: every
// status is counted), for the console's status chips.
type InvocationCounter interface {
	CountInvocations(ctx context.Context, f InvocationFilter) (map[core.Status]int, error)
}

// Function is a registered function version. Spec is the function layer's
// own JSON document (runtime, artifact, limits...); the store only keeps it.
type Function struct {
	// Namespace is the tenancy unit the function belongs to: the same name
	// in two namespaces is two functions. Empty means "default".
	Namespace string
	Name      string
	Version   string
	Spec      []byte
	CreatedAt time.Time
}

// FunctionNamespace is the namespace of a function stored without one.
const FunctionNamespace = "default"

// Secret is a stored secret. Value is opaque to the store: package secret
// encrypts it before it gets here, so the store never holds it in clear.
type Secret struct {
	Name      string
	Value     []byte
	UpdatedAt time.Time
}

// Schedule is the durable state of a scheduled workflow version: when its
// next run is due and which run came last. The definition's `schedule`
// says how runs follow each other; the row only remembers where they are.
type Schedule struct {
	Namespace string
	Name      string
	Version   string
	// NextRun is when the next run is due; zero when none is, which is
	// the case of an `after` schedule while its last run is going.
	NextRun time.Time
	// LastRun is the due time of the last run started, zero before the
	// first one; LastInvocation is that run's invocation id.
	LastRun        time.Time
	LastInvocation string
	CreatedAt      time.Time
}

// PendingTimers is implemented by stores that can tell the earliest
// pending timer (scheduled, not fired) of each running durable invocation
// without reading whole histories. A restarted engine resumes those whose
// timers are due first.
type PendingTimers interface {
	PendingTimers(ctx context.Context) (map[string]time.Time, error)
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
	// same transaction. An InvocationRedriven event, appended alone to a
	// faulted or cancelled invocation, sets its row running again (output,
	// error and endedAt cleared); appended to a running one it fails with
	// ErrConflict. When wait is true it returns once the events are
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
	// GetFunction returns a version of a namespace's function, or the
	// newest one when version is "".
	GetFunction(ctx context.Context, namespace, name, version string) (*Function, error)
	// ListFunctions returns a namespace's functions, or every namespace's
	// when namespace is "".
	ListFunctions(ctx context.Context, namespace string) ([]*Function, error)
	DeleteFunction(ctx context.Context, namespace, name, version string) error

	// PutSecret creates or replaces a secret.
	PutSecret(ctx context.Context, secret *Secret) error
	// GetSecrets returns the named secrets that exist, in no particular
	// order; names that do not exist are left out.
	GetSecrets(ctx context.Context, names []string) ([]*Secret, error)
	// ListSecretNames returns every secret's name, sorted.
	ListSecretNames(ctx context.Context) ([]string, error)
	// DeleteSecret removes a secret; ErrNotFound when there is none.
	DeleteSecret(ctx context.Context, name string) error

	// CreateSchedule adds the schedule of a workflow version; ErrConflict
	// when that version has one already (whose state is then kept).
	CreateSchedule(ctx context.Context, s *Schedule) error
	// ListSchedules returns every schedule, ordered by namespace, name
	// and version.
	ListSchedules(ctx context.Context) ([]*Schedule, error)
	// AdvanceSchedule stores s's NextRun, LastRun and LastInvocation, but
	// only if the stored NextRun is still from: engines sharing the store
	// race for a due run with it, and exactly one of them wins. It
	// reports whether the update happened (false also when the schedule
	// is gone).
	AdvanceSchedule(ctx context.Context, s *Schedule, from time.Time) (bool, error)
	// DeleteSchedules removes the schedule of a version, or of every
	// version when version is "". Deleting nothing is not an error.
	DeleteSchedules(ctx context.Context, namespace, name, version string) error

	// GetState returns the value stored under key by PutState; a key never
	// written is an error wrapping ErrNotFound. Components keep small
	// blobs of learned state here (the prewarm planner's statistics) so
	// that it survives restarts and is shared by servers on one store.
	GetState(ctx context.Context, key string) ([]byte, error)
	// PutState creates or replaces the value stored under key.
	PutState(ctx context.Context, key string, value []byte) error

	Retention

	// Close flushes pending appends and releases the store.
	Close() error
}
