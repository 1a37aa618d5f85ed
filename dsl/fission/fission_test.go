package fission_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/batonflow/baton/dsl"
	"github.com/batonflow/baton/dsl/fission"
)

func examplesDir(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "..", "shared", "spec", "fission-workflows", "examples")
	if _, err := os.Stat(dir); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the Fission Workflows examples are required under CI: %v", err)
		}
		t.Skipf("Fission Workflows examples not available: %v", err)
	}
	return dir
}

func examples(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(examplesDir(t), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".wf.yaml") {
			return err
		}
		src, err := os.ReadFile(path)
		out[path] = src
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 20 {
		t.Fatalf("found %d examples, expected the 21 of the spec", len(out))
	}
	return out
}

func TestEveryExampleParses(t *testing.T) {
	for path, src := range examples(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			if !fission.Detect(src) {
				t.Errorf("Detect does not recognise %s", path)
			}
			wf, err := fission.Parse(path, src)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			want := strings.TrimSuffix(filepath.Base(path), ".wf.yaml")
			if wf.Document.Name != want || wf.Document.Namespace != "default" || !strings.HasPrefix(wf.Document.Version, "1.0.0+") {
				t.Errorf("identity %s/%s@%s", wf.Document.Namespace, wf.Document.Name, wf.Document.Version)
			}
			if len(wf.Do) != 1 || wf.Do[0].Task.Kind != dsl.KindGraph {
				t.Fatalf("not translated into one graph task: %+v", wf.Do)
			}
			g := wf.Do[0].Task.Graph
			if err := g.Check(); err != nil {
				t.Errorf("graph: %v", err)
			}
			if g.Index(g.Output) < 0 {
				t.Errorf("output %q is no node", g.Output)
			}
		})
	}
}

func TestParseTranslatesTheShape(t *testing.T) {
	src := []byte(`apiVersion: 1
description: demo
output: B
tasks:
  A:
    run: noop
    inputs: hello
  B:
    run: if
    inputs:
      if: "{ output('A') == 'hello' }"
      then:
        run: compose
        inputs: yes
    requires: [A]
  C:
    run: noop
    inputs:
      output: X
      tasks:
        X: {run: noop}
`)
	wf, err := fission.ParseWith("demo.wf.yaml", src, fission.Options{Namespace: "team"})
	if err != nil {
		t.Fatal(err)
	}
	if wf.Document.Namespace != "team" || wf.Document.Summary != "demo" {
		t.Errorf("document %+v", wf.Document)
	}
	g := wf.Do[0].Task.Graph
	if len(g.Nodes) != 3 || g.Nodes[0].ID != "A" || g.Nodes[1].ID != "B" || g.Nodes[2].ID != "C" {
		t.Fatalf("nodes out of declaration order: %+v", g.Nodes)
	}
	if g.Nodes[0].Inputs["default"] != "hello" {
		t.Errorf("a scalar input is not the default: %v", g.Nodes[0].Inputs)
	}
	if !dsl.IsGraphTaskData(g.Nodes[1].Inputs["then"]) {
		t.Errorf("then is not kept as an inline task: %v", g.Nodes[1].Inputs["then"])
	}
	if !dsl.IsGraphWorkflowData(g.Nodes[2].Inputs["default"]) {
		t.Errorf("an inline workflow is not the default input: %v", g.Nodes[2].Inputs)
	}
	// The same source is the same version; another source another one.
	again, _ := fission.Parse("demo.wf.yaml", src)
	other, _ := fission.Parse("demo.wf.yaml", append(src, '\n', '#'))
	if again.Document.Version != wf.Document.Version || other.Document.Version == wf.Document.Version {
		t.Errorf("versions %s, %s, %s", wf.Document.Version, again.Document.Version, other.Document.Version)
	}
}

