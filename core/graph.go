package core

import (
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/batonflow/baton/dsl"
	"github.com/batonflow/baton/expr/js"
	"github.com/batonflow/baton/problem"
)

// This file runs dsl.KindGraph tasks: the dependency graphs that the
// Fission Workflows language is made of. A node starts as soon as every
// node it requires has completed, so independent nodes run in parallel. A
// node runs a function: a built-in one, which the machine computes itself
// (noop, compose, if, switch, foreach, while, repeat, sleep, javascript,
// fail), or an external one, which becomes a Call. When a node's output
// is itself a task or a workflow (an inline task that `if` picked, say) it
// is run in the node's place and its output becomes the node's.
//
// Every activation is addressed below the graph task's key: a node by its
// id (/tasks/A), what runs in a node's place by "/$" (/tasks/A/$), a loop's
// iterations by their index (/tasks/A/3) and an inline workflow's nodes by
// their ids below that. Replay therefore finds each recorded call and timer
// again. Nodes start in declaration order; nothing depends on map order.

// Statuses of $.Tasks.<id>.Status, as Fission Workflows spelled them.
const (
	nodeScheduled  = "SCHEDULED"
	nodeInProgress = "IN_PROGRESS"
	nodeSucceeded  = "SUCCEEDED"
	nodeFailed     = "FAILED"
)

// maxDynamicDepth bounds how often an output may be replaced by the output
// of the task it describes, which stops a function that keeps returning
// tasks from growing the key without end.
const maxDynamicDepth = 64

// graphEnv is what every graph of one invocation shares: the JavaScript
// evaluator and the invocation's part of the expression scope.
type graphEnv struct {
	js         *js.Evaluator
	workflow   map[string]any
	invocation map[string]any
}

// graphRun is one execution of a graph: the document's, or an inline
// workflow run in a node's place. Expressions see the task states of the
// runs around it too, the inner ones shadowing the outer ones.
type graphRun struct {
	env    *graphEnv
	owner  *act
	g      *dsl.GraphTask
	prefix string // key prefix of the nodes: owner's key, or below it
	outer  *graphRun

	states  map[string]map[string]any // id → {Inputs, Output, OutputHeaders, Status}
	started map[string]bool
	done    map[string]bool
	left    int
	k       func(out, headers any, err *problem.Problem)
}

// fexec is the activation of one function run: a node, something run in a
// node's place, or a loop iteration. Its output headers travel beside the
// output, which the act's continuation does not carry.
type fexec struct {
	a       *act
	run     *graphRun // whose task states expressions see
	id      string    // task id that taskId names
	self    map[string]any
	headers any
	depth   int
}

func (x *fexec) succeed(out, headers any) {
	x.headers = headers
	x.a.done(out, "")
}

func (x *fexec) fail(p *problem.Problem) { x.a.fail(p) }

// runGraph runs a KindGraph task.
func (m *Machine) runGraph(a *act) {
	if m.opts.JS == nil {
		m.opts.JS = js.NewEvaluator(0)
	}
	env := &graphEnv{
		js:         m.opts.JS,
		workflow:   m.fissionWorkflow(a.task.Graph),
		invocation: m.fissionInvocation(a.input),
	}
	m.startGraph(env, a, a.task.Graph, a.key, nil, func(out, _ any, err *problem.Problem) {
		if err != nil {
			a.fail(err)
			return
		}
		a.done(out, "")
	})
}

// fissionWorkflow is $.Workflow.
func (m *Machine) fissionWorkflow(g *dsl.GraphTask) map[string]any {
	d := m.def.Document
	tasks := make(map[string]any, len(g.Nodes))
	for _, n := range g.Nodes {
		tasks[n.ID] = map[string]any{"Src": n.Run, "Runtime": runtimeOf(n.Run), "Resolved": n.Run}
	}
	return map[string]any{
		"Id":        d.Namespace + "/" + d.Name + "@" + d.Version,
		"Name":      d.Name,
		"Namespace": d.Namespace,
		"Version":   d.Version,
		"CreatedAt": float64(m.startedAt.Unix()),
		"UpdatedAt": float64(m.startedAt.Unix()),
		"Status":    "READY",
		"Tasks":     tasks,
	}
}

