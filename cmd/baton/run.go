package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/lang"
	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/store"
)

// cancelGrace bounds how long an interrupted `baton run` waits for its
// invocation to acknowledge the cancellation.
const cancelGrace = 5 * time.Second

func newRunCommand() *cobra.Command {
	var input, logLevel string
	var watch bool
	cmd := &cobra.Command{
		Use:   "run FILE",
		Short: "Run a workflow document in-process and print its output",
		Long: "Run stores the document in the embedded database of the data directory, runs it\n" +
			"with the given input and prints the output as JSON on stdout. When the workflow\n" +
			"faults, it prints the error (an RFC 7807 problem document) on stderr and exits 1.\n\n" +
			"If the same namespace, name and version was stored before with other content and\n" +
			"no invocation of it is running, the stored copy is replaced by the file's content.\n\n" +
			"The invocation's id goes to stderr first; inspect it afterwards with\n" +
			"`baton invocation history ID --data DIR`. With --watch each task is shown on stderr as\n" +
			"it goes; without it, that starts once the run has taken " + quietRun.String() + ".",
		Example: "  baton run examples/hello.yaml --input '{\"name\": \"Ada\"}'\n" +
			"  baton run examples/hello.yaml --input '{\"name\": \"Ada\"}' --watch\n" +
			"  baton run order.yaml --input @order.json --data ./.baton",
		Args: cobra.ExactArgs(1),
	}
	data := addDataFlag(cmd)
	langOpts := addLangFlags(cmd)
	engineCfg := addEngineFlags(cmd)
	cmd.Flags().StringVar(&input, "input", "", "workflow input: JSON, or @FILE to read it from a file (@- for stdin)")
	cmd.Flags().StringVar(&logLevel, "log-level", "warn", "log level on stderr: debug, info, warn or error")
	cmd.Flags().BoolVar(&watch, "watch", false, "show each task on stderr as it goes")
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		level, err := parseLogLevel(logLevel)
		if err != nil {
			return err
		}
		return runWorkflow(cmd.Context(), runRequest{
			file:    args[0],
			input:   input,
			dataDir: *data,
			lang:    *langOpts,
			engine:  *engineCfg,
			logger:  slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level})),
			stdout:  cmd.OutOrStdout(),
			stderr:  cmd.ErrOrStderr(),
			watch:   watch,
		})
	})
	return cmd
}

type runRequest struct {
	file, input, dataDir string
	lang                 lang.Options
	engine               engineConfig
	logger               *slog.Logger
	stdout, stderr       io.Writer
	// watch shows the tasks from the start rather than after quietRun.
	watch bool
}

// quietRun is how long `baton run` stays quiet before it shows the tasks
// of a run that goes on (a long run must not look hung).
const quietRun = 2 * time.Second

func runWorkflow(ctx context.Context, req runRequest) (err error) {
	src, err := os.ReadFile(req.file)
	if err != nil {
		return fmt.Errorf("cannot read %s: %w", req.file, readFailure(err))
	}
	rawInput, err := readInput(req.input)
	if err != nil {
		return err
	}
	var input any
	if rawInput != nil {
		if err := json.Unmarshal(rawInput, &input); err != nil {
			return fmt.Errorf("decoding the input: %w", err)
		}
	}
	eng, err := openLocalEngine(ctx, storeTarget{dataDir: req.dataDir}, "run", req.logger, req.engine)
	if err != nil {
		return err
	}
	defer func() {
		if closeErr := eng.Close(); closeErr != nil && err == nil {
			err = fmt.Errorf("closing %s: %w", eng.path, closeErr)
		}
	}()

	wf, err := applyForRun(ctx, eng, req.file, src, req.lang)
	if err != nil {
		return err
	}
	inv, err := eng.Invoke(ctx, wf.Namespace, wf.Name, wf.Version, input)
	if err != nil {
		return err
	}
	// The id goes to stderr, so that stdout stays the output.
	fmt.Fprintf(req.stderr, "invocation %s\n", inv.ID)
	stopWatching := showRunProgress(ctx, eng, inv.ID, req)
	ended, err := eng.Wait(ctx, inv.ID)
	stopWatching()
	if err != nil {
		if ctx.Err() != nil {
			return interruptRun(eng, inv.ID, req.logger)
		}
		return fmt.Errorf("waiting for invocation %s: %w", inv.ID, err)
	}
	return reportRun(ended, req.stdout, req.stderr)
}

