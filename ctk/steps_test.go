package ctk

import (
	"testing"
	"time"

	"github.com/cucumber/godog"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/store"
)

type docString = godog.DocString

var zeroTime time.Time

// The steps must be able to fail: a runner whose assertions always pass
// would report conformance it never checked.
func TestStepsRejectWhatDoesNotHold(t *testing.T) {
	log := &taskLog{}
	log.TaskStarted("i", "/do/0/a", "/do/0/a", "a", zeroTime)
	log.TaskEnded("i", "/do/0/a", "/do/0/a", "a", zeroTime, nil)
	log.TaskStarted("i", "/do/1/b", "/do/1/b", "b", zeroTime)
	log.TaskStarted("i", "/do/1/b/do/0/inner", "/do/1/b/do/0/inner", "inner", zeroTime)
	log.TaskEnded("i", "/do/1/b/do/0/inner", "/do/1/b/do/0/inner", "inner", zeroTime, problem.Runtime("boom"))
	log.TaskEnded("i", "/do/1/b", "/do/1/b", "b", zeroTime, problem.Runtime("boom"))
	log.TaskStarted("i", "/do/2/c", "/do/2/c", "c", zeroTime)
	s := &scenario{tasks: log, result: &store.Invocation{
		Status: core.StatusCompleted,
		Output: map[string]any{"colors": []any{"red"}, "nested": map[string]any{"id": 1.0}},
	}}
	doc := func(content string) *docString { return &docString{Content: content} }
	cases := []struct {
		name string
		err  error
		fail bool
	}{
		{"first holds", s.taskRanFirst("a"), false},
		{"first fails", s.taskRanFirst("b"), true},
		{"inner task of the first", s.taskRanFirst("inner"), true},
		{"last fails: c started after b", s.taskRanLast("b"), true},
		{"before holds", s.taskRanBefore("a", "b"), false},
		{"before fails", s.taskRanBefore("b", "a"), true},
		{"complete holds", s.taskShouldComplete("a"), false},
		{"complete fails on a fault", s.taskShouldComplete("b"), true},
		{"fault holds", s.taskShouldFault("b"), false},
		{"fault with error holds", s.taskShouldFaultWithError("b", doc("status: 500\ntype: https://serverlessworkflow.io/dsl/errors/types/runtime")), false},
		{"fault with error fails", s.taskShouldFaultWithError("b", doc("status: 400")), true},
		{"cancel holds", s.taskShouldCancel("c"), false},
		{"cancel fails", s.taskShouldCancel("a"), true},
		{"unknown task", s.taskRanFirst("nobody"), true},
		{"properties hold", s.outputShouldHaveProperties("'colors', 'nested.id'"), false},
		{"properties fail", s.outputShouldHaveProperties("'colors', 'nested.name'"), true},
		{"value holds", s.outputPropertyWithValue("nested.id", doc("1")), false},
		{"value fails", s.outputPropertyWithValue("nested.id", doc("2")), true},
		{"items hold", s.outputPropertyWithItems("colors", 1), false},
		{"items fail", s.outputPropertyWithItems("colors", 3), true},
		{"output fails", s.workflowShouldCompleteWithOutput(doc("colors: [blue]")), true},
		{"fault fails on completion", s.workflowShouldFault(), true},
		{"cancel fails on completion", s.workflowShouldCancel(), true},
	}
	for _, c := range cases {
		if (c.err != nil) != c.fail {
			t.Errorf("%s: error %v, want failure %v", c.name, c.err, c.fail)
		}
	}
}