// fissionInvocation is $.Invocation. A Fission invocation's inputs are the
// request's body (`default`) and its metadata; a Baton invocation has one
// JSON input. An object input gives its keys, plus `default` holding the
// whole object unless it has a `default` of its own; any other input is
// `default`.
func (m *Machine) fissionInvocation(input any) map[string]any {
	inputs := map[string]any{}
	if obj, ok := input.(map[string]any); ok {
		for k, v := range obj {
			inputs[k] = v
		}
		if _, has := obj["default"]; !has {
			inputs["default"] = input
		}
	} else if input != nil {
		inputs["default"] = input
	}
	return map[string]any{
		"Id":        m.opts.ID,
		"CreatedAt": float64(m.startedAt.Unix()),
		"UpdatedAt": float64(m.startedAt.Unix()),
		"Inputs":    inputs,
	}
}

func runtimeOf(run string) string {
	switch {
	case strings.HasPrefix(run, "fission://"):
		return "fission"
	case builtins[run]:
		return "internal"
	}
	return "baton"
}

// builtins are the functions the machine computes itself (http is here
// because its inputs are translated; the driver makes the request).
var builtins = map[string]bool{
	"noop": true, "nop": true, "compose": true, "if": true, "switch": true, "foreach": true,
	"while": true, "repeat": true, "sleep": true, "javascript": true, "fail": true, "http": true,
}

func (m *Machine) startGraph(env *graphEnv, owner *act, g *dsl.GraphTask, prefix string, outer *graphRun, k func(out, headers any, err *problem.Problem)) {
	r := &graphRun{
		env: env, owner: owner, g: g, prefix: prefix, outer: outer,
		states:  make(map[string]map[string]any, len(g.Nodes)),
		started: make(map[string]bool, len(g.Nodes)),
		done:    make(map[string]bool, len(g.Nodes)),
		left:    len(g.Nodes),
		k:       k,
	}
	for _, n := range g.Nodes {
		r.states[n.ID] = map[string]any{"Inputs": n.Inputs, "Status": nodeScheduled}
	}
	if r.left == 0 {
		m.enqueue(func() { k(nil, nil, nil) })
		return
	}
	m.enqueue(func() { m.scheduleReady(r) })
}

// scheduleReady starts, in declaration order, every node whose
// requirements have all completed.
func (m *Machine) scheduleReady(r *graphRun) {
	if r.owner.closed {
		return
	}
	for _, n := range r.g.Nodes {
		if r.started[n.ID] || !r.ready(n) {
			continue
		}
		r.started[n.ID] = true
		m.enqueue(func() { m.startNode(r, n) })
	}
}

func (r *graphRun) ready(n *dsl.GraphNode) bool {
	for _, req := range n.Requires {
		if !r.done[req] {
			return false
		}
	}
	return true
}

func (m *Machine) startNode(r *graphRun, n *dsl.GraphNode) {
	if r.owner.closed {
		return
	}
	key := r.prefix + "/" + escapeToken(n.ID)
	state := r.states[n.ID]
	state["Status"] = nodeInProgress
	x := m.newExec(r.owner, r, key, n.ID, n.Inputs, 0, func(out, headers any, err *problem.Problem) {
		if r.owner.closed {
			return
		}
		if err != nil {
			state["Status"] = nodeFailed
			r.k(nil, nil, err)
			return
		}
		state["Output"], state["OutputHeaders"], state["Status"] = out, headers, nodeSucceeded
		r.done[n.ID] = true
		r.left--
		if r.left == 0 {
			final := r.states[r.g.Output]
			r.k(final["Output"], final["OutputHeaders"], nil)
			return
		}
		m.scheduleReady(r)
	})
	// The node's state is what $.Tasks.<id> shows, including the inputs
	// as they resolve.
	x.self = state
	m.runFunction(x, n.Run, n.Inputs)
}

