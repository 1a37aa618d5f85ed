package wasm

import (
	"context"
	"runtime"
	"slices"
	"time"

	"github.com/batonflow/baton/function"
	"github.com/batonflow/baton/problem"
)

// Defaults of PreloadLimits.
const (
	DefaultPreloadModules = 16
	// DefaultPreloadBytes counts WebAssembly binaries: a loaded module
	// holds its machine code and wazero's decoded form, about twice its
	// binary (docs/functions.md gives the measure).
	DefaultPreloadBytes = 64 << 20
)

// PreloadLimits bound what Preload keeps loaded ahead of calls.
type PreloadLimits struct {
	// Modules is how many modules at most: 0 means
	// DefaultPreloadModules, negative none.
	Modules int
	// Bytes bounds the sum of their binaries' sizes: 0 means
	// DefaultPreloadBytes, negative none.
	Bytes int64
}

func (l PreloadLimits) withDefaults() PreloadLimits {
	if l.Modules == 0 {
		l.Modules = DefaultPreloadModules
	}
	if l.Bytes == 0 {
		l.Bytes = DefaultPreloadBytes
	}
	return l
}

// warmMemories is how many resident memories Preload readies for first
// instances: as many as can start at once (one per core), but at most
// four, which on a large machine would otherwise hold much memory idle.
func warmMemories() int { return min(runtime.GOMAXPROCS(0), 4) }

// hold is Preload keeping a function version's module loaded.
type hold struct {
	fn  string // namespace-qualified name: one hold per function
	ref string // the version held
	mod *module
}

// PreloadOutcome is what Preload did with one spec.
type PreloadOutcome struct {
	Spec *function.Spec
	// Held: the module is loaded and kept for the version's first call.
	// False with a nil Err when the budget had no room for it.
	Held bool
	// Loaded: Preload loaded it (it was not in memory yet); Duration is
	// what that took.
	Loaded   bool
	Duration time.Duration
	Err      error
}

// Preload loads the compiled modules of specs' wasm versions (the others
// are ignored) and keeps them loaded ahead of their first calls, so that
// those calls only instantiate: even from the disk cache, wazero decodes
// and validates a module before reading its machine code back, which for
// a Go module of a few megabytes takes tens of milliseconds.
//
// specs come most wanted first (a server passes its functions most
// recently used first), and they are wanted more than what earlier
// Preloads hold: each is placed after the ones before it in this batch and
// ahead of older holds. What does not fit within Options.Preload is not
// loaded, and older holds beyond it are let go. A version held replaces
// the function's other version held, so that deploying a new version
// frees the old one's module unless calls still use it. Retire lets a
// version's hold go.
//
// A start that arrives while Preload loads its module waits for that load
// rather than doing it again. Preload runs the batch one module at a time
// (batches one after the other), so that preloading takes one core; the
// caller runs it in the background, and ctx stops it.
func (r *Runtime) Preload(ctx context.Context, specs []*function.Spec) []PreloadOutcome {
	limits := r.opts.Preload.withDefaults()
	r.preloading.Lock()
	defer r.preloading.Unlock()
	outcomes := make([]PreloadOutcome, 0, len(specs))
	placed := 0 // holds of this batch, at the front of r.held
	for _, spec := range specs {
		if spec.Runtime != function.KindWasm {
			continue
		}
		out := PreloadOutcome{Spec: spec}
		if err := ctx.Err(); err != nil {
			out.Err = err
			outcomes = append(outcomes, out)
			continue
		}
		begin := time.Now()
		out.Held, out.Loaded, out.Err = r.preloadOne(ctx, spec, placed, limits)
		out.Duration = time.Since(begin)
		if out.Held {
			placed++
		}
		outcomes = append(outcomes, out)
	}
	return outcomes
}

