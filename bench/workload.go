// Package bench is Baton's benchmark harness: it generates workflows of
// the shapes published workflow benchmarks use (SeBS-Flow's chain,
// parallel, map and switch patterns), drives them with closed-loop,
// Poisson, burst or trace-replay arrivals against an embedded engine or a
// running server, and computes latency, queueing, function time, engine
// overhead and cold-start metrics from the invocations' histories.
package bench

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/batonflow/baton/dsl"
)

// WorkloadKind names a workflow shape.
type WorkloadKind string

const (
	// Chain is N sequential calls.
	Chain WorkloadKind = "chain"
	// Fanout is a fork of W parallel calls followed by a join call.
	Fanout WorkloadKind = "fanout"
	// Map is a `for` over a list of N items with one call per item.
	Map WorkloadKind = "map"
	// Branch is a `switch` whose fast path (one call) is taken with the
	// given odds and whose slow path (three calls) otherwise.
	Branch WorkloadKind = "branch"
	// MapReduce is a split call, W parallel mapper calls and a reduce call.
	MapReduce WorkloadKind = "mapreduce"
	// File is a user's own workflow document with an input document.
	File WorkloadKind = "file"
)

// Namespace is where generated workflows are applied.
const Namespace = "bench"

// slowPathCalls is the length of the branch workload's unlikely path.
const slowPathCalls = 3

// inputVariants is how many inputs are generated ahead for workloads
// whose input varies per invocation (branch); invocations cycle through
// them, so the load generator never builds an input on the hot path.
const inputVariants = 4096

// Workload describes the workflow to benchmark.
type Workload struct {
	Kind WorkloadKind
	// N is the chain length.
	N int
	// Width is the number of fanout branches or mapreduce mappers.
	Width int
	// Items is the length of the list a map workload iterates over.
	Items int
	// Odds is the probability that a branch invocation takes the fast path.
	Odds float64
	// File and InputFile are the user's workflow and input documents.
	File      string
	InputFile string
}

// Validate reports a workload whose parameters cannot make a workflow.
func (w Workload) Validate() error {
	switch w.Kind {
	case Chain:
		if w.N < 1 {
			return fmt.Errorf("chain: --n must be at least 1, got %d", w.N)
		}
	case Fanout, MapReduce:
		if w.Width < 1 {
			return fmt.Errorf("%s: --width must be at least 1, got %d", w.Kind, w.Width)
		}
	case Map:
		if w.Items < 1 {
			return fmt.Errorf("map: --items must be at least 1, got %d", w.Items)
		}
	case Branch:
		if w.Odds < 0 || w.Odds > 1 {
			return fmt.Errorf("branch: --odds must be between 0 and 1, got %g", w.Odds)
		}
	case File:
		if w.File == "" {
			return fmt.Errorf("file: a workflow file is required")
		}
	default:
		return fmt.Errorf("unknown workload %q (want chain, fanout, map, branch, mapreduce or file)", w.Kind)
	}
	return nil
}

// Label names the workload with its parameters, for reports.
func (w Workload) Label() string {
	switch w.Kind {
	case Chain:
		return fmt.Sprintf("chain-%d", w.N)
	case Fanout:
		return fmt.Sprintf("fanout-%d", w.Width)
	case Map:
		return fmt.Sprintf("map-%d", w.Items)
	case Branch:
		return fmt.Sprintf("branch-%g", w.Odds)
	case MapReduce:
		return fmt.Sprintf("mapreduce-%d", w.Width)
	default:
		return "file-" + strings.TrimSuffix(baseName(w.File), ".yaml")
	}
}