// newExec opens an activation for one function run below parent.
func (m *Machine) newExec(parent *act, run *graphRun, key, id string, rawInputs map[string]any, depth int, k func(out, headers any, err *problem.Problem)) *fexec {
	x := &fexec{run: run, id: id, depth: depth, self: map[string]any{"Inputs": rawInputs, "Status": nodeInProgress}}
	task := &dsl.Task{Kind: dsl.KindGraph, Ref: key}
	x.a = &act{
		m: m, key: key, ref: key, name: id, task: task, parent: parent,
		inst: parent.inst, scope: parent.scope, attempt: parent.attempt,
		rawInput: rawInputs, input: rawInputs, startedAt: m.now,
		k: func(out any, _ string, err *problem.Problem) { k(out, x.headers, err) },
	}
	if x.a.attempt == 0 {
		x.a.attempt = 1
	}
	parent.adopt(x.a)
	if o := m.opts.Observer; o != nil {
		o.TaskStarted(key, key, id, m.now)
	}
	return x
}

// runFunction resolves a run's inputs and runs its function; an output that
// is a task or a workflow is then run in the function's place.
func (m *Machine) runFunction(x *fexec, run string, rawInputs map[string]any) {
	inputs, err := m.resolveInputs(x, run, rawInputs)
	if err != nil {
		x.fail(err)
		return
	}
	x.a.input = inputs
	finish := func(out, headers any) {
		if dsl.IsGraphTaskData(out) || dsl.IsGraphWorkflowData(out) {
			m.runDynamic(x, out)
			return
		}
		x.succeed(out, headers)
	}
	switch run {
	case "noop", "nop":
		finish(inputs["default"], nil)
	case "compose":
		finish(compose(inputs), nil)
	case "if":
		if js.Truthy(inputs["if"]) {
			finish(inputs["then"], nil)
		} else {
			finish(inputs["else"], nil)
		}
	case "switch":
		out, p := switchCase(inputs)
		if p != nil {
			x.fail(p)
			return
		}
		finish(out, nil)
	case "foreach":
		m.runForeach(x, inputs)
	case "while":
		m.runWhile(x, inputs, 0, inputs["_prev"])
	case "repeat":
		m.runRepeat(x, inputs)
	case "sleep":
		d, p := sleepDuration(inputs["default"])
		if p != nil {
			x.fail(p)
			return
		}
		m.startTimer(x.a, x.a.key, d, func() { x.succeed(nil, nil) })
	case "javascript":
		out, p := m.runJavaScript(x, inputs)
		if p != nil {
			x.fail(p)
			return
		}
		finish(out, nil)
	case "fail":
		msg := "the workflow failed"
		if s, ok := inputs["default"].(string); ok && s != "" {
			msg = s
		} else if v := inputs["default"]; v != nil {
			msg = toJSONText(v)
		}
		x.fail(problem.Runtime("%s", msg))
	case "http":
		args, p := httpArgs(inputs)
		if p != nil {
			x.fail(p)
			return
		}
		m.graphCall(x, "http", args, nil, finish)
	default:
		if ref, ok := strings.CutPrefix(run, "fission://"); ok {
			args, p := fissionArgs(ref, inputs)
			if p != nil {
				x.fail(p)
				return
			}
			m.graphCall(x, "fission", args, nil, finish)
			return
		}
		m.graphCall(x, run, inputs, inputs["default"], finish)
	}
}

