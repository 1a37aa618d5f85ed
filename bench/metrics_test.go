package bench

import (
	"math"
	"testing"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/dsl"
)

func parse(t *testing.T, src string) *dsl.Workflow {
	t.Helper()
	def, err := dsl.Parse("t.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return def
}

// history builds a history from (type, task, offset ms, duration ms)
// entries, numbering them in order.
type entry struct {
	typ  core.EventType
	task string
	at   float64
	dur  float64
	cold float64
}

func history(entries ...entry) []core.Event {
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	out := make([]core.Event, len(entries))
	for i, e := range entries {
		ev := core.Event{Seq: int64(i + 1), Type: e.typ, Task: e.task, Attempt: 1, Time: base.Add(time.Duration(e.at * float64(time.Millisecond)))}
		if e.typ == core.TaskCompleted {
			ev.Info = map[string]any{"durationMs": e.dur}
			if e.cold > 0 {
				ev.Info["cold"] = true
				ev.Info["coldStartMs"] = e.cold
				ev.Info["startWaitMs"] = e.cold
			}
		}
		out[i] = ev
	}
	return out
}

const chainDoc = `document: {dsl: '1.0.0', namespace: t, name: c, version: '1.0.0'}
do:
  - a: {call: f}
  - b: {call: f}
  - c: {call: f}
`

const fanoutDoc = `document: {dsl: '1.0.0', namespace: t, name: f, version: '1.0.0'}
do:
  - fan:
      fork:
        branches:
          - x: {call: f}
          - y:
              do:
                - y1: {call: f}
                - y2: {call: f}
          - z: {call: f}
  - join: {call: f}
`

const loopDoc = `document: {dsl: '1.0.0', namespace: t, name: l, version: '1.0.0'}
do:
  - each:
      for: {each: item, in: '${ .items }'}
      do:
        - par:
            fork:
              branches:
                - p: {call: f}
                - q: {call: f}
`

func TestChainHistory(t *testing.T) {
	def := parse(t, chainDoc)
	h := history(
		entry{typ: core.InvocationStarted, at: 0},
		entry{typ: core.TaskStarted, task: "/do/0/a", at: 0.5},
		entry{typ: core.TaskCompleted, task: "/do/0/a", at: 2, dur: 1},
		entry{typ: core.TaskStarted, task: "/do/1/b", at: 2.25},
		entry{typ: core.TaskCompleted, task: "/do/1/b", at: 5, dur: 2},
		entry{typ: core.TaskStarted, task: "/do/2/c", at: 5.1},
		entry{typ: core.TaskCompleted, task: "/do/2/c", at: 9, dur: 3, cold: 2.5},
		entry{typ: core.InvocationCompleted, at: 9.5},
	)
	facts := ReadHistory(h)
	if facts.Status != core.StatusCompleted || len(facts.Tasks) != 3 {
		t.Fatalf("facts = %+v", facts)
	}
	wantQueue := []float64{0.5, 0.25, 0.1}
	for i, task := range facts.Tasks {
		if math.Abs(task.QueueMs-wantQueue[i]) > 1e-9 {
			t.Errorf("task %s queue = %v, want %v", task.Key, task.QueueMs, wantQueue[i])
		}
	}
	if !facts.Tasks[2].Cold || facts.Tasks[2].ColdStartMs != 2.5 || facts.Tasks[2].StartWaitMs != 2.5 {
		t.Errorf("cold start not read: %+v", facts.Tasks[2])
	}
	ms, calls := CriticalPath(def, facts.Tasks)
	if ms != 6 || calls != 3 {
		t.Errorf("critical path = %v ms over %d calls, want 6 over 3", ms, calls)
	}
	var s Sample
	s.LatencyMs = 10
	s.fill(&Workflow{Def: def}, facts)
	if s.OverheadMs != 4 || math.Abs(s.OverheadTaskMs-4.0/3) > 1e-9 || s.ColdStarts != 1 || s.SpanMs != 9.5 {
		t.Errorf("sample = %+v", s)
	}
}

func TestCriticalPathTakesTheLongestBranch(t *testing.T) {
	def := parse(t, fanoutDoc)
	tasks := []TaskSample{
		{Key: "/do/0/fan/fork/branches/0/x", FunctionMs: 5},
		{Key: "/do/0/fan/fork/branches/1/y/do/0/y1", FunctionMs: 2},
		{Key: "/do/0/fan/fork/branches/1/y/do/1/y2", FunctionMs: 4},
		{Key: "/do/0/fan/fork/branches/2/z", FunctionMs: 1},
		{Key: "/do/1/join", FunctionMs: 1.5},
	}
	ms, calls := CriticalPath(def, tasks)
	// Branch y (2+4) beats x (5); the join follows.
	if ms != 7.5 || calls != 3 {
		t.Errorf("critical path = %v ms over %d calls, want 7.5 over 3", ms, calls)
	}
}

func TestCriticalPathAddsLoopIterations(t *testing.T) {
	def := parse(t, loopDoc)
	tasks := []TaskSample{
		{Key: "/do/0/each/do/0/par/fork/branches/0/p[0]", FunctionMs: 1},
		{Key: "/do/0/each/do/0/par/fork/branches/1/q[0]", FunctionMs: 3},
		{Key: "/do/0/each/do/0/par/fork/branches/0/p[1]", FunctionMs: 4},
		{Key: "/do/0/each/do/0/par/fork/branches/1/q[1]", FunctionMs: 2},
	}
	ms, calls := CriticalPath(def, tasks)
	if ms != 7 || calls != 2 {
		t.Errorf("critical path = %v ms over %d calls, want 7 (3+4) over 2", ms, calls)
	}
}

func TestCriticalPathCountsUnplacedCallsInSequence(t *testing.T) {
	def := parse(t, chainDoc)
	tasks := []TaskSample{{Key: "/do/0/a", FunctionMs: 1}, {Key: "/elsewhere", FunctionMs: 2}}
	if ms, calls := CriticalPath(def, tasks); ms != 3 || calls != 2 {
		t.Errorf("critical path = %v over %d, want 3 over 2", ms, calls)
	}
}

func TestSummarize(t *testing.T) {
	tests := []struct {
		name   string
		values []float64
		want   Dist
	}{
		{"one to a hundred", seq(100), Dist{Count: 100, Mean: 50.5, P50: 50, P90: 90, P99: 99, P999: 100, Max: 100}},
		{"ten values", seq(10), Dist{Count: 10, Mean: 5.5, P50: 5, P90: 9, P99: 10, P999: 10, Max: 10}},
		{"one value", []float64{7}, Dist{Count: 1, Mean: 7, P50: 7, P90: 7, P99: 7, P999: 7, Max: 7}},
		{"none", nil, Dist{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Reverse so that Summarize has to sort.
			v := append([]float64(nil), tt.values...)
			for i, j := 0, len(v)-1; i < j; i, j = i+1, j-1 {
				v[i], v[j] = v[j], v[i]
			}
			if got := Summarize(v); got != tt.want {
				t.Errorf("Summarize = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func seq(n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = float64(i + 1)
	}
	return out
}

func TestSummaryExcludesWarmupAndCountsThroughput(t *testing.T) {
	samples := []Sample{
		{SubmittedS: 0.1, LatencyMs: 100, Status: "completed", Warmup: true, Traced: true},
		{SubmittedS: 1.0, LatencyMs: 100, Status: "completed", Traced: true, Tasks: []TaskSample{{FunctionMs: 1, QueueMs: 0.5}}},
		{SubmittedS: 1.5, LatencyMs: 500, Status: "completed", Traced: true, Tasks: []TaskSample{{FunctionMs: 1, QueueMs: 0.5}}},
		{SubmittedS: 1.6, Status: "faulted"},
	}
	s := summarize(samples, 1, 0)
	if s.Invocations != 3 || s.Failed != 1 || s.Latency.Count != 2 {
		t.Fatalf("summary = %+v", s)
	}
	// Window from the end of warm-up (1s) to the last end (2s).
	if math.Abs(s.WindowS-1) > 1e-9 || math.Abs(s.Throughput-2) > 1e-9 || math.Abs(s.TasksPerSecond-2) > 1e-9 {
		t.Errorf("window %v, throughput %v, tasks/s %v", s.WindowS, s.Throughput, s.TasksPerSecond)
	}
}
