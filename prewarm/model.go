package prewarm

import (
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/batonflow/baton/dsl"
	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/function"
)

// builtinCalls are the call types of the DSL itself and the functions
// the engine answers itself (no instance serves them, so there is nothing
// to prepare, and a prepare would only look the name up in the function
// registry in vain); any other name that is not one of the document's
// use.functions is a Baton function.
var builtinCalls = map[string]bool{
	"http": true, "grpc": true, "openapi": true, "asyncapi": true, "a2a": true, "mcp": true,
	engine.FunctionNoop: true,
}

// Subflows resolves the workflow a `run: workflow` task starts, so that
// predictions can follow it; nil leaves subflows opaque (their observed
// duration still counts).
type Subflows func(namespace, name, version string) *dsl.Workflow

// Model is a workflow definition indexed for prediction: where each task
// sits, which Baton function each call task calls.
type Model struct {
	ID  string // namespace/name/version
	def *dsl.Workflow
	// frames locate every task by ref: its list and position, and the task
	// owning the list (nil for the top level).
	frames   map[string]frame
	tasks    map[string]*dsl.Task
	subflows Subflows
	// entries are the functions that can be the first Baton function an
	// invocation calls: no task of the workflow precedes them, so only
	// arrival patterns can predict them.
	entries map[string]bool
	// functions are every Baton function the workflow calls.
	functions map[string]bool
	// opaque: the workflow has tasks whose calls the index does not list
	// (a subflow's, a graph's nodes'), which a walk may still predict.
	opaque bool
}

// callsNothing reports whether no walk of the workflow can predict a
// call: it calls no Baton function, directly or through a subflow or
// graph. The planner then skips predicting after each of its tasks,
// which would cost a walk of the rest of the workflow for nothing.
func (m *Model) callsNothing() bool { return len(m.functions) == 0 && !m.opaque }

type frame struct {
	list  dsl.TaskList
	index int
	owner *dsl.Task
}

// Compile indexes a definition. subflows may be nil.
func Compile(def *dsl.Workflow, subflows Subflows) *Model {
	m := &Model{
		ID:        def.Document.Namespace + "/" + def.Document.Name + "/" + def.Document.Version,
		def:       def,
		frames:    map[string]frame{},
		tasks:     map[string]*dsl.Task{},
		subflows:  subflows,
		entries:   map[string]bool{},
		functions: map[string]bool{},
	}
	m.index(def.Do, nil)
	for _, p := range m.predict(nil, "", "", Defaults{}, predictLimits{lookahead: time.Hour, minProb: 1e-3, budget: 4096}, true) {
		m.entries[p.Function] = true
	}
	return m
}

func (m *Model) index(l dsl.TaskList, owner *dsl.Task) {
	for i, nt := range l {
		t := nt.Task
		m.frames[t.Ref] = frame{list: l, index: i, owner: owner}
		m.tasks[t.Ref] = t
		if fn, ok := m.batonFunction(t); ok {
			m.functions[fn] = true
		}
		switch t.Kind {
		case dsl.KindRun, dsl.KindGraph:
			m.opaque = true
		case dsl.KindDo:
			m.index(t.Do, t)
		case dsl.KindFor:
			m.index(t.For.Do, t)
		case dsl.KindFork:
			m.index(t.Fork.Branches, t)
		case dsl.KindTry:
			m.index(t.Try.Try, t)
			if t.Try.Catch != nil {
				m.index(t.Try.Catch.Do, t)
			}
		}
	}
}

// inFork reports whether a task runs beside others of its invocation: in
// a fork's branch, or as a node of a graph (which the model does not
// index). A prediction made from such a task does not cover its siblings.
func (m *Model) inFork(ref string) bool {
	for {
		fr, ok := m.frames[ref]
		if !ok {
			return true
		}
		if fr.owner == nil {
			return false
		}
		if fr.owner.Kind == dsl.KindFork || fr.owner.Kind == dsl.KindGraph {
			return true
		}
		ref = fr.owner.Ref
	}
}