// showRunProgress prints the run's tasks on stderr as they go: at once with
// --watch, else from quietRun on (with what happened until then). The
// returned func stops it once everything recorded so far is printed.
func showRunProgress(ctx context.Context, eng *localEngine, id string, req runRequest) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	var mu sync.Mutex
	// With --watch the whole history is shown however fast the run ends.
	following, stopping := req.watch, false
	go func() {
		defer close(done)
		if !req.watch {
			select {
			case <-ctx.Done():
				return
			case <-time.After(quietRun):
			}
		}
		mu.Lock()
		if stopping && !following {
			// Ended within quietRun: nothing to show.
			mu.Unlock()
			return
		}
		following = true
		mu.Unlock()
		p := &progress{w: req.stderr}
		err := eng.FollowHistory(ctx, id, 0, func(ev core.Event) error {
			p.event(&ev)
			return nil
		})
		if err != nil && ctx.Err() == nil {
			req.logger.Debug("following the run", "invocation", id, "error", err)
		}
	}()
	return func() {
		mu.Lock()
		stopping = true
		wait := following
		mu.Unlock()
		if wait {
			// The run has ended: the follower returns once it has
			// printed the terminal event.
			select {
			case <-done:
			case <-time.After(5 * time.Second):
			}
		}
		cancel()
		<-done
	}
}

// applyForRun stores the document. `baton run FILE` means "run this file
// as it is now", so an edited document whose version was not bumped
// replaces the stored copy, unless invocations of that copy are still
// running: they need their definition to resume.
func applyForRun(ctx context.Context, eng *localEngine, file string, src []byte, opts lang.Options) (*store.Workflow, error) {
	wf, err := eng.ApplyDocument(ctx, file, src, opts)
	if !errors.Is(err, store.ErrConflict) {
		return wf, err
	}
	parsed, _, parseErr := lang.Parse(file, src, opts)
	if parseErr != nil {
		return nil, err
	}
	doc := parsed.Document
	running, listErr := runningInvocationsOf(ctx, eng, doc.Namespace, doc.Name, doc.Version)
	if listErr != nil {
		return nil, listErr
	}
	if running > 0 {
		return nil, fmt.Errorf("%s: workflow %s/%s version %s is stored with other content and %d invocation(s) of it are still running; "+
			"change document.version", file, doc.Namespace, doc.Name, doc.Version, running)
	}
	if err := eng.DeleteWorkflow(ctx, doc.Namespace, doc.Name, doc.Version); err != nil {
		return nil, fmt.Errorf("replacing the stored copy of workflow %s/%s version %s: %w", doc.Namespace, doc.Name, doc.Version, err)
	}
	return eng.ApplyDocument(ctx, file, src, opts)
}

func runningInvocationsOf(ctx context.Context, eng *localEngine, namespace, name, version string) (int, error) {
	filter := store.InvocationFilter{Namespace: namespace, Workflow: name, Status: core.StatusRunning, Limit: 1000}
	count := 0
	for {
		page, next, err := eng.ListInvocations(ctx, filter)
		if err != nil {
			return 0, fmt.Errorf("listing running invocations: %w", err)
		}
		for _, inv := range page {
			if inv.Version == version {
				count++
			}
		}
		if next == "" {
			return count, nil
		}
		filter.Cursor = next
	}
}

// interruptRun cancels the invocation of an interrupted run, so that it
// does not resume in the background the next time the data directory is
// opened.
func interruptRun(eng *localEngine, id string, logger *slog.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), cancelGrace)
	defer cancel()
	if err := eng.CancelInvocation(ctx, id, "the run was interrupted"); err != nil && !errors.Is(err, store.ErrConflict) {
		logger.Warn("cancelling the interrupted invocation failed", "invocation", id, "error", err)
	} else if _, err := eng.Wait(ctx, id); err != nil {
		logger.Warn("the interrupted invocation did not stop in time", "invocation", id, "error", err)
	}
	return &interruptedError{msg: fmt.Sprintf("interrupted; invocation %s cancelled", id)}
}

// reportRun prints a finished invocation: its output on stdout, or its
// error as a problem document on stderr with exit status 1.
func reportRun(inv *store.Invocation, stdout, stderr io.Writer) error {
	if inv.Status == core.StatusCompleted {
		data, err := json.Marshal(inv.Output)
		if err != nil {
			return fmt.Errorf("encoding the output: %w", err)
		}
		_, err = stdout.Write(append(data, '\n'))
		return err
	}
	p := inv.Error
	if p == nil {
		p = problem.Runtime("the invocation ended as %s without an error", inv.Status)
	}
	data, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encoding the error: %w", err)
	}
	if _, err := stderr.Write(append(data, '\n')); err != nil {
		return err
	}
	return &exitError{code: exitFailure}
}

func parseLogLevel(s string) (slog.Level, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level %q: use debug, info, warn or error", s)
	}
	return level, nil
}
