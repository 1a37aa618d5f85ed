package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/batonflow/baton/function"
	fnhttp "github.com/batonflow/baton/function/http"
	"github.com/batonflow/baton/function/process"
	"github.com/batonflow/baton/function/wasm"
	"github.com/batonflow/baton/secret"
)

// Where the function layer keeps its files inside the data directory.
const (
	// functionBlobsDir held deployed modules before they moved into the
	// store; NewStoreBlobs moves what it finds there.
	functionBlobsDir = "functions/blobs"
	functionCacheDir = "functions/cache" // wazero's compiled code
)

// functionStopGrace bounds how long closing waits for function calls in
// flight.
const functionStopGrace = 10 * time.Second

// functionHost is the function layer of a data directory: the registry on
// the same store as the workflows, the three runtimes, and the manager
// running calls on their pools. It satisfies api.Functions through the
// embedded Registry (deploy, get, list, delete) and Manager (invoke, pool
// state).
type functionHost struct {
	*function.Registry
	*function.Manager
	wasm     *wasm.Runtime
	runtimes []function.Runtime
	metrics  *prometheus.Registry
	log      *slog.Logger
	// prewarm is the keep-alive policy and prewarm planner; nil for the
	// function layer's defaults.
	prewarm *prewarming
	// use records when functions were called, the order of preloading.
	use *functionUse

	// Background work (see preloadDeployed) runs under backgroundCtx;
	// Close cancels and waits for it before closing the runtimes.
	// backgroundCtx is nil until a server asks for it.
	backgroundMu   sync.Mutex
	backgroundCtx  context.Context
	stopBackground context.CancelFunc
	background     sync.WaitGroup

	// bootPreloaded is closed when the boot-time preload has ended, and
	// bootPreloadBegan is when it began; nil and zero before a server
	// asks for it. See warming.
	bootPreloaded    chan struct{}
	bootPreloadBegan time.Time
}

// bootPreloadReadyWait bounds how long a booting server reports itself
// not ready while it preloads, so that a preload budget too large for the
// machine delays traffic by at most this much; the rest loads in the
// background as calls come.
const bootPreloadReadyWait = 10 * time.Second

// warming returns why the server should not be sent calls yet at now: its
// boot-time preload is under way, and a call to a module not yet loaded
// would wait for wazero's decoding and validation of it (tens of
// milliseconds for a Go module), the cold start the preload exists to
// take off the first calls. Nil once the preload has ended or has run for
// bootPreloadReadyWait.
func (h *functionHost) warming(now time.Time) error {
	h.backgroundMu.Lock()
	done, began := h.bootPreloaded, h.bootPreloadBegan
	h.backgroundMu.Unlock()
	if done == nil || now.Sub(began) >= bootPreloadReadyWait {
		return nil
	}
	select {
	case <-done:
		return nil
	default:
		return errors.New("warming: preloading the deployed WebAssembly modules")
	}
}