// runDynamic runs a task or workflow that an output described, in the place
// of the run that produced it.
func (m *Machine) runDynamic(x *fexec, spec any) {
	if x.depth >= maxDynamicDepth {
		x.fail(problem.Runtime("outputs were replaced by the tasks they describe %d times in a row; a function probably returns itself", maxDynamicDepth))
		return
	}
	key := x.a.key + "/$"
	m.runSpec(x, key, x.id, spec, nil, x.depth+1, func(out, headers any, err *problem.Problem) {
		if err != nil {
			x.fail(err)
			return
		}
		x.succeed(out, headers)
	})
}

// runSpec runs inline task or workflow data under owner x at key, with
// extra inputs (a loop's _item, _prev) added to the task, or to every task
// of the workflow.
func (m *Machine) runSpec(x *fexec, key, id string, spec any, extra map[string]any, depth int, k func(out, headers any, err *problem.Problem)) {
	switch {
	case dsl.IsGraphTaskData(spec):
		node, err := dsl.GraphNodeFromData(id, spec)
		if err != nil {
			k(nil, nil, problem.Configuration("%v", err).At(key))
			return
		}
		inputs := withExtra(node.Inputs, extra)
		child := m.newExec(x.a, x.run, key, id, inputs, depth, k)
		m.runFunction(child, node.Run, inputs)
	case dsl.IsGraphWorkflowData(spec):
		g, err := dsl.GraphFromData(spec)
		if err != nil {
			k(nil, nil, problem.Configuration("inline workflow: %v", err).At(key))
			return
		}
		if len(extra) > 0 {
			nodes := make([]*dsl.GraphNode, len(g.Nodes))
			for i, n := range g.Nodes {
				c := *n
				c.Inputs = withExtra(n.Inputs, extra)
				nodes[i] = &c
			}
			g = &dsl.GraphTask{Nodes: nodes, Output: g.Output}
		}
		m.startGraph(x.run.env, x.a, g, key, x.run, k)
	default:
		k(nil, nil, problem.Configuration("expected a task (an object with run) or a workflow (an object with tasks), got %s", typeName(spec)).At(key))
	}
}

func withExtra(inputs, extra map[string]any) map[string]any {
	if len(extra) == 0 {
		return inputs
	}
	out := make(map[string]any, len(inputs)+len(extra))
	for k, v := range inputs {
		out[k] = v
	}
	for k, v := range extra {
		out[k] = v
	}
	return out
}

// graphCall hands a function to the driver. The output of http and
// fission calls is a response envelope, split here into the output and the
// headers that outputHeaders() returns.
func (m *Machine) graphCall(x *fexec, function string, args map[string]any, input any, finish func(out, headers any)) {
	a := x.a
	c := &Call{
		Task: a.key, Ref: a.ref, Name: a.name, Attempt: a.attempt,
		Function: function, Args: args, Input: input,
	}
	m.calls[a.key] = &pendingCall{owner: a, deliver: func(out any, err *problem.Problem) {
		if err != nil {
			a.fail(err)
			return
		}
		if function == "http" || function == "fission" {
			if env, ok := out.(map[string]any); ok {
				if _, has := env["statusCode"]; has {
					finish(env["content"], env["headers"])
					return
				}
			}
		}
		finish(out, nil)
	}}
	a.calls = append(a.calls, a.key)
	m.emit(c)
}

// resolveInputs evaluates the `{ ... }` expressions in a run's inputs.
// Inputs whose names start with an underscore (_item, _prev: what loops
// inject) resolve first, then the others by name, and task().Inputs shows
// each one resolved as soon as it is. Inline tasks and workflows are left
// as they are: they resolve when they run. The condition of while and the
// code of javascript are not expressions of the task but programs the
// function runs itself.
func (m *Machine) resolveInputs(x *fexec, run string, raw map[string]any) (map[string]any, *problem.Problem) {
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		pi, pj := strings.HasPrefix(keys[i], "_"), strings.HasPrefix(keys[j], "_")
		if pi != pj {
			return pi
		}
		return keys[i] < keys[j]
	})
	resolved := make(map[string]any, len(raw))
	for k, v := range raw {
		resolved[k] = v
	}
	x.self["Inputs"] = resolved
	scope := m.jsScope(x)
	for _, k := range keys {
		if k == "expr" && (run == "while" || run == "javascript") {
			continue
		}
		v, err := m.resolveValue(x, scope, raw[k])
		if err != nil {
			return nil, problem.Expression("inputs.%s: %v", k, err).At(x.a.key)
		}
		resolved[k] = v
	}
	return resolved, nil
}

