package core_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/problem"
)

// crashDriver runs an invocation the way an engine that restarts after
// every event would: each step rebuilds the machine from the effective
// history, so every redrive is replayed many times over.
type crashDriver struct {
	t       *testing.T
	def     string
	opts    core.Options
	history []core.Event
	now     time.Time
	// calls counts the executions of each task key, by attempt number.
	calls map[string]int
	keys  []string // every call made, in order, with its redrive count
	// answer decides a call's result; cancel, when it returns true for a
	// pending call, cancels the invocation instead.
	answer func(c *core.Call, n int) (any, *problem.Problem)
	cancel func(c *core.Call) bool
}

func (d *crashDriver) append(ev core.Event) {
	ev.Seq = int64(len(d.history) + 1)
	ev.Time = d.now
	d.history = append(d.history, ev)
}

// machine rebuilds the machine from the history and returns what it asks.
func (d *crashDriver) machine() (*core.Machine, []core.Command) {
	d.t.Helper()
	def := parse(d.t, d.def)
	effective, err := core.Effective(def, d.opts, d.history)
	if err != nil {
		d.t.Fatalf("Effective: %v", err)
	}
	m := core.New(def, d.opts)
	for _, ev := range effective {
		if ev.Terminal() {
			continue
		}
		if err := m.Step(ev); err != nil {
			d.t.Fatalf("step %s: %v", ev.Type, err)
		}
	}
	return m, m.Ready()
}

// runToEnd drives until the invocation ends and returns the terminal event.
func (d *crashDriver) runToEnd() core.Event {
	d.t.Helper()
	for range 1000 {
		if n := len(d.history); n > 0 && d.history[n-1].Terminal() {
			return d.history[n-1]
		}
		_, cmds := d.machine()
		if len(cmds) == 0 {
			d.t.Fatalf("the machine waits for nothing; history %v", types(d.history))
		}
		switch c := pick(cmds).(type) {
		case *core.Finish:
			ev := core.Event{Output: c.Output, Error: c.Error}
			ev.Type = map[core.Status]core.EventType{core.StatusCompleted: core.InvocationCompleted,
				core.StatusFaulted: core.InvocationFaulted, core.StatusCancelled: core.InvocationCancelled}[c.Status]
			d.append(ev)
		case *core.StartTimer:
			if c.FireAt.IsZero() {
				d.append(core.Event{Type: core.TimerScheduled, Timer: c.Timer, FireAt: d.now.Add(c.After)})
				continue
			}
			d.now = c.FireAt
			d.append(core.Event{Type: core.TimerFired, Timer: c.Timer})
		case *core.Call:
			if d.cancel != nil && d.cancel(c) {
				d.cancel = nil
				d.append(core.Event{Type: core.CancelRequested})
				continue
			}
			d.calls[c.Task]++
			d.keys = append(d.keys, c.IdempotencyKey("inv-1"))
			out, p := d.answer(c, d.calls[c.Task])
			if p == hold {
				// The call runs longer than its timeout: time passes.
				d.now = d.now.Add(time.Hour)
				d.append(core.Event{Type: core.TaskStarted, Task: c.Task})
				_, cmds := d.machine()
				for _, x := range cmds {
					if st, ok := x.(*core.StartTimer); ok {
						d.now = st.FireAt
						d.append(core.Event{Type: core.TimerFired, Timer: st.Timer})
						break
					}
				}
				continue
			}
			if p != nil {
				d.append(core.Event{Type: core.TaskFailed, Task: c.Task, Attempt: c.Attempt, Error: p})
			} else {
				d.append(core.Event{Type: core.TaskCompleted, Task: c.Task, Attempt: c.Attempt, Output: out})
			}
		default:
			d.append(core.Event{Type: core.TaskStarted, Task: "noop"})
		}
	}
	d.t.Fatal("the invocation did not end in 1000 steps")
	return core.Event{}
}

// pick chooses what to do next: end, record a deadline, make a call, and
// only when nothing else is left, let time pass to the next timer.
func pick(cmds []core.Command) core.Command {
	rank := func(c core.Command) int {
		switch c := c.(type) {
		case *core.Finish:
			return 0
		case *core.StartTimer:
			if c.FireAt.IsZero() {
				return 1
			}
			return 3
		case *core.Call:
			return 2
		}
		return 4
	}
	best := cmds[0]
	for _, c := range cmds[1:] {
		if rank(c) < rank(best) {
			best = c
		}
	}
	return best
}