// openFunctionHost builds the function layer over st: modules in st (those
// of older data directories move in from their blob directory), the
// compile cache under st's data directory or the user's cache directory.
// secrets resolves http functions' secretHeaders; pcfg selects the
// keep-alive policy and prewarming (the zero value keeps the function
// layer's defaults). sec makes a server's function layer answer to the
// namespaces' policies.
func openFunctionHost(ctx context.Context, st *openedStore, secrets *secret.Store, logger *slog.Logger, pcfg prewarmConfig, sec functionSecurity) (*functionHost, error) {
	pw, err := newPrewarming(pcfg, st, logger)
	if err != nil {
		return nil, err
	}
	fopts := function.Options{Logger: logger, Admit: sec.admit}
	if pw != nil {
		fopts.KeepAlive, fopts.Observers = pw.keepAlive, pw.observers
	}
	var legacy string
	if !st.shared {
		legacy = filepath.Join(st.dir, filepath.FromSlash(functionBlobsDir))
	}
	blobs, err := function.NewStoreBlobs(ctx, st, legacy)
	if err != nil {
		return nil, err
	}
	dir := st.functionCacheRoot()
	wasmRT, err := wasm.New(wasm.Options{
		CacheDir: filepath.Join(dir, filepath.FromSlash(functionCacheDir)),
		Blobs:    blobs,
		Logger:   logger,
		Preload:  pcfg.preload.limits(),
	})
	if err != nil {
		return nil, fmt.Errorf("function runtime: %w", err)
	}
	var httpSecrets fnhttp.Secrets
	if secrets != nil {
		httpSecrets = secretValues{secrets}
	}
	procRT := process.New(process.Options{Logger: logger})
	httpOpts := fnhttp.Options{Secrets: httpSecrets, Logger: logger}
	if sec.transport != nil {
		httpOpts.Client = &http.Client{Transport: sec.transport}
	}
	httpRT := fnhttp.New(httpOpts)

	metrics := prometheus.NewRegistry()
	metrics.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	fopts.Metrics = metrics
	use := newFunctionUse(st)
	fopts.Observers = append(slices.Clip(fopts.Observers), use)
	reg := function.NewRegistry(st, blobs)
	mgr, err := function.NewManager(reg, map[function.Kind]function.Runtime{
		function.KindWasm:    wasmRT,
		function.KindProcess: procRT,
		function.KindHTTP:    httpRT,
	}, fopts)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("function manager: %w", err), wasmRT.Close(context.Background()))
	}
	if pw != nil {
		pw.bind(mgr)
	}
	return &functionHost{
		prewarm:  pw,
		use:      use,
		Registry: reg,
		Manager:  mgr,
		wasm:     wasmRT,
		runtimes: []function.Runtime{wasmRT, procRT, httpRT},
		metrics:  metrics,
		log:      logger,
	}, nil
}