// Function returns the Baton function a task calls, if it is such a call.
func (m *Model) Function(ref string) (string, bool) {
	t := m.tasks[ref]
	if t == nil {
		return "", false
	}
	return m.batonFunction(t)
}

func (m *Model) batonFunction(t *dsl.Task) (string, bool) {
	if t.Kind != dsl.KindCall || t.Call == nil {
		return "", false
	}
	name := t.Call.Function
	if builtinCalls[name] {
		return "", false
	}
	if m.def.Use != nil {
		if _, ok := m.def.Use.Functions[name]; ok {
			return "", false
		}
	}
	// The function a workflow calls is its own namespace's; the planner
	// prepares it by that reference.
	return function.Qualify(m.def.Document.Namespace, name), true
}

// Task returns the task at ref.
func (m *Model) Task(ref string) *dsl.Task { return m.tasks[ref] }

// IsEntry reports whether fn can be the first function an invocation of
// the workflow calls.
func (m *Model) IsEntry(fn string) bool { return m.entries[fn] }

// Prediction is an upcoming call of a function.
type Prediction struct {
	Function string
	// After is the expected time from the start of the observed task to
	// the call: the critical path of expected durations leading to it.
	After time.Duration
	// Prob is the probability that the invocation calls the function
	// within the lookahead.
	Prob float64
}

type predictLimits struct {
	lookahead time.Duration
	minProb   float64
	budget    int
}

// Predict lists the functions the invocation may call after the task at
// ref starts (the task's own call excluded), each with the earliest
// expected call time and the probability of a call, earliest first. inst
// is the task's activation key suffix (loop and retry marks), which tells
// how many loop iterations are done. With stats nil, every estimate is a
// default.
func (m *Model) Predict(ref, inst string, stats *Stats, def Defaults, lookahead time.Duration, minProb float64) []Prediction {
	return m.predict(stats, ref, inst, def, predictLimits{lookahead: lookahead, minProb: minProb, budget: 2048}, false)
}

// predict runs the walk; with fromStart it starts at the top of the
// workflow and reports only the first calls (the entries).
func (m *Model) predict(stats *Stats, ref, inst string, def Defaults, lim predictLimits, fromStart bool) []Prediction {
	if m.callsNothing() {
		return nil
	}
	if stats == nil {
		stats = NewStats()
	}
	stats.mu.Lock()
	defer stats.mu.Unlock()
	w := &walker{m: m, v: view{s: stats, workflow: m.ID, def: def}, lim: lim, out: map[string]*Prediction{}, firstOnly: fromStart, inst: inst}
	if fromStart || ref == "" {
		w.list(m.def.Do, 0, thread{p: 1})
	} else {
		t := m.tasks[ref]
		if t == nil {
			return nil
		}
		w.skip = t
		outs := w.task(t, thread{p: 1})
		w.skip = nil
		w.continueFrom(t, outs)
	}
	preds := make([]Prediction, 0, len(w.out))
	for _, p := range w.out {
		p.Prob = min(p.Prob, 1)
		preds = append(preds, *p)
	}
	sort.Slice(preds, func(i, j int) bool {
		if preds[i].After != preds[j].After {
			return preds[i].After < preds[j].After
		}
		return preds[i].Function < preds[j].Function
	})
	return preds
}

// thread is one possible course of the invocation: the time reached and
// its probability.
type thread struct {
	t time.Duration
	p float64
}

// outcome is how a thread leaves a list or task; ended means the
// workflow ended (then: end).
type outcome struct {
	thread
	ended bool
}

// maxLoopIterations bounds the iterations a for task is walked through;
// later ones are past any useful lookahead for prewarming.
const maxLoopIterations = 64

type walker struct {
	m     *Model
	v     view
	lim   predictLimits
	steps int
	out   map[string]*Prediction
	// skip is the observed task, whose own call is under way.
	skip *dsl.Task
	// firstOnly stops each thread at its first Baton function call.
	firstOnly bool
	depth     int
	// inst holds the observed activation's loop marks not yet matched to
	// an enclosing for task, innermost last.
	inst string
}

