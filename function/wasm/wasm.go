// Package wasm runs WebAssembly functions in the embedded wazero runtime
// (pure Go, no cgo).
//
// A module is compiled once per process and kept in memory; compiled code
// is also cached on disk, so a restarted Baton starts a known module in
// milliseconds. Two guest styles are recognised from the module's exports:
//
//   - a reactor built with the Go SDK (or any language implementing the
//     ABI in docs/functions.md) exports baton_handle: the instance is
//     created once and serves call after call;
//   - a WASI command exports _start: every call runs a fresh instance of
//     the compiled module with the input on stdin and reads the output
//     from stdout.
//
// Guests get no files, no host environment and no network unless the spec
// grants them; clocks and randomness are real. Memory is capped by the
// spec's limit, and a call that outlives its timeout is stopped: the
// instance is closed and its pool replaces it.
package wasm

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/batonflow/baton/function"
	"github.com/batonflow/baton/internal/osprio"
	"github.com/batonflow/baton/problem"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

// Export names of the reactor ABI (version 1).
const (
	exportABI1       = "baton_abi_1"
	exportAlloc      = "baton_alloc"
	exportHandle     = "baton_handle"
	exportInitialize = "_initialize"
	exportStart      = "_start"
	wasiModule       = wasi_snapshot_preview1.ModuleName
)

const (
	pageSize = 64 << 10
	// stderrKept is how much of a guest's stderr an error message quotes.
	stderrKept = 2 << 10
	// DefaultMaxOutput caps a call's output.
	DefaultMaxOutput = 16 << 20
)

// Options configure a Runtime.
type Options struct {
	// CacheDir keeps compiled modules across restarts; empty keeps them in
	// memory only.
	CacheDir string
	// Blobs resolves deployed artifacts ("sha256:..."); artifacts given as
	// file paths are read directly.
	Blobs  *function.Blobs
	Logger *slog.Logger
	// MaxOutput caps what a call may return, in bytes. Default:
	// DefaultMaxOutput.
	MaxOutput int
	// RecycledMemory bounds the bytes of closed instances' linear memory
	// kept, cleared, for new instances (see memoryPool). Default:
	// DefaultRecycledMemory; negative keeps none.
	RecycledMemory int64
	// Preload bounds what Preload keeps loaded ahead of calls.
	Preload PreloadLimits
}

// Runtime is the wasm function.Runtime.
type Runtime struct {
	opts   Options
	log    *slog.Logger
	cache  wazero.CompilationCache
	memory *memoryPool
	// yielding computes the calls that yield the CPU (compute).
	yielding *osprio.Pool

	mu      sync.Mutex
	closed  bool
	engines map[uint32]*engine // by memory limit in pages
	modules map[moduleKey]*module
	files   map[string]fileID // artifacts given as paths, by path
	// held are the modules Preload keeps loaded, the most wanted first;
	// preloading serialises batches so that the budget is counted once.
	held       []*hold
	preloading sync.Mutex
	// loads counts the modules loaded (compiled or read from the disk
	// cache), so that tests can tell a load from a lookup.
	loads atomic.Int64
	// beforeLoad, when tests set it, runs as a load begins.
	beforeLoad func(*function.Spec)
}

// fileID recognises a file hashed before.
type fileID struct {
	size    int64
	modTime time.Time
	digest  string
}

// engine is a wazero runtime: the memory limit is a runtime setting, so
// functions with different limits run in different engines. They share
// one compilation cache, so a module is compiled once whatever its limit.
type engine struct {
	rt    wazero.Runtime
	ready chan struct{}
	err   error
}

type moduleKey struct {
	digest string
	pages  uint32
}

// style is how a module serves calls.
type style int

const (
	styleReactor style = iota + 1
	styleCommand
)

// module is a compiled module shared by the instances of every function
// version using the same artifact and memory limit.
type module struct {
	ready    chan struct{}
	err      error
	compiled wazero.CompiledModule
	style    style
	eng      *engine
	// users are the function versions that may start instances of it;
	// instances counts those running (and the loads waiting for it);
	// held counts Preload's holds. The compiled code is released when all
	// are gone.
	users     map[string]bool
	instances int
	held      int
	// size is the binary's length, what Preload's budget counts.
	size int64
	// memory is the initial size of its linear memory, in bytes.
	memory uint64
}

