package core

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/batonflow/baton/dsl"
	"github.com/batonflow/baton/expr"
	"github.com/batonflow/baton/problem"
)

// cont receives a task's (or a task list's) result: its transformed output
// and the flow directive that should follow, or an error.
type cont func(out any, flow string, err *problem.Problem)

// act is one activation of a task: a task definition being executed with
// one input, at one point of the loops and retries around it. Activations
// form a tree; closing one closes its subtree and withdraws every call and
// timer the subtree still waits on.
type act struct {
	m      *Machine
	key    string // ref + inst: unique within the invocation, stable across replays
	ref    string
	name   string
	task   *dsl.Task
	parent *act
	kids   map[*act]struct{}
	calls  []string
	timers []string
	closed bool

	// inst marks the loop iterations ("[i]"), retry attempts ("#n"), catch
	// handlers ("!") and revisits through flow directives ("~n") that lead
	// here; descendants extend it.
	inst    string
	scope   expr.Vars // loop and catch variables visible in this subtree
	attempt int       // retry attempt of the nearest enclosing try, from 1

	rawInput  any
	input     any
	startedAt time.Time
	timeout   time.Duration // the task's own timeout, evaluated; zero for none
	k         cont
	desc      map[string]any // $task, built on first use
}

func (a *act) adopt(kid *act) {
	if a.kids == nil {
		a.kids = make(map[*act]struct{})
	}
	a.kids[kid] = struct{}{}
}

// vars are the arguments of an expression evaluated inside the activation.
func (a *act) vars(withInput bool) expr.Vars {
	v := a.m.baseVars()
	v["context"] = a.m.context
	v["task"] = a.descriptor(nil, false)
	for name, val := range a.scope {
		v[name] = val
	}
	if withInput {
		v["input"] = a.input
	}
	return v
}

// inputVars are the arguments of an expression that also sees $input.
func (a *act) inputVars() expr.Vars { return a.vars(true) }

// descriptor is the DSL's $task. Every expression of the task sees the
// same one, so it is built once; the variant with the raw output (for
// output.as and export.as) is a copy.
func (a *act) descriptor(rawOutput any, withOutput bool) map[string]any {
	if a.desc == nil {
		a.desc = map[string]any{
			"name":      a.name,
			"reference": a.ref,
			"input":     a.rawInput,
			"startedAt": dateTime(a.startedAt),
		}
		if a.task != nil {
			a.desc["definition"] = a.task.Raw
		}
	}
	if !withOutput {
		return a.desc
	}
	d := make(map[string]any, len(a.desc)+1)
	for k, v := range a.desc {
		d[k] = v
	}
	d["output"] = rawOutput
	return d
}

// close ends an activation and everything under it.
func (m *Machine) close(a *act) {
	if a.closed {
		return
	}
	a.closed = true
	if len(a.kids) > 0 {
		kids := make([]*act, 0, len(a.kids))
		for kid := range a.kids {
			kids = append(kids, kid)
		}
		// Closing emits cancel commands; sort so they come out in one order.
		slices.SortFunc(kids, func(x, y *act) int { return strings.Compare(x.key, y.key) })
		for _, kid := range kids {
			m.close(kid)
		}
	}
	for _, key := range a.calls {
		if _, ok := m.calls[key]; !ok {
			continue
		}
		delete(m.calls, key)
		if !m.dropCommand((&Call{Task: key}).commandKey()) {
			m.emit(&CancelCall{Task: key})
		}
	}
	for _, id := range a.timers {
		if _, ok := m.timers[id]; !ok {
			continue
		}
		delete(m.timers, id)
		if !m.dropCommand((&StartTimer{Timer: id}).commandKey()) {
			m.emit(&CancelTimer{Timer: id})
		}
	}
	if a.parent != nil {
		delete(a.parent.kids, a)
	}
}

func (m *Machine) startTimer(owner *act, id string, d time.Duration, fire func()) {
	m.timer(owner, id, d, false, fire)
}

