package bench

import (
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/dsl"
)

// TaskSample is one execution of a call task, as its invocation's history
// tells it.
type TaskSample struct {
	Key     string `json:"key"`
	Attempt int    `json:"attempt,omitempty"`
	// Ready is when the task could run: the time of the event whose
	// application released it (the previous result, or the invocation's
	// start). Started is its TaskStarted record, Ended its result.
	Ready   time.Time `json:"-"`
	Started time.Time `json:"-"`
	Ended   time.Time `json:"-"`
	// QueueMs is Started minus Ready; negative when the history has no
	// TaskStarted record for the task.
	QueueMs float64 `json:"queueMs"`
	// FunctionMs is the call's duration as the engine measured it
	// (Info.durationMs): cold start, pool queueing and execution.
	FunctionMs  float64 `json:"functionMs"`
	Cold        bool    `json:"cold,omitempty"`
	ColdStartMs float64 `json:"coldStartMs,omitempty"`
	// StartWaitMs is how long the call waited for an instance to finish
	// starting (Info.startWaitMs): its cold start when Cold, the rest of
	// a prepared instance's start when it came too early for it.
	StartWaitMs float64 `json:"startWaitMs,omitempty"`
	Failed      bool    `json:"failed,omitempty"`
}

// HistoryFacts is what one invocation's history says.
type HistoryFacts struct {
	Started, Ended time.Time
	Status         core.Status
	Tasks          []TaskSample
	// Error is the fault of a faulted invocation.
	Error string
}

// ReadHistory extracts the call tasks of a history in event order.
func ReadHistory(events []core.Event) HistoryFacts {
	var (
		facts   HistoryFacts
		release time.Time
		open    = map[string]int{} // task key and attempt -> index in facts.Tasks
	)
	taskID := func(ev *core.Event) string { return ev.Task + "@" + strconv.Itoa(ev.Attempt) }
	find := func(ev *core.Event) *TaskSample {
		if i, ok := open[taskID(ev)]; ok {
			return &facts.Tasks[i]
		}
		facts.Tasks = append(facts.Tasks, TaskSample{Key: ev.Task, Attempt: ev.Attempt, Ready: release, QueueMs: -1})
		open[taskID(ev)] = len(facts.Tasks) - 1
		return &facts.Tasks[len(facts.Tasks)-1]
	}
	for i := range events {
		ev := &events[i]
		switch ev.Type {
		case core.InvocationStarted:
			facts.Started = ev.Time
			facts.Status = core.StatusRunning
		case core.TaskStarted:
			t := find(ev)
			t.Started = ev.Time
			t.QueueMs = ms(ev.Time.Sub(t.Ready))
		case core.TaskCompleted, core.TaskFailed:
			t := find(ev)
			t.Ended = ev.Time
			t.Failed = ev.Type == core.TaskFailed
			t.FunctionMs = infoFloat(ev.Info, "durationMs")
			t.Cold, _ = ev.Info["cold"].(bool)
			t.ColdStartMs = infoFloat(ev.Info, "coldStartMs")
			t.StartWaitMs = infoFloat(ev.Info, "startWaitMs")
		case core.InvocationCompleted:
			facts.Ended, facts.Status = ev.Time, core.StatusCompleted
		case core.InvocationFaulted:
			facts.Ended, facts.Status = ev.Time, core.StatusFaulted
			if ev.Error != nil {
				facts.Error = ev.Error.Error()
			}
		case core.InvocationCancelled:
			facts.Ended, facts.Status = ev.Time, core.StatusCancelled
		}
		// Recording a dispatch releases nothing; every other event may
		// let tasks run.
		if ev.Type != core.TaskStarted && ev.Type != core.TimerScheduled {
			release = ev.Time
		}
	}
	return facts
}

func infoFloat(info map[string]any, key string) float64 {
	switch v := info[key].(type) {
	case float64:
		return v
	case int64:
		return float64(v)
	case int:
		return float64(v)
	}
	return 0
}

