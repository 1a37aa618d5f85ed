package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/batonflow/baton/api"
	"github.com/batonflow/baton/client"
	"github.com/batonflow/baton/problem"
)

func newWorkflowCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "workflow",
		Short: "Manage the workflows stored on a server",
		Long: "Workflow applies, lists, shows and deletes workflow definitions on a baton server.\n" +
			"Workflows are named NAMESPACE/NAME; a NAME alone is in the namespace \"default\".",
		Args: cobra.NoArgs,
	}
	r := addRemote(cmd)
	cmd.AddCommand(
		newWorkflowApplyCommand(r),
		newWorkflowListCommand(r),
		newWorkflowGetCommand(r),
		newWorkflowDeleteCommand(r),
	)
	return cmd
}

func newWorkflowApplyCommand(r *remote) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "apply FILE...",
		Short: "Store workflow documents on the server",
		Long: "Apply sends each document to the server, which validates and stores it under its\n" +
			"document.namespace, name and version. Applying an unchanged document again is a no-op;\n" +
			"a changed document needs a new document.version.",
		Example: "  baton workflow apply examples/hello.yaml\n  baton workflow apply -o json workflows/*.yaml",
		Args:    cobra.MinimumNArgs(1),
	}
	out := addOutputFlag(cmd)
	langOpts := addLangFlags(cmd)
	r.run(cmd, out, func(ctx context.Context, c *client.Client, args []string) error {
		applied := []api.WorkflowRef{}
		failed := false
		// Each file's failure is reported as it happens, so that one bad
		// file does not hide the others' results.
		report := func(err error) {
			failed = true
			for _, line := range errorLines(err) {
				fmt.Fprintln(cmd.ErrOrStderr(), line)
			}
		}
		for _, file := range args {
			src, err := os.ReadFile(file)
			if err != nil {
				report(fmt.Errorf("cannot read %s: %w", file, readFailure(err)))
				continue
			}
			ref, err := c.ApplyWorkflow(ctx, file, src, *langOpts)
			var p *problem.Problem
			if err != nil && !errors.As(err, &p) {
				// The server is unreachable: the other files would fail
				// the same way.
				return err
			}
			if err != nil {
				report(err)
				continue
			}
			applied = append(applied, *ref)
		}
		// A table with no rows would be a bare header above the errors;
		// -o json and yaml still print the (empty) list a script expects.
		if len(applied) == 0 && out.format == formatTable {
			return &exitError{code: exitFailure}
		}
		if err := out.print(cmd.OutOrStdout(), applied, func(w io.Writer) error {
			row(w, "NAMESPACE", "NAME", "VERSION")
			for _, ref := range applied {
				row(w, ref.Namespace, ref.Name, ref.Version)
			}
			return nil
		}); err != nil {
			return err
		}
		if failed {
			return &exitError{code: exitFailure}
		}
		return nil
	})
	return cmd
}

func newWorkflowListCommand(r *remote) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List every stored workflow version",
		Example: "  baton workflow list\n  baton workflow list -o yaml",
		Args:    cobra.NoArgs,
	}
	out := addOutputFlag(cmd)
	r.run(cmd, out, func(ctx context.Context, c *client.Client, args []string) error {
		items, err := c.ListWorkflows(ctx)
		if err != nil {
			return err
		}
		return out.print(cmd.OutOrStdout(), api.WorkflowList{Items: items}, workflowListTable(items))
	})
	return cmd
}

func newWorkflowGetCommand(r *remote) *cobra.Command {
	var version string
	cmd := &cobra.Command{
		Use:   "get NAMESPACE/NAME",
		Short: "Show a workflow (its newest version unless --version is given)",
		Long: "Get shows a stored workflow version and lists all its versions. -o json and -o yaml\n" +
			"include the document's source.",
		Example: "  baton workflow get default/hello\n  baton workflow get hello --version 0.1.0 -o yaml",
		Args:    cobra.ExactArgs(1),
	}
	cmd.Flags().StringVar(&version, "version", "", "the version to show (default the newest)")
	out := addOutputFlag(cmd)
	r.run(cmd, out, func(ctx context.Context, c *client.Client, args []string) error {
		namespace, name, err := parseWorkflowName(args[0])
		if err != nil {
			return err
		}
		wf, err := c.GetWorkflow(ctx, namespace, name, version)
		if err != nil {
			return err
		}
		return out.print(cmd.OutOrStdout(), wf, workflowTable(wf))
	})
	return cmd
}

func newWorkflowDeleteCommand(r *remote) *cobra.Command {
	var version string
	cmd := &cobra.Command{
		Use:   "delete NAMESPACE/NAME",
		Short: "Delete a workflow's versions (all of them unless --version is given)",
		Long: "Delete removes workflow versions from the server. Invocations of them and their\n" +
			"histories are kept.",
		Example: "  baton workflow delete default/hello --version 0.1.0\n  baton workflow delete default/hello",
		Args:    cobra.ExactArgs(1),
	}
	cmd.Flags().StringVar(&version, "version", "", "the version to delete (default every version)")
	r.run(cmd, nil, func(ctx context.Context, c *client.Client, args []string) error {
		namespace, name, err := parseWorkflowName(args[0])
		if err != nil {
			return err
		}
		if err := c.DeleteWorkflow(ctx, namespace, name, version); err != nil {
			return err
		}
		if version == "" {
			fmt.Fprintf(cmd.OutOrStdout(), "deleted workflow %s/%s (all versions)\n", namespace, name)
		} else {
			fmt.Fprintf(cmd.OutOrStdout(), "deleted workflow %s/%s version %s\n", namespace, name, version)
		}
		return nil
	})
	return cmd
}
