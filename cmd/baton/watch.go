package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/batonflow/baton/client"
	"github.com/batonflow/baton/core"
)

// progress prints an invocation's history as it goes, one line per task
// transition: what `invocation watch`, `run --watch` and `invoke --watch`
// show. It is safe for concurrent use.
type progress struct {
	mu sync.Mutex
	w  io.Writer
	// json prints each history entry as one JSON line instead.
	json bool
}

func (p *progress) event(ev *core.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.json {
		data, err := json.Marshal(ev)
		if err == nil {
			p.w.Write(append(data, '\n'))
		}
		return
	}
	line := progressLine(ev)
	if line == "" {
		return
	}
	fmt.Fprintf(p.w, "%s  %s\n", ev.Time.Local().Format("15:04:05.000"), line)
}

// progressLine is the readable line of a history entry; "" for entries not
// worth one.
func progressLine(ev *core.Event) string {
	task := ev.Task
	if ev.Attempt > 1 {
		task += " (attempt " + strconv.Itoa(ev.Attempt) + ")"
	}
	switch ev.Type {
	case core.InvocationStarted:
		if of, ok := ev.Info["rerunOf"].(string); ok {
			return "invocation started, a rerun of " + of
		}
		return "invocation started"
	case core.TaskStarted:
		return "started    " + task
	case core.TaskCompleted:
		return "completed  " + task + infoDuration(ev)
	case core.TaskFailed:
		return "failed     " + task + infoDuration(ev) + ": " + problemLine(ev.Error)
	case core.TaskEnded:
		if ev.Error != nil {
			return "faulted    " + task + ": " + problemLine(ev.Error)
		}
		return "done       " + task
	case core.TimerScheduled:
		return "waiting    " + ev.Timer + " until " + ev.FireAt.Local().Format("15:04:05.000")
	case core.TimerFired:
		return "timer      " + ev.Timer + " fired"
	case core.CancelRequested:
		if reason, ok := ev.Info["reason"].(string); ok && reason != "" {
			return "cancellation requested: " + reason
		}
		return "cancellation requested"
	case core.InvocationRedriven:
		if reason, ok := ev.Info["reason"].(string); ok && reason != "" {
			return "retried from where it stopped: " + reason
		}
		return "retried from where it stopped"
	case core.InvocationCompleted:
		return "invocation completed"
	case core.InvocationFaulted:
		return "invocation faulted: " + problemLine(ev.Error)
	case core.InvocationCancelled:
		return "invocation cancelled"
	}
	return ""
}

func infoDuration(ev *core.Event) string {
	if ms, ok := ev.Info["durationMs"].(float64); ok {
		return " in " + (time.Duration(ms * float64(time.Millisecond))).Round(time.Millisecond).String()
	}
	return ""
}

// followRemote prints an invocation's tasks as they go, from the server's
// stream, until it ends; it returns the last status.
func followRemote(ctx context.Context, c *client.Client, id string, p *progress) (core.Status, error) {
	var status core.Status
	err := c.FollowInvocation(ctx, id, 0, func(ev client.StreamEvent) error {
		if ev.History != nil {
			p.event(ev.History)
		}
		if ev.Status != nil {
			status = ev.Status.Status
		}
		return nil
	})
	return status, err
}

func newInvocationWatchCommand(r *remote) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "watch ID",
		Short: "Show an invocation's tasks as they go, until it ends",
		Long: "Watch prints the invocation's history so far, then each task as it starts, completes,\n" +
			"fails or retries, live (from GET /v1/invocations/{id}/stream), until the invocation ends.\n" +
			"It exits 1 when the invocation faulted or was cancelled. -o json prints each history\n" +
			"entry as a JSON line.",
		Example: "  baton invocation watch 0193c6e4-…\n  baton invocation watch 0193c6e4-… -o json",
		Args:    cobra.ExactArgs(1),
	}
	out := addOutputFlag(cmd)
	r.run(cmd, out, func(ctx context.Context, c *client.Client, args []string) error {
		p := &progress{w: cmd.OutOrStdout(), json: out.format != formatTable}
		status, err := followRemote(ctx, c, args[0], p)
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return &interruptedError{msg: fmt.Sprintf("interrupted; invocation %s keeps running", args[0])}
			}
			return err
		}
		if status != core.StatusCompleted {
			return &exitError{code: exitFailure}
		}
		return nil
	})
	return cmd
}