// preloadOne holds spec's module at position placed of r.held if the
// budget allows, loading it unless it is in memory.
func (r *Runtime) preloadOne(ctx context.Context, spec *function.Spec, placed int, limits PreloadLimits) (held, loaded bool, err error) {
	if limits.Modules <= placed || limits.Bytes < 0 {
		return false, false, nil
	}
	pages := uint32(spec.EffectiveMemory() / pageSize)
	eng, err := r.engine(ctx, pages)
	if err != nil {
		return false, false, err
	}
	digest, bin, err := r.identify(spec.Artifact)
	if err != nil {
		return false, false, problem.Configuration("function %s: %v", spec.Ref(), err)
	}
	key := moduleKey{digest: digest, pages: pages}
	fn, ref := function.Qualify(spec.Namespace, spec.Name), versionKey(spec)

	r.mu.Lock()
	m := r.modules[key]
	// Held already for this version by an earlier Preload: it only moves
	// up, the budget's count unchanged.
	if i := slices.IndexFunc(r.held, func(h *hold) bool { return h.ref == ref && h.mod == m }); m != nil && i >= 0 {
		h := r.held[i]
		r.held = slices.Delete(r.held, i, i+1)
		r.held = slices.Insert(r.held, min(placed, len(r.held)), h)
		r.mu.Unlock()
		return true, false, nil
	}
	r.mu.Unlock()
	// The size decides whether it fits before any work is spent on it.
	var size int64
	switch {
	case m != nil && isReady(m):
		size = m.size
	case bin != nil:
		size = int64(len(bin))
	default:
		if bin, _, err = r.opts.Blobs.Read(spec.Artifact); err != nil {
			return false, false, problem.Configuration("function %s: %v", spec.Ref(), err)
		}
		size = int64(len(bin))
	}
	if r.batchBytes(placed)+size > limits.Bytes {
		return false, false, nil
	}
	// Room first: the function's other version and the holds beyond the
	// budget once this one is counted are let go before it is loaded,
	// so that what is held never exceeds the budget.
	r.mu.Lock()
	freed := r.unholdLocked(func(h *hold) bool { return h.fn == fn && h.ref != ref })
	freed = append(freed, r.trimLocked(placed, limits, size)...)
	unused := r.dropUnusedLocked(freed)
	r.mu.Unlock()
	closeModules(unused)

	loadsBefore := r.loads.Load()
	m, err = r.acquire(ctx, eng, spec, key, bin, false)
	if err != nil {
		return false, false, err
	}
	loaded = r.loads.Load() != loadsBefore
	r.mu.Lock()
	m.instances--
	if r.closed {
		r.mu.Unlock()
		return false, loaded, errClosed
	}
	m.held++
	r.held = slices.Insert(r.held, min(placed, len(r.held)), &hold{fn: fn, ref: ref, mod: m})
	r.mu.Unlock()
	if m.style == styleReactor {
		// The first instances' memories too, off the first calls' path,
		// with room for the guest to grow as it initialises.
		r.memory.warm(2*m.memory, warmMemories())
	}
	return true, loaded, nil
}

func isReady(m *module) bool {
	select {
	case <-m.ready:
		return true
	default:
		return false
	}
}

// batchBytes is the size of the first n holds.
func (r *Runtime) batchBytes(n int) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var total int64
	for _, h := range r.held[:min(n, len(r.held))] {
		total += h.mod.size
	}
	return total
}

// trimLocked lets go of the holds after the first placed ones that would
// not fit the budget once a module of size is added among them.
func (r *Runtime) trimLocked(placed int, limits PreloadLimits, size int64) []*module {
	count, total := 1, size
	keep := 0
	for i, h := range r.held {
		if i >= placed && (count+1 > limits.Modules || total+h.mod.size > limits.Bytes) {
			break
		}
		count++
		total += h.mod.size
		keep++
	}
	var freed []*module
	for _, h := range r.held[keep:] {
		h.mod.held--
		freed = append(freed, h.mod)
	}
	r.held = r.held[:keep]
	return freed
}

// unholdLocked lets go of the holds matching drop and returns their
// modules, for dropUnusedLocked.
func (r *Runtime) unholdLocked(drop func(*hold) bool) []*module {
	var freed []*module
	r.held = slices.DeleteFunc(r.held, func(h *hold) bool {
		if !drop(h) {
			return false
		}
		h.mod.held--
		freed = append(freed, h.mod)
		return true
	})
	return freed
}

// Preloaded returns the versions whose modules Preload holds
// ("NAMESPACE/NAME@VERSION", the default namespace's without its name),
// the most wanted first.
func (r *Runtime) Preloaded() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	refs := make([]string, len(r.held))
	for i, h := range r.held {
		refs[i] = h.ref
	}
	return refs
}
