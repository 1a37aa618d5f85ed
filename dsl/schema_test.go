package dsl

import (
	"strings"
	"testing"
)

func TestSchemas(t *testing.T) {
	doc := func(schema string) string {
		return "document: {dsl: '1.0.0', namespace: t, name: s, version: '1.0.0'}\n" +
			"input:\n  schema:\n" + schema + "do:\n  - a:\n      set: {x: 1}\n"
	}
	// A broken inline schema is a broken document, with its position.
	_, err := Parse("s.yaml", []byte(doc("    document: {type: 12}\n")))
	if err == nil || !strings.HasPrefix(err.Error(), "s.yaml:4:15: input.schema.document: invalid JSON Schema") {
		t.Fatalf("broken schema: %v", err)
	}
	wf, err := Parse("s.yaml", []byte(doc("    document: {type: object, required: [name]}\n")))
	if err != nil {
		t.Fatal(err)
	}
	s := wf.Input.Schema
	if !s.Enforced() {
		t.Fatal("an inline JSON schema must be enforced")
	}
	if err := s.Validate(map[string]any{"name": "x"}); err != nil {
		t.Errorf("valid data rejected: %v", err)
	}
	if err := s.Validate(map[string]any{}); err == nil || !strings.Contains(err.Error(), "name") {
		t.Errorf("missing property not reported: %v", err)
	}
	// External resources are kept, not enforced: fetching them would be I/O.
	wf, err = Parse("s.yaml", []byte(doc("    resource: {endpoint: 'https://example.com/s.json'}\n")))
	if err != nil {
		t.Fatal(err)
	}
	if wf.Input.Schema.Enforced() || wf.Input.Schema.Validate(42) != nil {
		t.Error("a resource schema must not be enforced")
	}
	var none *Schema
	if none.Validate("anything") != nil {
		t.Error("no schema accepts everything")
	}
}