// runList runs a task list in order, following flow directives, and hands
// the last output to k.
func (m *Machine) runList(owner *act, list dsl.TaskList, inst string, input any, scope expr.Vars, k cont) {
	visits := make([]int, len(list))
	var step func(i int, in any)
	step = func(i int, in any) {
		if owner.closed {
			return
		}
		if i >= len(list) {
			k(in, "", nil)
			return
		}
		visits[i]++
		taskInst := inst
		if visits[i] > 1 {
			taskInst += "~" + strconv.Itoa(visits[i])
		}
		nt := list[i]
		m.runTask(owner, nt, taskInst, in, scope, func(out any, flow string, err *problem.Problem) {
			if err != nil {
				k(nil, "", err)
				return
			}
			switch flow {
			case "", dsl.FlowContinue:
				m.enqueue(func() { step(i+1, out) })
			case dsl.FlowExit:
				k(out, "", nil)
			case dsl.FlowEnd:
				m.complete(out)
			default:
				j := list.Index(flow)
				if j < 0 {
					k(nil, "", problem.Configuration("flow directive %q names no task of this list", flow).At(nt.Task.Ref))
					return
				}
				m.enqueue(func() { step(j, out) })
			}
		})
	}
	m.enqueue(func() { step(0, input) })
}

// runTask starts one activation of a task: if, input.from, timeout, then
// the kind-specific work, which ends in done or fail.
func (m *Machine) runTask(parent *act, nt *dsl.NamedTask, inst string, rawInput any, scope expr.Vars, k cont) {
	if parent.closed {
		return
	}
	t := nt.Task
	a := &act{
		m: m, key: t.Ref + inst, ref: t.Ref, name: nt.Name, task: t, parent: parent,
		inst: inst, scope: scope, attempt: parent.attempt,
		rawInput: rawInput, startedAt: m.now, k: k,
	}
	if a.attempt == 0 {
		a.attempt = 1
	}
	parent.adopt(a)
	if o := m.opts.Observer; o != nil {
		o.TaskStarted(a.key, a.ref, a.name, m.now)
	}
	if t.If != "" {
		v, err := m.eval.EvalString(t.If, rawInput, a.vars(false))
		if err != nil {
			a.fail(problem.Expression("if: %v", err).At(t.Ref + "/if"))
			return
		}
		if !expr.Truthy(v) {
			// A skipped task passes its raw input on and its flow
			// directive does not apply.
			a.finish(rawInput, dsl.FlowContinue)
			return
		}
	}
	a.input = rawInput
	if t.Input != nil {
		if err := t.Input.Schema.Validate(rawInput); err != nil {
			a.fail(problem.Validation("the input of task %s does not match input.schema: %v", a.name, err).At(t.Ref + "/input/schema"))
			return
		}
	}
	if t.Input != nil && t.Input.From != nil {
		v, err := m.eval.EvalValue(t.Input.From, rawInput, a.vars(false), true)
		if err != nil {
			a.fail(problem.Expression("input.from: %v", err).At(t.Ref + "/input/from"))
			return
		}
		a.input = v
	}
	if t.Timeout != nil {
		d, err := m.duration(&t.Timeout.After, a.input, a.inputVars, taskName(a), "timeout.after", t.Ref+"/timeout/after")
		if err != nil {
			a.fail(err)
			return
		}
		a.timeout = d
		m.timer(a, a.key+"#timeout", d, t.Timeout.After.IsExpr(), func() {
			a.fail(problem.Timeout("task %s ran longer than its timeout of %v", a.name, d))
		})
	}
	switch t.Kind {
	case dsl.KindSet:
		v, err := m.eval.EvalValue(t.Set, a.input, a.vars(true), true)
		if err != nil {
			a.fail(problem.Expression("set: %v", err).At(t.Ref + "/set"))
			return
		}
		a.done(v, "")
	case dsl.KindDo:
		m.runList(a, t.Do, a.inst, a.input, a.scope, a.listDone)
	case dsl.KindSwitch:
		m.runSwitch(a)
	case dsl.KindRaise:
		m.runRaise(a)
	case dsl.KindWait:
		d, err := m.duration(t.Wait, a.input, a.inputVars, taskName(a), "wait", t.Ref+"/wait")
		if err != nil {
			a.fail(err)
			return
		}
		m.timer(a, a.key, d, t.Wait.IsExpr(), func() { a.done(a.input, "") })
	case dsl.KindCall:
		m.runCall(a)
	case dsl.KindFor:
		m.runFor(a)
	case dsl.KindFork:
		m.runFork(a)
	case dsl.KindTry:
		m.runTry(a)
	case dsl.KindRun:
		m.runProcess(a)
	case dsl.KindEmit:
		m.runExternal(a, "emit", t.Emit.Event)
	case dsl.KindGraph:
		m.runGraph(a)
	case dsl.KindListen:
		m.runListen(a)
	default:
		a.fail(problem.Configuration("task kind %q is not supported", t.Kind))
	}
}

