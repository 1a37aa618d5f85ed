package fission

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/batonflow/baton/dsl"
	"github.com/batonflow/baton/expr/js"
)

// DefaultRouter is the Fission router URL written into converted calls of
// fission:// functions; the user adjusts it (a warning says so).
const DefaultRouter = "http://router.fission"

// Convert writes the DSL 1.0 equivalent of a parsed Fission workflow.
//
// The graph becomes a sequence of levels: a task runs in the level after
// the last of its requirements, and the tasks of one level run as the
// branches of a fork. Every task exports its output into $context under its
// id, which is where translated expressions read other tasks' outputs.
// What has no DSL 1.0 equivalent (dynamic tasks, inline workflows, while,
// repeat, javascript, JavaScript beyond plain accessors) is reported in the
// warnings, and left in the document as a `set` of the original definition
// under `unconverted`, so the result still parses and shows what to redo.
func Convert(wf *dsl.Workflow) ([]byte, []string, error) {
	if len(wf.Do) != 1 || wf.Do[0].Task.Kind != dsl.KindGraph || wf.Do[0].Task.Graph == nil {
		return nil, nil, fmt.Errorf("%s is not a Fission workflow", wf.Source)
	}
	g := wf.Do[0].Task.Graph
	c := &converter{}
	levels := levelsOf(g)
	var do []any
	for i, level := range levels {
		if len(level) == 1 {
			do = append(do, map[string]any{level[0].ID: c.task(level[0])})
			continue
		}
		var branches []any
		for _, n := range level {
			branches = append(branches, map[string]any{n.ID: c.task(n)})
		}
		do = append(do, map[string]any{"level" + strconv.Itoa(i+1): map[string]any{"fork": map[string]any{"branches": branches}}})
	}
	if lost := lostParallelism(g, levels); len(lost) > 0 {
		c.warnf("tasks %s wait for their whole level in DSL 1.0, not only for what they require; the graph runs level by level", strings.Join(lost, ", "))
	}
	doc := struct {
		Document map[string]any `yaml:"document"`
		Do       []any          `yaml:"do"`
		Output   map[string]any `yaml:"output"`
	}{
		Document: map[string]any{
			"dsl": "1.0.0", "namespace": wf.Document.Namespace, "name": wf.Document.Name,
			"version": strings.SplitN(wf.Document.Version, "+", 2)[0],
		},
		Do:     do,
		Output: map[string]any{"as": "${ $context." + jqKey(g.Output) + " }"},
	}
	if wf.Document.Summary != "" {
		doc.Document["summary"] = wf.Document.Summary
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		return nil, nil, fmt.Errorf("writing the DSL document: %w", err)
	}
	return out, c.warnings, nil
}

type converter struct {
	warnings []string
	// item is the jq variable that task().Inputs._item reads inside a
	// converted foreach.
	item string
}

func (c *converter) warnf(format string, args ...any) {
	c.warnings = append(c.warnings, fmt.Sprintf(format, args...))
}

// levelsOf groups nodes by the length of their longest requirement chain,
// keeping declaration order within a level.
func levelsOf(g *dsl.GraphTask) [][]*dsl.GraphNode {
	depth := map[string]int{}
	var visit func(n *dsl.GraphNode) int
	visit = func(n *dsl.GraphNode) int {
		if d, ok := depth[n.ID]; ok {
			return d
		}
		d := 0
		for _, r := range n.Requires {
			if i := g.Index(r); i >= 0 {
				d = max(d, visit(g.Nodes[i])+1)
			}
		}
		depth[n.ID] = d
		return d
	}
	var levels [][]*dsl.GraphNode
	for _, n := range g.Nodes {
		d := visit(n)
		for len(levels) <= d {
			levels = append(levels, nil)
		}
		levels[d] = append(levels[d], n)
	}
	return levels
}