func (w *walker) record(fn string, th thread) {
	if th.t > w.lim.lookahead || th.p < w.lim.minProb {
		return
	}
	p := w.out[fn]
	if p == nil {
		w.out[fn] = &Prediction{Function: fn, After: th.t, Prob: th.p}
		return
	}
	// Paths reaching the same function are alternatives (switch cases) or
	// repetitions (loops): the chance of at least one call is at most the
	// sum, and the earliest is what prewarming must meet.
	p.Prob += th.p
	if th.t < p.After {
		p.After = th.t
	}
}

// live says whether a thread is still worth following.
func (w *walker) live(th thread) bool {
	return th.p >= w.lim.minProb && th.t <= w.lim.lookahead && w.steps < w.lim.budget
}

// list walks l from index i; it returns how threads leave the list.
func (w *walker) list(l dsl.TaskList, i int, th thread) []outcome {
	for i < len(l) {
		if !w.live(th) {
			return []outcome{{thread: th}}
		}
		w.steps++
		t := l[i].Task
		if t.Kind == dsl.KindSwitch {
			return w.switchCases(l, i, th)
		}
		outs := w.task(t, th)
		switch {
		case len(outs) == 0:
			return nil
		case len(outs) == 1 && !outs[0].ended:
			next, ended := nextIndex(l, i, t.Then)
			if ended {
				return []outcome{{thread: outs[0].thread, ended: true}}
			}
			i, th = next, outs[0].thread
			continue
		}
		var all []outcome
		for _, o := range outs {
			if o.ended {
				all = append(all, o)
				continue
			}
			next, ended := nextIndex(l, i, t.Then)
			if ended {
				all = append(all, outcome{thread: o.thread, ended: true})
				continue
			}
			all = append(all, w.list(l, next, o.thread)...)
		}
		return all
	}
	return []outcome{{thread: th}}
}

// switchCases forks the thread over the cases of the switch at l[i].
func (w *walker) switchCases(l dsl.TaskList, i int, th thread) []outcome {
	t := l[i].Task
	th.t += w.v.taskDuration(t.Ref)
	if len(t.Switch) == 0 {
		return w.list(l, i+1, th)
	}
	names := make([]string, len(t.Switch))
	for k, c := range t.Switch {
		names[k] = c.Name
	}
	odds := w.v.caseOdds(t.Ref, names)
	var all []outcome
	for k, c := range t.Switch {
		sub := thread{t: th.t, p: th.p * odds[k]}
		flow := c.Then
		if flow == "" {
			flow = t.Then
		}
		next, ended := nextIndex(l, i, flow)
		if ended {
			all = append(all, outcome{thread: sub, ended: true})
			continue
		}
		all = append(all, w.list(l, next, sub)...)
	}
	return all
}

// nextIndex resolves a flow directive after l[i]: the next index, or
// ended for `then: end`. An exit, or a name the list lacks, leaves the
// list (index len(l)).
func nextIndex(l dsl.TaskList, i int, flow string) (int, bool) {
	switch flow {
	case "", dsl.FlowContinue:
		return i + 1, false
	case dsl.FlowExit:
		return len(l), false
	case dsl.FlowEnd:
		return len(l), true
	}
	if j := l.Index(flow); j >= 0 {
		return j, false
	}
	return len(l), false
}

