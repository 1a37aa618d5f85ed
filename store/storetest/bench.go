package storetest

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/store"
)

// WriteCounters reports how many transactions a store's writer has
// committed and how many writes they carried, so that a benchmark can show
// how well writes are grouped.
type WriteCounters func() (commits, writes int64)

// BenchAppendParallel measures waited appends per second: every goroutine
// appends to an invocation of its own and waits for the commit. The
// sub-benchmarks vary how many goroutines append at once, which is what
// grouping commits feeds on. open returns a fresh store, which the
// benchmark closes, and its counters.
func BenchAppendParallel(b *testing.B, open func(b *testing.B) (store.Store, WriteCounters)) {
	for _, perProc := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("goroutines=%d", perProc*runtime.GOMAXPROCS(0)), func(b *testing.B) {
			ctx := context.Background()
			s, counters := open(b)
			defer s.Close()
			var ids atomic.Int64
			output := map[string]any{"status": 200.0, "body": map[string]any{"id": "abc-123", "total": 99.5}}
			commitsBefore, writesBefore := counters()
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
			commitsAfter, writesAfter := counters()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
			if commits := commitsAfter - commitsBefore; commits > 0 {
				b.ReportMetric(float64(writesAfter-writesBefore)/float64(commits), "writes/commit")
			}
		})
	}
}
