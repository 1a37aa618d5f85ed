package engine_test

import (
	"fmt"
	"os/exec"
	"reflect"
	"strconv"
	"testing"
)

// TestRunNamedArguments runs DSL 1.0.0-1.0.2 documents whose run.shell
// and run.script arguments are a map, as those versions defined them: a
// shell command gets `name=value` words (or `name` for a null value), a
// script sees each argument as a variable.
func TestRunNamedArguments(t *testing.T) {
	e := newEngine(t, openStore(t, t.TempDir()))
	defer e.Close()
	doc := func(version, name, task string) string {
		return fmt.Sprintf("document: {dsl: '%s', namespace: test, name: %s, version: '1.0.0'}\ndo:\n  - %s:\n%s", version, name, name, task)
	}
	cases := []struct {
		name, version, task string
		input               any
		want                any
	}{
		{"shell words in document order", "1.0.0",
			shellTask("printf '%s|' ", "          arguments:\n            --name: '${ .name }'\n            -v: null\n            count: 3\n"),
			map[string]any{"name": "Ada Lovelace; rm -rf /"}, "--name=Ada Lovelace; rm -rf /|-v|count=3|"},
		{"js variables", "1.0.1",
			scriptTask("js", `console.log(greetings + " " + who.first + " " + n)`,
				"          arguments:\n            greetings: Hello,\n            who: '${ .who }'\n            n: 2\n"),
			map[string]any{"who": map[string]any{"first": "Grace"}}, "Hello, Grace 2"},
	}
	if _, err := exec.LookPath("python3"); err == nil {
		cases = append(cases, struct {
			name, version, task string
			input               any
			want                any
		}{"python variables", "1.0.2",
			scriptTask("python", `print(greetings, who["first"], n, none is None)`,
				"          arguments:\n            greetings: Hello,\n            who: '${ .who }'\n            n: 2\n            none: null\n"),
			map[string]any{"who": map[string]any{"first": "Grace"}}, "Hello, Grace 2 True"})
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			inv := runDoc(t, e, doc(c.version, "named"+strconv.Itoa(i), c.task), c.input)
			if got := mustComplete(t, inv); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("output %#v, want %#v", got, c.want)
			}
		})
	}
}
