package prewarm

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/batonflow/baton/dsl"
	"github.com/batonflow/baton/problem"
)

// FileState is a StateStore keeping each key in a file of a directory,
// written atomically (a temporary file renamed over the old one), for an
// embedded engine whose store does not offer GetState and PutState.
type FileState struct{ Dir string }

func (f FileState) path(key string) string {
	return filepath.Join(f.Dir, strings.NewReplacer("/", "_", "\\", "_", "..", "_").Replace(key)+".json")
}

// GetState implements StateStore.
func (f FileState) GetState(_ context.Context, key string) ([]byte, error) {
	b, err := os.ReadFile(f.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoState
	}
	if err != nil {
		return nil, fmt.Errorf("prewarm state %s: %w", key, err)
	}
	return b, nil
}

// PutState implements StateStore.
func (f FileState) PutState(_ context.Context, key string, value []byte) error {
	if err := os.MkdirAll(f.Dir, 0o700); err != nil {
		return fmt.Errorf("prewarm state: %w", err)
	}
	tmp, err := os.CreateTemp(f.Dir, ".state-*")
	if err != nil {
		return fmt.Errorf("prewarm state %s: %w", key, err)
	}
	_, werr := tmp.Write(value)
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("prewarm state %s: %w", key, err)
	}
	if err := os.Rename(tmp.Name(), f.path(key)); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("prewarm state %s: %w", key, err)
	}
	return nil
}

// TaskObserver is engine.TaskObserver, restated so that this package does
// not depend on the engine.
type TaskObserver interface {
	TaskStarted(invocation, key, ref, name string, at time.Time)
	TaskEnded(invocation, key, ref, name string, at time.Time, err *problem.Problem)
}

// Observers composes task observers into one for engine.Options.Observer;
// members that also implement InvocationStarted/InvocationEnded (the
// engine's InvocationObserver) hear those too.
type Observers []TaskObserver

func (o Observers) TaskStarted(invocation, key, ref, name string, at time.Time) {
	for _, x := range o {
		x.TaskStarted(invocation, key, ref, name, at)
	}
}

func (o Observers) TaskEnded(invocation, key, ref, name string, at time.Time, err *problem.Problem) {
	for _, x := range o {
		x.TaskEnded(invocation, key, ref, name, at, err)
	}
}

type invocationObserver interface {
	InvocationStarted(invocation string, def *dsl.Workflow)
	InvocationEnded(invocation string)
}

func (o Observers) InvocationStarted(invocation string, def *dsl.Workflow) {
	for _, x := range o {
		if io, ok := x.(invocationObserver); ok {
			io.InvocationStarted(invocation, def)
		}
	}
}

func (o Observers) InvocationEnded(invocation string) {
	for _, x := range o {
		if io, ok := x.(invocationObserver); ok {
			io.InvocationEnded(invocation)
		}
	}
}