// lostParallelism lists the nodes that the level structure makes wait for
// more than they require: those whose level before theirs holds a node
// they do not require, with a sibling that outlasts it in the graph.
func lostParallelism(g *dsl.GraphTask, levels [][]*dsl.GraphNode) []string {
	var lost []string
	for i := 1; i < len(levels); i++ {
		for _, n := range levels[i] {
			required := map[string]bool{}
			for _, r := range n.Requires {
				required[r] = true
			}
			for _, p := range levels[i-1] {
				if !required[p.ID] {
					lost = append(lost, n.ID)
					break
				}
			}
		}
	}
	return lost
}

func exportAs(id string) map[string]any {
	return map[string]any{"as": "${ $context + {" + strconv.Quote(id) + ": .} }"}
}

func (c *converter) task(n *dsl.GraphNode) map[string]any {
	t := c.body(n.ID, n.Run, n.Inputs)
	t["export"] = exportAs(n.ID)
	return t
}

// body converts what a task runs.
func (c *converter) body(id, run string, inputs map[string]any) map[string]any {
	switch run {
	case "noop", "nop":
		return map[string]any{"set": setValue(c.value(id, inputs["default"]))}
	case "compose":
		if d, ok := inputs["default"]; ok && len(inputs) == 1 {
			return map[string]any{"set": setValue(c.value(id, d))}
		}
		return map[string]any{"set": setValue(c.value(id, inputs))}
	case "sleep":
		d := time.Second
		if s, ok := inputs["default"].(string); ok {
			parsed, err := time.ParseDuration(s)
			if err != nil {
				c.warnf("task %s: sleep duration %q is not a Go duration", id, s)
				break
			}
			d = parsed
		}
		return map[string]any{"wait": isoDuration(d)}
	case "fail":
		msg, _ := inputs["default"].(string)
		if msg == "" {
			msg = "the workflow failed"
		}
		return map[string]any{"raise": map[string]any{"error": map[string]any{
			"type": "https://serverlessworkflow.io/spec/1.0.0/errors/runtime", "status": 500, "title": "Failed", "detail": msg,
		}}}
	case "http":
		url := inputs["url"]
		if url == nil {
			url = inputs["uri"]
		}
		body, hasBody := inputs["body"]
		if url == nil {
			url = inputs["default"]
		} else if !hasBody {
			body, hasBody = inputs["default"]
		}
		method, _ := inputs["method"].(string)
		if method == "" {
			method = "get"
		}
		with := map[string]any{"method": strings.ToLower(method), "endpoint": c.value(id, url)}
		for _, k := range []string{"headers", "query"} {
			if v, ok := inputs[k]; ok {
				with[k] = c.value(id, v)
			}
		}
		if hasBody {
			with["body"] = c.value(id, body)
		}
		return map[string]any{"call": "http", "with": with}
	case "if":
		return c.ifTask(id, inputs)
	case "switch":
		return c.switchTask(id, inputs)
	case "foreach":
		return c.foreachTask(id, inputs)
	case "while", "repeat", "javascript":
		c.warnf("task %s: %s has no DSL 1.0 equivalent", id, run)
		return unconverted(run, inputs)
	}
	if ref, ok := strings.CutPrefix(run, "fission://"); ok {
		namespace, name, err := SplitFissionRef(ref)
		if err != nil {
			c.warnf("task %s: %v", id, err)
			return unconverted(run, inputs)
		}
		path := name
		if namespace != "default" {
			path = namespace + "/" + name
		}
		c.warnf("task %s: the Fission function %s is called through %s; change the router URL to yours", id, ref, DefaultRouter)
		with := map[string]any{"method": "post", "endpoint": DefaultRouter + "/fission-function/" + path}
		body, hasBody := inputs["body"]
		if !hasBody {
			body, hasBody = inputs["default"]
		}
		if hasBody {
			with["body"] = c.value(id, body)
		}
		for _, k := range []string{"headers", "query"} {
			if v, ok := inputs[k]; ok {
				with[k] = c.value(id, v)
			}
		}
		if m, ok := inputs["method"].(string); ok {
			with["method"] = strings.ToLower(m)
		}
		return map[string]any{"call": "http", "with": with}
	}
	return map[string]any{"call": run, "with": c.value(id, inputs)}
}

