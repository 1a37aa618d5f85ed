package dsl

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func FuzzParse(f *testing.F) {
	f.Add([]byte(header + "do:\n  - a: {set: {x: 1}}\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("a: &a [1,1]\nb: &b [*a,*a]\nc: [*b,*b]\n"))
	f.Add([]byte(header + "do:\n  - w: {wait: PT0.5S}\n  - s: {switch: [{d: {then: w}}]}\n"))
	f.Add([]byte(`{"document":{"dsl":"1.0.0"},"do":[{"x":{"call":"http","with":{"<<":1}}}]}`))
	if dir, err := os.Getwd(); err == nil {
		examples, _ := filepath.Glob(filepath.Join(dir, "..", "..", "shared", "spec", "serverless-workflow", "examples", "*.yaml"))
		for _, e := range examples {
			if src, err := os.ReadFile(e); err == nil {
				f.Add(src)
			}
		}
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		w, err := Parse("fuzz.yaml", src)
		if err == nil {
			if w == nil || len(w.Do) == 0 {
				t.Fatalf("no error but workflow %+v", w)
			}
			if _, err := json.Marshal(w.Raw); err != nil {
				t.Fatalf("Raw is not JSON data: %v", err)
			}
			return
		}
		if w != nil {
			t.Fatal("a workflow was returned with errors")
		}
		var list ErrorList
		if !errors.As(err, &list) || len(list) == 0 {
			t.Fatalf("error %T is not a non-empty ErrorList", err)
		}
		for _, e := range list {
			if e.Pos.Line <= 0 || e.Pos.Col <= 0 {
				t.Fatalf("error without a position: %v", e)
			}
		}
	})
}
