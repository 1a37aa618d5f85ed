package dsl

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// KindGraph is a Baton-internal task kind: a dependency graph of nodes, each
// of which runs when every node it requires has completed, independent nodes
// running in parallel. It carries languages whose workflows are DAGs rather
// than task lists (Fission Workflows) onto the one core machine, so that
// they share its history, recovery and hooks. No DSL 1.0 document produces
// it; the Fission translator (package dsl/fission) does.
const KindGraph Kind = "graph"

// GraphTask is a KindGraph task's definition.
type GraphTask struct {
	// Nodes in declaration order: ready nodes start in this order, which
	// keeps the machine deterministic.
	Nodes []*GraphNode
	// Output names the node whose output is the graph's output.
	Output string
}

// GraphNode is one node of a graph.
type GraphNode struct {
	ID string
	// Run is the function reference: a built-in function, a Baton function
	// name, or fission://NAMESPACE/NAME.
	Run string
	// Inputs are the node's inputs as plain data. Strings wrapped in
	// `{ ... }` are JavaScript expressions, resolved when the node starts;
	// inline tasks ({run, inputs, requires}) and inline workflows
	// ({output, tasks}) are kept as data and run when a built-in function
	// hands them back.
	Inputs   map[string]any
	Requires []string
	// Pos is where the node's definition starts in the source.
	Pos Pos
}

// Index returns the position of the node with the given id, or -1.
func (g *GraphTask) Index(id string) int {
	for i, n := range g.Nodes {
		if n.ID == id {
			return i
		}
	}
	return -1
}

// Keys an inline task and an inline workflow may have. Data is recognised
// as one or the other by its shape, both in a document's inputs and in the
// output of a function (which is how a function returns a dynamic task).
var (
	graphTaskKeys     = map[string]bool{"run": true, "inputs": true, "requires": true}
	graphWorkflowKeys = map[string]bool{"apiVersion": true, "description": true, "output": true, "tasks": true}
)

// IsGraphTaskData reports whether v has the shape of an inline task:
// an object with a string `run` and no keys but run, inputs and requires.
func IsGraphTaskData(v any) bool {
	m, ok := v.(map[string]any)
	if !ok {
		return false
	}
	if _, ok := m["run"].(string); !ok {
		return false
	}
	for k := range m {
		if !graphTaskKeys[k] {
			return false
		}
	}
	return true
}

// IsGraphWorkflowData reports whether v has the shape of an inline
// workflow: an object with a `tasks` object and no keys but apiVersion,
// description, output and tasks.
func IsGraphWorkflowData(v any) bool {
	m, ok := v.(map[string]any)
	if !ok {
		return false
	}
	if _, ok := m["tasks"].(map[string]any); !ok {
		return false
	}
	for k := range m {
		if !graphWorkflowKeys[k] {
			return false
		}
	}
	return true
}

// GraphInputs normalises a node's `inputs`: an object that is neither an
// inline task nor an inline workflow gives its keys; anything else is the
// single input `default`.
func GraphInputs(v any) map[string]any {
	if v == nil {
		return map[string]any{}
	}
	if m, ok := v.(map[string]any); ok && !IsGraphTaskData(m) && !IsGraphWorkflowData(m) {
		out := make(map[string]any, len(m))
		for k, e := range m {
			out[k] = e
		}
		return out
	}
	return map[string]any{"default": v}
}

// GraphNodeFromData builds a node from inline task data (see
// IsGraphTaskData).
func GraphNodeFromData(id string, v any) (*GraphNode, error) {
	if !IsGraphTaskData(v) {
		return nil, fmt.Errorf("task %s is not an object with run, inputs and requires", id)
	}
	m := v.(map[string]any)
	n := &GraphNode{ID: id, Run: m["run"].(string), Inputs: GraphInputs(m["inputs"])}
	switch r := m["requires"].(type) {
	case nil:
	case []any:
		for _, e := range r {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("task %s: requires must list task ids", id)
			}
			n.Requires = append(n.Requires, s)
		}
	default:
		return nil, fmt.Errorf("task %s: requires must list task ids", id)
	}
	return n, nil
}

// GraphFromData builds a graph from inline workflow data (see
// IsGraphWorkflowData). Nodes are ordered by id, since data carries no
// declaration order. The graph is checked like a parsed one.
func GraphFromData(v any) (*GraphTask, error) {
	if !IsGraphWorkflowData(v) {
		return nil, errors.New("not an object with output and tasks")
	}
	m := v.(map[string]any)
	tasks := m["tasks"].(map[string]any)
	ids := make([]string, 0, len(tasks))
	for id := range tasks {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	g := &GraphTask{}
	for _, id := range ids {
		n, err := GraphNodeFromData(id, tasks[id])
		if err != nil {
			return nil, err
		}
		g.Nodes = append(g.Nodes, n)
	}
	switch out := m["output"].(type) {
	case string:
		g.Output = out
	case nil:
		if len(g.Nodes) == 1 {
			g.Output = g.Nodes[0].ID
		}
	}
	if err := g.Check(); err != nil {
		return nil, err
	}
	return g, nil
}

// Check verifies that the graph has an output node, that every
// requirement names a node of the graph, and that there is no cycle.
func (g *GraphTask) Check() error {
	if len(g.Nodes) == 0 {
		return errors.New("a workflow needs at least one task")
	}
	if g.Output == "" {
		return errors.New("output must name the task whose output is the workflow's")
	}
	if g.Index(g.Output) < 0 {
		return fmt.Errorf("output %q names no task", g.Output)
	}
	for _, n := range g.Nodes {
		for _, r := range n.Requires {
			if g.Index(r) < 0 {
				return fmt.Errorf("task %s requires %q, which is no task", n.ID, r)
			}
		}
	}
	if cycle := g.Cycle(); cycle != nil {
		return fmt.Errorf("the requirements form a cycle: %s", strings.Join(cycle, " → "))
	}
	return nil
}

// Cycle returns the ids along a requirement cycle (first id repeated at
// the end), or nil when the graph is acyclic.
func (g *GraphTask) Cycle() []string {
	const (
		unseen = iota
		open
		closed
	)
	state := make(map[string]int, len(g.Nodes))
	var stack []string
	var visit func(id string) []string
	visit = func(id string) []string {
		switch state[id] {
		case open:
			for i, s := range stack {
				if s == id {
					return append(append([]string(nil), stack[i:]...), id)
				}
			}
		case closed:
			return nil
		}
		state[id] = open
		stack = append(stack, id)
		if i := g.Index(id); i >= 0 {
			for _, r := range g.Nodes[i].Requires {
				if c := visit(r); c != nil {
					return c
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[id] = closed
		return nil
	}
	for _, n := range g.Nodes {
		if c := visit(n.ID); c != nil {
			return c
		}
	}
	return nil
}