func (m *Machine) resolveValue(x *fexec, scope *js.Scope, v any) (any, error) {
	switch t := v.(type) {
	case string:
		src, ok := js.Unwrap(t)
		if !ok {
			return t, nil
		}
		scope.Tasks = x.run.tasks()
		scope.Current = x.self
		return x.run.env.js.Eval(src, scope)
	case map[string]any:
		if dsl.IsGraphTaskData(t) || dsl.IsGraphWorkflowData(t) {
			return t, nil
		}
		out := make(map[string]any, len(t))
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			e, err := m.resolveValue(x, scope, t[k])
			if err != nil {
				return nil, err
			}
			out[k] = e
		}
		return out, nil
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			r, err := m.resolveValue(x, scope, e)
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	}
	return v, nil
}

// jsScope is the scope of a run's expressions. Its uid() sequence is seeded
// by the invocation and the run's key, so replay yields the same ids.
func (m *Machine) jsScope(x *fexec) *js.Scope {
	return &js.Scope{
		Workflow:   x.run.env.workflow,
		Invocation: x.run.env.invocation,
		Tasks:      x.run.tasks(),
		Current:    x.self,
		CurrentID:  x.id,
		Seed:       m.opts.ID + "\x00" + x.a.key,
	}
}

// tasks is $.Tasks: the states of this run's nodes over those of the runs
// around it.
func (r *graphRun) tasks() map[string]any {
	out := map[string]any{}
	var chain []*graphRun
	for g := r; g != nil; g = g.outer {
		chain = append(chain, g)
	}
	for i := len(chain) - 1; i >= 0; i-- {
		for id, s := range chain[i].states {
			out[id] = s
		}
	}
	return out
}

// loopInputs are the inputs that foreach, while and repeat inject into
// their body; compose leaves them out of what it merges.
var loopInputs = map[string]bool{"_item": true, "_index": true, "_prev": true, "_count": true}

