package core_test

import (
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/dsl"
	"github.com/batonflow/baton/problem"
)

// hold is a handler result that leaves a call unanswered, like a call that
// is still running.
var hold = &problem.Problem{Type: "hold"}

type handler func(c *core.Call) (any, *problem.Problem)

// sim drives a machine the way the engine does, with a virtual clock and
// call handlers in place of I/O. It records the history it writes, so a
// test can replay it into a fresh machine.
type sim struct {
	t        *testing.T
	def      *dsl.Workflow
	m        *core.Machine
	now      time.Time
	seq      int64
	history  []core.Event
	handlers map[string]handler
	queue    []*core.Call
	held     map[string]*core.Call
	timers   map[string]time.Time
	// What the machine asked for, for assertions.
	calls     []*core.Call
	cancelled []string
	waits     []time.Duration
	finish    *core.Finish
}

const start = "2026-01-02T03:04:05Z"

func parse(t *testing.T, src string) *dsl.Workflow {
	t.Helper()
	def, err := dsl.Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return def
}

func newSim(t *testing.T, src string, handlers map[string]handler) *sim {
	t.Helper()
	def := parse(t, src)
	now, _ := time.Parse(time.RFC3339, start)
	return &sim{
		t: t, def: def, now: now,
		m:        core.New(def, core.Options{ID: "inv-1", MaxSteps: 10_000}),
		handlers: handlers,
		held:     map[string]*core.Call{},
		timers:   map[string]time.Time{},
	}
}

func (s *sim) step(ev core.Event) {
	s.t.Helper()
	s.seq++
	ev.Seq = s.seq
	ev.Time = s.now
	s.history = append(s.history, ev)
	if err := s.m.Step(ev); err != nil {
		s.t.Fatalf("step %s: %v", ev.Type, err)
	}
	for _, c := range s.m.Ready() {
		switch c := c.(type) {
		case *core.Call:
			s.calls = append(s.calls, c)
			s.queue = append(s.queue, c)
		case *core.CancelCall:
			s.cancelled = append(s.cancelled, c.Task)
			delete(s.held, c.Task)
			for i, q := range s.queue {
				if q.Task == c.Task {
					s.queue = append(s.queue[:i], s.queue[i+1:]...)
					break
				}
			}
		case *core.StartTimer:
			s.waits = append(s.waits, c.After)
			at := s.now.Add(c.After)
			s.timers[c.Timer] = at
			s.step(core.Event{Type: core.TimerScheduled, Timer: c.Timer, FireAt: at})
		case *core.CancelTimer:
			delete(s.timers, c.Timer)
		case *core.Finish:
			s.finish = c
		}
	}
}

// run starts the invocation and drives it until it finishes or nothing
// more can happen.
func (s *sim) run(input any) *core.Finish {
	s.t.Helper()
	s.step(core.Event{Type: core.InvocationStarted, Input: input})
	for s.finish == nil {
		if len(s.queue) > 0 {
			c := s.queue[0]
			s.queue = s.queue[1:]
			h := s.handlers[c.Function]
			if h == nil {
				s.t.Fatalf("no handler for call %q", c.Function)
			}
			out, err := h(c)
			switch {
			case err == hold:
				s.held[c.Task] = c
			case err != nil:
				s.step(core.Event{Type: core.TaskFailed, Task: c.Task, Attempt: c.Attempt, Error: err})
			default:
				s.step(core.Event{Type: core.TaskCompleted, Task: c.Task, Attempt: c.Attempt, Output: out})
			}
			continue
		}
		if len(s.timers) == 0 {
			break
		}
		ids := make([]string, 0, len(s.timers))
		for id := range s.timers {
			ids = append(ids, id)
		}
		sort.Slice(ids, func(i, j int) bool {
			a, b := s.timers[ids[i]], s.timers[ids[j]]
			return a.Before(b) || a.Equal(b) && ids[i] < ids[j]
		})
		id := ids[0]
		s.now = s.timers[id]
		delete(s.timers, id)
		s.step(core.Event{Type: core.TimerFired, Timer: id})
	}
	return s.finish
}

// replay feeds the recorded history to a fresh machine and checks that it
// reaches the same end without asking for any call whose result it has.
func (s *sim) replay() {
	s.t.Helper()
	m := core.New(s.def, core.Options{ID: "inv-1", MaxSteps: 10_000})
	for _, ev := range s.history {
		if err := m.Step(ev); err != nil {
			s.t.Fatalf("replay step %s: %v", ev.Type, err)
		}
	}
	var finish *core.Finish
	for _, c := range m.Ready() {
		switch c := c.(type) {
		case *core.Call:
			if _, isHeld := s.held[c.Task]; !isHeld {
				s.t.Errorf("replay asked again for call %s, whose result is in the history", c.Task)
			}
		case *core.Finish:
			finish = c
		}
	}
	if s.finish != nil {
		if finish == nil {
			s.t.Fatalf("replay did not finish; the live run finished %s", s.finish.Status)
		}
		if !reflect.DeepEqual(jsonValue(finish), jsonValue(s.finish)) {
			s.t.Errorf("replay finished %s, the live run %s", dump(finish), dump(s.finish))
		}
	}
}

func jsonValue(v any) any {
	b, _ := json.Marshal(v)
	var out any
	_ = json.Unmarshal(b, &out)
	return out
}

func dump(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// yamlValue reads a YAML literal into plain JSON data.
func yamlValue(t *testing.T, src string) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal([]byte(src), &v); err != nil {
		t.Fatalf("yaml: %v", err)
	}
	return jsonValue(v)
}

func wf(body string) string {
	return "document:\n  dsl: '1.0.0'\n  namespace: test\n  name: t\n  version: '1.0.0'\n" + strings.TrimLeft(body, "\n")
}
