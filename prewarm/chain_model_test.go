package prewarm

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/batonflow/baton/dsl"
	"github.com/batonflow/baton/function"
)

// chainModel is `baton bench coldstart`'s chain of ten in virtual time:
// the planner as the bench runs it, an engine and a function layer
// reduced to their timing, each duration drawn from a seeded
// distribution. It measures what the bench measures — the cold-start
// latency removed against on-demand and the time instances are held
// starting or idle, as a multiple of on-demand's (a start per call) —
// without the machine's load, which on a shared machine moves the
// bench's figures by more than a change to the planner does.
type chainModel struct {
	work      time.Duration // each call's execution
	execNoise time.Duration // mean of the exponential overrun of a call
	cold      time.Duration // median instance start
	coldSigma float64       // lognormal spread of starts
	dispatch  time.Duration // median task start to call at the function layer
	dispSigma float64
	record    time.Duration // added to the first call's dispatch: the engine records the invocation
	jitter    time.Duration // arrivals' normal jitter around the 1s interval
	slots     int           // prepare slots
	rounds    int
	warmup    int
}

// The quiet regime is fitted to the bench on a quiet 2-core machine
// (starts p50 6.5ms, p99 12.2ms; calls about 13ms apart with 10ms of
// work); the noisy one has the spread of a machine with a CPU hog.
var (
	quietChain = chainModel{work: 10 * time.Millisecond, execNoise: 500 * time.Microsecond, cold: 6500 * time.Microsecond,
		coldSigma: 0.27, dispatch: 2 * time.Millisecond, dispSigma: 0.5, record: 500 * time.Microsecond, jitter: 500 * time.Microsecond, slots: 1, rounds: 20, warmup: 8}
	noisyChain = chainModel{work: 10 * time.Millisecond, execNoise: 3 * time.Millisecond, cold: 10 * time.Millisecond,
		coldSigma: 0.6, dispatch: 4 * time.Millisecond, dispSigma: 0.8, record: 3 * time.Millisecond, jitter: 3 * time.Millisecond, slots: 1, rounds: 20, warmup: 8}
)

const modelChainLength = 10

// prepared is a prepared instance, starting or idle.
type prepared struct {
	id    string
	ready time.Time
}

// modelRun is one run's tally over the measured rounds.
type modelRun struct {
	clock   *VirtualClock
	planner *Planner
	rng     *rand.Rand
	cm      chainModel
	// ready holds each function's prepared instance (starting or idle)
	// by when it is ready; queued the prepares waiting for a slot.
	ready   map[string]prepared
	queued  map[string]bool
	queue   []string
	slotEnd []time.Time
	seq     int
	measure bool
	// held is the time instances were held starting or idle, waits the
	// time calls waited for starts, onDemand the starts on-demand would
	// have made (one per call).
	held, waits, onDemand time.Duration
}

func (r *modelRun) logn(median time.Duration, sigma float64) time.Duration {
	return time.Duration(float64(median) * math.Exp(sigma*r.rng.NormFloat64()))
}

// Prepare implements Preparer: one instance per function at most, started
// when a slot is free; a call that finds its prepare still queued starts
// its own instance and the prepare gives up.
func (r *modelRun) Prepare(_ context.Context, fn string, _ time.Time) error {
	if _, ok := r.ready[fn]; ok || r.queued[fn] {
		return nil
	}
	r.queued[fn] = true
	r.queue = append(r.queue, fn)
	r.pump()
	return nil
}

func (r *modelRun) pump() {
	now := r.clock.Now()
	for len(r.queue) > 0 {
		free := -1
		for i, end := range r.slotEnd {
			if !end.After(now) {
				free = i
				break
			}
		}
		if free < 0 {
			break
		}
		fn := r.queue[0]
		r.queue = r.queue[1:]
		if !r.queued[fn] {
			continue
		}
		delete(r.queued, fn)
		d := r.logn(r.cm.cold, r.cm.coldSigma)
		r.slotEnd[free] = now.Add(d)
		if r.measure {
			r.held += d
		}
		r.seq++
		id := fn + "/" + strconv.Itoa(r.seq)
		r.ready[fn] = prepared{id: id, ready: now.Add(d)}
		r.clock.AfterFunc(d, func() {
			r.planner.Observe(function.Event{Kind: function.EventCreated, Time: r.clock.Now(), Function: fn, Instance: id, Phases: function.Phases{Instantiate: d}})
			r.planner.Observe(function.Event{Kind: function.EventIdle, Time: r.clock.Now(), Function: fn, Instance: id})
			r.pump()
		})
	}
	var next time.Time
	for _, end := range r.slotEnd {
		if end.After(now) && (next.IsZero() || end.Before(next)) {
			next = end
		}
	}
	if !next.IsZero() {
		r.clock.AfterFunc(next.Sub(now), r.pump)
	}
}

