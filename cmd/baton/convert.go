package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/batonflow/baton/dsl/fission"
	"github.com/batonflow/baton/lang"
)

func newConvertCommand() *cobra.Command {
	var outFile string
	cmd := &cobra.Command{
		Use:   "convert FILE.wf.yaml",
		Short: "Translate a Fission Workflows document into Serverless Workflow DSL 1.0",
		Long: "Convert writes the DSL 1.0 equivalent of a Fission Workflows document on stdout (or\n" +
			"--out FILE). Constructs with no DSL 1.0 equivalent are listed on stderr, one\n" +
			"`warning:` line each, and kept in the output as a `set` of their original\n" +
			"definition so the result still validates. Baton runs the original unchanged;\n" +
			"convert is for moving to the standard language. See docs/fission-workflows.md.",
		Example: "  baton convert fortunewhale.wf.yaml > fortunewhale.yaml",
		Args:    cobra.ExactArgs(1),
	}
	langOpts := addLangFlags(cmd)
	cmd.Flags().StringVarP(&outFile, "out", "O", "", "write the DSL document to this file instead of stdout")
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		file := args[0]
		src, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("cannot read %s: %w", file, readFailure(err))
		}
		opts := *langOpts
		if opts.Format == "" {
			opts.Format = lang.Fission
		}
		if opts.Format != lang.Fission {
			return fmt.Errorf("convert reads Fission Workflows documents, not --format %s", opts.Format)
		}
		def, _, err := lang.Parse(file, src, opts)
		if err != nil {
			return err
		}
		out, warnings, err := fission.Convert(def)
		if err != nil {
			return err
		}
		for _, w := range warnings {
			fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s: %s\n", file, w)
		}
		if outFile != "" {
			return os.WriteFile(outFile, out, 0o644)
		}
		_, err = cmd.OutOrStdout().Write(out)
		return err
	})
	return cmd
}
