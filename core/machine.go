// Package core is Baton's workflow state machine: a pure, deterministic
// interpreter of DSL 1.0 workflows. Its caller feeds it history events with
// Step and collects the commands they produced with Ready, the way etcd's
// raft package hands its caller a Ready batch: the machine itself does no
// I/O, reads no clock and starts no goroutine. Replaying the same history
// therefore always rebuilds the same state, which is what makes invocations
// durable, simulations cheap and tests exact.
package core

import (
	"fmt"
	"time"

	"github.com/batonflow/baton/dsl"
	"github.com/batonflow/baton/expr"
	"github.com/batonflow/baton/expr/js"
	"github.com/batonflow/baton/problem"
)

// DefaultMaxSteps bounds the work one Step may do before the machine
// concludes that the workflow loops without ever waiting (a `then` cycle
// over cheap tasks, say) and faults it.
const DefaultMaxSteps = 1_000_000

// Options configure a machine.
type Options struct {
	// ID is the invocation id, exposed as $workflow.id.
	ID string
	// Secrets are exposed as $secrets. They come from the driver, never
	// from history, so they are not persisted.
	Secrets map[string]any
	// Runtime is exposed as $runtime.
	Runtime map[string]any
	// Evaluator compiles and caches expressions; share one per process.
	Evaluator *expr.Evaluator
	// JS evaluates the JavaScript expressions of Fission Workflows
	// documents; share one per process too, so that compiled programs and
	// runtimes are reused across invocations. Nil makes one when needed.
	JS *js.Evaluator
	// MaxSteps overrides DefaultMaxSteps when positive.
	MaxSteps int
	// Observer, when set, hears every task that starts and ends, for
	// tracing and prewarming. It must not call back into the machine.
	Observer Observer
}

// Observer hears task lifecycle transitions as the machine makes them,
// during replay too (a replayed transition has Replay set on the machine).
type Observer interface {
	TaskStarted(key, ref, name string, at time.Time)
	TaskEnded(key, ref, name string, at time.Time, err *problem.Problem)
}

// Machine is one invocation's state machine. It is not safe for concurrent
// use; the driver serialises Step and Ready.
type Machine struct {
	def  *dsl.Workflow
	opts Options
	eval *expr.Evaluator

	now       time.Time
	startedAt time.Time
	rawInput  any
	context   any
	workflow  map[string]any // $workflow, built once
	status    Status
	finish    *Finish

	root  *act
	calls map[string]*pendingCall
	// timers maps a pending timer's id to what its firing does.
	timers map[string]*pendingTimer

	outbox   []Command
	outIndex map[string]int // command key → index in outbox

	queue []func()
	steps int

	// redrives counts the InvocationRedriven events stepped.
	redrives int
}

type pendingCall struct {
	owner   *act
	deliver func(out any, err *problem.Problem)
}

type pendingTimer struct {
	owner *act
	fire  func()
}

// New returns a machine for one invocation of def. Nothing happens until
// the first event, InvocationStarted, is stepped in.
func New(def *dsl.Workflow, opts Options) *Machine {
	if opts.Evaluator == nil {
		opts.Evaluator = expr.NewEvaluator()
	}
	if opts.MaxSteps <= 0 {
		opts.MaxSteps = DefaultMaxSteps
	}
	return &Machine{
		def:      def,
		opts:     opts,
		eval:     opts.Evaluator,
		status:   StatusRunning,
		calls:    make(map[string]*pendingCall),
		timers:   make(map[string]*pendingTimer),
		outIndex: make(map[string]int),
	}
}

// Status is the invocation's status as the history so far decides it.
func (m *Machine) Status() Status { return m.status }

// Result is the Finish command once the machine has finished, else nil.
func (m *Machine) Result() *Finish { return m.finish }

// Context is the workflow's current $context.
func (m *Machine) Context() any { return m.context }