func TestParseErrorsCarryPositions(t *testing.T) {
	rows := []struct {
		name, src string
		want      []string // file:line:col prefixes and message parts
	}{
		{
			name: "unknown requirement and output",
			src: `output: Nope
tasks:
  A:
    run: noop
    requires: [Ghost]
`,
			want: []string{"bad.wf.yaml:1:9: output: output \"Nope\" names no task", "bad.wf.yaml:3:3: tasks.A.requires: requires \"Ghost\""},
		},
		{
			name: "cycle",
			src: `output: A
tasks:
  A: {run: noop, requires: [B]}
  B: {run: noop, requires: [A]}
`,
			want: []string{"bad.wf.yaml:3:3: tasks.A: the requirements form a cycle: A → B → A"},
		},
		{
			name: "missing run, bad expression, unknown key",
			src: `output: A
tasks:
  A:
    inputs: "{ 1 + }"
    retries: 3
`,
			want: []string{"bad.wf.yaml:4:5: tasks.A: run is required", "bad.wf.yaml:4:13: tasks.A.inputs: syntax error", "bad.wf.yaml:5:5: tasks.A.retries: unknown property"},
		},
		{
			name: "errors inside an inline task",
			src: `output: A
tasks:
  A:
    run: if
    inputs:
      if: true
      then:
        run: fission://a/b/c
`,
			want: []string{"bad.wf.yaml:8:14: tasks.A.inputs.then.run: fission://a/b/c is not a reference"},
		},
		{
			name: "syntax error",
			src:  "output: A\ntasks:\n  A: [unclosed\n",
			want: []string{"bad.wf.yaml:"},
		},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			_, err := fission.Parse("bad.wf.yaml", []byte(r.src))
			var list dsl.ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("error %v is not a dsl.ErrorList", err)
			}
			text := err.Error()
			for _, w := range r.want {
				if !strings.Contains(text, w) {
					t.Errorf("errors\n%s\ndo not contain %q", text, w)
				}
			}
		})
	}
}

func TestDetect(t *testing.T) {
	rows := []struct {
		src  string
		want bool
	}{
		{"apiVersion: 1\ntasks:\n  A: {run: noop}\n", true},
		{"output: A\ntasks:\n  A: {run: noop}\n", true},
		{"tasks:\n  A: {run: noop}\n", false},
		{"document: {dsl: 1.0.0}\ndo: []\noutput: {as: .}\n", false},
		{"output: A\ntasks: [a]\n", false},
		{"- not a map", false},
		{":::", false},
	}
	for _, r := range rows {
		if got := fission.Detect([]byte(r.src)); got != r.want {
			t.Errorf("Detect(%q) = %v, want %v", r.src, got, r.want)
		}
	}
}

func TestConvert(t *testing.T) {
	dir := examplesDir(t)
	rows := []struct {
		file         string
		wantWarnings []string // substrings, each must appear
		wantText     []string
	}{
		{
			file:         "misc/sleepalot.wf.yaml",
			wantWarnings: nil,
			wantText:     []string{"wait: PT10S", "fork:", "branches:", "D3:", "wait: PT20S", "as: ${ $context.F }"},
		},
		{
			file:     "readitlater/parse-article.wf.yaml",
			wantText: []string{"call: parse-article-body", "default: ${ $workflow.input }", "${ $context.ParseBody }", "fork:"},
		},
		{
			file:     "whales/switchwhale.wf.yaml",
			wantText: []string{`if $v == "hello" then "world!" elif $v == "foo" then "bar" else "right..." end`},
		},
		{
			file:         "misc/fibonacci.wf.yaml",
			wantWarnings: []string{"task Fib: repeat has no DSL 1.0 equivalent", "ExtractResult"},
			wantText:     []string{"unconverted:"},
		},
		{
			file:         "whales/maybewhale.wf.yaml",
			wantWarnings: []string{"dynamic task"},
		},
		{
			file:         "misc/multinamespace.wf.yaml",
			wantWarnings: []string{"router"},
			wantText:     []string{"endpoint: http://router.fission/fission-function/fission-function/multinsdump"},
		},
	}
	for _, r := range rows {
		t.Run(r.file, func(t *testing.T) {
			path := filepath.Join(dir, r.file)
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			wf, err := fission.Parse(path, src)
			if err != nil {
				t.Fatal(err)
			}
			out, warnings, err := fission.Convert(wf)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := dsl.Parse("converted.yaml", out); err != nil {
				t.Fatalf("the converted document does not parse: %v\n%s", err, out)
			}
			joined := strings.Join(warnings, "\n")
			if len(r.wantWarnings) == 0 && len(warnings) > 0 {
				t.Errorf("unexpected warnings:\n%s", joined)
			}
			for _, w := range r.wantWarnings {
				if !strings.Contains(joined, w) {
					t.Errorf("warnings\n%s\ndo not mention %q", joined, w)
				}
			}
			for _, w := range r.wantText {
				if !strings.Contains(string(out), w) {
					t.Errorf("document\n%s\ndoes not contain %q", out, w)
				}
			}
		})
	}
}