func newInvocationRetryCommand(r *remote) *cobra.Command {
	var reason string
	var watch bool
	cmd := &cobra.Command{
		Use:   "retry ID",
		Short: "Continue a faulted or cancelled invocation from the task that ended it",
		Long: "Retry (a redrive) continues a faulted or cancelled invocation as the same invocation:\n" +
			"tasks that completed keep their results and are not run again; the call that failed, or\n" +
			"was cut short, runs again. It fails when the invocation is running or completed, or ended\n" +
			"in a way that going on would repeat (an expression error, say): run it again with\n" +
			"`baton invocation rerun` instead.",
		Example: "  baton invocation retry 0193c6e4-…\n  baton invocation retry 0193c6e4-… --reason 'payments API is back' --watch",
		Args:    cobra.ExactArgs(1),
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, recorded in the history")
	cmd.Flags().BoolVar(&watch, "watch", false, "show the tasks as they go until the invocation ends")
	r.run(cmd, nil, func(ctx context.Context, c *client.Client, args []string) error {
		inv, err := c.RetryInvocation(ctx, args[0], reason, 0)
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "invocation %s is running again\n", inv.ID)
		if !watch {
			return nil
		}
		return watchToEnd(ctx, c, inv.ID, cmd.OutOrStdout())
	})
	return cmd
}

func newInvocationRerunCommand(r *remote) *cobra.Command {
	var input string
	var watch bool
	cmd := &cobra.Command{
		Use:   "rerun ID",
		Short: "Start the same workflow version again, with the same or another input",
		Long: "Rerun starts a new invocation of the workflow version that ID ran, with ID's input or\n" +
			"--input, and prints the new invocation's id. Its history names ID (info.rerunOf).",
		Example: "  baton invocation rerun 0193c6e4-…\n  baton invocation rerun 0193c6e4-… --input '{\"name\": \"Bo\"}' --watch",
		Args:    cobra.ExactArgs(1),
	}
	cmd.Flags().StringVar(&input, "input", "", "input instead of the original's: JSON, or @FILE (@- for stdin)")
	cmd.Flags().BoolVar(&watch, "watch", false, "show the tasks as they go until the new invocation ends")
	r.run(cmd, nil, func(ctx context.Context, c *client.Client, args []string) error {
		var raw json.RawMessage
		if cmd.Flags().Changed("input") {
			var err error
			if raw, err = readInput(input); err != nil {
				return err
			}
			if raw == nil {
				raw = json.RawMessage("null")
			}
		}
		inv, err := c.RerunInvocation(ctx, args[0], raw, 0)
		if err != nil {
			return err
		}
		fmt.Fprintln(cmd.OutOrStdout(), inv.ID)
		if !watch {
			return nil
		}
		return watchToEnd(ctx, c, inv.ID, cmd.ErrOrStderr())
	})
	return cmd
}

// watchToEnd prints an invocation's tasks on w until it ends; it fails
// unless the invocation completed.
func watchToEnd(ctx context.Context, c *client.Client, id string, w io.Writer) error {
	status, err := followRemote(ctx, c, id, &progress{w: w})
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return &interruptedError{msg: fmt.Sprintf("interrupted; invocation %s keeps running", id)}
		}
		return err
	}
	if status != core.StatusCompleted {
		return fmt.Errorf("invocation %s %s", id, status)
	}
	return nil
}