// setValue makes a converted value fit `set`, which takes an object or a
// runtime expression: anything else becomes an expression of its literal.
func setValue(v any) any {
	if _, isMap := v.(map[string]any); isMap {
		return v
	}
	if s, ok := v.(string); ok && strings.HasPrefix(s, "${") {
		return s
	}
	lit, err := toJSON(v)
	if err != nil {
		return map[string]any{"unconverted": v}
	}
	return "${ " + lit + " }"
}

func unconverted(run string, inputs map[string]any) map[string]any {
	return map[string]any{"set": map[string]any{"unconverted": map[string]any{"run": run, "inputs": inputs}}}
}

func (c *converter) ifTask(id string, inputs map[string]any) map[string]any {
	for _, k := range []string{"then", "else"} {
		if v := inputs[k]; dsl.IsGraphTaskData(v) || dsl.IsGraphWorkflowData(v) {
			c.warnf("task %s: if returns a task to run in its place (a dynamic task), which has no DSL 1.0 equivalent", id)
			return unconverted("if", inputs)
		}
	}
	cond, ok := c.jq(id, inputs["if"])
	if !ok {
		return unconverted("if", inputs)
	}
	then, ok1 := c.jq(id, inputs["then"])
	els, ok2 := c.jq(id, inputs["else"])
	if !ok1 || !ok2 {
		return unconverted("if", inputs)
	}
	return map[string]any{"set": "${ if " + cond + " then " + then + " else " + els + " end }"}
}

func (c *converter) switchTask(id string, inputs map[string]any) map[string]any {
	value, ok := c.jq(id, inputs["switch"])
	if !ok {
		return unconverted("switch", inputs)
	}
	fallback, ok := c.jq(id, inputs["default"])
	if !ok {
		return unconverted("switch", inputs)
	}
	cases, _ := inputs["cases"].([]any)
	var b strings.Builder
	b.WriteString("${ (" + value + ") as $v | ")
	for _, cs := range cases {
		m, _ := cs.(map[string]any)
		key, _ := m["case"].(string)
		action, ok := c.jq(id, m["action"])
		if !ok {
			return unconverted("switch", inputs)
		}
		b.WriteString("if $v == " + strconv.Quote(key) + " then " + action + " el")
	}
	b.WriteString("se " + fallback + " end")
	if len(cases) == 0 {
		return map[string]any{"set": "${ " + fallback + " }"}
	}
	b.WriteString(" }")
	return map[string]any{"set": b.String()}
}

func (c *converter) foreachTask(id string, inputs map[string]any) map[string]any {
	var list any
	for _, k := range []string{"foreach", "for", "default"} {
		if v, ok := inputs[k]; ok {
			list = v
			break
		}
	}
	in, ok := c.jq(id, list)
	do := inputs["do"]
	if !ok || !dsl.IsGraphTaskData(do) {
		c.warnf("task %s: foreach over a workflow has no DSL 1.0 equivalent", id)
		return unconverted("foreach", inputs)
	}
	if seq, _ := inputs["sequential"].(bool); !seq {
		c.warnf("task %s: foreach runs its elements in parallel; DSL 1.0 for runs them one after the other", id)
	}
	node, err := dsl.GraphNodeFromData(id+"Item", do)
	if err != nil {
		c.warnf("task %s: %v", id, err)
		return unconverted("foreach", inputs)
	}
	c.item = "$item"
	body := c.body(node.ID, node.Run, node.Inputs)
	c.item = ""
	if collect, ok := inputs["collect"].(bool); !ok || collect {
		// for passes each output on as the next input: accumulate them.
		body["output"] = map[string]any{"as": "${ $input + [.] }"}
		return map[string]any{
			"input": map[string]any{"from": "${ [] }"},
			"for":   map[string]any{"each": "item", "in": "${ " + in + " }"},
			"do":    []any{map[string]any{node.ID: body}},
		}
	}
	return map[string]any{
		"for": map[string]any{"each": "item", "in": "${ " + in + " }"},
		"do":  []any{map[string]any{node.ID: body}},
	}
}

