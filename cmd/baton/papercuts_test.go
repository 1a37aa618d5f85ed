package main

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestUnknownSubcommand checks that a mistyped subcommand of any command
// group fails as a command-line mistake, naming the nearest subcommand,
// instead of printing the group's help and exiting 0.
func TestUnknownSubcommand(t *testing.T) {
	tests := []struct {
		args   []string
		stderr string
	}{
		{[]string{"workflow", "aply", "x.yaml"}, "baton: unknown command \"aply\" for \"baton workflow\"; did you mean apply?\nRun 'baton workflow --help' for usage.\n"},
		{[]string{"invocation", "lsit"}, "baton: unknown command \"lsit\" for \"baton invocation\"; did you mean list?\nRun 'baton invocation --help' for usage.\n"},
		{[]string{"fn", "biuld", "dir"}, "baton: unknown command \"biuld\" for \"baton fn\"; did you mean build?\nRun 'baton fn --help' for usage.\n"},
		{[]string{"secret", "sett", "x"}, "baton: unknown command \"sett\" for \"baton secret\"; did you mean set?\nRun 'baton secret --help' for usage.\n"},
		{[]string{"trigger", "crate"}, "baton: unknown command \"crate\" for \"baton trigger\"; did you mean create?\nRun 'baton trigger --help' for usage.\n"},
		{[]string{"bench", "chian"}, "baton: unknown command \"chian\" for \"baton bench\"; did you mean chain?\nRun 'baton bench --help' for usage.\n"},
		{[]string{"valdate", "x.yaml"}, "baton: unknown command \"valdate\" for \"baton\"; did you mean validate?\nRun 'baton --help' for usage.\n"},
		{[]string{"workflow", "zzzzzz"}, "baton: unknown command \"zzzzzz\" for \"baton workflow\"\nRun 'baton workflow --help' for usage.\n"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			baton(t, nil, tt.args...).expect(t, 2, "", tt.stderr)
		})
	}
	// A group named alone still shows its help.
	res := baton(t, nil, "workflow")
	if res.code != 0 || !strings.Contains(res.stdout, "Available Commands:") {
		t.Fatalf("baton workflow: %+v", res)
	}
}

// TestFnBuildOutputFile checks that fn build names its output file with
// --out/-O, as convert does, and that the former -o still works with a
// deprecation warning.
func TestFnBuildOutputFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nodir")
	for _, flag := range []string{"--out", "-O"} {
		baton(t, nil, "fn", "build", missing, flag, "x.wasm").
			expect(t, 1, "", "baton: "+missing+" is not a directory holding a Go package\n")
	}
	baton(t, nil, "fn", "build", missing, "-o", "x.wasm").expect(t, 1, "",
		"baton: warning: fn build --output (-o) is deprecated: use --out (-O); -o is the output format of the other commands\n"+
			"baton: "+missing+" is not a directory holding a Go package\n")
}

// TestValidateJSON checks validate -o json: the problems as an array on
// stdout, with the same positions and messages as the lines.
func TestValidateJSON(t *testing.T) {
	dir := t.TempDir()
	hello := writeFile(t, dir, "hello.yaml", helloDoc("0.1.0"))
	broken := writeFile(t, dir, "broken.yaml", brokenDoc)
	missing := filepath.Join(dir, "missing.yaml")

	baton(t, nil, "validate", hello, "-o", "json").expect(t, 0, "[]\n", "")

	lines := baton(t, nil, "validate", broken, missing)
	res := baton(t, nil, "validate", broken, missing, "-o", "json")
	if res.code != 1 || res.stderr != "" {
		t.Fatalf("validate -o json: %+v", res)
	}
	var got []finding
	if err := json.Unmarshal([]byte(res.stdout), &got); err != nil {
		t.Fatalf("stdout is not a JSON array of problems: %v\n%s", err, res.stdout)
	}
	var rendered []string
	for _, f := range got {
		if f.Severity != "error" || f.File == "" {
			t.Errorf("problem %+v", f)
		}
		rendered = append(rendered, f.line())
	}
	if want := strings.Split(strings.TrimSuffix(lines.stderr, "\n"), "\n"); !reflect.DeepEqual(rendered, want) {
		t.Fatalf("JSON problems render as\n%s\nwant the lines\n%s", strings.Join(rendered, "\n"), lines.stderr)
	}
	if got[0].Line != 2 || got[1].Line != 7 || got[1].Column != 7 || got[1].Path != "do[0].first" ||
		got[2].Line != 0 || got[2].Message != "cannot read: no such file or directory" {
		t.Fatalf("problems %+v", got)
	}
	baton(t, nil, "validate", hello, "-o", "yaml").expect(t, 1, "", "baton: unknown output format \"yaml\": use text or json\n")
}