func (m *module) unusedLocked() bool {
	return m.instances == 0 && len(m.users) == 0 && m.held == 0
}

// New returns a wasm runtime.
func New(opts Options) (*Runtime, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxOutput <= 0 {
		opts.MaxOutput = DefaultMaxOutput
	}
	if opts.RecycledMemory == 0 {
		opts.RecycledMemory = DefaultRecycledMemory
	}
	r := &Runtime{opts: opts, log: opts.Logger, engines: map[uint32]*engine{}, modules: map[moduleKey]*module{}, files: map[string]fileID{},
		memory: newMemoryPool(opts.RecycledMemory)}
	r.yielding = osprio.NewPool(YieldingNice, 0, func(err error) {
		r.log.Warn("wasm: calls of lower classes run at the ordinary priority", "err", err)
	})
	if opts.CacheDir != "" {
		if err := os.MkdirAll(opts.CacheDir, 0o700); err != nil {
			return nil, fmt.Errorf("wasm compilation cache: %w", err)
		}
		c, err := wazero.NewCompilationCacheWithDir(opts.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("wasm compilation cache: %w", err)
		}
		r.cache = c
	} else {
		r.cache = wazero.NewCompilationCache()
	}
	return r, nil
}

// YieldingNice is how much higher than the process's the nice value of
// the threads that compute calls marked function.WithLowPriority is: 10
// higher, a thread weighs about a tenth of the others in Linux's
// scheduler, so a critical call sharing a core with one such call keeps
// about nine tenths of it.
const YieldingNice = 10

// compute runs f, a call's computation, on the calling goroutine, or on
// a thread of lower priority when ctx's calls yield the CPU.
func (r *Runtime) compute(ctx context.Context, f func()) {
	if !function.LowPriority(ctx) {
		f()
		return
	}
	r.yielding.Run(f)
}

// Start implements function.Runtime: it compiles the module (or finds it
// compiled), and for a reactor instantiates it and runs the guest's
// initialisation.
func (r *Runtime) Start(ctx context.Context, spec *function.Spec) (function.Instance, function.Phases, error) {
	var phases function.Phases
	pages := uint32(spec.EffectiveMemory() / pageSize)
	begin := time.Now()
	mod, err := r.module(ctx, spec, pages)
	phases.Compile = time.Since(begin)
	if err != nil {
		return nil, phases, err
	}
	cfg, err := moduleConfig(spec)
	if err != nil {
		r.release(mod)
		return nil, phases, err
	}
	if mod.style == styleCommand {
		return &commandInstance{r: r, spec: spec, mod: mod, cfg: cfg}, phases, nil
	}
	inst, err := r.startReactor(ctx, spec, mod, cfg, &phases)
	if err != nil {
		r.release(mod)
		return nil, phases, err
	}
	return inst, phases, nil
}

// Retire implements function.Runtime: the version's modules are closed
// once no instance and no other version or preload needs them.
func (r *Runtime) Retire(spec *function.Spec) {
	ref := versionKey(spec)
	r.mu.Lock()
	var touched []*module
	for _, m := range r.modules {
		if m.users[ref] {
			delete(m.users, ref)
			touched = append(touched, m)
		}
	}
	touched = append(touched, r.unholdLocked(func(h *hold) bool { return h.ref == ref })...)
	unused := r.dropUnusedLocked(touched)
	r.mu.Unlock()
	closeModules(unused)
}

// dropUnusedLocked forgets the modules of ms that nothing needs any more
// and returns them, to be closed outside the lock.
func (r *Runtime) dropUnusedLocked(ms []*module) []*module {
	var unused []*module
	for _, m := range ms {
		if !m.unusedLocked() {
			continue
		}
		for k, x := range r.modules {
			if x == m {
				delete(r.modules, k)
				unused = append(unused, m)
			}
		}
	}
	return unused
}