// Step applies one history event. Events that do not concern any pending
// call or timer (a late result of a cancelled call, a duplicate) are
// ignored, as replay requires.
func (m *Machine) Step(ev Event) error {
	if !ev.Time.IsZero() {
		m.now = ev.Time
	}
	if m.finish != nil && ev.Type != InvocationStarted {
		return nil
	}
	switch ev.Type {
	case InvocationStarted:
		if m.workflow != nil {
			return fmt.Errorf("core: invocation %s started twice", m.opts.ID)
		}
		m.start(ev.Input)
	case TaskCompleted, TaskFailed:
		pc, ok := m.calls[ev.Task]
		if !ok {
			return nil
		}
		delete(m.calls, ev.Task)
		m.dropCommand((&Call{Task: ev.Task}).commandKey())
		if ev.Type == TaskCompleted {
			m.enqueue(func() { pc.deliver(ev.Output, nil) })
		} else {
			err := ev.Error
			if err == nil {
				err = problem.Runtime("task %s failed without an error document", ev.Task)
			}
			m.enqueue(func() { pc.deliver(nil, err) })
		}
	case TimerScheduled:
		if i, ok := m.outIndex[(&StartTimer{Timer: ev.Timer}).commandKey()]; ok {
			st := m.outbox[i].(*StartTimer)
			st.FireAt = ev.FireAt
		}
	case TimerFired:
		pt, ok := m.timers[ev.Timer]
		if !ok {
			return nil
		}
		delete(m.timers, ev.Timer)
		m.dropCommand((&StartTimer{Timer: ev.Timer}).commandKey())
		m.enqueue(pt.fire)
	case CancelRequested:
		err := ev.Error
		if err == nil {
			err = CancelledError("")
		}
		m.end(&Finish{Status: StatusCancelled, Error: err})
	case InvocationRedriven:
		// Effective has removed what ended the machine, so the calls it
		// ended are pending again: they go out as new executions.
		m.redrives++
		for _, c := range m.outbox {
			if call, ok := c.(*Call); ok {
				call.Redrive = m.redrives
			}
		}
	case TaskStarted, TaskEnded, InvocationCompleted, InvocationFaulted, InvocationCancelled:
		// Written by the driver for its own bookkeeping; the state they
		// describe follows from the other events.
	default:
		return fmt.Errorf("core: unknown event type %q", ev.Type)
	}
	m.run()
	return nil
}

// Ready returns the commands produced since the last call, in the order
// they were produced. Commands made moot by later events (a call whose
// result arrived during replay, a timer that was cancelled before it was
// handed out) are not included.
func (m *Machine) Ready() []Command {
	out := make([]Command, 0, len(m.outbox))
	for _, c := range m.outbox {
		if c != nil {
			out = append(out, c)
		}
	}
	m.outbox = m.outbox[:0]
	clear(m.outIndex)
	return out
}

func (m *Machine) emit(c Command) {
	key := c.commandKey()
	if i, ok := m.outIndex[key]; ok {
		m.outbox[i] = c
		return
	}
	m.outIndex[key] = len(m.outbox)
	m.outbox = append(m.outbox, c)
}

// dropCommand withdraws a command that has not been handed out yet and
// reports whether it found one.
func (m *Machine) dropCommand(key string) bool {
	i, ok := m.outIndex[key]
	if !ok {
		return false
	}
	m.outbox[i] = nil
	delete(m.outIndex, key)
	return true
}

// enqueue defers a continuation to the run loop. Continuations never call
// each other directly, so a long sequence of cheap tasks runs in constant
// stack depth and in a fixed order.
func (m *Machine) enqueue(f func()) { m.queue = append(m.queue, f) }

func (m *Machine) run() {
	for len(m.queue) > 0 && m.finish == nil {
		f := m.queue[0]
		m.queue[0] = nil
		m.queue = m.queue[1:]
		m.steps++
		if m.steps > m.opts.MaxSteps {
			m.queue = nil
			m.fault(problem.Runtime("the workflow ran %d steps without waiting for anything; a flow directive probably loops forever", m.opts.MaxSteps).At("/"))
			break
		}
		f()
	}
	if m.finish != nil {
		m.queue = nil
	}
	m.steps = 0
}

