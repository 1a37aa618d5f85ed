package bench

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/qos"
)

// Where tenant h's time goes: the client records when it sent a start and
// read its answer, the server's answer says when the invocation started
// (after G1) and ended, and callRecorder, around the executor, when each
// of its calls ran and how much CPU it got. The phases between these
// instants say whether a slow start waited at a gate, ran slowly because
// it shared the CPUs, or spent its time in the engine and the HTTP layers.

// callSpan is one executed call of a traced invocation.
type callSpan struct {
	begin, end time.Time
	// cpu is the CPU time of the thread that ran the call (0 when not
	// measured): a call that took longer than its CPU time waited for a
	// CPU meanwhile.
	cpu time.Duration
}

// startPath is the instants of one completed start.
type startPath struct {
	arrival, sent, started, ended, answered time.Time
	calls                                   []callSpan
}

// callRecorder records the calls of the invocations of some namespaces.
type callRecorder struct {
	namespaces map[string]bool
	mu         sync.Mutex
	calls      map[string][]callSpan
	// ended counts every call that ended, of any namespace.
	ended atomic.Int64
}

func newCallRecorder(namespaces ...string) *callRecorder {
	r := &callRecorder{namespaces: map[string]bool{}, calls: map[string][]callSpan{}}
	for _, ns := range namespaces {
		r.namespaces[ns] = true
	}
	return r
}

func (r *callRecorder) wrap(ex engine.Executor) engine.Executor {
	return engine.ExecutorFunc(func(ctx context.Context, req *engine.CallRequest) (engine.CallResult, error) {
		defer r.ended.Add(1)
		if !r.namespaces[req.Namespace] {
			return ex.Execute(ctx, req)
		}
		// Compiled wasm runs on the calling goroutine's thread without
		// yielding it: locked to the thread, its CPU time is the call's.
		runtime.LockOSThread()
		cpu0, ok0 := threadCPU()
		begin := time.Now()
		res, err := ex.Execute(ctx, req)
		end := time.Now()
		cpu1, ok1 := threadCPU()
		runtime.UnlockOSThread()
		span := callSpan{begin: begin, end: end}
		if ok0 && ok1 {
			span.cpu = cpu1 - cpu0
		}
		r.mu.Lock()
		r.calls[req.Invocation] = append(r.calls[req.Invocation], span)
		r.mu.Unlock()
		return res, err
	})
}

// take returns and forgets the calls of an invocation.
func (r *callRecorder) take(id string) []callSpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.calls[id]
	delete(r.calls, id)
	slices.SortFunc(c, func(a, b callSpan) int { return a.begin.Compare(b.begin) })
	return c
}

// Phases is where completed starts spent their time, in milliseconds.
type Phases struct {
	// Client is from the arrival to the request's sending: the client's
	// own lag (it runs in the server's process).
	Client float64 `json:"clientMs"`
	// Admit is from the sending to the invocation's start: the HTTP
	// request, classification and G1's wait.
	Admit float64 `json:"admitMs"`
	// First is from the start to the first call's execution: the
	// invocation's creation, its first step and G2's wait.
	First float64 `json:"firstMs"`
	// Run is the calls' execution (an instance, the function's CPU and
	// the wait for a CPU), CPU their CPU time alone.
	Run float64 `json:"runMs"`
	CPU float64 `json:"cpuMs"`
	// Between is the time between the calls: the engine's steps and
	// G2's waits of the second and third calls.
	Between float64 `json:"betweenMs"`
	// Finish is from the last call's end to the invocation's end, Reply
	// from there to the client's reading of the answer.
	Finish float64 `json:"finishMs"`
	Reply  float64 `json:"replyMs"`
	// Total is from the arrival to the answer.
	Total float64 `json:"totalMs"`
}

// PhaseStats summarises the phases of a tenant's completed starts.
type PhaseStats struct {
	// Count is the starts traced.
	Count int `json:"count"`
	// Median is each phase's median, separately.
	Median Phases `json:"median"`
	// Slow is each phase's mean over the slowest 5% of the starts (those
	// at or above the 95th percentile of Total): where the tail's time
	// goes.
	Slow Phases `json:"slow"`
	// Waits are the waits at the gates (QoS on only).
	Waits *GateWaits `json:"waits,omitempty"`
}

