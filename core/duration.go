package core

import (
	"fmt"
	"time"

	"github.com/batonflow/baton/dsl"
	"github.com/batonflow/baton/expr"
	"github.com/batonflow/baton/problem"
)

// duration is the value of a DSL duration where it applies: a literal as
// written, or the value of its runtime expression evaluated against the
// task's input and arguments, like any other expression of the task.
// Evaluating it again on replay gives the same value because the input and
// context come from the history; the deadline of a timer started with it
// is recorded anyway (TimerScheduled), and replay keeps the recorded one.
// vars is called only for an expression, so a literal costs nothing.
func (m *Machine) duration(d *dsl.Duration, input any, vars func() expr.Vars, task, field, at string) (time.Duration, *problem.Problem) {
	if !d.IsExpr() {
		return d.D, nil
	}
	v, err := m.eval.EvalString(d.Expr, input, vars())
	if err != nil {
		return 0, problem.Expression("%s: %s: %v", task, field, err).At(at)
	}
	dur, err := dsl.DurationValue(v)
	if err != nil {
		return 0, problem.Expression("%s: %s: %s is not a valid duration: %v", task, field, shortJSON(v), err).At(at)
	}
	return dur, nil
}

// timer starts a timer for a duration. A computed duration always goes
// through a recorded timer, even when it is zero, so that the history, not
// a second evaluation, decides when the timer fired.
func (m *Machine) timer(owner *act, id string, d time.Duration, computed bool, fire func()) {
	if d <= 0 && !computed {
		m.enqueue(fire)
		return
	}
	if d < 0 {
		d = 0
	}
	m.timers[id] = &pendingTimer{owner: owner, fire: fire}
	owner.timers = append(owner.timers, id)
	m.emit(&StartTimer{Timer: id, After: d})
}

// shortJSON quotes a value for an error message, cut to a readable length.
func shortJSON(v any) string {
	s := toJSONText(v)
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}

// taskName names an activation in error messages.
func taskName(a *act) string { return fmt.Sprintf("task %s", a.name) }
