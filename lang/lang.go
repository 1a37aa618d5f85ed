// Package lang reads workflow documents in every language Baton runs —
// the Serverless Workflow DSL 1.0 and the Fission Workflows YAML language —
// into the one model that the core executes. Everything that parses a
// document (the engine, the CLI, the API) goes through here, so a format is
// recognised the same way everywhere.
package lang

import (
	"fmt"

	"github.com/batonflow/baton/dsl"
	"github.com/batonflow/baton/dsl/fission"
	"github.com/batonflow/baton/store"
)

// The formats, as stored in store.Workflow.Format.
const (
	DSL     = "dsl"
	Fission = fission.Format
)

// Options steer parsing.
type Options struct {
	// Format forces a language; "" recognises it by the document's shape.
	Format string
	// Namespace places a Fission document that names none; DSL documents
	// always name their own.
	Namespace string
}

// Detect names the language of a document by its shape.
func Detect(src []byte) string {
	if fission.Detect(src) {
		return Fission
	}
	return DSL
}

// Parse reads a document and reports its format. Invalid documents yield a
// dsl.ErrorList with file, line and column.
func Parse(filename string, src []byte, opts Options) (*dsl.Workflow, string, error) {
	format := opts.Format
	if format == "" {
		format = Detect(src)
	}
	switch format {
	case DSL:
		def, err := dsl.Parse(filename, src)
		return def, DSL, err
	case Fission:
		def, err := fission.ParseWith(filename, src, fission.Options{Namespace: opts.Namespace})
		return def, Fission, err
	}
	return nil, "", fmt.Errorf("unknown workflow format %q: use %s or %s", format, DSL, Fission)
}

// ParseStored reads a stored workflow again, under the identity it was
// stored with.
func ParseStored(wf *store.Workflow) (*dsl.Workflow, error) {
	source := wf.Namespace + "/" + wf.Name + "@" + wf.Version
	format := wf.Format
	if format == "" {
		format = DSL
	}
	def, _, err := Parse(source, wf.Source, Options{Format: format, Namespace: wf.Namespace})
	if err != nil {
		return nil, err
	}
	if format == Fission {
		// The Fission format may carry no identity of its own; the
		// stored row's is the one the workflow was applied under.
		def.Document.Name, def.Document.Version = wf.Name, wf.Version
	}
	return def, nil
}