// closeModules releases the compiled code of modules no longer in the
// runtime's map, once their load has ended.
func closeModules(ms []*module) {
	for _, m := range ms {
		<-m.ready
		if m.compiled != nil {
			_ = m.compiled.Close(context.Background())
		}
	}
}

// Close implements function.Runtime: it closes every engine, which stops
// any instance still running.
func (r *Runtime) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.memory.close()
	engines := r.engines
	r.engines = map[uint32]*engine{}
	r.modules = map[moduleKey]*module{}
	r.held = nil
	r.mu.Unlock()
	var errs []error
	for _, e := range engines {
		<-e.ready
		if e.rt != nil {
			errs = append(errs, e.rt.Close(ctx))
		}
	}
	errs = append(errs, r.cache.Close(ctx))
	return errors.Join(errs...)
}

var errClosed = problem.Runtime("the wasm runtime is closed")

// engine returns the wazero runtime for a memory limit, creating it once.
func (r *Runtime) engine(ctx context.Context, pages uint32) (*engine, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, errClosed
	}
	e := r.engines[pages]
	if e == nil {
		e = &engine{ready: make(chan struct{})}
		r.engines[pages] = e
		r.mu.Unlock()
		cfg := wazero.NewRuntimeConfig().
			WithCompilationCache(r.cache).
			WithCloseOnContextDone(true).
			WithMemoryLimitPages(pages)
		e.rt = wazero.NewRuntimeWithConfig(context.WithoutCancel(ctx), cfg)
		if _, err := wasi_snapshot_preview1.Instantiate(context.WithoutCancel(ctx), e.rt); err != nil {
			e.err = fmt.Errorf("wasm: WASI: %w", err)
		}
		close(e.ready)
	} else {
		r.mu.Unlock()
		<-e.ready
	}
	return e, e.err
}

// module returns the compiled module of spec's artifact, loading it on
// first use, and counts one more instance of it.
func (r *Runtime) module(ctx context.Context, spec *function.Spec, pages uint32) (*module, error) {
	eng, err := r.engine(ctx, pages)
	if err != nil {
		return nil, err
	}
	digest, bin, err := r.identify(spec.Artifact)
	if err != nil {
		return nil, problem.Configuration("function %s: %v", spec.Ref(), err)
	}
	return r.acquire(ctx, eng, spec, moduleKey{digest: digest, pages: pages}, bin, true)
}

// acquire returns the module for key and counts one more instance of it.
// Unless it is loaded or being loaded, it is loaded from bin (read from
// spec's artifact when nil); a start that finds it being loaded, by
// another start or by Preload, waits for that load instead of doing the
// same work twice. user records spec's version as one that may start
// instances of it.
func (r *Runtime) acquire(ctx context.Context, eng *engine, spec *function.Spec, key moduleKey, bin []byte, user bool) (*module, error) {
	for {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return nil, errClosed
		}
		m := r.modules[key]
		if m == nil {
			m = &module{ready: make(chan struct{}), eng: eng, users: map[string]bool{}}
			r.modules[key] = m
			if user {
				m.users[versionKey(spec)] = true
			}
			m.instances++
			r.mu.Unlock()
			r.load(ctx, spec, m, bin)
			if m.err != nil {
				r.mu.Lock()
				// A failed load is not kept: the next start tries again,
				// which matters when the failure was the context.
				if r.modules[key] == m {
					delete(r.modules, key)
				}
				r.mu.Unlock()
				return nil, m.err
			}
			return m, nil
		}
		if user {
			m.users[versionKey(spec)] = true
		}
		m.instances++
		r.mu.Unlock()
		select {
		case <-m.ready:
		case <-ctx.Done():
			r.release(m)
			return nil, ctx.Err()
		}
		if m.err == nil {
			return m, nil
		}
		// The load this start joined was stopped by its own context (a
		// preload cut short): this start's context still allows one.
		if (errors.Is(m.err, context.Canceled) || errors.Is(m.err, context.DeadlineExceeded)) && ctx.Err() == nil {
			r.mu.Lock()
			m.instances--
			if r.modules[key] == m {
				delete(r.modules, key)
			}
			r.mu.Unlock()
			continue
		}
		r.release(m)
		return nil, m.err
	}
}

