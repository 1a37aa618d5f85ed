package bench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/function"
)

// Functions names what the benchmarked calls run.
type Functions string

const (
	// Noop is an executor inside the engine's process that returns at
	// once: zero function time, so the engine's overhead shows alone.
	Noop Functions = "noop"
	// HTTPFunctions posts to an endpoint the harness serves on loopback,
	// which answers after the configured simulated work.
	HTTPFunctions Functions = "http"
	// Wasm runs the Go SDK example function in wazero.
	Wasm Functions = "wasm"
	// Process runs a tiny shell function over JSON lines.
	Process Functions = "process"
	// Set makes every call a `set` task instead: no call and no history
	// event per task, the engine's cheapest step.
	Set Functions = "set"
)

// ParseFunctions checks a --functions value.
func ParseFunctions(s string) (Functions, error) {
	switch f := Functions(s); f {
	case Noop, HTTPFunctions, Wasm, Process, Set:
		return f, nil
	}
	return "", fmt.Errorf("unknown functions %q (want noop, set, http, wasm or process)", s)
}

// noopExecutorName is the function name generated workflows call for Noop:
// the engine's own no-op, which a server has too. The embedded engine gets
// the harness's equivalent in its place, so that the harness sees the
// calls of non-durable invocations.
const noopExecutorName = engine.FunctionNoop

// functionName is the function a configuration's stream calls; each
// replayed trace function gets its own, so that each has its own pool,
// keep-alive and cold starts.
func functionName(f Functions, stream, streams int) string {
	switch f {
	case Noop:
		return noopExecutorName
	case Set:
		return ""
	}
	name := "bench-" + string(f)
	if streams > 1 {
		name += "-" + strconv.Itoa(stream)
	}
	return name
}

// noopExecutor answers every call at once with a null output.
var noopExecutor = engine.ExecutorFunc(func(context.Context, *engine.CallRequest) (engine.CallResult, error) {
	return engine.CallResult{}, nil
})

// processScript is the process function: POSIX sh using builtins only,
// so a call costs no fork.
const processScript = `#!/bin/sh
echo '{"ready":true}'
while IFS= read -r line; do
	id=${line#*\"id\":\"}
	id=${id%%\"*}
	printf '{"id":"%s","output":{}}\n' "$id"
done
`

// functionHost provides what the functions need outside the engine: the
// loopback endpoint, the built wasm module, the process script.
type functionHost struct {
	endpoint string
	server   *http.Server
	wasm     string
	script   string
}

// hostOptions say where functions come from.
type hostOptions struct {
	Work       time.Duration
	CacheDir   string
	WasmSource string
}

func startFunctionHost(ctx context.Context, kinds map[Functions]bool, opts hostOptions) (*functionHost, error) {
	h := &functionHost{}
	if kinds[HTTPFunctions] {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("bench: loopback endpoint: %w", err)
		}
		work := opts.Work
		h.server = &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if work > 0 {
					time.Sleep(work)
				}
				w.Header().Set("Content-Type", "application/json")
				w.Write([]byte("{}"))
			}),
			ReadHeaderTimeout: 10 * time.Second,
		}
		h.endpoint = "http://" + ln.Addr().String() + "/"
		go h.server.Serve(ln)
	}
	if kinds[Wasm] || kinds[Process] {
		if err := os.MkdirAll(opts.CacheDir, 0o755); err != nil {
			return nil, errors.Join(fmt.Errorf("bench: cache directory: %w", err), h.close(ctx))
		}
	}
	if kinds[Wasm] {
		path, err := buildWasm(ctx, opts.WasmSource, opts.CacheDir)
		if err != nil {
			return nil, errors.Join(err, h.close(ctx))
		}
		h.wasm = path
	}
	if kinds[Process] {
		h.script = filepath.Join(opts.CacheDir, "bench-process.sh")
		if err := os.WriteFile(h.script, []byte(processScript), 0o755); err != nil {
			return nil, errors.Join(fmt.Errorf("bench: process function: %w", err), h.close(ctx))
		}
	}
	return h, nil
}

// buildWasm compiles the Go function in dir into the cache, once per
// content of its source files.
func buildWasm(ctx context.Context, dir, cacheDir string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("bench: wasm function source: %w (run from the repository root or set --wasm-source)", err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	sum := sha256.New()
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			return "", fmt.Errorf("bench: wasm function source: %w", err)
		}
		fmt.Fprintf(sum, "%s %d\n", n, len(b))
		sum.Write(b)
	}
	out := filepath.Join(cacheDir, filepath.Base(dir)+"-"+hex.EncodeToString(sum.Sum(nil))[:12]+".wasm")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	tmp := out + ".tmp"
	if err := function.BuildGo(ctx, dir, tmp); err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	return out, nil
}

// spec is the deployable function of a kind.
func (h *functionHost) spec(f Functions, name string, maxInstances int) (function.Spec, error) {
	s := function.Spec{Name: name, Limits: function.Limits{MaxInstances: maxInstances}}
	switch f {
	case HTTPFunctions:
		s.Runtime, s.URL = function.KindHTTP, h.endpoint
	case Wasm:
		s.Runtime, s.Artifact = function.KindWasm, h.wasm
	case Process:
		s.Runtime, s.Command, s.Args = function.KindProcess, "/bin/sh", []string{h.script}
	default:
		return s, fmt.Errorf("bench: %s functions are not deployed", f)
	}
	return s, nil
}

func (h *functionHost) close(ctx context.Context) error {
	if h.server == nil {
		return nil
	}
	return h.server.Shutdown(ctx)
}
