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

// freshStartEnv, when set (CACHE_DIR|ARTIFACT), makes this test binary a
// child that does one cold start and prints its phases: a fresh process,
// as a restarted server is, with nothing of the module in memory.
const freshStartEnv = "BATON_WASM_FRESH_START"

// freshStart is what a child reports, in microseconds.
type freshStart struct {
	Open        int64 `json:"open"` // New: the compilation cache opened
	Compile     int64 `json:"compile"`
	Instantiate int64 `json:"instantiate"`
	Init        int64 `json:"init"`
	Total       int64 `json:"total"` // New and Start, from the child's first line
	// CPU is the process's CPU time (user and system) over the same span:
	// on a busy machine the wall time mostly measures the wait for a core.
	CPU int64 `json:"cpu"`
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func runFreshStart(v string) int {
	cache, artifact, _ := strings.Cut(v, "|")
	ctx := context.Background()
	cpu := cpuTime()
	begin := time.Now()
	rt, err := New(Options{CacheDir: cache})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	opened := time.Since(begin)
	inst, phases, err := rt.Start(ctx, &function.Spec{Name: "hello", Version: "1", Runtime: function.KindWasm, Artifact: artifact})
	total := time.Since(begin)
	cpu = cpuTime() - cpu
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	inst.Close(ctx)
	rt.Close(ctx)
	_ = json.NewEncoder(os.Stdout).Encode(freshStart{Open: opened.Microseconds(), Compile: phases.Compile.Microseconds(),
		Instantiate: phases.Instantiate.Microseconds(), Init: phases.Init.Microseconds(), Total: total.Microseconds(), CPU: cpu.Microseconds()})
	return 0
}

// BenchmarkColdStartFreshProcess runs each cold start of the Go SDK
// example in a fresh process with the compilation cache on disk filled,
// as a restarted server meets it, and reports the medians of the phases
// and of the whole (cache opened, module loaded, instantiated and
// initialised). The process's own start (exec, Go runtime) is left out:
// it is the server's, paid once, not the function's.
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
	var runs []freshStart
	for b.Loop() {
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), freshStartEnv+"="+cache+"|"+artifact)
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
	b.ReportMetric(median(func(r freshStart) int64 { return r.Compile }), "compile-ms")
	b.ReportMetric(median(func(r freshStart) int64 { return r.Instantiate }), "instantiate-ms")
	b.ReportMetric(median(func(r freshStart) int64 { return r.Init }), "init-ms")
	b.ReportMetric(median(func(r freshStart) int64 { return r.Total }), "cold-start-ms")
	b.ReportMetric(median(func(r freshStart) int64 { return r.CPU }), "cpu-ms")
}
