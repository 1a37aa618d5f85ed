package dsl

import (
	"errors"
	"fmt"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Schema is the JSON Schema that some data (a workflow's or task's input,
// output, or exported context) must conform to. Inline schemas
// (`schema.document`) are compiled when the document is parsed, so a
// broken schema is a broken document; schemas given as an external
// `resource` are kept as data and not enforced, because fetching them
// would put I/O where the core needs none.
type Schema struct {
	// Raw is the `schema` object as plain JSON data.
	Raw      map[string]any
	compiled *jsonschema.Schema
}

// compileSchema compiles an inline JSON Schema document.
func compileSchema(doc any) (*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	const url = "baton:///schema.json"
	if err := c.AddResource(url, doc); err != nil {
		return nil, err
	}
	return c.Compile(url)
}

// Enforced reports whether Validate checks anything.
func (s *Schema) Enforced() bool { return s != nil && s.compiled != nil }

// Validate checks plain JSON data against the schema and describes every
// violation in one error; nil when the data conforms or the schema is not
// enforced.
func (s *Schema) Validate(v any) error {
	if !s.Enforced() {
		return nil
	}
	err := s.compiled.Validate(v)
	if err == nil {
		return nil
	}
	var verr *jsonschema.ValidationError
	if !errors.As(err, &verr) {
		return err
	}
	english := message.NewPrinter(language.English)
	var lines []string
	for _, leaf := range leaves(verr) {
		at := "/" + strings.Join(leaf.InstanceLocation, "/")
		lines = append(lines, fmt.Sprintf("at %s: %s", at, leaf.ErrorKind.LocalizedString(english)))
	}
	return errors.New(strings.Join(lines, "; "))
}

// leaves are the innermost causes of a validation error, which say what is
// wrong where; the outer ones only repeat "doesn't validate".
func leaves(e *jsonschema.ValidationError) []*jsonschema.ValidationError {
	if len(e.Causes) == 0 {
		return []*jsonschema.ValidationError{e}
	}
	var out []*jsonschema.ValidationError
	for _, c := range e.Causes {
		out = append(out, leaves(c)...)
	}
	return out
}
