package engine_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/httpcall"
)

// BenchmarkChain10 runs a chain of ten `call: http` tasks against a local
// no-op endpoint with 1 and 64 invocations in flight, durable and not. It
// reports the engine's overhead per task: an invocation's end-to-end time
// minus the time its calls spent in HTTP, divided by its ten tasks.
//
//	go test ./engine -run '^$' -bench Chain10 -benchtime 2000x
func BenchmarkChain10(b *testing.B) {
	noop := startNoopServer(b)
	for _, cfg := range []struct {
		durability  string
		concurrency int
	}{{"durable", 1}, {"durable", 64}, {"none", 1}, {"none", 64}} {
		durability, concurrency := cfg.durability, cfg.concurrency
		b.Run(fmt.Sprintf("%s/c=%d", durability, concurrency), func(b *testing.B) {
			ctx := context.Background()
			st := openStore(b, b.TempDir())
			defer st.Close()
			timing := &timingTransport{base: httpcall.NewTransport(), spent: map[string]time.Duration{}}
			e := newEngine(b, st, func(o *engine.Options) { o.HTTPClient = &http.Client{Transport: timing} })
			defer e.Close()
			mode := ""
			if durability == "none" {
				mode = "none"
			}
			if _, err := e.ApplyWorkflow(ctx, "chain.yaml", []byte(chainDoc(noop, 10, mode))); err != nil {
				b.Fatal(err)
			}
			var (
				next      atomic.Int64
				mu        sync.Mutex
				overheads []time.Duration
				wg        sync.WaitGroup
			)
			b.ResetTimer()
			began := time.Now()
			cpuBefore := cpuTime()
			for w := 0; w < concurrency; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						t0 := time.Now()
						inv, err := e.Invoke(ctx, "default", "chain", "", nil)
						if err != nil {
							b.Error(err)
							return
						}
						done, err := e.Wait(ctx, inv.ID)
						if err != nil || done.Status != core.StatusCompleted {
							b.Errorf("%+v %v", done, err)
							return
						}
						total := time.Since(t0)
						calls := timing.take(inv.ID)
						mu.Lock()
						overheads = append(overheads, (total-calls)/10)
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(began)
			cpu := cpuTime() - cpuBefore
			b.StopTimer()
			sort.Slice(overheads, func(i, j int) bool { return overheads[i] < overheads[j] })
			pct := func(p float64) float64 {
				return float64(overheads[int(p*float64(len(overheads)-1))].Microseconds())
			}
			b.ReportMetric(pct(0.50), "overhead-p50-µs/task")
			b.ReportMetric(pct(0.99), "overhead-p99-µs/task")
			b.ReportMetric(float64(b.N*10)/elapsed.Seconds(), "tasks/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*10), "cpu-µs/task")
		})
	}
}

// timingTransport sums the time each invocation's requests spend in HTTP,
// keyed by the invocation id that leads the idempotency key.
type timingTransport struct {
	base  http.RoundTripper
	mu    sync.Mutex
	spent map[string]time.Duration
}

func (t *timingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t0 := time.Now()
	resp, err := t.base.RoundTrip(r)
	d := time.Since(t0)
	id, _, _ := strings.Cut(r.Header.Get("Idempotency-Key"), "/")
	t.mu.Lock()
	t.spent[id] += d
	t.mu.Unlock()
	return resp, err
}

func (t *timingTransport) take(id string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.spent[id]
	delete(t.spent, id)
	return d
}

// cpuTime is the CPU time this process has used. The no-op endpoint runs
// in another process, so this is the engine's cost alone (with its HTTP
// client and store).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

const noopEnv = "BATON_BENCH_NOOP_SERVER"

// startNoopServer runs the no-op endpoint in a child process (this test
// binary again), so that its CPU does not count as the engine's, and
// returns its URL.
func startNoopServer(b *testing.B) string {
	cmd := exec.Command(os.Args[0], "-test.run=^TestNoopServerProcess$")
	cmd.Env = append(os.Environ(), noopEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		b.Fatalf("no-op server: %v", err)
	}
	return strings.TrimSpace(line)
}

// TestNoopServerProcess is the body of the no-op endpoint's process; as an
// ordinary test it returns at once.
func TestNoopServerProcess(t *testing.T) {
	if os.Getenv(noopEnv) == "" {
		t.Skip("runs only as the benchmark's child process")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("http://" + ln.Addr().String())
	http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{}`))
	}))
}