func (m *Machine) start(rawInput any) {
	m.startedAt = m.now
	m.rawInput = rawInput
	m.workflow = map[string]any{
		"id":         m.opts.ID,
		"definition": m.def.Raw,
		"input":      rawInput,
		"startedAt":  dateTime(m.now),
	}
	m.root = &act{m: m, key: "", ref: "/", name: m.def.Document.Name}
	vars := m.baseVars()
	input := rawInput
	if m.def.Input != nil {
		if err := m.def.Input.Schema.Validate(rawInput); err != nil {
			m.fault(problem.Validation("the workflow input does not match input.schema: %v", err).At("/input/schema"))
			return
		}
	}
	if m.def.Input != nil && m.def.Input.From != nil {
		v, err := m.eval.EvalValue(m.def.Input.From, rawInput, vars, true)
		if err != nil {
			m.fault(problem.Expression("workflow input.from: %v", err).At("/input/from"))
			return
		}
		input = v
	}
	// $context starts empty; tasks fill it through export.as.
	m.context = map[string]any{}
	if m.def.Timeout != nil {
		// A computed timeout sees the workflow's transformed input.
		vars := func() expr.Vars {
			v := m.baseVars()
			v["context"], v["input"] = m.context, input
			return v
		}
		after := &m.def.Timeout.After
		d, err := m.duration(after, input, vars, "workflow "+m.def.Document.Name, "timeout.after", "/timeout/after")
		if err != nil {
			m.fault(err)
			return
		}
		m.timer(m.root, "/timeout", d, after.IsExpr(), func() {
			m.fault(problem.Timeout("the workflow ran longer than its timeout of %v", d).At("/"))
		})
	}
	m.enqueue(func() {
		m.runList(m.root, m.def.Do, "", input, nil, func(out any, _ string, err *problem.Problem) {
			if err != nil {
				m.fault(err)
				return
			}
			m.complete(out)
		})
	})
}

// complete finishes the workflow with the last task's output.
func (m *Machine) complete(out any) {
	if m.def.Output != nil && m.def.Output.As != nil {
		vars := m.baseVars()
		vars["context"] = m.context
		v, err := m.eval.EvalValue(m.def.Output.As, out, vars, true)
		if err != nil {
			m.fault(problem.Expression("workflow output.as: %v", err).At("/output/as"))
			return
		}
		out = v
	}
	if m.def.Output != nil {
		if err := m.def.Output.Schema.Validate(out); err != nil {
			m.fault(problem.Validation("the workflow output does not match output.schema: %v", err).At("/output/schema"))
			return
		}
	}
	m.end(&Finish{Status: StatusCompleted, Output: out})
}

func (m *Machine) fault(err *problem.Problem) {
	m.end(&Finish{Status: StatusFaulted, Error: err})
}

func (m *Machine) end(f *Finish) {
	if m.finish != nil {
		return
	}
	if m.root != nil {
		m.close(m.root)
	}
	m.finish = f
	m.status = f.Status
	m.emit(f)
}

// baseVars are the arguments every expression sees.
func (m *Machine) baseVars() expr.Vars {
	return expr.Vars{
		"secrets":  orEmptyMap(m.opts.Secrets),
		"workflow": m.workflow,
		"runtime":  orEmptyMap(m.opts.Runtime),
	}
}

func orEmptyMap(v map[string]any) map[string]any {
	if v == nil {
		return map[string]any{}
	}
	return v
}

// dateTime is the DSL's DateTime descriptor.
func dateTime(t time.Time) map[string]any {
	return map[string]any{
		"iso8601": t.UTC().Format(time.RFC3339Nano),
		"epoch": map[string]any{
			"seconds":      float64(t.Unix()),
			"milliseconds": float64(t.UnixMilli()),
		},
	}
}
