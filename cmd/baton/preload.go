package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/batonflow/baton/function"
	"github.com/batonflow/baton/function/wasm"
	"github.com/batonflow/baton/store"
)

// functionUseKey is the store state under which a server keeps when each
// function was last called.
const functionUseKey = "functions/last-used"

// functionUseSaveEvery is how often a preloading server saves the record,
// so that a crash loses little of it.
const functionUseSaveEvery = time.Minute

// preloadConfig bounds the wasm modules a server loads at boot, before
// their first calls (see (*wasm.Runtime).Preload).
type preloadConfig struct {
	// set: the flags were registered; without them the runtime's
	// defaults apply.
	set     bool
	modules int
	mib     int
}

func addPreloadFlags(cmd *cobra.Command, cfg *preloadConfig) {
	cfg.set = true
	cmd.Flags().IntVar(&cfg.modules, "wasm-preload", wasm.DefaultPreloadModules,
		"how many wasm functions' modules a server loads at boot and on deploy, most recently called first, so that their first calls only instantiate (0: none)")
	cmd.Flags().IntVar(&cfg.mib, "wasm-preload-memory", wasm.DefaultPreloadBytes>>20,
		"the most MiB of WebAssembly binaries --wasm-preload keeps loaded (0: none)")
}

func (c preloadConfig) limits() wasm.PreloadLimits {
	if !c.set {
		return wasm.PreloadLimits{}
	}
	l := wasm.PreloadLimits{Modules: c.modules, Bytes: int64(c.mib) << 20}
	if l.Modules <= 0 || l.Bytes <= 0 {
		l.Modules, l.Bytes = -1, -1
	}
	return l
}

// functionUse remembers when each function was last called, across
// restarts (in the store's state), so that a server preloads the modules
// of the functions called most recently first.
type functionUse struct {
	state store.Store
	mu    sync.Mutex
	last  map[string]time.Time // by namespace-qualified name
	dirty bool
}

func newFunctionUse(st store.Store) *functionUse {
	return &functionUse{state: st, last: map[string]time.Time{}}
}

// Observe implements function.Observer: a call makes its instance busy.
func (u *functionUse) Observe(e function.Event) {
	if e.Kind != function.EventBusy {
		return
	}
	u.mu.Lock()
	if e.Time.After(u.last[e.Function]) {
		u.last[e.Function] = e.Time
		u.dirty = true
	}
	u.mu.Unlock()
}

// load merges the saved record into this one.
func (u *functionUse) load(ctx context.Context) error {
	saved, err := u.saved(ctx)
	if err != nil {
		return err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	for fn, t := range saved {
		if t.After(u.last[fn]) {
			u.last[fn] = t
		}
	}
	return nil
}

func (u *functionUse) saved(ctx context.Context) (map[string]time.Time, error) {
	raw, err := u.state.GetState(ctx, functionUseKey)
	if errors.Is(err, store.ErrNotFound) {
		return map[string]time.Time{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("loading the functions' last use: %w", err)
	}
	saved := map[string]time.Time{}
	if err := json.Unmarshal(raw, &saved); err != nil {
		return nil, fmt.Errorf("decoding the functions' last use: %w", err)
	}
	return saved, nil
}

// changed reports whether a call was recorded since the last save.
func (u *functionUse) changed() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.dirty
}

// save writes the record when it changed, merged with what servers
// sharing the store saved, and keeps only deployed functions (known
// nil: all).
func (u *functionUse) save(ctx context.Context, known map[string]bool) error {
	if !u.changed() {
		return nil
	}
	saved, err := u.saved(ctx)
	if err != nil {
		return err
	}
	u.mu.Lock()
	u.dirty = false
	for fn, t := range u.last {
		if t.After(saved[fn]) {
			saved[fn] = t
		}
	}
	u.mu.Unlock()
	if known != nil {
		maps.DeleteFunc(saved, func(fn string, _ time.Time) bool { return !known[fn] })
	}
	raw, err := json.Marshal(saved)
	if err == nil {
		err = u.state.PutState(ctx, functionUseKey, raw)
	}
	if err != nil {
		u.mu.Lock()
		u.dirty = true
		u.mu.Unlock()
		return fmt.Errorf("saving the functions' last use: %w", err)
	}
	return nil
}

// preloadOrder picks each function's newest wasm version among specs and
// orders them most recently called first, then most recently deployed.
func (u *functionUse) preloadOrder(specs []*function.Spec) []*function.Spec {
	newest := map[string]*function.Spec{}
	for _, s := range specs {
		fn := function.Qualify(s.Namespace, s.Name)
		if cur := newest[fn]; cur == nil || !s.CreatedAt.Before(cur.CreatedAt) {
			newest[fn] = s
		}
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	var order []*function.Spec
	for _, s := range newest {
		if s.Runtime == function.KindWasm {
			order = append(order, s)
		}
	}
	slices.SortFunc(order, func(a, b *function.Spec) int {
		ua, ub := u.last[function.Qualify(a.Namespace, a.Name)], u.last[function.Qualify(b.Namespace, b.Name)]
		if c := ub.Compare(ua); c != 0 {
			return c
		}
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.Ref(), b.Ref())
	})
	return order
}