// task walks one task started at th and returns how it ends.
func (w *walker) task(t *dsl.Task, th thread) []outcome {
	switch t.Kind {
	case dsl.KindCall:
		if fn, ok := w.m.batonFunction(t); ok {
			if t != w.skip {
				w.record(fn, th)
				if w.firstOnly {
					return nil
				}
			}
			return []outcome{{thread: thread{t: th.t + w.v.callDuration(t.Ref, fn), p: th.p}}}
		}
		return []outcome{{thread: thread{t: th.t + w.v.taskDuration(t.Ref), p: th.p}}}
	case dsl.KindDo:
		return w.list(t.Do, 0, th)
	case dsl.KindSwitch:
		// A switch reached on its own (the observed task): its cases
		// continue in its list, which continueFrom walks.
		return []outcome{{thread: thread{t: th.t + w.v.taskDuration(t.Ref), p: th.p}}}
	case dsl.KindFor:
		return []outcome{{thread: w.loop(t, 0, th)}}
	case dsl.KindFork:
		return []outcome{{thread: w.fork(t, th)}}
	case dsl.KindTry:
		return []outcome{{thread: w.try(t, th, false)}}
	case dsl.KindWait:
		if t.Wait != nil {
			return []outcome{{thread: thread{t: th.t + t.Wait.D, p: th.p}}}
		}
	case dsl.KindRaise:
		// The thread fails here; a try around it is accounted for by its
		// catch odds.
		return nil
	case dsl.KindRun:
		if end, ok := w.subflow(t, th); ok {
			return []outcome{{thread: end}}
		}
	case dsl.KindGraph:
		return []outcome{{thread: w.graph(t, th)}}
	}
	return []outcome{{thread: thread{t: th.t + w.v.taskDuration(t.Ref), p: th.p}}}
}

// expected collapses outcomes into one thread at their expected time;
// the probability stays the caller's (a block that may take several
// courses still ends once).
func expected(outs []outcome, fallback thread) thread {
	sum, weight := 0.0, 0.0
	for _, o := range outs {
		sum += float64(o.t) * o.p
		weight += o.p
	}
	if weight == 0 {
		return fallback
	}
	return thread{t: time.Duration(sum / weight), p: fallback.p}
}

// loop walks a for task's iterations from iteration `from` on, each with
// the learned probability that the loop gets that far.
func (w *walker) loop(t *dsl.Task, from int, th thread) thread {
	surv := w.v.loopSurvival(t.Ref, maxLoopIterations)
	base := 1.0
	if from > 0 && from <= len(surv) {
		base = surv[from-1]
	}
	cur := th
	for k := from; k < len(surv) && base > 0; k++ {
		pk := surv[k] / base
		if pk <= 0 {
			break
		}
		it := thread{t: cur.t, p: th.p * min(pk, 1)}
		if !w.live(it) {
			break
		}
		end := expected(w.list(t.For.Do, 0, it), it)
		// The loop's expected end advances by this iteration's time
		// weighted by the chance that it runs.
		cur.t += time.Duration(float64(end.t-cur.t) * min(pk, 1))
	}
	return cur
}

func (w *walker) fork(t *dsl.Task, th thread) thread {
	end := th
	first := true
	for _, b := range t.Fork.Branches {
		e := expected(w.task(b.Task, th), th)
		switch {
		case first:
			end, first = e, false
		case t.Fork.Compete && e.t < end.t:
			end = e
		case !t.Fork.Compete && e.t > end.t:
			end = e
		}
	}
	end.p = th.p
	return end
}

// try walks a try block and, with the learned odds, its catch block.
// inCatch starts in the catch block (the observed task is in it).
func (w *walker) try(t *dsl.Task, th thread, inCatch bool) thread {
	end := th
	if !inCatch {
		end = expected(w.list(t.Try.Try, 0, th), th)
	}
	if t.Try.Catch == nil || len(t.Try.Catch.Do) == 0 {
		return end
	}
	q := w.v.catchOdds(t.Ref)
	if q <= 0 {
		return end
	}
	c := thread{t: end.t, p: th.p * q}
	if !w.live(c) {
		return end
	}
	cend := expected(w.list(t.Try.Catch.Do, 0, c), c)
	end.t += time.Duration(float64(cend.t-end.t) * q)
	return end
}