// call reaches the function layer now; done runs when it has ended.
func (r *modelRun) call(fn string, done func()) {
	now := r.clock.Now()
	r.seq++
	id := fn + "/" + strconv.Itoa(r.seq)
	var wait, idle time.Duration
	if in, ok := r.ready[fn]; ok {
		delete(r.ready, fn)
		id = in.id
		wait, idle = max(in.ready.Sub(now), 0), max(now.Sub(in.ready), 0)
	} else {
		delete(r.queued, fn)
		wait = r.logn(r.cm.cold, r.cm.coldSigma)
		idle = wait // a start of its own, held while the call waits
		r.clock.AfterFunc(wait, func() {
			r.planner.Observe(function.Event{Kind: function.EventCreated, Time: r.clock.Now(), Function: fn, Instance: id, Phases: function.Phases{Instantiate: wait}})
		})
	}
	if r.measure {
		r.held += idle
		r.waits += wait
		r.onDemand += r.logn(r.cm.cold, r.cm.coldSigma)
	}
	exec := r.cm.work + time.Duration(r.rng.ExpFloat64()*float64(r.cm.execNoise))
	r.clock.AfterFunc(wait, func() {
		r.planner.Observe(function.Event{Kind: function.EventBusy, Time: r.clock.Now(), Function: fn, Instance: id, Waited: wait})
		r.clock.AfterFunc(exec, func() {
			r.planner.Observe(function.Event{Kind: function.EventIdle, Time: r.clock.Now(), Function: fn, Instance: id})
			r.planner.Observe(function.Event{Kind: function.EventEvicted, Time: r.clock.Now(), Function: fn, Instance: id})
			done()
		})
	})
}

// run plays the rounds with one seed and returns the share of
// on-demand's cold-start latency removed and the held time against
// on-demand's.
func (cm chainModel) run(tb testing.TB, seed uint64) (removed, held float64) {
	var src strings.Builder
	src.WriteString("document: {dsl: '1.0.0', namespace: default, name: chain, version: '1.0.0'}\ndo:\n")
	for i := range modelChainLength {
		fmt.Fprintf(&src, "  - s%d: {call: f%d}\n", i, i)
	}
	def, err := dsl.Parse("chain.yaml", []byte(src.String()))
	if err != nil {
		tb.Fatal(err)
	}
	r := &modelRun{clock: NewVirtualClock(t0), rng: rand.New(rand.NewPCG(seed, 7)), cm: cm,
		ready: map[string]prepared{}, queued: map[string]bool{}, slotEnd: make([]time.Time, cm.slots)}
	r.planner = NewPlanner(Options{Preparer: r, Clock: r.clock, PrepareSlots: cm.slots})
	for round := range cm.rounds {
		at := t0.Add(time.Duration(round)*time.Second + time.Duration(r.rng.NormFloat64()*float64(cm.jitter)))
		r.clock.Advance(at)
		r.measure = round >= cm.warmup
		id := "i" + strconv.Itoa(round)
		r.planner.InvocationStarted(id, def, at)
		var step func(k int)
		step = func(k int) {
			if k == modelChainLength {
				r.planner.InvocationEnded(id)
				// The bench measures until the last invocation ends.
				r.measure = r.measure && round < cm.rounds-1
				return
			}
			ref := fmt.Sprintf("/do/%d/s%d", k, k)
			r.planner.TaskStarted(id, ref, ref, "s"+strconv.Itoa(k), r.clock.Now())
			dispatch := r.logn(cm.dispatch, cm.dispSigma)
			if k == 0 {
				dispatch += cm.record
			}
			r.clock.AfterFunc(dispatch, func() {
				r.call("f"+strconv.Itoa(k), func() {
					r.planner.TaskEnded(id, ref, ref, "s"+strconv.Itoa(k), r.clock.Now(), nil)
					step(k + 1)
				})
			})
		}
		step(0)
		r.clock.Advance(at.Add(900 * time.Millisecond))
	}
	r.clock.Run()
	return 1 - r.waits.Seconds()/r.onDemand.Seconds(), r.held.Seconds() / r.onDemand.Seconds()
}

// BenchmarkChainModel reports, per regime, the mean over 40 seeds of the
// chain's cold-start latency removed and its held time against
// on-demand's (metrics removed-% and held-x; the time per op is the
// model's own cost):
//
//	go test -run '^$' -bench ChainModel ./prewarm/
func BenchmarkChainModel(b *testing.B) {
	instant := quietChain
	instant.work, instant.execNoise = 0, 200*time.Microsecond
	for _, tc := range []struct {
		name string
		cm   chainModel
	}{
		{"quiet-10ms", quietChain},
		{"quiet-instant", instant},
		{"noisy-10ms", noisyChain},
	} {
		b.Run(tc.name, func(b *testing.B) {
			const seeds = 40
			var removed, held float64
			for range b.N {
				removed, held = 0, 0
				for seed := range seeds {
					rm, h := tc.cm.run(b, uint64(seed))
					removed += rm / seeds
					held += h / seeds
				}
			}
			b.ReportMetric(100*removed, "removed-%")
			b.ReportMetric(held, "held-x")
		})
	}
}

// The model is a measurement, not a target; this only checks that it
// measures: prewarming a quiet chain removes most of its cold-start
// latency, and holds more than on-demand does.
func TestChainModelMeasures(t *testing.T) {
	removed, held := quietChain.run(t, 1)
	if removed < 0.5 || held < 1 {
		t.Fatalf("quiet chain: removed %.1f%%, held %.2fx on-demand's", 100*removed, held)
	}
}