func baseName(path string) string {
	if i := strings.LastIndexAny(path, `/\`); i >= 0 {
		return path[i+1:]
	}
	return path
}

// Workflow is a generated workflow ready to apply, with the inputs its
// invocations take in turn.
type Workflow struct {
	Namespace, Name, Version string
	Source                   []byte
	Def                      *dsl.Workflow
	// Inputs are decoded JSON values for the embedded engine; RawInputs
	// the same inputs encoded, for a server. Invocation i takes index
	// i % len.
	Inputs    []any
	RawInputs []json.RawMessage
	// SetSteps is, for a workload of `set` tasks, how many of them lie on
	// its critical path (0 when that depends on the input): what the
	// engine's overhead is divided by per task, as calls are otherwise.
	SetSteps int
}

// Call is what a generated call task calls: a function by name or, with
// Endpoint set, the DSL's own `call: http`, POSTing the task's arguments
// there (how a server without the harness's functions is benchmarked).
type Call struct {
	Function string
	Endpoint string
	// Set generates a `set` task of the same arguments instead of a call.
	Set bool
}

// Build generates the workflow for one configuration. call says what
// every call task calls; durability is "durable", "none", or "" to
// leave a user's document as it is; rng draws per-invocation inputs.
func (w Workload) Build(name string, call Call, durability string, rng *rand.Rand) (*Workflow, error) {
	if err := w.Validate(); err != nil {
		return nil, err
	}
	var (
		src    []byte
		inputs []any
		err    error
	)
	if w.Kind == File {
		src, inputs, err = w.fileWorkflow(name, durability)
		if err != nil {
			return nil, err
		}
	} else {
		src = []byte(w.generate(name, call, durability))
		inputs = w.inputs(rng)
	}
	def, err := dsl.Parse(name+".yaml", src)
	if err != nil {
		return nil, fmt.Errorf("generated workflow %s: %w", name, err)
	}
	raws := make([]json.RawMessage, len(inputs))
	for i, in := range inputs {
		if raws[i], err = json.Marshal(in); err != nil {
			return nil, fmt.Errorf("workflow %s: encoding its input: %w", name, err)
		}
	}
	wf := &Workflow{
		Namespace: def.Document.Namespace, Name: def.Document.Name, Version: def.Document.Version,
		Source: src, Def: def, Inputs: inputs, RawInputs: raws,
	}
	if call.Set {
		switch w.Kind {
		case Chain:
			wf.SetSteps = w.N
		case Map:
			wf.SetSteps = w.Items
		case Fanout:
			wf.SetSteps = 2
		case MapReduce:
			wf.SetSteps = 3
		}
	}
	return wf, nil
}

// version derives a workflow version from its content, so that a rerun
// against a kept data directory with other parameters applies a new
// version instead of conflicting with the old one.
func version(body string) string {
	sum := sha256.Sum256([]byte(body))
	return "1.0.0-h" + hex.EncodeToString(sum[:5])
}

func (w Workload) generate(name string, target Call, durability string) string {
	var b strings.Builder
	call := func(indent, task string, with ...string) {
		args := indent + "      "
		if target.Set {
			fmt.Fprintf(&b, "%s- %s:\n%s    set:\n", indent, task, indent)
			args = indent + "      "
		} else if target.Endpoint != "" {
			fmt.Fprintf(&b, "%s- %s:\n%s    call: http\n%s    with:\n%s      method: post\n%s      endpoint: %s\n%s      body:\n",
				indent, task, indent, indent, indent, indent, target.Endpoint, indent)
			args += "  "
		} else {
			fmt.Fprintf(&b, "%s- %s:\n%s    call: %s\n%s    with:\n", indent, task, indent, target.Function, indent)
		}
		for i := 0; i+1 < len(with); i += 2 {
			fmt.Fprintf(&b, "%s%s: %s\n", args, with[i], with[i+1])
		}
	}
	switch w.Kind {
	case Chain:
		for i := range w.N {
			call("  ", "step"+strconv.Itoa(i), "step", strconv.Itoa(i))
		}
	case Fanout:
		b.WriteString("  - fan:\n      fork:\n        branches:\n")
		for i := range w.Width {
			call("          ", "branch"+strconv.Itoa(i), "branch", strconv.Itoa(i))
		}
		call("  ", "join", "step", "join")
	case Map:
		b.WriteString("  - each:\n      for:\n        each: item\n        in: ${ .items }\n      do:\n")
		call("        ", "work", "item", "${ $item }")
	case Branch:
		b.WriteString("  - route:\n      switch:\n        - likely:\n            when: ${ .x < " +
			strconv.FormatFloat(w.Odds, 'g', -1, 64) + " }\n            then: fast\n" +
			"        - otherwise:\n            then: slow\n")
		call("  ", "fast", "path", "fast")
		b.WriteString("      then: end\n  - slow:\n      do:\n")
		for i := range slowPathCalls {
			call("        ", "slow"+strconv.Itoa(i), "path", "slow", "step", strconv.Itoa(i))
		}
	case MapReduce:
		call("  ", "split", "phase", "split", "parts", strconv.Itoa(w.Width))
		b.WriteString("  - mappers:\n      fork:\n        branches:\n")
		for i := range w.Width {
			call("          ", "map"+strconv.Itoa(i), "phase", "map", "part", strconv.Itoa(i))
		}
		call("  ", "reduce", "phase", "reduce")
	}
	body := "do:\n" + b.String()
	var head strings.Builder
	fmt.Fprintf(&head, "document:\n  dsl: '1.0.0'\n  namespace: %s\n  name: %s\n  version: '%s'\n", Namespace, name, version(durability+body))
	if durability == "none" {
		head.WriteString("  metadata:\n    baton.durability: none\n")
	}
	return head.String() + body
}

func (w Workload) inputs(rng *rand.Rand) []any {
	switch w.Kind {
	case Map:
		items := make([]any, w.Items)
		for i := range items {
			items[i] = float64(i)
		}
		return []any{map[string]any{"items": items}}
	case Branch:
		// Each input decides its invocation's path; drawing them ahead
		// keeps the odds exact in expectation and off the hot path.
		out := make([]any, inputVariants)
		for i := range out {
			out[i] = map[string]any{"x": rng.Float64()}
		}
		return out
	default:
		return []any{map[string]any{}}
	}
}

// fileWorkflow reads the user's document and renames it for the
// configuration (so that configurations compared in one run are distinct
// workflows), setting its durability when one is asked for.
func (w Workload) fileWorkflow(name, durability string) ([]byte, []any, error) {
	src, err := os.ReadFile(w.File)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the workflow: %w", err)
	}
	if _, err := dsl.Parse(w.File, src); err != nil {
		return nil, nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", w.File, err)
	}
	root := doc.Content[0]
	document := mapValue(root, "document")
	if document == nil {
		return nil, nil, fmt.Errorf("%s: no document section", w.File)
	}
	setScalar(document, "namespace", Namespace)
	setScalar(document, "name", name)
	if durability != "" {
		md := mapValue(document, "metadata")
		if md == nil {
			md = &yaml.Node{Kind: yaml.MappingNode}
			document.Content = append(document.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "metadata"}, md)
		}
		setScalar(md, "baton.durability", durability)
	}
	body, err := yaml.Marshal(&doc)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", w.File, err)
	}
	setScalar(document, "version", version(string(body)))
	if body, err = yaml.Marshal(&doc); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", w.File, err)
	}
	var input any = map[string]any{}
	if w.InputFile != "" {
		raw, err := os.ReadFile(w.InputFile)
		if err != nil {
			return nil, nil, fmt.Errorf("reading the input: %w", err)
		}
		// YAML is a superset of JSON; decoding through it accepts both.
		var v any
		if err := yaml.Unmarshal(raw, &v); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", w.InputFile, err)
		}
		if input, err = jsonValue(v); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", w.InputFile, err)
		}
	}
	return body, []any{input}, nil
}

// jsonValue converts decoded YAML into plain JSON data (float64 numbers,
// string keys), the form workflow inputs take.
func jsonValue(v any) (any, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	err = json.Unmarshal(raw, &out)
	return out, err
}

func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func setScalar(m *yaml.Node, key, value string) {
	if v := mapValue(m, key); v != nil {
		*v = yaml.Node{Kind: yaml.ScalarNode, Value: value, Style: yaml.SingleQuotedStyle}
		return
	}
	m.Content = append(m.Content,
		&yaml.Node{Kind: yaml.ScalarNode, Value: key},
		&yaml.Node{Kind: yaml.ScalarNode, Value: value, Style: yaml.SingleQuotedStyle})
}