// subflow follows `run: workflow` into the child's definition when it can
// be resolved.
func (w *walker) subflow(t *dsl.Task, th thread) (thread, bool) {
	if w.m.subflows == nil || t.Run == nil || t.Run.Kind != "workflow" || w.depth > 4 {
		return thread{}, false
	}
	str := func(k string) string { s, _ := t.Run.Spec[k].(string); return s }
	child := w.m.subflows(str("namespace"), str("name"), str("version"))
	if child == nil {
		return thread{}, false
	}
	cm := Compile(child, w.m.subflows)
	sub := &walker{m: cm, v: view{s: w.v.s, workflow: cm.ID, def: w.v.def}, lim: w.lim, out: w.out, depth: w.depth + 1, steps: w.steps}
	end := expected(sub.list(child.Do, 0, th), th)
	w.steps = sub.steps
	return end, true
}

// graph walks a dependency graph (the Fission language): a node starts
// when the nodes it requires have ended.
func (w *walker) graph(t *dsl.Task, th thread) thread {
	if t.Graph == nil {
		return th
	}
	ends := map[string]time.Duration{}
	var last time.Duration = th.t
	for range t.Graph.Nodes { // at most len(nodes) rounds resolve any DAG
		progress := false
		for _, n := range t.Graph.Nodes {
			if _, done := ends[n.ID]; done {
				continue
			}
			start, ready := th.t, true
			for _, r := range n.Requires {
				e, ok := ends[r]
				if !ok {
					ready = false
					break
				}
				start = max(start, e)
			}
			if !ready {
				continue
			}
			ref := t.Ref + "/" + n.ID
			d := w.v.taskDuration(ref)
			if n.Run != "" && !strings.Contains(n.Run, "://") && !builtinCalls[n.Run] {
				w.record(n.Run, thread{t: start, p: th.p})
				d = w.v.callDuration(ref, n.Run)
			}
			ends[n.ID] = start + d
			last = max(last, start+d)
			progress = true
		}
		if !progress {
			break
		}
	}
	return thread{t: last, p: th.p}
}

// continueFrom walks on from the end of the observed task: the rest of
// its list, then the rest of each enclosing block, up to the workflow's
// end.
func (w *walker) continueFrom(t *dsl.Task, outs []outcome) {
	for {
		fr, ok := w.m.frames[t.Ref]
		if !ok {
			return
		}
		var next []outcome
		for _, o := range outs {
			if o.ended {
				continue
			}
			if t.Kind == dsl.KindSwitch {
				next = append(next, w.switchCases(fr.list, fr.index, thread{t: o.t - w.v.taskDuration(t.Ref), p: o.p})...)
				continue
			}
			i, ended := nextIndex(fr.list, fr.index, t.Then)
			if ended {
				continue
			}
			next = append(next, w.list(fr.list, i, o.thread)...)
		}
		owner := fr.owner
		if owner == nil || len(next) == 0 {
			return
		}
		// The owner's remaining work after its list: more iterations of a
		// loop, the catch block of a try. Threads collapse into one at the
		// owner's boundary, as in the forward walk.
		end := expected(next, thread{p: maxProb(next)})
		switch owner.Kind {
		case dsl.KindFor:
			end = w.loop(owner, w.popIteration()+1, end)
		case dsl.KindTry:
			// After the try block the catch block may run; after the
			// catch block, nothing more of the try does.
			if sameList(fr.list, owner.Try.Try) {
				end = w.try(owner, end, true)
			}
		}
		outs = []outcome{{thread: end}}
		t = owner
	}
}

func maxProb(outs []outcome) float64 {
	p := 0.0
	for _, o := range outs {
		p = max(p, o.p)
	}
	return p
}

func sameList(a, b dsl.TaskList) bool {
	return len(a) > 0 && len(b) > 0 && a[0] == b[0]
}

// popIteration returns the innermost loop iteration marked in the
// observed activation ("[3]": the fourth) and forgets it, so that the next
// enclosing loop reads its own mark; 0 when there is none.
func (w *walker) popIteration() int {
	i := strings.LastIndexByte(w.inst, '[')
	if i < 0 {
		return 0
	}
	rest := w.inst[i+1:]
	w.inst = w.inst[:i]
	j := strings.IndexByte(rest, ']')
	if j < 0 {
		return 0
	}
	n, err := strconv.Atoi(rest[:j])
	if err != nil {
		return 0
	}
	return n
}
