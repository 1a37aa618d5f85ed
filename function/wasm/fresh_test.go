package wasm

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonflow/baton/function"
)

// freshStartEnv, when set (MODE|CACHE_DIR|ARTIFACT), makes this test
// binary a child that does one cold start and prints its phases: a fresh
// process, as a restarted server is, with nothing of the module in memory.
const freshStartEnv = "BATON_WASM_FRESH_START"

// How a child meets its call.
const (
	// freshNoPreload: the call comes first and loads the module itself.
	freshNoPreload = "no-preload"
	// freshAfterPreload: the boot-time Preload ends before the call.
	freshAfterPreload = "call-after-preload"
	// freshDuringPreload: the call arrives as the boot-time Preload
	// begins, and joins its load.
	freshDuringPreload = "call-during-preload"
)

// freshStart is what a child reports, in microseconds.
type freshStart struct {
	Open    int64 `json:"open"`    // New: the compilation cache opened
	Preload int64 `json:"preload"` // Preload, from its start to its end
	// The phases of the call's cold start.
	Compile     int64 `json:"compile"`
	Instantiate int64 `json:"instantiate"`
	Init        int64 `json:"init"`
	// Call is the call's Start, as its caller waits for it; Total is
	// from the child's first line (New) to the end of the call's Start.
	Call  int64 `json:"call"`
	Total int64 `json:"total"`
	// CPU is the process's CPU time (user and system) over Total, and
	// CallCPU over the call's Start: on a busy machine the wall time
	// mostly measures the wait for a core.
	CPU     int64 `json:"cpu"`
	CallCPU int64 `json:"callCpu"`
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func runFreshStart(v string) int {
	parts := strings.SplitN(v, "|", 3)
	if len(parts) != 3 {
		fmt.Fprintf(os.Stderr, "%s: want MODE|CACHE_DIR|ARTIFACT, got %q\n", freshStartEnv, v)
		return 2
	}
	mode, cache, artifact := parts[0], parts[1], parts[2]
	ctx := context.Background()
	cpu := cpuTime()
	begin := time.Now()
	rt, err := New(Options{CacheDir: cache})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var r freshStart
	r.Open = time.Since(begin).Microseconds()
	spec := &function.Spec{Name: "hello", Version: "1", Runtime: function.KindWasm, Artifact: artifact}
	preloaded := make(chan error, 1)
	if mode != freshNoPreload {
		// As a server does at boot: the deployed modules load in the
		// background while it starts listening.
		go func() {
			begin := time.Now()
			out := rt.Preload(ctx, []*function.Spec{spec})
			r.Preload = time.Since(begin).Microseconds()
			if len(out) != 1 || !out[0].Held {
				preloaded <- fmt.Errorf("preload: %+v", out)
				return
			}
			preloaded <- out[0].Err
		}()
		if mode == freshAfterPreload {
			if err := <-preloaded; err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
	}
	callCPU, call := cpuTime(), time.Now()
	inst, phases, err := rt.Start(ctx, spec)
	now := time.Now()
	r.Call, r.Total = now.Sub(call).Microseconds(), now.Sub(begin).Microseconds()
	r.CallCPU, r.CPU = (cpuTime() - callCPU).Microseconds(), (cpuTime() - cpu).Microseconds()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if mode == freshDuringPreload {
		if err := <-preloaded; err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	r.Compile, r.Instantiate, r.Init = phases.Compile.Microseconds(), phases.Instantiate.Microseconds(), phases.Init.Microseconds()
	inst.Close(ctx)
	rt.Close(ctx)
	_ = json.NewEncoder(os.Stdout).Encode(r)
	return 0
}

// BenchmarkColdStartFreshProcess runs each cold start of the Go SDK
// example in a fresh process with the compilation cache on disk filled,
// as a restarted server meets it, and reports the medians of the phases
// and of the whole (cache opened, module loaded, instantiated and
// initialised), in three cases: the first call loads the module itself
// (no-preload); the call comes after the boot-time Preload ended
// (call-after-preload); the call arrives as Preload begins and joins its
// load (call-during-preload). The process's own start (exec, Go runtime)
// is left out: it is the server's, paid once, not the function's.
func BenchmarkColdStartFreshProcess(b *testing.B) {
	artifact := built(b, helloGo)
	cache := b.TempDir()
	warm, err := New(Options{CacheDir: cache})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	inst, _, err := warm.Start(ctx, &function.Spec{Name: "hello", Version: "1", Runtime: function.KindWasm, Artifact: artifact})
	if err != nil {
		b.Fatal(err)
	}
	inst.Close(ctx)
	warm.Close(ctx)
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	for _, mode := range []string{freshNoPreload, freshAfterPreload, freshDuringPreload} {
		b.Run(mode, func(b *testing.B) {
			var runs []freshStart
			for b.Loop() {
				cmd := exec.Command(exe)
				cmd.Env = append(os.Environ(), freshStartEnv+"="+mode+"|"+cache+"|"+artifact)
				out, err := cmd.Output()
				if err != nil {
					b.Fatalf("child: %v: %s", err, out)
				}
				var r freshStart
				if err := json.Unmarshal(out, &r); err != nil {
					b.Fatalf("child said %q: %v", out, err)
				}
				runs = append(runs, r)
			}
			median := func(f func(freshStart) int64) float64 {
				v := make([]int64, len(runs))
				for i, r := range runs {
					v[i] = f(r)
				}
				slices.Sort(v)
				return float64(v[len(v)/2]) / 1000
			}
			b.ReportMetric(median(func(r freshStart) int64 { return r.Open }), "open-ms")
			if mode != freshNoPreload {
				b.ReportMetric(median(func(r freshStart) int64 { return r.Preload }), "preload-ms")
			}
			b.ReportMetric(median(func(r freshStart) int64 { return r.Compile }), "compile-ms")
			b.ReportMetric(median(func(r freshStart) int64 { return r.Instantiate }), "instantiate-ms")
			b.ReportMetric(median(func(r freshStart) int64 { return r.Init }), "init-ms")
			// The call's cold start as its caller waits for it, and the
			// CPU spent meanwhile (by the call and, during the preload,
			// by the load it joined).
			b.ReportMetric(median(func(r freshStart) int64 { return r.Call }), "cold-start-ms")
			b.ReportMetric(median(func(r freshStart) int64 { return r.CallCPU }), "cpu-ms")
			// From the process's first line: the boot-time load included.
			b.ReportMetric(median(func(r freshStart) int64 { return r.Total }), "from-boot-ms")
			b.ReportMetric(median(func(r freshStart) int64 { return r.CPU }), "from-boot-cpu-ms")
		})
	}
}
