package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/batonflow/baton/api"
	"github.com/batonflow/baton/client"
	"github.com/batonflow/baton/core"
)

func newInvocationCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "invocation",
		Aliases: []string{"invocations"},
		Short:   "Inspect, watch, cancel, retry and rerun invocations on a server",
		Args:    cobra.NoArgs,
	}
	r := addRemote(cmd)
	addLocalData(cmd, r)
	cmd.AddCommand(
		newInvocationGetCommand(r),
		newInvocationListCommand(r),
		newInvocationCancelCommand(r),
		newInvocationHistoryCommand(r),
		newInvocationDeleteCommand(r),
		newInvocationWatchCommand(r),
		newInvocationRetryCommand(r),
		newInvocationRerunCommand(r),
	)
	return cmd
}

func newInvocationGetCommand(r *remote) *cobra.Command {
	cmd := &cobra.Command{
		Use:         "get ID",
		Annotations: map[string]string{localReadable: "yes"},
		Short:       "Show an invocation: status, input, output or error",
		Example:     "  baton invocation get 0193c6e4-…\n  baton invocation get 0193c6e4-… -o json",
		Args:        cobra.ExactArgs(1),
	}
	out := addOutputFlag(cmd)
	r.run(cmd, out, func(ctx context.Context, c *client.Client, args []string) error {
		inv, err := c.GetInvocation(ctx, args[0])
		if err != nil {
			return err
		}
		return out.print(cmd.OutOrStdout(), inv, invocationTable(inv))
	})
	return cmd
}

func newInvocationListCommand(r *remote) *cobra.Command {
	var opts client.ListInvocationsOptions
	var status string
	cmd := &cobra.Command{
		Use:         "list",
		Annotations: map[string]string{localReadable: "yes"},
		Short:       "List invocations, newest first",
		Long: "List shows a page of invocations, newest first. When there are more, the table\n" +
			"format says on stderr how to get the next page; -o json and -o yaml include nextCursor.",
		Example: "  baton invocation list\n" +
			"  baton invocation list --workflow default/hello --status faulted --limit 20\n" +
			"  baton invocation list --cursor <nextCursor of the previous page>",
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringVar(&opts.Workflow, "workflow", "", "only invocations of this workflow (NAME or NAMESPACE/NAME)")
	cmd.Flags().StringVar(&opts.Namespace, "namespace", "", "only invocations of workflows in this namespace")
	cmd.Flags().StringVar(&status, "status", "", "only invocations with this status: running, completed, faulted or cancelled")
	cmd.Flags().IntVar(&opts.Limit, "limit", 0, "page size (default 100, at most 1000)")
	cmd.Flags().StringVar(&opts.Cursor, "cursor", "", "continue a previous listing")
	out := addOutputFlag(cmd)
	r.run(cmd, out, func(ctx context.Context, c *client.Client, args []string) error {
		opts.Status = core.Status(status)
		page, err := c.ListInvocations(ctx, opts)
		if err != nil {
			return err
		}
		if err := out.print(cmd.OutOrStdout(), page, invocationListTable(page.Items)); err != nil {
			return err
		}
		if out.format == formatTable && page.NextCursor != "" {
			fmt.Fprintf(cmd.ErrOrStderr(), "more invocations: add --cursor %s\n", page.NextCursor)
		}
		return nil
	})
	return cmd
}

func newInvocationCancelCommand(r *remote) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cancel ID",
		Short: "Ask a running invocation to stop",
		Long: "Cancel asks a running invocation to stop; it then ends with status cancelled.\n" +
			"A --reason is recorded in its history and its error; its subflows are cancelled too.\n" +
			"Cancelling an invocation that has already ended fails.",
		Example: "  baton invocation cancel 0193c6e4-… --reason 'stuck on a dead endpoint'",
		Args:    cobra.ExactArgs(1),
	}
	reason := cmd.Flags().String("reason", "", fmt.Sprintf("why it is cancelled (at most %d characters)", api.MaxCancelReason))
	r.run(cmd, nil, func(ctx context.Context, c *client.Client, args []string) error {
		if err := c.CancelInvocation(ctx, args[0], *reason); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "cancellation of invocation %s requested\n", args[0])
		return nil
	})
	return cmd
}

func newInvocationDeleteCommand(r *remote) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "delete ID",
		Short: "Delete a finished invocation and its history",
		Long: "Delete removes an invocation that has ended, with its history. A running invocation\n" +
			"cannot be deleted: cancel it first. The server also removes finished invocations once\n" +
			"their namespace's retention period has passed (see docs/policy.md).",
		Example: "  baton invocation delete 0193c6e4-…",
		Args:    cobra.ExactArgs(1),
	}
	r.run(cmd, nil, func(ctx context.Context, c *client.Client, args []string) error {
		if err := c.DeleteInvocation(ctx, args[0]); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "invocation %s deleted\n", args[0])
		return nil
	})
	return cmd
}

func newInvocationHistoryCommand(r *remote) *cobra.Command {
	cmd := &cobra.Command{
		Use:         "history ID",
		Annotations: map[string]string{localReadable: "yes"},
		Short:       "Show an invocation's event history",
		Example: "  baton invocation history 0193c6e4-…\n  baton invocation history 0193c6e4-… -o json\n" +
			"  baton invocation history 0193c6e4-… --data ./.baton   # a local run's",
		Args: cobra.ExactArgs(1),
	}
	out := addOutputFlag(cmd)
	r.run(cmd, out, func(ctx context.Context, c *client.Client, args []string) error {
		events, err := c.History(ctx, args[0])
		if err != nil {
			return err
		}
		return out.print(cmd.OutOrStdout(), api.History{Items: events}, historyTable(events))
	})
	return cmd
}
