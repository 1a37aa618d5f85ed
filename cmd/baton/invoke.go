package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/batonflow/baton/api"
	"github.com/batonflow/baton/client"
	"github.com/batonflow/baton/core"
)

// waitUntilDone is the value of a bare --wait.
const waitUntilDone = "0"

// maxWaitPerRequest keeps each long-poll within the server's default cap;
// longer waits are made of several requests.
const maxWaitPerRequest = api.DefaultMaxWait

func newInvokeCommand() *cobra.Command {
	var version, input, wait, key string
	var watch bool
	cmd := &cobra.Command{
		Use:   "invoke NAMESPACE/NAME",
		Short: "Start an invocation of a workflow on the server",
		Long: "Invoke starts the newest version of a workflow (or --version) with the given input.\n" +
			"Without --wait it prints the invocation id. With --wait it waits for the invocation to\n" +
			"end (at most DURATION, if given) and prints it; it exits 1 when the invocation faulted,\n" +
			"was cancelled, or was still running when the wait ran out.",
		Example: "  baton invoke default/hello --input '{\"name\": \"Ada\"}'\n" +
			"  baton invoke hello --input @input.json --wait\n" +
			"  baton invoke hello --wait 30s -o json\n" +
			"  baton invoke orders/place --input @order.json --idempotency-key order-1234\n" +
			"  baton invoke hello --input '{\"name\": \"Ada\"}' --watch",
	}
	cmd.Args = func(cmd *cobra.Command, args []string) error {
		if _, _, ok := splitWaitArg(cmd, args, wait); ok {
			return nil
		}
		return cobra.ExactArgs(1)(cmd, args)
	}
	r := addRemote(cmd)
	out := addOutputFlag(cmd)
	cmd.Flags().StringVar(&version, "version", "", "workflow version to run (default the newest)")
	cmd.Flags().StringVar(&input, "input", "", "workflow input: JSON, or @FILE to read it from a file (@- for stdin)")
	cmd.Flags().StringVar(&wait, "wait", "", "wait for the invocation to end, at most this long (e.g. 30s); a bare --wait waits until it ends")
	cmd.Flags().Lookup("wait").NoOptDefVal = waitUntilDone
	cmd.Flags().BoolVar(&watch, "watch", false,
		"show the tasks on stderr as they go, then print the ended invocation as --wait does")
	cmd.Flags().StringVar(&key, "idempotency-key", "",
		"start at most once for this key: run again with the same key and input, it prints the invocation the first run started")
	r.run(cmd, out, func(ctx context.Context, c *client.Client, args []string) error {
		target := args[0]
		if t, w, ok := splitWaitArg(cmd, args, wait); ok {
			target, wait = t, w
		}
		namespace, name, err := parseWorkflowName(target)
		if err != nil {
			return err
		}
		raw, err := readInput(input)
		if err != nil {
			return err
		}
		waiting := cmd.Flags().Changed("wait")
		var budget time.Duration
		if waiting {
			if budget, err = time.ParseDuration(wait); err != nil || budget < 0 {
				return fmt.Errorf("--wait %q: use a duration such as 30s or 2m, or a bare --wait to wait until the end", wait)
			}
		}
		var deadline time.Time
		if budget > 0 {
			deadline = time.Now().Add(budget)
		}
		opts := client.InvokeOptions{Version: version, IdempotencyKey: key}
		if waiting {
			opts.Wait = nextWait(deadline)
		}
		inv, err := c.Invoke(ctx, namespace, name, raw, opts)
		if err != nil {
			return err
		}
		if watch && !inv.Ended() {
			fmt.Fprintf(cmd.ErrOrStderr(), "invocation %s\n", inv.ID)
			if _, err := followRemote(ctx, c, inv.ID, &progress{w: cmd.ErrOrStderr()}); err != nil {
				if errors.Is(err, context.Canceled) {
					return &interruptedError{msg: fmt.Sprintf(
						"interrupted; invocation %s keeps running (stop it with: baton invocation cancel %s)", inv.ID, inv.ID)}
				}
				return err
			}
			if inv, err = c.GetInvocation(ctx, inv.ID); err != nil {
				return err
			}
			return printEnded(cmd.OutOrStdout(), out, inv, 0)
		}
		if !waiting {
			return out.print(cmd.OutOrStdout(), api.InvocationID{ID: inv.ID}, func(w io.Writer) error {
				fmt.Fprintln(w, inv.ID)
				return nil
			})
		}
		inv, err = waitForEnd(ctx, c, inv, deadline)
		if err != nil {
			return err
		}
		return printEnded(cmd.OutOrStdout(), out, inv, budget)
	})
	return cmd
}

// nextWait is how long the next long-poll may wait: the time left before
// deadline (none means no deadline), capped at what one request may wait.
func nextWait(deadline time.Time) time.Duration {
	if deadline.IsZero() {
		return maxWaitPerRequest
	}
	return min(max(time.Until(deadline), time.Millisecond), maxWaitPerRequest)
}

// waitForEnd long-polls the server until the invocation ends or the
// deadline passes.
func waitForEnd(ctx context.Context, c *client.Client, inv *api.Invocation, deadline time.Time) (*api.Invocation, error) {
	for !inv.Ended() {
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			// One last look so that the running invocation is printed
			// with all its fields.
			return c.GetInvocation(ctx, inv.ID)
		}
		next, err := c.WaitInvocation(ctx, inv.ID, nextWait(deadline))
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return nil, &interruptedError{msg: fmt.Sprintf(
					"interrupted; invocation %s keeps running (stop it with: baton invocation cancel %s)", inv.ID, inv.ID)}
			}
			return nil, err
		}
		inv = next
	}
	return inv, nil
}

// printEnded prints an invocation after waiting and tells the exit status
// apart: only a completed invocation is a success.
func printEnded(w io.Writer, out *outputFlag, inv *api.Invocation, budget time.Duration) error {
	if err := out.print(w, inv, invocationTable(inv)); err != nil {
		return err
	}
	switch inv.Status {
	case core.StatusCompleted:
		return nil
	case core.StatusRunning:
		return fmt.Errorf("invocation %s is still running after %s", inv.ID, budget)
	default:
		if inv.Error != nil {
			return fmt.Errorf("invocation %s %s: %s", inv.ID, inv.Status, problemSummary(inv.Error))
		}
		return fmt.Errorf("invocation %s %s", inv.ID, inv.Status)
	}
}

// splitWaitArg accepts `--wait 30s`. A flag with an optional value only
// takes it as `--wait=30s`; written with a space, the duration arrives as a
// second argument, which is what a user means, so it is taken back.
func splitWaitArg(cmd *cobra.Command, args []string, wait string) (target, duration string, ok bool) {
	if len(args) != 2 || !cmd.Flags().Changed("wait") || wait != waitUntilDone {
		return "", "", false
	}
	for i, arg := range args {
		if _, err := time.ParseDuration(arg); err == nil {
			return args[1-i], arg, true
		}
	}
	return "", "", false
}