func types(h []core.Event) []core.EventType {
	out := make([]core.EventType, len(h))
	for i, ev := range h {
		out[i] = ev.Type
	}
	return out
}

// TestRedrive ends invocations in each way a redrive may or may not undo,
// redrives them, and checks which calls ran again and how they end; the
// driver replays the history, redrives included, at every step.
func TestRedrive(t *testing.T) {
	boom := problem.New("https://example.com/boom", 500, "Boom", "the service failed")
	failFirst := func(task string) func(c *core.Call, n int) (any, *problem.Problem) {
		return func(c *core.Call, n int) (any, *problem.Problem) {
			if c.Task == task && n == 1 {
				return nil, boom
			}
			return map[string]any{"task": c.Task}, nil
		}
	}
	threeCalls := wf(`
do:
  - a:
      call: fa
  - b:
      call: fb
  - c:
      call: fc
  - done:
      set: {ok: true}`)
	rows := []struct {
		name      string
		doc       string
		answer    func(c *core.Call, n int) (any, *problem.Problem)
		cancel    func(c *core.Call) bool
		first     core.EventType
		refused   bool
		wantCalls map[string]int // executions of each task after the redrive finished
		wantKeys  []string
	}{
		{
			name: "a failed call runs again, completed ones do not",
			doc:  threeCalls, answer: failFirst("/do/1/b"), first: core.InvocationFaulted,
			wantCalls: map[string]int{"/do/0/a": 1, "/do/1/b": 2, "/do/2/c": 1},
			wantKeys:  []string{"inv-1/do/0/a/1", "inv-1/do/1/b/1", "inv-1/do/1/b/1/redrive-1", "inv-1/do/2/c/1"},
		},
		{
			name: "a call failing after its retries runs again as the last attempt",
			doc: wf(`
do:
  - try1:
      try:
        - a:
            call: fa
      catch:
        errors: {with: {status: 500}}
        retry:
          delay: {seconds: 1}
          limit: {attempt: {count: 2}}
  - b:
      call: fb`),
			answer: func(c *core.Call, n int) (any, *problem.Problem) {
				if c.Function == "fa" && len(c.Task) > 0 && n == 1 {
					return nil, boom
				}
				return "ok", nil
			},
			first:     core.InvocationFaulted,
			wantCalls: map[string]int{"/do/0/try1/try/0/a": 1, "/do/0/try1/try/0/a#2": 1, "/do/0/try1/try/0/a#3": 2, "/do/1/b": 1},
		},
		{
			name: "a cancelled invocation resumes the call it cut short",
			doc:  threeCalls, answer: failFirst("none"),
			cancel:    func(c *core.Call) bool { return c.Task == "/do/1/b" },
			first:     core.InvocationCancelled,
			wantCalls: map[string]int{"/do/0/a": 1, "/do/1/b": 1, "/do/2/c": 1},
		},
		{
			name: "a timed-out call runs again with its timeout started over",
			doc: wf(`
do:
  - a:
      call: fa
      timeout:
        after: {seconds: 5}
  - b:
      call: fb`),
			answer: func(c *core.Call, n int) (any, *problem.Problem) {
				if c.Task == "/do/0/a" && n == 1 {
					return nil, hold
				}
				return "ok", nil
			},
			first:     core.InvocationFaulted,
			wantCalls: map[string]int{"/do/0/a": 2, "/do/1/b": 1},
		},
		{
			name: "an expression error would fault again and is refused",
			doc: wf(`
do:
  - a:
      call: fa
  - bad:
      set: {x: '${ .nope | tonumber }'}`),
			answer:  func(c *core.Call, n int) (any, *problem.Problem) { return map[string]any{"nope": "x"}, nil },
			first:   core.InvocationFaulted,
			refused: true,
		},
		{
			name:    "a completed invocation is refused",
			doc:     threeCalls,
			answer:  failFirst("none"),
			first:   core.InvocationCompleted,
			refused: true,
		},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			now, _ := time.Parse(time.RFC3339, start)
			d := &crashDriver{t: t, def: row.doc, opts: core.Options{ID: "inv-1", MaxSteps: 10_000},
				now: now, calls: map[string]int{}, answer: row.answer, cancel: row.cancel}
			d.append(core.Event{Type: core.InvocationStarted, Input: map[string]any{}})
			if end := d.runToEnd(); end.Type != row.first {
				t.Fatalf("first run ended %s (%v), want %s", end.Type, end.Error, row.first)
			}
			ev, err := core.Redrive(parse(t, row.doc), d.opts, d.history)
			if row.refused {
				if !errors.Is(err, core.ErrNotRedrivable) {
					t.Fatalf("Redrive = %v, want ErrNotRedrivable", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Redrive: %v", err)
			}
			d.append(ev)
			if end := d.runToEnd(); end.Type != core.InvocationCompleted {
				t.Fatalf("after the redrive: %s (%v), history %v", end.Type, end.Error, types(d.history))
			}
			if !reflect.DeepEqual(d.calls, row.wantCalls) {
				t.Errorf("calls = %v, want %v", d.calls, row.wantCalls)
			}
			if row.wantKeys != nil && !reflect.DeepEqual(d.keys, row.wantKeys) {
				t.Errorf("idempotency keys = %v, want %v", d.keys, row.wantKeys)
			}
			// A second redrive of the completed invocation is refused.
			if _, err := core.Redrive(parse(t, row.doc), d.opts, d.history); !errors.Is(err, core.ErrNotRedrivable) {
				t.Errorf("second Redrive = %v, want ErrNotRedrivable", err)
			}
		})
	}
}

