package lang_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/batonflow/baton/dsl"
	"github.com/batonflow/baton/lang"
	"github.com/batonflow/baton/store"
)

const dslDoc = `
document: {dsl: '1.0.0', namespace: ns, name: hello, version: '1.0.0'}
do:
  - greet:
      set: {hi: true}
`

const fissionDoc = `
apiVersion: 1
output: Done
tasks:
  Done:
    run: noop
    inputs: "{ $.Invocation.Inputs.default }"
`

func TestDetectAndParse(t *testing.T) {
	for _, tc := range []struct {
		name, src, format, wantFormat, wantNamespace string
	}{
		{"dsl by shape", dslDoc, "", lang.DSL, "ns"},
		{"fission by shape", fissionDoc, "", lang.Fission, "default"},
		{"fission with a namespace", fissionDoc, lang.Fission, lang.Fission, "team"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := lang.Detect([]byte(tc.src)); got != tc.wantFormat {
				t.Errorf("Detect = %s, want %s", got, tc.wantFormat)
			}
			opts := lang.Options{Format: tc.format}
			if tc.wantNamespace == "team" {
				opts.Namespace = "team"
			}
			def, format, err := lang.Parse("doc.wf.yaml", []byte(tc.src), opts)
			if err != nil {
				t.Fatal(err)
			}
			if format != tc.wantFormat || def.Document.Namespace != tc.wantNamespace {
				t.Errorf("format %s namespace %s, want %s %s", format, def.Document.Namespace, tc.wantFormat, tc.wantNamespace)
			}
		})
	}
}

func TestForcedFormatReportsPositions(t *testing.T) {
	// A DSL document read as Fission is wrong in Fission's terms, with a
	// position, rather than silently accepted.
	_, _, err := lang.Parse("x.yaml", []byte(dslDoc), lang.Options{Format: lang.Fission})
	var list dsl.ErrorList
	if !errors.As(err, &list) || !strings.HasPrefix(list[0].Error(), "x.yaml:") {
		t.Fatalf("want positioned errors, got %v", err)
	}
	if _, _, err := lang.Parse("x.yaml", []byte(dslDoc), lang.Options{Format: "bpmn"}); err == nil || !strings.Contains(err.Error(), "unknown workflow format") {
		t.Fatalf("unknown format: %v", err)
	}
}

func TestParseStoredKeepsStoredIdentity(t *testing.T) {
	wf := &store.Workflow{Namespace: "team", Name: "renamed", Version: "2.0.0", Format: lang.Fission, Source: []byte(fissionDoc)}
	def, err := lang.ParseStored(wf)
	if err != nil {
		t.Fatal(err)
	}
	if d := def.Document; d.Namespace != "team" || d.Name != "renamed" || d.Version != "2.0.0" {
		t.Errorf("identity %s/%s@%s", d.Namespace, d.Name, d.Version)
	}
	legacy := &store.Workflow{Namespace: "ns", Name: "hello", Version: "1.0.0", Source: []byte(dslDoc)}
	if _, err := lang.ParseStored(legacy); err != nil {
		t.Errorf("a row without a format is DSL: %v", err)
	}
}