// metricsHandler serves the function metrics with the Go and process
// collectors in the Prometheus text format.
func (h *functionHost) metricsHandler() http.Handler {
	return promhttp.HandlerFor(h.metrics, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(h.log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// preloadDeployed loads the modules of the wasm functions' newest
// versions in the background, most recently called first and within
// --wasm-preload, and from then on the module of each wasm version
// deployed through h, so that a server's first calls only instantiate:
// even from the disk cache, wazero spends tens of milliseconds decoding
// and validating a Go module, and compiling a new one takes seconds. A
// call that arrives during the load joins it. A failure is logged, not
// fatal: the first call reports it again. It also starts saving the
// functions' last use, which orders the next server's preloading.
func (h *functionHost) preloadDeployed(ctx context.Context) {
	h.backgroundMu.Lock()
	h.backgroundCtx, h.stopBackground = context.WithCancel(ctx)
	preloaded := make(chan struct{})
	h.bootPreloaded, h.bootPreloadBegan = preloaded, time.Now()
	h.backgroundMu.Unlock()
	h.inBackground(func(ctx context.Context) {
		defer close(preloaded)
		if err := h.use.load(ctx); err != nil {
			h.log.Warn("the functions' last use could not be loaded; preloading the newest deployments first", "error", err)
		}
		specs, err := h.List(ctx, "")
		if err != nil {
			h.log.Warn("listing functions to preload failed", "error", err)
			return
		}
		h.preload(ctx, h.use.preloadOrder(specs))
	})
	h.inBackground(func(ctx context.Context) {
		tick := time.NewTicker(functionUseSaveEvery)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if err := h.saveUse(ctx); err != nil && ctx.Err() == nil {
					h.log.Warn("saving the functions' last use failed", "error", err)
				}
			}
		}
	})
}

// Deploy deploys through the registry, then preloads a new wasm version
// in the background when a server asked for it: it replaces the version
// preloaded before. It shadows Registry.Deploy.
func (h *functionHost) Deploy(ctx context.Context, spec function.Spec) (*function.Spec, error) {
	deployed, err := h.Registry.Deploy(ctx, spec)
	if err != nil {
		return nil, err
	}
	if deployed.Runtime == function.KindWasm {
		h.inBackground(func(ctx context.Context) { h.preload(ctx, []*function.Spec{deployed}) })
	}
	return deployed, nil
}

// Delete deletes through the registry, then lets go of the deleted wasm
// versions' preloaded modules: a version never called has no pool whose
// retirement would. It shadows Registry.Delete.
func (h *functionHost) Delete(ctx context.Context, namespace, name, version string) error {
	all, err := h.List(ctx, "")
	if err != nil {
		return err
	}
	if err := h.Registry.Delete(ctx, namespace, name, version); err != nil {
		return err
	}
	fn := function.Qualify(namespace, name)
	for _, s := range all {
		if s.Runtime == function.KindWasm && function.Qualify(s.Namespace, s.Name) == fn && (version == "" || s.Version == version) {
			h.wasm.Retire(s)
		}
	}
	return nil
}

// inBackground runs fn in a goroutine that Close waits for, once
// preloadDeployed enabled background work and until Close.
func (h *functionHost) inBackground(fn func(ctx context.Context)) {
	h.backgroundMu.Lock()
	defer h.backgroundMu.Unlock()
	if h.backgroundCtx == nil || h.backgroundCtx.Err() != nil {
		return
	}
	ctx := h.backgroundCtx
	h.background.Go(func() { fn(ctx) })
}

func (h *functionHost) preload(ctx context.Context, specs []*function.Spec) {
	begin := time.Now()
	held, skipped := 0, 0
	for _, o := range h.wasm.Preload(ctx, specs) {
		switch {
		case o.Err != nil:
			if ctx.Err() == nil {
				h.log.Warn("preloading a function failed", "function", o.Spec.Ref(), "error", o.Err)
			}
		case !o.Held:
			skipped++
			h.log.Debug("function not preloaded: beyond --wasm-preload or --wasm-preload-memory", "function", o.Spec.Ref())
		default:
			held++
			if o.Loaded {
				h.log.Debug("function preloaded", "function", o.Spec.Ref(), "duration", o.Duration)
			}
		}
	}
	if len(specs) > 1 || skipped > 0 {
		h.log.Info("wasm functions preloaded", "preloaded", held, "beyond the budget", skipped, "duration", time.Since(begin))
	} else if held == 1 {
		h.log.Info("function preloaded", "function", specs[0].Ref(), "duration", time.Since(begin))
	}
}

// saveUse saves the functions' last use, keeping only deployed functions.
func (h *functionHost) saveUse(ctx context.Context) error {
	if !h.use.changed() { // nothing called since the last save: no listing either
		return nil
	}
	specs, err := h.List(ctx, "")
	if err != nil {
		return err
	}
	known := make(map[string]bool, len(specs))
	for _, s := range specs {
		known[function.Qualify(s.Namespace, s.Name)] = true
	}
	return h.use.save(ctx, known)
}

// Close stops every instance (waiting a while for calls in flight) and
// then the runtimes. It shadows Manager.Close.
func (h *functionHost) Close() error {
	h.backgroundMu.Lock()
	preloading := h.stopBackground != nil
	if preloading {
		h.stopBackground()
	}
	h.backgroundMu.Unlock()
	h.background.Wait()
	var errs []error
	if preloading {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		errs = append(errs, h.saveUse(ctx))
		cancel()
	}
	if h.prewarm != nil {
		if err := h.prewarm.stop(); err != nil {
			errs = append(errs, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), functionStopGrace)
	defer cancel()
	errs = append(errs, h.Manager.Close(ctx))
	for _, rt := range h.runtimes {
		errs = append(errs, rt.Close(ctx))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stopping functions: %w", err)
	}
	return nil
}

// secretValues gives http functions the secrets named in their
// secretHeaders; a header's value must be a string secret.
type secretValues struct{ s *secret.Store }

func (v secretValues) Secret(ctx context.Context, name string) (string, error) {
	values, err := v.s.Secrets(ctx, []string{name})
	if err != nil {
		return "", err
	}
	value, ok := values[name]
	if !ok {
		return "", fmt.Errorf("secret %q is not set", name)
	}
	text, ok := value.(string)
	if !ok {
		return "", fmt.Errorf("secret %q is not a string, so it cannot be a header's value", name)
	}
	return text, nil
}