// load compiles m from bin, or from spec's artifact when bin is nil; with
// the disk cache, compiling is reading the machine code back.
func (r *Runtime) load(ctx context.Context, spec *function.Spec, m *module, bin []byte) {
	defer close(m.ready)
	r.loads.Add(1)
	if r.beforeLoad != nil {
		r.beforeLoad(spec)
	}
	if err := ctx.Err(); err != nil { // a preload stopped before its turn
		m.err = err
		return
	}
	if bin == nil {
		var err error
		if bin, _, err = r.opts.Blobs.Read(spec.Artifact); err != nil {
			m.err = problem.Configuration("function %s: %v", spec.Ref(), err)
			return
		}
	}
	m.size = int64(len(bin))
	m.compiled, m.style, m.err = compile(ctx, m.eng.rt, spec, bin)
	if m.err == nil {
		for _, mem := range m.compiled.ExportedMemories() {
			m.memory = max(m.memory, uint64(mem.Min())*pageSize)
		}
	}
}

// identify returns an artifact's content address without reading it when
// it can: a deployed artifact is named by its address, and a file already
// hashed is known by its size and modification time. Reading and hashing
// a Go module of several megabytes on every cold start would cost
// milliseconds. The bytes are returned when they had to be read.
func (r *Runtime) identify(artifact string) (string, []byte, error) {
	if strings.HasPrefix(artifact, "sha256:") {
		return artifact, nil, nil
	}
	st, err := os.Stat(artifact)
	if err != nil {
		return "", nil, fmt.Errorf("artifact: %w", err)
	}
	id := fileID{size: st.Size(), modTime: st.ModTime()}
	r.mu.Lock()
	known, ok := r.files[artifact]
	r.mu.Unlock()
	if ok && known.size == id.size && known.modTime.Equal(id.modTime) {
		return known.digest, nil, nil
	}
	bin, digest, err := r.opts.Blobs.Read(artifact)
	if err != nil {
		return "", nil, err
	}
	id.digest = digest
	r.mu.Lock()
	r.files[artifact] = id
	r.mu.Unlock()
	return digest, bin, nil
}

// Precompile compiles a wasm function's module ahead of its first call, so
// that the cold starts that follow only instantiate it, and keeps it until
// the version is retired, whatever Options.Preload allows: for a caller
// that knows what it will call (a benchmark). A server uses Preload.
func (r *Runtime) Precompile(ctx context.Context, spec *function.Spec) error {
	m, err := r.module(ctx, spec, uint32(spec.EffectiveMemory()/pageSize))
	if err != nil {
		return err
	}
	r.release(m)
	return nil
}

// versionKey names a function version across namespaces.
func versionKey(spec *function.Spec) string {
	return function.Qualify(spec.Namespace, spec.Name) + "@" + spec.Version
}

// release counts one instance of m less.
func (r *Runtime) release(m *module) {
	r.mu.Lock()
	m.instances--
	unused := r.dropUnusedLocked([]*module{m})
	r.mu.Unlock()
	closeModules(unused)
}

func compile(ctx context.Context, rt wazero.Runtime, spec *function.Spec, bin []byte) (wazero.CompiledModule, style, error) {
	if !bytes.HasPrefix(bin, []byte("\x00asm")) {
		return nil, 0, problem.Configuration("function %s: the artifact is not a WebAssembly module", spec.Ref())
	}
	compiled, err := rt.CompileModule(ctx, coalesceData(bin))
	if err != nil {
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
		return nil, 0, problem.Configuration("function %s: invalid WebAssembly module: %v", spec.Ref(), err)
	}
	fail := func(format string, args ...any) (wazero.CompiledModule, style, error) {
		_ = compiled.Close(ctx)
		return nil, 0, problem.Configuration("function %s: "+format, append([]any{spec.Ref()}, args...)...)
	}
	for _, f := range compiled.ImportedFunctions() {
		if modName, name, _ := f.Import(); modName != wasiModule {
			return fail("the module imports %s.%s; only WASI (%s) is provided", modName, name, wasiModule)
		}
	}
	exports := compiled.ExportedFunctions()
	switch {
	case exports[exportHandle] != nil:
		if exports[exportABI1] == nil || exports[exportAlloc] == nil {
			return fail("the module exports %s but not %s and %s: it was built for another version of the Baton ABI", exportHandle, exportABI1, exportAlloc)
		}
		return compiled, styleReactor, nil
	case exports[exportStart] != nil:
		return compiled, styleCommand, nil
	default:
		return fail("the module exports neither %s (a Baton SDK reactor) nor %s (a WASI command)", exportHandle, exportStart)
	}
}