// CriticalPath is the function time along the longest path through an
// invocation's calls: sequences add up, a fork takes its longest branch,
// loop iterations and retry attempts add up. It returns the time and the
// number of calls on that path. Calls the walk over the definition does
// not place (tasks of functions defined in `use`, say) count as
// sequential, which can only lengthen the path.
func CriticalPath(def *dsl.Workflow, tasks []TaskSample) (float64, int) {
	w := pathWalker{tasks: tasks, byKey: make(map[string][]int, len(tasks)), used: make([]bool, len(tasks))}
	for i := range tasks {
		w.byKey[tasks[i].Key] = append(w.byKey[tasks[i].Key], i)
	}
	var p path
	if def != nil {
		p, _ = w.list(def.Do, "")
	}
	for i, u := range w.used {
		if !u {
			p.ms += tasks[i].FunctionMs
			p.calls++
		}
	}
	return p.ms, p.calls
}

type path struct {
	ms    float64
	calls int
}

type pathWalker struct {
	tasks []TaskSample
	byKey map[string][]int
	used  []bool
}

// list walks a task list under the loop and retry marks inst; found says
// whether any call of the list ran.
func (w *pathWalker) list(l dsl.TaskList, inst string) (path, bool) {
	var sum path
	found := false
	for _, nt := range l {
		p, ok := w.task(nt.Task, inst)
		sum.ms += p.ms
		sum.calls += p.calls
		found = found || ok
	}
	return sum, found
}

func (w *pathWalker) task(t *dsl.Task, inst string) (path, bool) {
	switch t.Kind {
	case dsl.KindDo:
		return w.list(t.Do, inst)
	case dsl.KindFor:
		var sum path
		found := false
		// Iterations run one after another; an iteration in which no call
		// ran ends the walk, and calls of later ones are added as
		// unplaced, which is the same sum.
		for i := 0; i <= len(w.tasks); i++ {
			p, ok := w.list(t.For.Do, inst+"["+strconv.Itoa(i)+"]")
			if !ok {
				break
			}
			sum.ms += p.ms
			sum.calls += p.calls
			found = true
		}
		return sum, found
	case dsl.KindFork:
		var longest path
		found := false
		for _, b := range t.Fork.Branches {
			p, ok := w.task(b.Task, inst)
			if ok && (!found || p.ms > longest.ms) {
				longest = p
			}
			found = found || ok
		}
		return longest, found
	case dsl.KindTry:
		var sum path
		found := false
		for n := 1; n <= len(w.tasks)+1; n++ {
			attempt := inst
			if n > 1 {
				attempt += "#" + strconv.Itoa(n)
			}
			p, ok := w.list(t.Try.Try, attempt)
			if t.Try.Catch != nil {
				c, cok := w.list(t.Try.Catch.Do, attempt+"!")
				p.ms += c.ms
				p.calls += c.calls
				ok = ok || cok
			}
			if !ok && n > 1 {
				break
			}
			sum.ms += p.ms
			sum.calls += p.calls
			found = found || ok
		}
		return sum, found
	case dsl.KindCall, dsl.KindRun, dsl.KindEmit:
		var p path
		for _, i := range w.byKey[t.Ref+inst] {
			if !w.used[i] {
				w.used[i] = true
				p.ms += w.tasks[i].FunctionMs
				p.calls++
			}
		}
		return p, p.calls > 0
	}
	return path{}, false
}

// Dist summarises a distribution; values are milliseconds unless the
// field using it says otherwise.
type Dist struct {
	Count int     `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	Max   float64 `json:"max"`
}

// Summarize sorts values in place and summarises them. Percentiles are
// nearest-rank: the p-th percentile is the smallest value with at least
// p% of the values at or below it.
func Summarize(values []float64) Dist {
	if len(values) == 0 {
		return Dist{}
	}
	slices.Sort(values)
	sum := 0.0
	for _, v := range values {
		sum += v
	}
	return Dist{
		Count: len(values),
		Mean:  sum / float64(len(values)),
		P50:   Percentile(values, 50),
		P90:   Percentile(values, 90),
		P99:   Percentile(values, 99),
		P999:  Percentile(values, 99.9),
		Max:   values[len(values)-1],
	}
}

// Percentile is the nearest-rank percentile of sorted values.
func Percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }
