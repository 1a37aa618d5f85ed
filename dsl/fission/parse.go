// Package fission reads workflows written in the Fission Workflows language
// (apiVersion, output, tasks with run/inputs/requires) and translates them
// into Baton's workflow model, so that the one core machine runs them: the
// whole document becomes a single task of the Baton-internal kind
// dsl.KindGraph, whose nodes are the document's tasks.
//
// Document identity, which the Fission format does not carry:
//   - namespace: Options.Namespace, else a top-level `namespace` key, else
//     "default";
//   - name: a top-level `name` key, else the file name without its
//     .wf.yaml (or .yaml, .yml, .json) extension, made into a DNS label;
//   - version: a top-level `version` key (a semantic version), else
//     "1.0.0+" and the first 12 hex digits of the SHA-256 of the source, so
//     that an edited file is a new version and an unchanged one is the same.
package fission

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/batonflow/baton/dsl"
	"github.com/batonflow/baton/expr/js"
)

// Format is the value of store.Workflow.Format for this language.
const Format = "fission"

// DSLName is what Document.DSL says for a translated document.
const DSLName = "fission-workflows"

// Options adjust parsing.
type Options struct {
	// Namespace overrides the namespace (see the package comment).
	Namespace string
}

// Detect recognises a Fission Workflows document by its shape: a mapping at
// the top level with a `tasks` mapping, no DSL 1.0 `document` or `do`, and
// `apiVersion` or `output` beside it.
func Detect(src []byte) bool {
	var root yaml.Node
	if err := yaml.Unmarshal(src, &root); err != nil || len(root.Content) == 0 {
		return false
	}
	m := root.Content[0]
	if m.Kind != yaml.MappingNode {
		return false
	}
	var tasks, marker bool
	for i := 0; i+1 < len(m.Content); i += 2 {
		switch m.Content[i].Value {
		case "tasks":
			tasks = m.Content[i+1].Kind == yaml.MappingNode
		case "apiVersion", "output":
			marker = true
		case "document", "do":
			return false
		}
	}
	return tasks && marker
}

// Parse reads a document with the default options.
func Parse(filename string, src []byte) (*dsl.Workflow, error) {
	return ParseWith(filename, src, Options{})
}

// ParseWith reads a document. Problems come back together as a
// dsl.ErrorList, each with its file, line and column.
func ParseWith(filename string, src []byte, opts Options) (*dsl.Workflow, error) {
	p := &parser{file: filename, check: js.NewEvaluator(0)}
	root, err := decode(src)
	if err != nil {
		return nil, dsl.ErrorList{p.syntaxError(err)}
	}
	wf := p.workflow(root, filename, src, opts)
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	return wf, nil
}

type parser struct {
	file  string
	errs  dsl.ErrorList
	check *js.Evaluator
}

func (p *parser) errorf(n *yaml.Node, at string, format string, args ...any) {
	p.errs = append(p.errs, &dsl.Error{File: p.file, Pos: pos(n), Path: at, Msg: fmt.Sprintf(format, args...)})
}

func pos(n *yaml.Node) dsl.Pos {
	if n == nil {
		return dsl.Pos{Line: 1, Col: 1}
	}
	return dsl.Pos{Line: n.Line, Col: n.Column}
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

func (p *parser) syntaxError(err error) *dsl.Error {
	msg := err.Error()
	line := 1
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		if n, convErr := strconv.Atoi(m[1]); convErr == nil && n > 0 {
			line = n
		}
		msg = msg[len(m[0]):]
	}
	return &dsl.Error{File: p.file, Pos: dsl.Pos{Line: line, Col: 1}, Msg: msg}
}

func decode(src []byte) (root *yaml.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			root, err = nil, fmt.Errorf("yaml: %v", r)
		}
	}()
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, errors.New("the document is empty")
	}
	return doc.Content[0], nil
}

var (
	dnsLabel = regexp.MustCompile(`^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$`)
	semver   = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$`)
	notLabel = regexp.MustCompile(`[^a-z0-9-]+`)
)

func (p *parser) workflow(root *yaml.Node, filename string, src []byte, opts Options) *dsl.Workflow {
	sum := sha256.Sum256(src)
	wf := &dsl.Workflow{
		Source: filename,
		Document: dsl.Document{
			DSL:       DSLName,
			Namespace: "default",
			Name:      nameFromFile(filename),
			Version:   "1.0.0+" + hex.EncodeToString(sum[:6]),
		},
	}
	if root.Kind != yaml.MappingNode {
		p.errorf(root, "", "a Fission workflow is an object with apiVersion, output and tasks, not %s", kind(root))
		return wf
	}
	raw, _ := p.data(root).(map[string]any)
	wf.Raw = raw
	var tasksNode, outputNode *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		switch k.Value {
		case "apiVersion":
			if v.Kind != yaml.ScalarNode {
				p.errorf(v, "apiVersion", "apiVersion must be a number or a string, not %s", kind(v))
			}
		case "description":
			if v.Kind != yaml.ScalarNode {
				p.errorf(v, "description", "description must be a string, not %s", kind(v))
			}
			wf.Document.Summary = v.Value
		case "output":
			outputNode = v
		case "tasks":
			tasksNode = v
		case "namespace", "name":
			if v.Kind != yaml.ScalarNode || !dnsLabel.MatchString(v.Value) {
				p.errorf(v, k.Value, "%s must be a DNS label (letters, digits and dashes)", k.Value)
				continue
			}
			if k.Value == "name" {
				wf.Document.Name = v.Value
			} else {
				wf.Document.Namespace = v.Value
			}
		case "version":
			if v.Kind != yaml.ScalarNode || !semver.MatchString(v.Value) {
				p.errorf(v, "version", "version must be a semantic version such as 1.0.0")
				continue
			}
			wf.Document.Version = v.Value
		default:
			p.errorf(k, k.Value, "unknown property %q; a Fission workflow has apiVersion, description, output and tasks", k.Value)
		}
	}
	if opts.Namespace != "" {
		wf.Document.Namespace = opts.Namespace
	}
	if tasksNode == nil {
		p.errorf(root, "", "tasks is required")
		return wf
	}
	g := p.graph(root, outputNode, tasksNode, "")
	wf.Do = dsl.TaskList{{
		Name: wf.Document.Name,
		Task: &dsl.Task{Kind: dsl.KindGraph, Ref: "/tasks", Pos: pos(tasksNode), Graph: g, Raw: raw},
	}}
	return wf
}

func nameFromFile(filename string) string {
	base := filepath.Base(filename)
	for _, ext := range []string{".wf.yaml", ".wf.yml", ".yaml", ".yml", ".json"} {
		if strings.HasSuffix(base, ext) {
			base = strings.TrimSuffix(base, ext)
			break
		}
	}
	name := strings.Trim(notLabel.ReplaceAllString(strings.ToLower(base), "-"), "-")
	if len(name) > 63 {
		name = strings.Trim(name[:63], "-")
	}
	if name == "" {
		return "workflow"
	}
	return name
}

// graph reads a workflow's output and tasks (the document's, or an inline
// workflow's at path at).
func (p *parser) graph(owner, outputNode, tasksNode *yaml.Node, at string) *dsl.GraphTask {
	g := &dsl.GraphTask{}
	if tasksNode.Kind != yaml.MappingNode {
		p.errorf(tasksNode, join(at, "tasks"), "tasks must be an object of tasks by id, not %s", kind(tasksNode))
		return g
	}
	nodes := map[string]*yaml.Node{}
	for i := 0; i+1 < len(tasksNode.Content); i += 2 {
		k, v := tasksNode.Content[i], tasksNode.Content[i+1]
		id := k.Value
		tat := join(join(at, "tasks"), id)
		if _, dup := nodes[id]; dup {
			p.errorf(k, tat, "task %q is defined twice", id)
			continue
		}
		nodes[id] = k
		if n := p.task(id, v, tat); n != nil {
			g.Nodes = append(g.Nodes, n)
		}
	}
	if len(tasksNode.Content) == 0 {
		p.errorf(tasksNode, join(at, "tasks"), "a workflow needs at least one task")
	}
	switch {
	case outputNode != nil && outputNode.Kind == yaml.ScalarNode && outputNode.Value != "":
		g.Output = outputNode.Value
		if _, ok := nodes[g.Output]; !ok {
			p.errorf(outputNode, join(at, "output"), "output %q names no task", g.Output)
		}
	case outputNode != nil:
		p.errorf(outputNode, join(at, "output"), "output must be the id of a task")
	case len(g.Nodes) == 1:
		g.Output = g.Nodes[0].ID
	default:
		p.errorf(owner, join(at, "output"), "output is required when there is more than one task: it names the task whose output is the workflow's")
	}
	for _, n := range g.Nodes {
		for _, r := range n.Requires {
			if _, ok := nodes[r]; !ok {
				p.errorf(nodes[n.ID], join(join(join(at, "tasks"), n.ID), "requires"), "requires %q, which is no task of this workflow", r)
			}
			if r == n.ID {
				p.errorf(nodes[n.ID], join(join(join(at, "tasks"), n.ID), "requires"), "a task cannot require itself")
			}
		}
	}
	if c := g.Cycle(); len(c) > 2 {
		p.errorf(nodes[c[0]], join(join(at, "tasks"), c[0]), "the requirements form a cycle: %s", strings.Join(c, " → "))
	}
	return g
}

func (p *parser) task(id string, n *yaml.Node, at string) *dsl.GraphNode {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, at, "a task is an object with run, inputs and requires, not %s", kind(n))
		return nil
	}
	node := &dsl.GraphNode{ID: id, Pos: pos(n), Inputs: map[string]any{}}
	var hasRun bool
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "run":
			hasRun = true
			if v.Kind != yaml.ScalarNode || v.Value == "" {
				p.errorf(v, join(at, "run"), "run must name a function")
				continue
			}
			node.Run = v.Value
			p.checkRun(v, join(at, "run"))
		case "inputs":
			node.Inputs = dsl.GraphInputs(p.inputs(v, join(at, "inputs")))
		case "requires":
			if v.Kind != yaml.SequenceNode {
				p.errorf(v, join(at, "requires"), "requires must be a list of task ids")
				continue
			}
			for _, r := range v.Content {
				if r.Kind != yaml.ScalarNode {
					p.errorf(r, join(at, "requires"), "requires must be a list of task ids")
					continue
				}
				node.Requires = append(node.Requires, r.Value)
			}
		default:
			p.errorf(k, join(at, k.Value), "unknown property %q; a task has run, inputs and requires", k.Value)
		}
	}
	if !hasRun {
		p.errorf(n, at, "run is required: it names the function the task runs")
	}
	return node
}

func (p *parser) checkRun(n *yaml.Node, at string) {
	if rest, ok := strings.CutPrefix(n.Value, "fission://"); ok {
		if _, _, err := SplitFissionRef(rest); err != nil {
			p.errorf(n, at, "%v", err)
		}
	}
}

// SplitFissionRef reads the part of a fission:// reference after the
// scheme: NAME or NAMESPACE/NAME (the namespace defaults to "default").
func SplitFissionRef(ref string) (namespace, name string, err error) {
	parts := strings.Split(ref, "/")
	switch {
	case len(parts) == 1 && parts[0] != "":
		return "default", parts[0], nil
	case len(parts) == 2 && parts[0] != "" && parts[1] != "":
		return parts[0], parts[1], nil
	}
	return "", "", fmt.Errorf("fission://%s is not a reference of the form fission://NAME or fission://NAMESPACE/NAME", ref)
}

// inputs converts a task's inputs to data, checking the expressions and
// the inline tasks and workflows inside.
func (p *parser) inputs(n *yaml.Node, at string) any {
	p.walk(n, at)
	return p.data(n)
}

// walk checks what sits in inputs: `{ ... }` strings must compile, inline
// tasks and workflows must be well formed.
func (p *parser) walk(n *yaml.Node, at string) {
	n = resolveAlias(n)
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!str" || n.Style != 0 {
			if src, ok := js.Unwrap(n.Value); ok {
				if err := p.check.Check(src); err != nil {
					p.errorf(n, at, "%v", err)
				}
			}
		}
	case yaml.SequenceNode:
		for i, e := range n.Content {
			p.walk(e, at+"["+strconv.Itoa(i)+"]")
		}
	case yaml.MappingNode:
		keys := map[string]*yaml.Node{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			keys[n.Content[i].Value] = n.Content[i+1]
		}
		if _, isTask := keys["run"]; isTask {
			p.task("inline", n, at)
			return
		}
		if tasks, isWorkflow := keys["tasks"]; isWorkflow {
			p.graph(n, keys["output"], tasks, at)
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			p.walk(n.Content[i+1], join(at, n.Content[i].Value))
		}
	}
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// data converts a node to plain JSON data.
func (p *parser) data(n *yaml.Node) any {
	var v any
	if err := n.Decode(&v); err != nil {
		p.errorf(n, "", "%v", err)
		return nil
	}
	out, err := plain(v)
	if err != nil {
		p.errorf(n, "", "%v", err)
	}
	return out
}

func plain(v any) (any, error) {
	switch x := v.(type) {
	case nil, string, bool:
		return x, nil
	case float64:
		// .inf and .nan are YAML numbers but not JSON ones.
		if math.IsInf(x, 0) || math.IsNaN(x) {
			return nil, fmt.Errorf("%v is not a JSON number", x)
		}
		return x, nil
	case int:
		return float64(x), nil
	case int64:
		return float64(x), nil
	case uint64:
		return float64(x), nil
	case float32:
		return float64(x), nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			var err error
			if out[i], err = plain(e); err != nil {
				return nil, err
			}
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			var err error
			if out[k], err = plain(e); err != nil {
				return nil, err
			}
		}
		return out, nil
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			var err error
			if out[fmt.Sprint(k)], err = plain(e); err != nil {
				return nil, err
			}
		}
		return out, nil
	default:
		if f, ok := v.(interface{ String() string }); ok {
			return f.String(), nil
		}
		return nil, fmt.Errorf("value %v cannot be represented as JSON", v)
	}
}

func kind(n *yaml.Node) string {
	switch resolveAlias(n).Kind {
	case yaml.MappingNode:
		return "an object"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "null"
		}
		return "a scalar"
	}
	return "nothing"
}

func join(at, key string) string {
	if at == "" {
		return key
	}
	return at + "." + key
}