// moduleConfig grants a guest what its spec allows and nothing more.
func moduleConfig(spec *function.Spec) (wazero.ModuleConfig, error) {
	cfg := wazero.NewModuleConfig().
		WithName(""). // anonymous, so that instances of one module coexist
		WithArgs(spec.Name).
		WithSysWalltime().
		WithSysNanotime().
		WithSysNanosleep().
		WithRandSource(rand.Reader).
		WithStartFunctions()
	for _, name := range spec.Permissions.HostEnv {
		if !function.HostEnvAllowed(name) {
			continue
		}
		if v, ok := os.LookupEnv(name); ok {
			cfg = cfg.WithEnv(name, v)
		}
	}
	for k, v := range spec.Env {
		cfg = cfg.WithEnv(k, v)
	}
	if len(spec.Permissions.Dirs) > 0 {
		fs := wazero.NewFSConfig()
		for _, d := range spec.Permissions.Dirs {
			st, err := os.Stat(d.Host)
			if err != nil || !st.IsDir() {
				return nil, problem.Configuration("function %s: granted directory %s is not a directory", spec.Ref(), d.Host)
			}
			if d.ReadOnly {
				fs = fs.WithReadOnlyDirMount(d.Host, d.Guest)
			} else {
				fs = fs.WithDirMount(d.Host, d.Guest)
			}
		}
		cfg = cfg.WithFSConfig(fs)
	}
	return cfg, nil
}

// callFailure describes a failed guest call: the guest exited, trapped, or
// was stopped. A stop by the context is turned into a timeout by the pool.
func callFailure(spec *function.Spec, err error, stderr string) error {
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		switch exit.ExitCode() {
		case sys.ExitCodeDeadlineExceeded, sys.ExitCodeContextCanceled:
			return err
		}
		return problem.Runtime("function %s exited with code %d%s", spec.Ref(), exit.ExitCode(), stderr)
	}
	// wazero appends the guest's stack trace; its first line names the
	// trap, and what the guest printed says more.
	msg, _, _ := strings.Cut(err.Error(), "\n")
	return problem.Runtime("function %s trapped: %s%s", spec.Ref(), msg, stderr)
}

// guestProblem turns the error a reactor returned into a problem.
func guestProblem(spec *function.Spec, body []byte) error {
	var e struct {
		Type   string `json:"type"`
		Status int    `json:"status"`
		Title  string `json:"title"`
		Detail string `json:"detail"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		return problem.Runtime("function %s returned a malformed error: %v", spec.Ref(), err)
	}
	typ := e.Type
	switch {
	case typ == "":
		typ = problem.TypeRuntime
	case !strings.Contains(typ, "/"):
		typ = "https://serverlessworkflow.io/spec/1.0.0/errors/" + typ
	}
	status := e.Status
	if status == 0 {
		status = 500
	}
	title := e.Title
	if title == "" {
		title = "Function Error"
	}
	return problem.New(typ, status, title, e.Detail)
}

// limitedBuffer is a guest's stdout: output beyond the limit fails the
// guest's write rather than growing without bound.
type limitedBuffer struct {
	buf      bytes.Buffer
	limit    int
	exceeded bool
}

var errOutputTooLarge = errors.New("output too large")

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.buf.Len()+len(p) > b.limit {
		b.exceeded = true
		return 0, errOutputTooLarge
	}
	return b.buf.Write(p)
}

var _ function.Runtime = (*Runtime)(nil)
