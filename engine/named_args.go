package engine

import (
	"encoding/json"
	"strings"

	"github.com/batonflow/baton/dsl"
	"github.com/batonflow/baton/problem"
)

// namedArgument is one entry of the `arguments` map that DSL 1.0.0-1.0.2
// documents give run.shell and run.script; 1.0.3 made arguments a list.
type namedArgument struct {
	name  string
	value any
}

// namedArguments reads the pairs the parser left under
// dsl.NamedArgumentsKey, in document order.
func namedArguments(kind string, spec map[string]any) ([]namedArgument, error) {
	raw, ok := spec[dsl.NamedArgumentsKey]
	if !ok {
		return nil, nil
	}
	list, ok := raw.([]any)
	if !ok {
		return nil, problem.Configuration("run.%s: named arguments must be a list of pairs, got %T", kind, raw)
	}
	out := make([]namedArgument, 0, len(list))
	for _, item := range list {
		pair, ok := item.([]any)
		if !ok || len(pair) != 2 {
			return nil, problem.Configuration("run.%s: a named argument must be a [name, value] pair, got %v", kind, item)
		}
		name, ok := pair[0].(string)
		if !ok {
			return nil, problem.Configuration("run.%s: a named argument's name must be a string, got %T", kind, pair[0])
		}
		out = append(out, namedArgument{name: name, value: pair[1]})
	}
	return out, nil
}

// shellWords turns named arguments into the words that 1.0.x runtimes
// appended to the command line: `name=value`, or `name` alone when the
// value is null. Each word is quoted, so a value from the workflow's data
// stays one word and is never read as shell syntax.
func shellWords(args []namedArgument) (string, error) {
	var b strings.Builder
	for _, a := range args {
		word := a.name
		if a.value != nil {
			text, ok := scalarText(a.value)
			if !ok {
				j, err := json.Marshal(a.value)
				if err != nil {
					return "", problem.Configuration("run.shell: argument %s: %v", a.name, err)
				}
				text = string(j)
			}
			word += "=" + text
		}
		b.WriteString(" ")
		b.WriteString(shellQuote(word))
	}
	return b.String(), nil
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// pythonPrelude defines each named argument as a Python variable holding
// its value, decoded from JSON so that any data arrives intact.
func pythonPrelude(args []namedArgument) (string, error) {
	var b strings.Builder
	if len(args) > 0 {
		b.WriteString("import json as _baton_json\n")
	}
	for _, a := range args {
		j, err := json.Marshal(a.value)
		if err != nil {
			return "", problem.Configuration("run.script: argument %s: %v", a.name, err)
		}
		// A JSON string literal is also a valid Python string literal.
		lit, err := json.Marshal(string(j))
		if err != nil {
			return "", problem.Configuration("run.script: argument %s: %v", a.name, err)
		}
		b.WriteString(a.name + " = _baton_json.loads(" + string(lit) + ")\n")
	}
	return b.String(), nil
}
