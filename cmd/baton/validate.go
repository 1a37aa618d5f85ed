package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"github.com/batonflow/baton/dsl"
)

func newValidateCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check workflow documents without running them",
		Long: "Validate parses and validates each Serverless Workflow DSL 1.0 document (YAML or JSON).\n" +
			"It prints nothing and exits 0 when every document is valid; otherwise it prints one\n" +
			"`file:line:col: path: message` line per problem on stderr and exits 1.",
		Example: "  baton validate examples/hello.yaml\n  baton validate workflows/*.yaml",
		Args:    cobra.MinimumNArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			valid := true
			for _, file := range args {
				if !validateFile(cmd.ErrOrStderr(), file) {
					valid = false
				}
			}
			if !valid {
				return &exitError{code: exitFailure}
			}
			return nil
		}),
	}
}

// validateFile reports the problems of one document on w and tells whether
// there were none.
func validateFile(w io.Writer, file string) bool {
	src, err := os.ReadFile(file)
	if err != nil {
		fmt.Fprintf(w, "%s: cannot read: %v\n", file, readFailure(err))
		return false
	}
	_, err = dsl.Parse(file, src)
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