// compose returns its single default input as it is, or merges all inputs
// into one object.
func compose(inputs map[string]any) any {
	out := make(map[string]any, len(inputs))
	for k, v := range inputs {
		if !loopInputs[k] {
			out[k] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	if d, ok := out["default"]; ok && len(out) == 1 {
		return d
	}
	return out
}

// switchCase picks the action of the case equal to the switch value, or
// the default.
func switchCase(inputs map[string]any) (any, *problem.Problem) {
	sv, has := inputs["switch"]
	if !has {
		return nil, problem.Configuration("switch requires the input switch")
	}
	key, ok := sv.(string)
	if !ok {
		key = toJSONText(sv)
	}
	if cases, has := inputs["cases"]; has && cases != nil {
		list, ok := cases.([]any)
		if !ok {
			return nil, problem.Configuration("switch: cases must be a list of {case, action}, got %s", typeName(cases))
		}
		for i, c := range list {
			cm, ok := c.(map[string]any)
			if !ok {
				return nil, problem.Configuration("switch: cases[%d] must be an object with case and action", i)
			}
			ck, ok := cm["case"].(string)
			if !ok {
				if cm["case"] == nil {
					return nil, problem.Configuration("switch: cases[%d] has no case", i)
				}
				ck = toJSONText(cm["case"])
			}
			if ck == key {
				return cm["action"], nil
			}
		}
	}
	return inputs["default"], nil
}

func sleepDuration(v any) (time.Duration, *problem.Problem) {
	switch d := v.(type) {
	case nil:
		return time.Second, nil
	case string:
		parsed, err := time.ParseDuration(strings.TrimSpace(d))
		if err != nil {
			return 0, problem.Configuration("sleep: %q is not a duration such as 1h10m or 300ms", d)
		}
		return parsed, nil
	case float64:
		// A bare number counts milliseconds, as Fission's sleep did.
		return time.Duration(d * float64(time.Millisecond)), nil
	}
	return 0, problem.Configuration("sleep: the duration must be a string such as 1h10m, got %s", typeName(v))
}

func (m *Machine) runJavaScript(x *fexec, inputs map[string]any) (any, *problem.Problem) {
	src, ok := inputs["expr"].(string)
	if !ok {
		return nil, problem.Configuration("javascript requires the input expr, a string of JavaScript")
	}
	if inner, wrapped := js.Unwrap(src); wrapped {
		src = inner
	}
	scope := m.jsScope(x)
	switch args := inputs["args"].(type) {
	case nil:
	case map[string]any:
		scope.Vars = args
	default:
		// A single value is the argument `arg`.
		scope.Vars = map[string]any{"arg": args}
	}
	out, err := x.run.env.js.Eval(src, scope)
	if err != nil {
		return nil, problem.Expression("javascript: %v", err).At(x.a.key)
	}
	return out, nil
}

// loopBody is the `do` of foreach, while and repeat.
func loopBody(name string, inputs map[string]any) (any, *problem.Problem) {
	do := inputs["do"]
	if !dsl.IsGraphTaskData(do) && !dsl.IsGraphWorkflowData(do) {
		return nil, problem.Configuration("%s requires the input do, a task (an object with run) or a workflow (an object with tasks)", name)
	}
	return do, nil
}

func boolInput(inputs map[string]any, name string, def bool) (bool, *problem.Problem) {
	switch v := inputs[name].(type) {
	case nil:
		return def, nil
	case bool:
		return v, nil
	case string:
		b, err := strconv.ParseBool(v)
		if err == nil {
			return b, nil
		}
	}
	return false, problem.Configuration("%s must be a boolean, got %s", name, typeName(inputs[name]))
}

func numberInput(inputs map[string]any, name string) (int, bool, *problem.Problem) {
	switch v := inputs[name].(type) {
	case nil:
		return 0, false, nil
	case float64:
		return int(v), true, nil
	case string:
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err == nil {
			return n, true, nil
		}
	}
	return 0, false, problem.Configuration("%s must be a number, got %s", name, typeName(inputs[name]))
}

// runForeach runs do once per element, handing the element as _item (and
// its position as _index): in parallel unless sequential, collecting the
// outputs in order unless collect is false.
func (m *Machine) runForeach(x *fexec, inputs map[string]any) {
	var list any
	for _, name := range []string{"foreach", "for", "default"} {
		if v, ok := inputs[name]; ok {
			list = v
			break
		}
	}
	var items []any
	switch l := list.(type) {
	case nil:
	case []any:
		items = l
	default:
		x.fail(problem.Configuration("foreach: the list to loop over must be a list, got %s", typeName(list)))
		return
	}
	do, p := loopBody("foreach", inputs)
	if p != nil {
		x.fail(p)
		return
	}
	sequential, p := boolInput(inputs, "sequential", false)
	if p != nil {
		x.fail(p)
		return
	}
	collect, p := boolInput(inputs, "collect", true)
	if p != nil {
		x.fail(p)
		return
	}
	outs := make([]any, len(items))
	result := func() {
		if collect {
			x.succeed(outs, nil)
		} else {
			x.succeed(nil, nil)
		}
	}
	if len(items) == 0 {
		result()
		return
	}
	iteration := func(i int, k func(out, headers any, err *problem.Problem)) {
		extra := map[string]any{"_item": items[i], "_index": float64(i)}
		m.runSpec(x, x.a.key+"/"+strconv.Itoa(i), x.id, do, extra, x.depth, k)
	}
	if sequential {
		var step func(i int)
		step = func(i int) {
			if x.a.closed {
				return
			}
			if i == len(items) {
				result()
				return
			}
			iteration(i, func(out, _ any, err *problem.Problem) {
				if err != nil {
					x.fail(err)
					return
				}
				outs[i] = out
				m.enqueue(func() { step(i + 1) })
			})
		}
		step(0)
		return
	}
	left := len(items)
	for i := range items {
		m.enqueue(func() {
			if x.a.closed {
				return
			}
			iteration(i, func(out, _ any, err *problem.Problem) {
				if x.a.closed {
					return
				}
				if err != nil {
					x.fail(err)
					return
				}
				outs[i] = out
				left--
				if left == 0 {
					result()
				}
			})
		})
	}
}

// runWhile runs do while expr holds, at most limit times, waiting delay
// before each run. expr sees the previous output as task().Inputs._prev
// and the number of runs so far as _count; so does do. The output is the
// last run's output.
func (m *Machine) runWhile(x *fexec, inputs map[string]any, count int, prev any) {
	if x.a.closed {
		return
	}
	exprSrc, ok := inputs["expr"]
	if !ok {
		x.fail(problem.Configuration("while requires the input expr, the condition"))
		return
	}
	do, p := loopBody("while", inputs)
	if p != nil {
		x.fail(p)
		return
	}
	limit, hasLimit, p := numberInput(inputs, "limit")
	if p != nil {
		x.fail(p)
		return
	}
	var delay time.Duration
	if v, has := inputs["delay"]; has && v != nil {
		if delay, p = sleepDuration(v); p != nil {
			x.fail(problem.Configuration("while: delay: %s", p.Detail))
			return
		}
	}
	// The condition sees the loop's state through the task's own inputs.
	current := x.self["Inputs"].(map[string]any)
	current["_prev"], current["_count"] = prev, float64(count)
	holds := js.Truthy(exprSrc)
	if s, isString := exprSrc.(string); isString {
		src, _ := js.Unwrap(s)
		v, err := x.run.env.js.Eval(src, m.jsScope(x))
		if err != nil {
			x.fail(problem.Expression("while: expr: %v", err).At(x.a.key))
			return
		}
		holds = js.Truthy(v)
	}
	if !holds {
		x.succeed(prev, nil)
		return
	}
	if hasLimit && count >= limit {
		x.fail(problem.Runtime("while: the loop ran its limit of %d iterations and its condition still holds", limit).At(x.a.key))
		return
	}
	iterKey := x.a.key + "/" + strconv.Itoa(count)
	body := func() {
		extra := map[string]any{"_prev": prev, "_count": float64(count)}
		m.runSpec(x, iterKey, x.id, do, extra, x.depth, func(out, _ any, err *problem.Problem) {
			if err != nil {
				x.fail(err)
				return
			}
			m.enqueue(func() { m.runWhile(x, inputs, count+1, out) })
		})
	}
	if delay > 0 {
		m.startTimer(x.a, iterKey+"#delay", delay, body)
		return
	}
	body()
}

// runRepeat runs do `times` times in sequence; each run but the first gets
// the previous output as _prev (the first keeps the _prev it declares).
// The output is the last run's output.
func (m *Machine) runRepeat(x *fexec, inputs map[string]any) {
	times, has, p := numberInput(inputs, "times")
	if p != nil {
		x.fail(p)
		return
	}
	if !has {
		x.fail(problem.Configuration("repeat requires the input times"))
		return
	}
	do, p := loopBody("repeat", inputs)
	if p != nil {
		x.fail(p)
		return
	}
	var step func(i int, prev any)
	step = func(i int, prev any) {
		if x.a.closed {
			return
		}
		if i >= times {
			x.succeed(prev, nil)
			return
		}
		var extra map[string]any
		if i > 0 {
			extra = map[string]any{"_prev": prev}
		}
		m.runSpec(x, x.a.key+"/"+strconv.Itoa(i), x.id, do, extra, x.depth, func(out, _ any, err *problem.Problem) {
			if err != nil {
				x.fail(err)
				return
			}
			m.enqueue(func() { step(i+1, out) })
		})
	}
	step(0, nil)
}

// httpArgs maps the http function's inputs onto the arguments of Baton's
// `call: http`, asking for the whole response so that its headers reach
// outputHeaders().
func httpArgs(inputs map[string]any) (map[string]any, *problem.Problem) {
	url, _ := inputs["url"].(string)
	if url == "" {
		url, _ = inputs["uri"].(string)
	}
	body, hasBody := inputs["body"]
	if url == "" {
		// Fission's http takes its URL as the default input; when a URL
		// is named, the default input is the body.
		url, _ = inputs["default"].(string)
	} else if !hasBody {
		body, hasBody = inputs["default"]
	}
	if url == "" {
		return nil, problem.Configuration("http requires the input url (or a default input holding the URL)")
	}
	args := map[string]any{"method": "GET", "endpoint": url, "output": "response"}
	if method, ok := inputs["method"].(string); ok && method != "" {
		args["method"] = strings.ToUpper(method)
	}
	headers := requestHeaders(inputs, body)
	if len(headers) > 0 {
		args["headers"] = headers
	}
	if q, ok := inputs["query"].(map[string]any); ok {
		args["query"] = q
	}
	if hasBody && body != nil {
		args["body"] = body
	}
	return args, nil
}

// requestHeaders are the headers input plus a Content-Type from the
// content-type input or, as Fission inferred it, text/plain for a string
// body.
func requestHeaders(inputs map[string]any, body any) map[string]any {
	headers := map[string]any{}
	if h, ok := inputs["headers"].(map[string]any); ok {
		for k, v := range h {
			headers[k] = v
		}
	}
	hasContentType := false
	for k := range headers {
		if strings.EqualFold(k, "Content-Type") {
			hasContentType = true
		}
	}
	if ct, ok := inputs["content-type"].(string); ok && ct != "" && !hasContentType {
		headers["Content-Type"] = ct
		hasContentType = true
	}
	if _, isString := body.(string); isString && !hasContentType {
		headers["Content-Type"] = "text/plain"
	}
	return headers
}

// fissionArgs are the arguments of a call of a Fission function, which the
// driver's "fission" executor sends to the Fission router.
func fissionArgs(ref string, inputs map[string]any) (map[string]any, *problem.Problem) {
	parts := strings.Split(ref, "/")
	var namespace, name string
	switch {
	case len(parts) == 1 && parts[0] != "":
		namespace, name = "default", parts[0]
	case len(parts) == 2 && parts[0] != "" && parts[1] != "":
		namespace, name = parts[0], parts[1]
	default:
		return nil, problem.Configuration("fission://%s is not a reference of the form fission://NAME or fission://NAMESPACE/NAME", ref)
	}
	body, hasBody := inputs["body"]
	if !hasBody {
		body = inputs["default"]
	}
	args := map[string]any{"namespace": namespace, "name": name, "method": "GET"}
	if method, ok := inputs["method"].(string); ok && method != "" {
		args["method"] = strings.ToUpper(method)
	} else if body != nil {
		args["method"] = "POST"
	}
	if body != nil {
		args["body"] = body
	}
	if headers := requestHeaders(inputs, body); len(headers) > 0 {
		args["headers"] = headers
	}
	if q, ok := inputs["query"].(map[string]any); ok {
		args["query"] = q
	}
	return args, nil
}

// escapeToken escapes a task id for use in a key (RFC 6901).
func escapeToken(id string) string {
	id = strings.ReplaceAll(id, "~", "~0")
	return strings.ReplaceAll(id, "/", "~1")
}
