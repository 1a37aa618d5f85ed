package qos

import (
	"context"
	"sync"
	"testing"
	"time"
)

// BenchmarkHandOffOneStep is the goodput a saturated pool loses to seat
// hand-off when every workflow makes one call: 12 workflows at a time
// contend for 3 seats, each call takes 1ms, and the workflow ends 0.3ms
// after its call (the engine's step to its end). It reports the calls
// served per second of seats:
//
//	go test -run xxx -bench HandOffOneStep -benchtime 3000x ./qos/
//
// "learned" is the scheduler's rule (calls name their site), "fixed" keeps
// every seat until the workflow ends, as every call did before the rule,
// "none" never keeps one (the no-continuations ablation); 1.0 is a seat
// never idle.
func BenchmarkHandOffOneStep(b *testing.B) {
	const (
		seats, workers = 3, 12
		call, toEnd    = time.Millisecond, 300 * time.Microsecond
	)
	for _, tt := range []struct {
		name string
		site string
		off  bool
	}{{"learned", "one@1#/do/0/a", false}, {"fixed", "", false}, {"none", "one@1#/do/0/a", true}} {
		b.Run(tt.name, func(b *testing.B) {
			s := New(Options{Seats: map[string]int{PoolWasm: seats}, NoContinuations: tt.off})
			ctx := context.Background()
			work := make(chan struct{})
			var busy sync.Mutex
			var seated time.Duration
			var wg sync.WaitGroup
			for range workers {
				wg.Go(func() {
					for range work {
						var ch Chain
						release, err := acquire(ctx, s, Call{Pool: PoolWasm, Class: Standard, Flow: "ns", Chain: &ch, Site: tt.site})
						if err != nil {
							b.Error(err)
							return
						}
						began := time.Now()
						time.Sleep(call)
						took := time.Since(began)
						release()
						time.Sleep(toEnd)
						s.EndChain(&ch)
						busy.Lock()
						seated += took
						busy.Unlock()
					}
				})
			}
			began := time.Now()
			for b.Loop() {
				work <- struct{}{}
			}
			close(work)
			wg.Wait()
			wall := time.Since(began)
			// The share of the seats' time that ran calls.
			b.ReportMetric(seated.Seconds()/(wall.Seconds()*seats), "seat-use")
		})
	}
}
