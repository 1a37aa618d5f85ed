package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/store"
)

// BenchmarkAppendParallel measures durable appends per second: every
// goroutine appends to an invocation of its own and waits for the fsync.
// The sub-benchmarks vary how many goroutines append at once, which is what
// group commit feeds on.
func BenchmarkAppendParallel(b *testing.B) {
	for _, perProc := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("goroutines=%d", perProc*runtime.GOMAXPROCS(0)), func(b *testing.B) {
			ctx := context.Background()
			s, err := Open(ctx, filepath.Join(b.TempDir(), "baton.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			var ids atomic.Int64
			output := map[string]any{"status": 200.0, "body": map[string]any{"id": "abc-123", "total": 99.5}}
			before := s.Stats()
			b.SetParallelism(perProc)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				id := fmt.Sprintf("bench-%d", ids.Add(1))
				inv := &store.Invocation{ID: id, Namespace: "bench", Workflow: "wf", Version: "1", StartedAt: time.Now(), Durable: true}
				if err := s.CreateInvocation(ctx, inv, []core.Event{{Type: core.InvocationStarted, Time: time.Now()}}, true); err != nil {
					b.Error(err)
					return
				}
				ev := []core.Event{{Type: core.TaskCompleted, Time: time.Now(), Task: "/do/0/fetch", Attempt: 1, Output: output}}
				for pb.Next() {
					if err := s.Append(ctx, id, ev, true); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			after := s.Stats()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
			if commits := after.Commits - before.Commits; commits > 0 {
				b.ReportMetric(float64(after.Writes-before.Writes)/float64(commits), "writes/commit")
			}
		})
	}
}
