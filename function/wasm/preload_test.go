package wasm

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/batonflow/baton/function"
)

// preloadSpec is a version of a function running the noop module; a
// distinct memory limit makes a distinct module (the limit is an engine
// setting), loaded from the shared compilation cache without compiling.
func preloadSpec(t *testing.T, name, version string, memoryMiB int64) *function.Spec {
	return &function.Spec{Name: name, Version: version, Runtime: function.KindWasm, Artifact: built(t, noopFn),
		Limits: function.Limits{Memory: memoryMiB << 20}}
}

func newPreloadRuntime(t *testing.T, limits PreloadLimits) *Runtime {
	t.Helper()
	rt, err := New(Options{CacheDir: cacheDir, Preload: limits})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(context.Background()) })
	return rt
}

func preload(t *testing.T, rt *Runtime, specs ...*function.Spec) []PreloadOutcome {
	t.Helper()
	out := rt.Preload(context.Background(), specs)
	for _, o := range out {
		if o.Err != nil {
			t.Fatalf("preloading %s: %v", o.Spec.Ref(), o.Err)
		}
	}
	return out
}

func (r *Runtime) moduleCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.modules)
}

func TestPreloadedModuleIsNotLoadedAgain(t *testing.T) {
	rt := newPreloadRuntime(t, PreloadLimits{})
	spec := preloadSpec(t, "noop", "1", 64)
	out := preload(t, rt, spec)
	if len(out) != 1 || !out[0].Held || !out[0].Loaded {
		t.Fatalf("outcome %+v, want held and loaded", out)
	}
	if got := rt.loads.Load(); got != 1 {
		t.Fatalf("%d loads, want 1", got)
	}
	ctx := context.Background()
	for range 2 {
		inst, _, err := rt.Start(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		if err := inst.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := rt.loads.Load(); got != 1 {
		t.Fatalf("%d loads after two starts, want the preloaded module used", got)
	}
	// Preloading it again finds it held: no load, and it stays held.
	out = preload(t, rt, spec)
	if !out[0].Held || out[0].Loaded || rt.loads.Load() != 1 {
		t.Fatalf("outcome %+v after %d loads, want held without a load", out, rt.loads.Load())
	}
	// Other runtimes' specs are not the wasm runtime's to preload.
	if out := rt.Preload(ctx, []*function.Spec{{Name: "p", Version: "1", Runtime: function.KindProcess}}); len(out) != 0 {
		t.Fatalf("a process function got %+v", out)
	}
}

func TestStartDuringPreloadJoinsIt(t *testing.T) {
	rt := newPreloadRuntime(t, PreloadLimits{})
	spec := preloadSpec(t, "noop", "1", 64)
	loading, proceed := make(chan struct{}), make(chan struct{})
	rt.beforeLoad = func(*function.Spec) {
		close(loading)
		<-proceed
	}
	preloaded := make(chan []PreloadOutcome)
	go func() { preloaded <- rt.Preload(context.Background(), []*function.Spec{spec}) }()
	<-loading

	started := startJoiningLoad(t, rt, spec)
	close(proceed)
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	out := <-preloaded
	if len(out) != 1 || !out[0].Held || out[0].Err != nil {
		t.Fatalf("preload outcome %+v", out)
	}
	if got := rt.loads.Load(); got != 1 {
		t.Fatalf("%d loads, want the start to have joined the preload's", got)
	}
}

func TestPreloadBudget(t *testing.T) {
	a, b, c := preloadSpec(t, "a", "1", 64), preloadSpec(t, "b", "1", 65), preloadSpec(t, "c", "1", 66)
	t.Run("modules", func(t *testing.T) {
		rt := newPreloadRuntime(t, PreloadLimits{Modules: 2})
		out := preload(t, rt, a, b, c)
		if !out[0].Held || !out[1].Held || out[2].Held || out[2].Loaded {
			t.Fatalf("outcomes %+v, want the first two held and the third not loaded", out)
		}
		if got := rt.loads.Load(); got != 2 {
			t.Fatalf("%d loads, want 2", got)
		}
		// A later batch is wanted more: it goes ahead, and the least
		// wanted hold is let go and its module closed.
		preload(t, rt, c)
		if got, want := rt.Preloaded(), []string{"c@1", "a@1"}; !slices.Equal(got, want) {
			t.Fatalf("held %v, want %v", got, want)
		}
		if got := rt.moduleCount(); got != 2 {
			t.Fatalf("%d modules in memory, want 2", got)
		}
	})
	t.Run("bytes", func(t *testing.T) {
		probe := newPreloadRuntime(t, PreloadLimits{})
		preload(t, probe, a)
		size := probe.held[0].mod.size
		rt := newPreloadRuntime(t, PreloadLimits{Bytes: size*2 - 1})
		out := preload(t, rt, a, b)
		if !out[0].Held || out[1].Held || out[1].Loaded {
			t.Fatalf("outcomes %+v, want only the first to fit %d bytes", out, size*2-1)
		}
	})
	t.Run("none", func(t *testing.T) {
		rt := newPreloadRuntime(t, PreloadLimits{Modules: -1})
		if out := preload(t, rt, a); out[0].Held || rt.loads.Load() != 0 {
			t.Fatalf("outcome %+v with %d loads, want nothing preloaded", out, rt.loads.Load())
		}
	})
}

func TestPreloadOfNewVersionReplacesTheOld(t *testing.T) {
	rt := newPreloadRuntime(t, PreloadLimits{})
	v1, v2 := preloadSpec(t, "hello", "1", 64), preloadSpec(t, "hello", "2", 65)
	other := preloadSpec(t, "other", "1", 66)
	preload(t, rt, v1, other)
	preload(t, rt, v2) // what a deploy of version 2 does
	if got, want := rt.Preloaded(), []string{"hello@2", "other@1"}; !slices.Equal(got, want) {
		t.Fatalf("held %v, want %v", got, want)
	}
	if got := rt.moduleCount(); got != 2 {
		t.Fatalf("%d modules in memory, want version 1's closed", got)
	}

	// A version in use keeps its module when it is replaced, until its
	// last instance closes and it is retired.
	ctx := context.Background()
	inst, _, err := rt.Start(ctx, v2)
	if err != nil {
		t.Fatal(err)
	}
	v3 := preloadSpec(t, "hello", "3", 67)
	preload(t, rt, v3)
	if got := rt.moduleCount(); got != 3 {
		t.Fatalf("%d modules in memory, want version 2's kept for its instance", got)
	}
	if err := inst.Close(ctx); err != nil {
		t.Fatal(err)
	}
	rt.Retire(v2)
	if got := rt.moduleCount(); got != 2 {
		t.Fatalf("%d modules in memory after version 2 retired, want 2", got)
	}
	// Retiring a held version lets its hold go.
	rt.Retire(v3)
	if got, want := rt.Preloaded(), []string{"other@1"}; !slices.Equal(got, want) {
		t.Fatalf("held %v, want %v", got, want)
	}
	if got := rt.moduleCount(); got != 1 {
		t.Fatalf("%d modules in memory, want 1", got)
	}
}

// A start that joined a preload's load which was then stopped (the server
// closing, say) loads the module itself under its own context.
func TestStartOutlivesAStoppedPreload(t *testing.T) {
	rt := newPreloadRuntime(t, PreloadLimits{})
	spec := preloadSpec(t, "noop", "1", 64)
	preloadCtx, stopPreload := context.WithCancel(context.Background())
	loading, proceed := make(chan struct{}), make(chan struct{})
	first := true
	rt.beforeLoad = func(*function.Spec) {
		if first { // only the preload's load waits; the start's goes on
			first = false
			close(loading)
			<-proceed
		}
	}
	preloaded := make(chan []PreloadOutcome)
	go func() { preloaded <- rt.Preload(preloadCtx, []*function.Spec{spec}) }()
	<-loading
	started := startJoiningLoad(t, rt, spec)
	stopPreload()
	close(proceed)
	out := <-preloaded
	if len(out) != 1 || out[0].Held || !errors.Is(out[0].Err, context.Canceled) {
		t.Fatalf("preload outcome %+v, want stopped", out)
	}
	if err := <-started; err != nil {
		t.Fatalf("the start that joined a stopped preload: %v", err)
	}
	if got := rt.loads.Load(); got != 2 {
		t.Fatalf("%d loads, want the stopped one and the start's own", got)
	}
	if held := rt.Preloaded(); len(held) != 0 {
		t.Fatalf("held %v after a stopped preload", held)
	}
}

// Preloading a reactor also readies the memories of its first instances.
func TestPreloadWarmsFirstMemories(t *testing.T) {
	rt := newPreloadRuntime(t, PreloadLimits{})
	spec := preloadSpec(t, "noop", "1", 64)
	preload(t, rt, spec)
	m := rt.held[0].mod
	want := int64(warmMemories()) * int64(2*m.memory)
	if m.memory == 0 || rt.memory.heldBytes() != want {
		t.Fatalf("initial memory %d; pool holds %d bytes, want %d", m.memory, rt.memory.heldBytes(), want)
	}
	ctx := context.Background()
	inst, _, err := rt.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close(ctx)
	if got := rt.memory.heldBytes(); got != want-int64(2*m.memory) {
		t.Fatalf("pool holds %d bytes after a start, want one warm memory taken", got)
	}
}

// startJoiningLoad starts an instance of spec while a preload is loading
// its module, and returns once the start has joined that load (it counts
// as the module's second user); the start's outcome arrives on the
// channel once the load ends.
func startJoiningLoad(t *testing.T, rt *Runtime, spec *function.Spec) <-chan error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	started := make(chan error, 1)
	go func() {
		inst, _, err := rt.Start(ctx, spec)
		if err == nil {
			err = inst.Close(ctx)
		}
		started <- err
	}()
	for {
		rt.mu.Lock()
		var joined bool
		for _, m := range rt.modules {
			joined = joined || m.instances == 2
		}
		rt.mu.Unlock()
		if joined {
			return started
		}
		select {
		case err := <-started:
			t.Fatalf("the start returned (%v) before the preload's load ended", err)
		case <-time.After(time.Millisecond):
		}
	}
}