// listDone adapts a task list's result to the activation that ran it.
func (a *act) listDone(out any, _ string, err *problem.Problem) {
	if err != nil {
		a.fail(err)
		return
	}
	a.done(out, "")
}

// done completes the activation with its raw output: output.as, export.as,
// then the flow directive (a switch case's, or the task's own then).
func (a *act) done(rawOut any, flow string) {
	if a.closed {
		return
	}
	m, t := a.m, a.task
	out := rawOut
	if t.Output != nil && t.Output.As != nil {
		vars := a.vars(true)
		vars["task"] = a.descriptor(rawOut, true)
		v, err := m.eval.EvalValue(t.Output.As, rawOut, vars, true)
		if err != nil {
			a.fail(problem.Expression("output.as: %v", err).At(t.Ref + "/output/as"))
			return
		}
		out = v
	}
	if t.Output != nil {
		if err := t.Output.Schema.Validate(out); err != nil {
			a.fail(problem.Validation("the output of task %s does not match output.schema: %v", a.name, err).At(t.Ref + "/output/schema"))
			return
		}
	}
	if t.Export != nil && t.Export.As != nil {
		vars := a.vars(true)
		vars["task"] = a.descriptor(rawOut, true)
		vars["output"] = out
		v, err := m.eval.EvalValue(t.Export.As, out, vars, true)
		if err != nil {
			a.fail(problem.Expression("export.as: %v", err).At(t.Ref + "/export/as"))
			return
		}
		if err := t.Export.Schema.Validate(v); err != nil {
			a.fail(problem.Validation("the context exported by task %s does not match export.schema: %v", a.name, err).At(t.Ref + "/export/schema"))
			return
		}
		m.context = v
	}
	if flow == "" {
		flow = t.Then
	}
	a.finish(out, flow)
}

func (a *act) finish(out any, flow string) {
	a.m.close(a)
	if o := a.m.opts.Observer; o != nil {
		o.TaskEnded(a.key, a.ref, a.name, a.m.now, nil)
	}
	a.k(out, flow, nil)
}

// fail ends the activation with an error, which names the innermost task
// that raised it.
func (a *act) fail(err *problem.Problem) {
	if a.closed {
		return
	}
	err = err.At(a.ref)
	a.m.close(a)
	if o := a.m.opts.Observer; o != nil {
		o.TaskEnded(a.key, a.ref, a.name, a.m.now, err)
	}
	a.k(nil, "", err)
}

func (m *Machine) runSwitch(a *act) {
	var fallback *dsl.SwitchCase
	for _, c := range a.task.Switch {
		if c.When == "" {
			fallback = c
			continue
		}
		v, err := m.eval.EvalString(c.When, a.input, a.vars(true))
		if err != nil {
			a.fail(problem.Expression("switch case %s: %v", c.Name, err))
			return
		}
		if expr.Truthy(v) {
			a.done(a.input, c.Then)
			return
		}
	}
	if fallback != nil {
		a.done(a.input, fallback.Then)
		return
	}
	a.done(a.input, "")
}

func (m *Machine) runRaise(a *act) {
	def := a.task.Raise.Error
	vars := a.vars(true)
	field := func(name, s string) (string, bool) {
		if !expr.IsExpr(s) {
			return s, true
		}
		v, err := m.eval.EvalString(s, a.input, vars)
		if err != nil {
			a.fail(problem.Expression("raise.error.%s: %v", name, err))
			return "", false
		}
		if str, ok := v.(string); ok {
			return str, true
		}
		return toJSONText(v), true
	}
	p := &problem.Problem{Status: def.Status}
	var ok bool
	if p.Type, ok = field("type", def.Type); !ok {
		return
	}
	if p.Title, ok = field("title", def.Title); !ok {
		return
	}
	if p.Detail, ok = field("detail", def.Detail); !ok {
		return
	}
	if p.Instance, ok = field("instance", def.Instance); !ok {
		return
	}
	a.fail(p)
}

