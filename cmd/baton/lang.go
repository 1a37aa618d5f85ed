package main

import (
	"github.com/spf13/cobra"

	"github.com/batonflow/baton/lang"
)

// addLangFlags adds --format and --namespace, which steer how a document is
// read: its language is recognised by its shape unless --format names it.
func addLangFlags(cmd *cobra.Command) *lang.Options {
	opts := new(lang.Options)
	cmd.Flags().StringVar(&opts.Format, "format", "",
		"workflow language: "+lang.DSL+" (Serverless Workflow 1.0) or "+lang.Fission+" (Fission Workflows); default: recognised by shape")
	cmd.Flags().StringVar(&opts.Namespace, "namespace", "",
		"namespace of a Fission Workflows document that names none (default \"default\")")
	return opts
}
