package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"github.com/batonflow/baton/dsl"
	"github.com/batonflow/baton/lang"
)

func newValidateCommand() *cobra.Command {
	var opts *lang.Options
	cmd := &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check workflow documents without running them",
		Long: "Validate parses and validates each workflow document (YAML or JSON): Serverless Workflow\n" +
			"DSL 1.0, or Fission Workflows, recognised by its shape or named with --format.\n" +
			"It prints nothing and exits 0 when every document is valid; otherwise it prints one\n" +
			"`file:line:col: path: message` line per problem on stderr and exits 1.",
		Example: "  baton validate examples/hello.yaml\n  baton validate workflows/*.yaml",
		Args:    cobra.MinimumNArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			valid := true
			for _, file := range args {
				if !validateFile(cmd.ErrOrStderr(), file, *opts) {
					valid = false
				}
			}
			if !valid {
				return &exitError{code: exitFailure}
			}
			return nil
		}),
	}
	opts = addLangFlags(cmd)
	return cmd
}

// validateFile reports the problems of one document on w and tells whether
// there were none.
func validateFile(w io.Writer, file string, opts lang.Options) bool {
	src, err := os.ReadFile(file)
	if err != nil {
		fmt.Fprintf(w, "%s: cannot read: %v\n", file, readFailure(err))
		return false
	}
	_, _, err = lang.Parse(file, src, opts)
	if err == nil {
		return true
	}
	var list dsl.ErrorList
	if errors.As(err, &list) {
		for _, e := range list {
			fmt.Fprintln(w, e.Error())
		}
		return false
	}
	fmt.Fprintf(w, "%s: %v\n", file, err)
	return false
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