// runCall turns a call task into a Call command, or runs the reusable
// function of use.functions that it names in its place.
func (m *Machine) runCall(a *act) {
	t := a.task
	args, err := m.evalArgs(a, t.Call.With)
	if err != nil {
		a.fail(problem.Expression("with: %v", err).At(t.Ref + "/with"))
		return
	}
	if m.def.Use != nil {
		if fn, ok := m.def.Use.Functions[t.Call.Function]; ok {
			// The function's task runs with the call's arguments as its
			// input, addressed under the calling task so that two calls of
			// one function get distinct keys.
			inline := *fn
			inline.Ref = t.Ref + "/call"
			var in any = args
			m.runTask(a, &dsl.NamedTask{Name: t.Call.Function, Task: &inline}, a.inst, in, a.scope,
				func(out any, _ string, err *problem.Problem) {
					if err != nil {
						a.fail(err)
						return
					}
					a.done(out, "")
				})
			return
		}
	}
	m.call(a, t.Call.Function, args)
}

// runExternal hands a task the core cannot do itself (emit)
// to the driver as a call of a well-known function name.
func (m *Machine) runExternal(a *act, function string, spec map[string]any) {
	args, err := m.evalArgs(a, spec)
	if err != nil {
		a.fail(problem.Expression("%v", err))
		return
	}
	m.call(a, function, args)
}

// runProcess hands `run` to the driver as a call of "run.<kind>" whose
// arguments are {process: the kind's evaluated definition, await, return}.
func (m *Machine) runProcess(a *act) {
	r := a.task.Run
	spec, err := m.evalArgs(a, r.Spec)
	if err != nil {
		a.fail(problem.Expression("run.%s: %v", r.Kind, err))
		return
	}
	await := true
	if r.Await != nil {
		await = *r.Await
	}
	m.call(a, "run."+r.Kind, map[string]any{"process": spec, "await": await, "return": r.Return})
}

// runListen hands `listen` to the driver. Its event filters (`with`,
// `correlate.*.from`, `until`) are about the events, not the task's input,
// so they travel as written; only the correlations' `expect` values, which
// come from the workflow's data, are evaluated here.
func (m *Machine) runListen(a *act) {
	l := a.task.Listen
	to, err := m.evalExpects(a, l.To)
	if err != nil {
		a.fail(problem.Expression("listen.to: %v", err).At(a.ref + "/listen/to"))
		return
	}
	if l.Foreach == nil {
		m.call(a, "listen", map[string]any{"to": to, "read": l.Read})
		return
	}
	m.listenEach(a, to)
}

// listenEach runs a listen with foreach: one call per consumed event,
// each answered with {event, start, after} or {done: true}, and the
// iterator's tasks run on each event before the next call goes out, so
// every event's processing is recorded in the history like any loop.
// start and after are the event log positions the driver needs to carry
// on where the previous call stopped; they come back in the recorded
// results, so replay asks for exactly the same events.
func (m *Machine) listenEach(a *act, to any) {
	l := a.task.Listen
	it := l.Foreach
	var outputs []any
	var next func(i int, start, after any)
	next = func(i int, start, after any) {
		if a.closed {
			return
		}
		args := map[string]any{"to": to, "read": l.Read, "stream": true}
		if start != nil {
			args["start"], args["after"] = start, after
		}
		m.callAs(a, a.key+"/events["+strconv.Itoa(i)+"]", "listen", args, func(out any, err *problem.Problem) {
			if err != nil {
				a.fail(err)
				return
			}
			res, _ := out.(map[string]any)
			if done, _ := res["done"].(bool); done {
				if outputs == nil {
					outputs = []any{}
				}
				a.done(outputs, "")
				return
			}
			event := res["event"]
			scope := make(expr.Vars, len(a.scope)+2)
			for k, v := range a.scope {
				scope[k] = v
			}
			scope[it.Item] = event
			scope[it.At] = i
			m.runList(a, it.Do, a.inst+"{"+strconv.Itoa(i)+"}", event, scope, func(itemOut any, _ string, err *problem.Problem) {
				if err != nil {
					a.fail(err)
					return
				}
				vars := a.vars(true)
				for k, v := range scope {
					vars[k] = v
				}
				if it.Output != nil && it.Output.As != nil {
					v, err := m.eval.EvalValue(it.Output.As, itemOut, vars, true)
					if err != nil {
						a.fail(problem.Expression("foreach.output.as: %v", err).At(a.ref + "/foreach/output/as"))
						return
					}
					itemOut = v
				}
				if it.Export != nil && it.Export.As != nil {
					vars["output"] = itemOut
					v, err := m.eval.EvalValue(it.Export.As, itemOut, vars, true)
					if err != nil {
						a.fail(problem.Expression("foreach.export.as: %v", err).At(a.ref + "/foreach/export/as"))
						return
					}
					m.context = v
				}
				outputs = append(outputs, itemOut)
				next(i+1, res["start"], res["after"])
			})
		})
	}
	next(0, nil, nil)
}