func (p *startPath) phases() Phases {
	var ph Phases
	ph.Client = ms(p.sent.Sub(p.arrival))
	ph.Admit = ms(p.started.Sub(p.sent))
	ph.Total = ms(p.answered.Sub(p.arrival))
	ph.Reply = ms(p.answered.Sub(p.ended))
	if len(p.calls) == 0 {
		ph.Finish = ms(p.ended.Sub(p.started))
		return ph
	}
	ph.First = ms(p.calls[0].begin.Sub(p.started))
	for i, c := range p.calls {
		ph.Run += ms(c.end.Sub(c.begin))
		ph.CPU += ms(c.cpu)
		if i > 0 {
			ph.Between += ms(c.begin.Sub(p.calls[i-1].end))
		}
	}
	ph.Finish = ms(p.ended.Sub(p.calls[len(p.calls)-1].end))
	return ph
}

// phaseStats summarises paths; nil for none.
func phaseStats(paths []*startPath) *PhaseStats {
	if len(paths) == 0 {
		return nil
	}
	all := make([]Phases, len(paths))
	for i, p := range paths {
		all[i] = p.phases()
	}
	fields := func(ph *Phases) []*float64 {
		return []*float64{&ph.Client, &ph.Admit, &ph.First, &ph.Run, &ph.CPU, &ph.Between, &ph.Finish, &ph.Reply, &ph.Total}
	}
	st := &PhaseStats{Count: len(all)}
	med := fields(&st.Median)
	for f := range med {
		v := make([]float64, len(all))
		for i := range all {
			v[i] = *fields(&all[i])[f]
		}
		slices.Sort(v)
		*med[f] = Percentile(v, 50)
	}
	slices.SortFunc(all, func(a, b Phases) int { return cmpFloat(b.Total, a.Total) })
	slow := all[:max(1, len(all)/20)]
	sum := fields(&st.Slow)
	for i := range slow {
		for f, v := range fields(&slow[i]) {
			*sum[f] += *v / float64(len(slow))
		}
	}
	return st
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// GateWaits are a tenant's waits at the scheduler's gates, read from its
// histogram (baton_qos_wait_seconds): each figure is the upper bound of
// the bucket the quantile fell in, in milliseconds (+Inf beyond the
// last).
type GateWaits struct {
	G1P50Ms float64 `json:"g1P50Ms"`
	G1P99Ms float64 `json:"g1P99Ms"`
	// G2 waits are per call; a call handed its workflow's seat waits 0.
	G2P50Ms float64 `json:"g2P50Ms"`
	G2P99Ms float64 `json:"g2P99Ms"`
}

// gateWaits reads the waits of class and namespace ns at both gates; nil
// when the scheduler recorded none.
func gateWaits(s *qos.Scheduler, class, ns string) (*GateWaits, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(s); err != nil {
		return nil, fmt.Errorf("bench: reading the QoS waits: %w", err)
	}
	families, err := reg.Gather()
	if err != nil {
		return nil, fmt.Errorf("bench: reading the QoS waits: %w", err)
	}
	var w GateWaits
	found := false
	for _, f := range families {
		if f.GetName() != "baton_qos_wait_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["class"] != class || labels["namespace"] != ns {
				continue
			}
			h := m.GetHistogram()
			quantile := func(q float64) float64 {
				rank := q * float64(h.GetSampleCount())
				for _, b := range h.GetBucket() {
					if float64(b.GetCumulativeCount()) >= rank {
						return b.GetUpperBound() * 1000
					}
				}
				return math.Inf(1)
			}
			switch labels["gate"] {
			case "g1":
				w.G1P50Ms, w.G1P99Ms = quantile(0.5), quantile(0.99)
			case "g2":
				w.G2P50Ms, w.G2P99Ms = quantile(0.5), quantile(0.99)
			}
			found = true
		}
	}
	if !found {
		return nil, nil
	}
	return &w, nil
}