// value converts input data, translating expressions.
func (c *converter) value(id string, v any) any {
	switch x := v.(type) {
	case string:
		if !js.IsExpr(x) {
			return x
		}
		q, ok := c.jq(id, x)
		if !ok {
			return x
		}
		return "${ " + q + " }"
	case map[string]any:
		if dsl.IsGraphTaskData(x) || dsl.IsGraphWorkflowData(x) {
			c.warnf("task %s: an inline task or workflow in the inputs has no DSL 1.0 equivalent", id)
			return x
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = c.value(id, e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = c.value(id, e)
		}
		return out
	}
	return v
}

var (
	// Accessors that have a jq equivalent; anything else does not convert.
	taskOutput  = regexp.MustCompile(`^\$\.Tasks\.([A-Za-z_][A-Za-z0-9_]*)\.Output((?:\.[A-Za-z_][A-Za-z0-9_]*)*)$`)
	outputCall  = regexp.MustCompile(`^output\(\s*['"]([^'"]+)['"]\s*\)((?:\.[A-Za-z_][A-Za-z0-9_]*)*)$`)
	invocation  = regexp.MustCompile(`^\$\.Invocation\.Inputs(?:\.default)?((?:\.[A-Za-z_][A-Za-z0-9_]*)*)$`)
	paramCall   = regexp.MustCompile(`^param\(\s*(?:['"]([^'"]*)['"])?\s*\)((?:\.[A-Za-z_][A-Za-z0-9_]*)*)$`)
	currentItem = regexp.MustCompile(`^task\(\)\.Inputs\._item((?:\.[A-Za-z_][A-Za-z0-9_]*)*)$`)
)

// jq translates a value into a jq expression: data becomes its JSON
// literal, a `{ ... }` accessor its jq equivalent.
func (c *converter) jq(id string, v any) (string, bool) {
	s, isString := v.(string)
	if !isString {
		if v == nil {
			return "null", true
		}
		if dsl.IsGraphTaskData(v) || dsl.IsGraphWorkflowData(v) {
			return "", false
		}
		b, err := toJSON(v)
		if err != nil {
			c.warnf("task %s: %v", id, err)
			return "", false
		}
		return b, true
	}
	src, ok := js.Unwrap(s)
	if !ok {
		return strconv.Quote(s), true
	}
	if m := taskOutput.FindStringSubmatch(src); m != nil {
		return "$context." + jqKey(m[1]) + m[2], true
	}
	if m := outputCall.FindStringSubmatch(src); m != nil {
		return "$context." + jqKey(m[1]) + m[2], true
	}
	if m := invocation.FindStringSubmatch(src); m != nil {
		return "$workflow.input" + m[1], true
	}
	if m := paramCall.FindStringSubmatch(src); m != nil {
		if m[1] == "" || m[1] == "default" {
			return "$workflow.input" + m[2], true
		}
		return "$workflow.input." + jqKey(m[1]) + m[2], true
	}
	if m := currentItem.FindStringSubmatch(src); m != nil && c.item != "" {
		return c.item + m[1], true
	}
	c.warnf("task %s: the JavaScript expression %q has no jq translation; rewrite it by hand", id, s)
	return "", false
}

var jqPlain = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func jqKey(k string) string {
	if jqPlain.MatchString(k) {
		return k
	}
	return "[" + strconv.Quote(k) + "]"
}

// isoDuration writes d as an ISO 8601 duration (PT1H10M2.5S).
func isoDuration(d time.Duration) string {
	if d <= 0 {
		return "PT0S"
	}
	var b strings.Builder
	b.WriteString("PT")
	if h := d / time.Hour; h > 0 {
		fmt.Fprintf(&b, "%dH", h)
		d -= h * time.Hour
	}
	if m := d / time.Minute; m > 0 {
		fmt.Fprintf(&b, "%dM", m)
		d -= m * time.Minute
	}
	if d > 0 {
		b.WriteString(strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "S")
	}
	return b.String()
}

func toJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("value %v cannot be written as JSON: %w", v, err)
	}
	return string(b), nil
}