// TestRedriveTwice faults, redrives, faults again and redrives again: each
// redrive takes back its own fault.
func TestRedriveTwice(t *testing.T) {
	now, _ := time.Parse(time.RFC3339, start)
	doc := wf(`
do:
  - a:
      call: fa
  - b:
      call: fb`)
	d := &crashDriver{t: t, def: doc, opts: core.Options{ID: "inv-1"}, now: now, calls: map[string]int{},
		answer: func(c *core.Call, n int) (any, *problem.Problem) {
			if c.Task == "/do/1/b" && n < 3 {
				return nil, problem.New("https://example.com/boom", 503, "Busy", "")
			}
			return n, nil
		}}
	d.append(core.Event{Type: core.InvocationStarted})
	for i := range 2 {
		if end := d.runToEnd(); end.Type != core.InvocationFaulted {
			t.Fatalf("run %d ended %s", i, end.Type)
		}
		ev, err := core.Redrive(parse(t, doc), d.opts, d.history)
		if err != nil {
			t.Fatalf("Redrive %d: %v", i, err)
		}
		d.append(ev)
	}
	end := d.runToEnd()
	if end.Type != core.InvocationCompleted || end.Output != 3 {
		t.Fatalf("ended %s with %v, want completed with 3", end.Type, end.Output)
	}
	want := []string{"inv-1/do/0/a/1", "inv-1/do/1/b/1", "inv-1/do/1/b/1/redrive-1", "inv-1/do/1/b/1/redrive-2"}
	if !reflect.DeepEqual(d.keys, want) {
		t.Errorf("keys = %v, want %v", d.keys, want)
	}
}

// TestTaskEndedIsInformational: the machine ignores TaskEnded records, so
// a history with them replays as one without.
func TestTaskEndedIsInformational(t *testing.T) {
	def := parse(t, wf(`
do:
  - a:
      set: {x: 1}`))
	for _, history := range [][]core.Event{
		{{Seq: 1, Type: core.InvocationStarted}},
		{{Seq: 1, Type: core.InvocationStarted}, {Seq: 2, Type: core.TaskEnded, Task: "/do/0/a", Ref: "/do/0/a"}},
	} {
		m := core.New(def, core.Options{ID: "inv-1"})
		for _, ev := range history {
			if err := m.Step(ev); err != nil {
				t.Fatal(err)
			}
			if !(&ev).Informational() && ev.Type == core.TaskEnded {
				t.Error("TaskEnded is not informational")
			}
		}
		if m.Status() != core.StatusCompleted {
			t.Errorf("status %s after %v", m.Status(), types(history))
		}
	}
}