// evalExpects copies v, evaluating every `correlate.NAME.expect` in it.
func (m *Machine) evalExpects(a *act, v any) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, val := range x {
			if corr, ok := val.(map[string]any); ok && k == "correlate" {
				evaluated := make(map[string]any, len(corr))
				for name, c := range corr {
					cm, ok := c.(map[string]any)
					if !ok || cm["expect"] == nil {
						evaluated[name] = c
						continue
					}
					exp, err := m.eval.EvalValue(cm["expect"], a.input, a.vars(true), false)
					if err != nil {
						return nil, fmt.Errorf("correlate.%s.expect: %w", name, err)
					}
					copied := make(map[string]any, len(cm))
					for ck, cv := range cm {
						copied[ck] = cv
					}
					copied["expect"] = exp
					evaluated[name] = copied
				}
				out[k] = evaluated
				continue
			}
			r, err := m.evalExpects(a, val)
			if err != nil {
				return nil, err
			}
			out[k] = r
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, val := range x {
			r, err := m.evalExpects(a, val)
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	default:
		return v, nil
	}
}

func (m *Machine) evalArgs(a *act, with map[string]any) (map[string]any, error) {
	if len(with) == 0 {
		return map[string]any{}, nil
	}
	v, err := m.eval.EvalValue(with, a.input, a.vars(true), false)
	if err != nil {
		return nil, err
	}
	args, _ := v.(map[string]any)
	return args, nil
}

// call makes a task's one external call; its result is the task's raw
// output.
func (m *Machine) call(a *act, function string, args map[string]any) {
	m.callAs(a, a.key, function, args, func(out any, err *problem.Problem) {
		if err != nil {
			a.fail(err)
			return
		}
		a.done(out, "")
	})
}

// callAs makes one of possibly several external calls of a task, under its
// own key, and hands the result to deliver.
func (m *Machine) callAs(a *act, key, function string, args map[string]any, deliver func(out any, err *problem.Problem)) {
	c := &Call{
		Task: key, Ref: a.ref, Name: a.name, Attempt: a.attempt,
		Function: function, Args: args, Input: a.input,
	}
	c.Timeout = a.timeout
	m.calls[key] = &pendingCall{owner: a, deliver: deliver}
	a.calls = append(a.calls, key)
	m.emit(c)
}

func (m *Machine) runFor(a *act) {
	f := a.task.For
	coll, err := m.eval.EvalString(f.In, a.input, a.vars(true))
	if err != nil {
		a.fail(problem.Expression("for.in: %v", err).At(a.ref + "/for/in"))
		return
	}
	var items []any
	switch c := coll.(type) {
	case nil:
	case []any:
		items = c
	case map[string]any:
		keys := make([]string, 0, len(c))
		for k := range c {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			items = append(items, c[k])
		}
	default:
		a.fail(problem.Expression("for.in must produce a list, got %s", typeName(coll)).At(a.ref + "/for/in"))
		return
	}
	each, at := f.Each, f.At
	if each == "" {
		each = "item"
	}
	if at == "" {
		at = "index"
	}
	var iterate func(i int, cur any)
	iterate = func(i int, cur any) {
		if a.closed {
			return
		}
		if i >= len(items) {
			a.done(cur, "")
			return
		}
		scope := make(expr.Vars, len(a.scope)+2)
		for k, v := range a.scope {
			scope[k] = v
		}
		scope[each] = items[i]
		scope[at] = i
		if f.While != "" {
			vars := a.vars(true)
			for k, v := range scope {
				vars[k] = v
			}
			ok, err := m.eval.EvalString(f.While, cur, vars)
			if err != nil {
				a.fail(problem.Expression("while: %v", err).At(a.ref + "/while"))
				return
			}
			if !expr.Truthy(ok) {
				a.done(cur, "")
				return
			}
		}
		m.runList(a, f.Do, a.inst+"["+strconv.Itoa(i)+"]", cur, scope, func(out any, _ string, err *problem.Problem) {
			if err != nil {
				a.fail(err)
				return
			}
			iterate(i+1, out)
		})
	}
	iterate(0, a.input)
}

