package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"github.com/batonflow/baton/dsl"
	"github.com/batonflow/baton/lang"
)

// Formats of validate's -o: its findings are lines, not a table.
const (
	formatText = "text"
)

// finding is one problem `baton validate` reports; -o json prints a list
// of them.
type finding struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Path    string `json:"path"`
	Message string `json:"message"`
	// Severity is "error" (the document is invalid) or "warning" (it is
	// valid, but will likely fail when it runs).
	Severity string `json:"severity"`
}

const (
	severityError   = "error"
	severityWarning = "warning"
)

// line renders the finding as `file:line:col: path: message`, the parser's
// format, with "warning: " before the message of a warning.
func (f finding) line() string {
	msg := f.Message
	if f.Severity == severityWarning {
		msg = "warning: " + msg
	}
	if f.Line == 0 {
		return f.File + ": " + msg
	}
	e := dsl.Error{File: f.File, Pos: dsl.Pos{Line: f.Line, Col: f.Column}, Path: f.Path, Msg: msg}
	return e.Error()
}

func newValidateCommand() *cobra.Command {
	var (
		opts     *lang.Options
		format   string
		registry functionTarget
	)
	cmd := &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check workflow documents without running them",
		Long: "Validate parses and validates each workflow document (YAML or JSON): Serverless Workflow\n" +
			"DSL 1.0, or Fission Workflows, recognised by its shape or named with --format.\n" +
			"It prints nothing and exits 0 when every document is valid; otherwise it prints one\n" +
			"`file:line:col: path: message` line per problem on stderr and exits 1. -o json prints\n" +
			"the problems as a JSON array on stdout instead.\n\n" +
			"With --data DIR or --server URL it also looks up the functions the documents call in\n" +
			"that function registry and warns (without failing) about those no one deployed.",
		Example: "  baton validate examples/hello.yaml\n" +
			"  baton validate workflows/*.yaml -o json\n" +
			"  baton validate examples/functions/hello-wasm.yaml --data ./data",
		Args: cobra.MinimumNArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			if format != formatText && format != formatJSON {
				return fmt.Errorf("unknown output format %q: use text or json", format)
			}
			if registry.data != "" && registry.server.url != "" {
				return errors.New("give --data or --server, not both")
			}
			deployed := functionsOf(cmd, &registry)
			var all []finding
			for _, file := range args {
				found := validateFile(file, *opts, deployed)
				if format == formatText {
					for _, f := range found {
						fmt.Fprintln(cmd.ErrOrStderr(), f.line())
					}
				}
				all = append(all, found...)
			}
			if format == formatJSON {
				if all == nil {
					all = []finding{}
				}
				if err := writeJSON(cmd.OutOrStdout(), all); err != nil {
					return err
				}
			}
			for _, f := range all {
				if f.Severity == severityError {
					return &exitError{code: exitFailure}
				}
			}
			return nil
		}),
	}
	opts = addLangFlags(cmd)
	cmd.Flags().StringVarP(&format, "output", "o", formatText, "output format: text (lines on stderr) or json (an array on stdout)")
	registry.server = &remote{}
	cmd.Flags().StringVar(&registry.server.url, "server", "", "warn about called functions not deployed on this server")
	cmd.Flags().StringVar(&registry.data, "data", "", "warn about called functions not deployed in this data directory")
	return cmd
}

// validateFile returns the problems of one document, and a warning for each
// call of a function missing from deployed (when it is not nil).
func validateFile(file string, opts lang.Options, deployed *deployedFunctions) []finding {
	src, err := os.ReadFile(file)
	if err != nil {
		return []finding{{File: file, Message: "cannot read: " + readFailure(err).Error(), Severity: severityError}}
	}
	wf, _, err := lang.Parse(file, src, opts)
	if err != nil {
		var list dsl.ErrorList
		if !errors.As(err, &list) {
			return []finding{{File: file, Message: err.Error(), Severity: severityError}}
		}
		found := make([]finding, len(list))
		for i, e := range list {
			found[i] = finding{File: e.File, Line: e.Pos.Line, Column: e.Pos.Col, Path: e.Path, Message: e.Msg, Severity: severityError}
			if found[i].File == "" {
				found[i].File = file
			}
		}
		return found
	}
	return deployed.check(file, wf)
}

// readFailure drops the "open FILE:" prefix of a path error; the line names
// the file already.
func readFailure(err error) error {
	var pathErr *fs.PathError
	if errors.As(err, &pathErr) {
		return pathErr.Err
	}
	return err
}
