package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/batonflow/baton/dsl"
	"github.com/batonflow/baton/problem"
)

// Exit codes.
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitInterrupted = 130
)

// runtimeError marks an error returned by a command's own work, as opposed
// to one cobra produced while parsing the command line; only the latter
// earns a pointer to --help.
type runtimeError struct{ err error }

func (e *runtimeError) Error() string { return e.err.Error() }
func (e *runtimeError) Unwrap() error { return e.err }

// exitError ends the program with code after the command has already told
// the user what went wrong (validation errors, a fault's problem document).
type exitError struct {
	code int
}

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// interruptedError reports that a signal stopped the command; it is a
// context.Canceled, which sets the exit status to 130, but reads as what
// happened to the invocation.
type interruptedError struct{ msg string }

func (e *interruptedError) Error() string { return e.msg }
func (e *interruptedError) Unwrap() error { return context.Canceled }

// runE adapts a command's work so that its errors are told apart from
// command-line mistakes.
func runE(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := fn(cmd, args); err != nil {
			return &runtimeError{err: err}
		}
		return nil
	}
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "baton",
		Short: "Baton runs Serverless Workflow DSL 1.0 workflows durably",
		Long: "Baton runs Serverless Workflow DSL 1.0 workflows durably.\n\n" +
			"Validate and run documents locally with `baton validate` and `baton run`,\n" +
			"serve the REST API with `baton server`, and manage a server's workflows and\n" +
			"invocations with `baton workflow`, `baton invoke` and `baton invocation`.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newValidateCommand(),
		newRunCommand(),
		newServerCommand(),
		newConsoleCommand(),
		newWorkflowCommand(),
		newInvokeCommand(),
		newInvocationCommand(),
		newSecretCommand(),
		newPolicyCommand(),
		newQoSCommand(),
		newTriggerCommand(),
		newEventCommand(),
		newTokenCommand(),
		newAuditCommand(),
		newFunctionCommand(),
		newConvertCommand(),
		newVersionCommand(),
		newBenchCommand(),
		newSimCommand(),
	)
	rejectUnknownSubcommands(root)
	return root
}

// execute runs the command line and returns the process's exit code. Every
// failure is reported on stderr as readable lines, never as a usage dump or
// a stack trace.
func execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	var exit *exitError
	if errors.As(err, &exit) {
		return exit.code
	}
	var rt *runtimeError
	if !errors.As(err, &rt) {
		fmt.Fprintf(stderr, "baton: %v\nRun '%s --help' for usage.\n", err, cmd.CommandPath())
		return exitUsage
	}
	for _, line := range errorLines(err) {
		fmt.Fprintln(stderr, line)
	}
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return exitInterrupted
	}
	return exitFailure
}

// errorLines renders an error for the terminal: one line, "baton: ...",
// except for invalid documents, whose findings are listed one per line as
// `file:line:col: path: message`, the way `baton validate` prints them.
func errorLines(err error) []string {
	var list dsl.ErrorList
	if errors.As(err, &list) {
		lines := make([]string, len(list))
		for i, e := range list {
			lines[i] = e.Error()
		}
		return lines
	}
	var p *problem.Problem
	if errors.As(err, &p) {
		if len(p.Errors) > 0 {
			return p.Errors
		}
		return []string{"baton: " + problemSummary(p)}
	}
	return []string{"baton: " + oneLine(err.Error())}
}

// problemSummary is the part of a problem a person needs: what went wrong,
// without the HTTP status that the CLI user did not ask about.
func problemSummary(p *problem.Problem) string {
	switch {
	case p.Detail != "":
		return oneLine(p.Detail)
	case p.Title != "":
		return p.Title
	default:
		return p.Error()
	}
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