func (m *Machine) runFork(a *act) {
	branches := a.task.Fork.Branches
	compete := a.task.Fork.Compete
	if len(branches) == 0 {
		a.done([]any{}, "")
		return
	}
	outs := make([]any, len(branches))
	remaining := len(branches)
	for i, b := range branches {
		m.enqueue(func() {
			m.runTask(a, b, a.inst, a.input, a.scope, func(out any, _ string, err *problem.Problem) {
				if a.closed {
					return
				}
				if err != nil {
					a.fail(err)
					return
				}
				if compete {
					a.done(out, "")
					return
				}
				outs[i] = out
				remaining--
				if remaining == 0 {
					a.done(outs, "")
				}
			})
		})
	}
}

func (m *Machine) runTry(a *act) {
	t := a.task.Try
	c := t.Catch
	firstAt := m.now
	var attempt func(n int)
	attempt = func(n int) {
		if a.closed {
			return
		}
		inst := a.inst
		if n > 1 {
			inst += "#" + strconv.Itoa(n)
		}
		// Each attempt runs under its own activation so that an attempt
		// timeout can close it without closing the try.
		run := &act{m: m, key: a.key + inst + "/try", ref: a.ref, name: a.name, task: a.task, parent: a,
			inst: inst, scope: a.scope, attempt: n, rawInput: a.input, input: a.input, startedAt: m.now}
		a.adopt(run)
		handle := func(err *problem.Problem) {
			if a.closed {
				return
			}
			m.close(run)
			if c == nil {
				a.fail(err)
				return
			}
			asName := c.As
			if asName == "" {
				asName = "error"
			}
			errData := problemData(err)
			caught, evalErr := m.catches(a, c, err, asName, errData)
			if evalErr != nil {
				a.fail(evalErr)
				return
			}
			if !caught {
				a.fail(err)
				return
			}
			if r := c.Retry; r != nil {
				retry, evalErr := m.retries(a, r, asName, errData, n, firstAt)
				if evalErr != nil {
					a.fail(evalErr)
					return
				}
				if retry {
					delay, computed, evalErr := m.retryDelay(a, r, asName, errData, n)
					if evalErr != nil {
						a.fail(evalErr)
						return
					}
					m.timer(a, a.key+"#retry"+strconv.Itoa(n), delay, computed, func() { attempt(n + 1) })
					return
				}
				if len(c.Do) == 0 {
					// Retries are spent and nothing handles the error:
					// it stands.
					a.fail(err)
					return
				}
			}
			if len(c.Do) > 0 {
				scope := make(expr.Vars, len(a.scope)+1)
				for k, v := range a.scope {
					scope[k] = v
				}
				scope[asName] = errData
				m.runList(a, c.Do, inst+"!", a.input, scope, a.listDone)
				return
			}
			a.done(a.input, "")
		}
		if c != nil && c.Retry != nil && c.Retry.Limit.AttemptDuration != nil {
			ad := c.Retry.Limit.AttemptDuration
			d, err := m.duration(ad, a.input, a.inputVars, taskName(a), "retry.limit.attempt.duration", a.ref+"/catch/retry/limit/attempt/duration")
			if err != nil {
				m.close(run)
				a.fail(err)
				return
			}
			m.timer(run, run.key+"#timeout", d, ad.IsExpr(), func() {
				handle(problem.Timeout("attempt %d ran longer than its limit of %v", n, d).At(a.ref))
			})
		}
		m.runList(run, t.Try, inst, a.input, a.scope, func(out any, _ string, err *problem.Problem) {
			if err != nil {
				handle(err)
				return
			}
			m.close(run)
			a.done(out, "")
		})
	}
	attempt(1)
}

// catches decides whether a catch clause takes an error.
func (m *Machine) catches(a *act, c *dsl.Catch, err *problem.Problem, asName string, errData map[string]any) (bool, *problem.Problem) {
	if f := c.Errors; f != nil {
		if f.Type != "" && !problem.SameType(f.Type, err.Type) ||
			f.Status != 0 && f.Status != err.Status ||
			f.Instance != "" && f.Instance != err.Instance ||
			f.Title != "" && f.Title != err.Title ||
			f.Detail != "" && f.Detail != err.Detail {
			return false, nil
		}
	}
	return m.guard(a, c.When, c.ExceptWhen, asName, errData, "catch")
}

