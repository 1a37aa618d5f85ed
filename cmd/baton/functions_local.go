package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
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

	// Background compilations (see precompileDeployed) run under
	// precompileCtx; Close cancels and waits for them before closing the
	// runtimes. precompileCtx is nil until a server asks for them.
	precompileMu   sync.Mutex
	precompileCtx  context.Context
	stopPrecompile context.CancelFunc
	precompiling   sync.WaitGroup
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

// precompileDeployed compiles the module of each wasm function's newest
// version in the background, and from then on the module of each wasm
// version deployed through h, so that a server's first calls only
// instantiate: even from the disk cache, wazero spends tens of
// milliseconds validating a large module, and compiling a new one takes
// seconds. A failure is logged, not fatal: the first call reports it
// again.
func (h *functionHost) precompileDeployed(ctx context.Context) {
	h.precompileMu.Lock()
	h.precompileCtx, h.stopPrecompile = context.WithCancel(ctx)
	h.precompileMu.Unlock()
	h.inBackground(func(ctx context.Context) {
		specs, err := h.List(ctx, "")
		if err != nil {
			h.log.Warn("listing functions to precompile failed", "error", err)
			return
		}
		newest := map[string]*function.Spec{}
		var order []string
		for _, s := range specs { // oldest first: the last one of a function wins
			ref := function.Qualify(s.Namespace, s.Name)
			if _, seen := newest[ref]; !seen {
				order = append(order, ref)
			}
			newest[ref] = s
		}
		for _, ref := range order {
			if ctx.Err() != nil {
				return
			}
			h.precompile(ctx, newest[ref])
		}
	})
}

// Deploy deploys through the registry, then compiles a new wasm version in
// the background when a server asked for it. It shadows Registry.Deploy.
func (h *functionHost) Deploy(ctx context.Context, spec function.Spec) (*function.Spec, error) {
	deployed, err := h.Registry.Deploy(ctx, spec)
	if err != nil {
		return nil, err
	}
	h.inBackground(func(ctx context.Context) { h.precompile(ctx, deployed) })
	return deployed, nil
}

// inBackground runs fn in a goroutine that Close waits for, once
// precompileDeployed enabled background work and until Close.
func (h *functionHost) inBackground(fn func(ctx context.Context)) {
	h.precompileMu.Lock()
	defer h.precompileMu.Unlock()
	if h.precompileCtx == nil || h.precompileCtx.Err() != nil {
		return
	}
	ctx := h.precompileCtx
	h.precompiling.Add(1)
	go func() {
		defer h.precompiling.Done()
		fn(ctx)
	}()
}

func (h *functionHost) precompile(ctx context.Context, spec *function.Spec) {
	if spec.Runtime != function.KindWasm {
		return
	}
	begin := time.Now()
	if err := h.wasm.Precompile(ctx, spec); err != nil {
		if ctx.Err() == nil {
			h.log.Warn("precompiling a function failed", "function", spec.Ref(), "error", err)
		}
		return
	}
	h.log.Info("function precompiled", "function", spec.Ref(), "duration", time.Since(begin))
}

// Close stops every instance (waiting a while for calls in flight) and
// then the runtimes. It shadows Manager.Close.
func (h *functionHost) Close() error {
	h.precompileMu.Lock()
	if h.stopPrecompile != nil {
		h.stopPrecompile()
	}
	h.precompileMu.Unlock()
	h.precompiling.Wait()
	var errs []error
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