const callsDoc = `document:
  dsl: '1.0.0'
  namespace: default
  name: calls
  version: '0.1.0'
do:
  - greet:
      call: hello
  - pinned:
      call: hello@7
  - guarded:
      try:
        - inner:
            call: nobody
      catch:
        do:
          - web:
              call: http
              with:
                method: get
                endpoint: http://example.com
`

// TestValidateWarnsAboutUndeployedFunctions checks that validate, given a
// function registry, warns (and still exits 0) about calls of functions no
// one deployed, and says when it cannot check.
func TestValidateWarnsAboutUndeployedFunctions(t *testing.T) {
	dir := t.TempDir()
	doc := writeFile(t, dir, "calls.yaml", callsDoc)
	data := filepath.Join(dir, "data")
	baton(t, nil, "fn", "deploy", "hello", "--url", "http://127.0.0.1:9/hello", "--data", data).
		expect(t, 0, "function hello version 1 deployed\n", "")

	// Without a registry there is nothing to check against.
	baton(t, nil, "validate", doc).expect(t, 0, "", "")

	baton(t, nil, "validate", doc, "--data", data).expect(t, 0, "",
		doc+":10:7: do[1].pinned.call: warning: function \"hello\" has no version \"7\" deployed in "+data+"\n"+
			doc+":14:13: do[2].guarded.try[0].inner.call: warning: function \"nobody\" is not deployed in "+data+
			"; deploy it with `baton fn deploy nobody` before running\n")

	res := baton(t, nil, "validate", doc, "--data", data, "-o", "json")
	var got []finding
	if err := json.Unmarshal([]byte(res.stdout), &got); err != nil || res.code != 0 || len(got) != 2 ||
		got[0].Severity != "warning" || got[1].Path != "do[2].guarded.try[0].inner.call" {
		t.Fatalf("validate -o json with warnings: %+v (%v)", res, err)
	}

	nodata := filepath.Join(dir, "nowhere")
	baton(t, nil, "validate", doc, doc, "--data", nodata).expect(t, 0, "",
		doc+": warning: cannot check the called functions: "+nodata+" holds no baton.db\n")
	res = baton(t, nil, "validate", doc, "--server", "http://127.0.0.1:9")
	if res.code != 0 || !strings.HasPrefix(res.stderr, doc+": warning: cannot check the called functions: ") {
		t.Fatalf("unreachable server: %+v", res)
	}
	baton(t, nil, "validate", doc, "--data", data, "--server", "http://127.0.0.1:9").
		expect(t, 1, "", "baton: give --data or --server, not both\n")
}

// TestWorkflowApplyFailureHasNoEmptyTable checks that apply prints no
// table header when nothing was applied.
func TestWorkflowApplyFailureHasNoEmptyTable(t *testing.T) {
	_, env := fakeServer(t)
	broken := writeFile(t, t.TempDir(), "broken.yaml", brokenDoc)
	res := baton(t, env, "workflow", "apply", broken)
	if res.code != 1 || res.stdout != "" || !strings.HasPrefix(res.stderr, broken+":2:") {
		t.Fatalf("apply of a broken document: %+v", res)
	}
	// -o json still prints the empty list a script parses.
	res = baton(t, env, "workflow", "apply", broken, "-o", "json")
	if res.code != 1 || res.stdout != "[]\n" {
		t.Fatalf("apply -o json of a broken document: %+v", res)
	}
}