// guard evaluates a when/exceptWhen pair with the error bound.
func (m *Machine) guard(a *act, when, exceptWhen, asName string, errData map[string]any, where string) (bool, *problem.Problem) {
	if when == "" && exceptWhen == "" {
		return true, nil
	}
	vars := a.vars(true)
	vars[asName] = errData
	if when != "" {
		v, err := m.eval.EvalString(when, a.input, vars)
		if err != nil {
			return false, problem.Expression("%s.when: %v", where, err).At(a.ref)
		}
		if !expr.Truthy(v) {
			return false, nil
		}
	}
	if exceptWhen != "" {
		v, err := m.eval.EvalString(exceptWhen, a.input, vars)
		if err != nil {
			return false, problem.Expression("%s.exceptWhen: %v", where, err).At(a.ref)
		}
		if expr.Truthy(v) {
			return false, nil
		}
	}
	return true, nil
}

// retries decides whether attempt n, which failed, gets a successor.
// limit.attempt.count counts the retries after the first attempt.
func (m *Machine) retries(a *act, r *dsl.RetryPolicy, asName string, errData map[string]any, n int, firstAt time.Time) (bool, *problem.Problem) {
	if c := r.Limit.AttemptCount; c != nil && n > *c {
		return false, nil
	}
	if r.Limit.Duration != nil {
		d, err := m.retryDuration(a, r.Limit.Duration, asName, errData, "retry.limit.duration", "/catch/retry/limit/duration")
		if err != nil {
			return false, err
		}
		if m.now.Sub(firstAt) >= d {
			return false, nil
		}
	}
	return m.guard(a, r.When, r.ExceptWhen, asName, errData, "retry")
}

// retryDuration evaluates one of a retry policy's durations after a
// failure: its expression sees the task's input and the caught error.
func (m *Machine) retryDuration(a *act, d *dsl.Duration, asName string, errData map[string]any, field, at string) (time.Duration, *problem.Problem) {
	vars := func() expr.Vars {
		v := a.vars(true)
		v[asName] = errData
		return v
	}
	return m.duration(d, a.input, vars, taskName(a), field, a.ref+at)
}

// retryDelay is the wait before attempt n+1, and whether an expression
// computed any part of it. Jitter comes from a generator seeded by the
// invocation and the attempt, so replay computes it again.
func (m *Machine) retryDelay(a *act, r *dsl.RetryPolicy, asName string, errData map[string]any, n int) (time.Duration, bool, *problem.Problem) {
	var d time.Duration
	computed := false
	if r.Delay != nil {
		v, err := m.retryDuration(a, r.Delay, asName, errData, "retry.delay", "/catch/retry/delay")
		if err != nil {
			return 0, false, err
		}
		d, computed = v, r.Delay.IsExpr()
	}
	switch r.Backoff {
	case dsl.BackoffLinear:
		d *= time.Duration(n)
	case dsl.BackoffExponential:
		for i := 1; i < n && d < 24*time.Hour; i++ {
			d *= 2
		}
	}
	var from, to time.Duration
	if j := r.Jitter; j != nil {
		var err *problem.Problem
		if from, err = m.retryDuration(a, &j.From, asName, errData, "retry.jitter.from", "/catch/retry/jitter/from"); err != nil {
			return 0, false, err
		}
		if to, err = m.retryDuration(a, &j.To, asName, errData, "retry.jitter.to", "/catch/retry/jitter/to"); err != nil {
			return 0, false, err
		}
		if from > to {
			return 0, false, problem.Expression("%s: retry.jitter.from (%v) is greater than retry.jitter.to (%v)", taskName(a), from, to).At(a.ref + "/catch/retry/jitter")
		}
		computed = computed || j.From.IsExpr() || j.To.IsExpr()
	}
	if j := r.Jitter; j != nil && to > from {
		h := fnv.New64a()
		h.Write([]byte(m.opts.ID))
		h.Write([]byte(a.key))
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], uint64(n))
		h.Write(b[:])
		seed := h.Sum64()
		rng := rand.New(rand.NewPCG(seed, seed>>1|1))
		d += from + time.Duration(rng.Int64N(int64(to-from)+1))
	} else if j != nil {
		d += from
	}
	return d, computed, nil
}

func problemData(p *problem.Problem) map[string]any {
	d := map[string]any{"type": p.Type, "status": float64(p.Status), "instance": p.Instance}
	if p.Title != "" {
		d["title"] = p.Title
	}
	if p.Detail != "" {
		d["detail"] = p.Detail
	}
	return d
}
