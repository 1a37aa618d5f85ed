// Package process runs any executable as a function: a script, a binary,
// an interpreter with its program. The process is started once and serves
// call after call over JSON lines on its stdin and stdout:
//
//   - when ready, the process writes {"ready":true} on a line of its own;
//   - Baton writes one request line {"id":"<n>","input":<JSON>};
//   - the process answers with one line {"id":"<n>","output":<JSON>} or
//     {"id":"<n>","error":"<message>"}.
//
// One call at a time goes to a process; the pool runs more processes for
// concurrency. stdout carries the protocol only: diagnostics go to stderr,
// whose end is quoted in error messages. A process that dies is replaced
// by its pool on the next call; a process that exits before it is ready
// fails the start with what it printed on stderr. Closing stdin asks the
// process to stop; it is killed after a grace period.
package process

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/batonflow/baton/function"
	"github.com/batonflow/baton/function/internal/tail"
	"github.com/batonflow/baton/problem"
)

const (
	stderrKept = 4 << 10
	// DefaultMaxLine caps a response line.
	DefaultMaxLine = 16 << 20
	// DefaultStopGrace is how long a process may take to exit once its
	// stdin is closed before it is killed.
	DefaultStopGrace = 2 * time.Second
)

// Options configure a Runtime.
type Options struct {
	Logger *slog.Logger
	// MaxLine caps a response line in bytes. Default: DefaultMaxLine.
	MaxLine int
	// StopGrace: see DefaultStopGrace.
	StopGrace time.Duration
}

// Runtime is the process function.Runtime.
type Runtime struct {
	opts Options
	log  *slog.Logger
}

// New returns a process runtime.
func New(opts Options) *Runtime {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxLine <= 0 {
		opts.MaxLine = DefaultMaxLine
	}
	if opts.StopGrace <= 0 {
		opts.StopGrace = DefaultStopGrace
	}
	return &Runtime{opts: opts, log: opts.Logger}
}

// Retire implements function.Runtime; processes cache nothing.
func (r *Runtime) Retire(*function.Spec) {}

// Close implements function.Runtime; the pools stop the processes.
func (r *Runtime) Close(context.Context) error { return nil }

// instance is one running process.
type instance struct {
	r      *Runtime
	spec   *function.Spec
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	stderr *tail.Buffer

	exited  chan struct{} // closed when the process has exited
	waitErr error         // set before exited is closed

	nextID int
	broken bool

	closeOnce sync.Once
}

// Start implements function.Runtime: it starts the process (the
// instantiate phase) and waits for its ready line (the init phase).
func (r *Runtime) Start(ctx context.Context, spec *function.Spec) (function.Instance, function.Phases, error) {
	var phases function.Phases
	command := spec.Command
	if spec.Dir != "" && !filepath.IsAbs(command) && filepath.Base(command) != command {
		command = filepath.Join(spec.Dir, command)
	}
	cmd := exec.Command(command, spec.Args...)
	cmd.Dir = spec.Dir
	cmd.Env = environment(spec)
	configureProcess(cmd)
	stderr := tail.New(stderrKept)
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, phases, fmt.Errorf("process %s: %w", spec.Ref(), err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, phases, fmt.Errorf("process %s: %w", spec.Ref(), err)
	}
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, phases, problem.Configuration("function %s: cannot start %q: %v", spec.Ref(), spec.Command, err)
	}
	phases.Instantiate = time.Since(begin)
	inst := &instance{
		r: r, spec: spec, cmd: cmd, stdin: stdin, stderr: stderr,
		stdout: bufio.NewReaderSize(stdout, 64<<10),
		exited: make(chan struct{}),
	}
	go func() {
		// Wait also waits for stderr to be drained, so the tail is
		// complete when exited is closed.
		inst.waitErr = cmd.Wait()
		close(inst.exited)
	}()

	begin = time.Now()
	err = inst.awaitReady(ctx)
	phases.Init = time.Since(begin)
	if err != nil {
		_ = inst.Close(context.Background())
		return nil, phases, err
	}
	r.log.Debug("function process started", "function", spec.Ref(), "pid", cmd.Process.Pid)
	return inst, phases, nil
}

// environment is what a process sees: a minimal base, the granted host
// variables, and the spec's own.
func environment(spec *function.Spec) []string {
	env := []string{"BATON_FUNCTION=" + spec.Name, "BATON_FUNCTION_VERSION=" + spec.Version, "BATON_PROTOCOL=jsonlines/1"}
	for _, name := range append([]string{"PATH", "HOME", "TMPDIR", "LANG"}, spec.Permissions.HostEnv...) {
		if !function.HostEnvAllowed(name) {
			continue
		}
		if v, ok := os.LookupEnv(name); ok {
			env = append(env, name+"="+v)
		}
	}
	for k, v := range spec.Env {
		env = append(env, k+"="+v)
	}
	return env
}

type lineResult struct {
	line []byte
	err  error
}

// readLine reads one protocol line, giving up when ctx ends. The reading
// goroutine outlives a cancelled wait only until the process is killed,
// which is what the caller does next.
func (i *instance) readLine(ctx context.Context) ([]byte, error) {
	ch := make(chan lineResult, 1)
	go func() {
		line, err := i.readBounded()
		ch <- lineResult{line, err}
	}()
	select {
	case res := <-ch:
		return res.line, res.err
	case <-ctx.Done():
		i.kill()
		<-ch
		return nil, ctx.Err()
	}
}

var errLineTooLong = errors.New("line too long")

func (i *instance) readBounded() ([]byte, error) {
	var line []byte
	for {
		chunk, err := i.stdout.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > i.r.opts.MaxLine {
			return nil, errLineTooLong
		}
		if err == nil {
			return bytes.TrimSpace(line), nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
	}
}

func (i *instance) awaitReady(ctx context.Context) error {
	for {
		line, err := i.readLine(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return problem.Timeout("function %s did not report ready in time%s", i.spec.Ref(), i.stderr.Suffix("stderr"))
			}
			return i.exitError("before it was ready", err)
		}
		if len(line) == 0 {
			continue
		}
		var msg struct {
			Ready bool `json:"ready"`
		}
		if json.Unmarshal(line, &msg) != nil || !msg.Ready {
			return problem.Runtime(`function %s wrote %q before {"ready":true}; stdout is for the protocol only, diagnostics go to stderr`, i.spec.Ref(), preview(line))
		}
		return nil
	}
}

// exitError explains a failed read: usually the process died, and its exit
// status and stderr say why.
func (i *instance) exitError(when string, readErr error) error {
	if errors.Is(readErr, errLineTooLong) {
		return problem.Runtime("function %s wrote a line longer than %d bytes", i.spec.Ref(), i.r.opts.MaxLine)
	}
	select {
	case <-i.exited:
	case <-time.After(time.Second):
		// stdout closed but the process lives on: report what we have.
		return problem.Runtime("function %s closed its stdout %s%s", i.spec.Ref(), when, i.stderr.Suffix("stderr"))
	}
	status := "exited"
	if i.waitErr != nil {
		status = i.waitErr.Error()
	}
	return problem.Runtime("function %s process ended %s (%s)%s", i.spec.Ref(), when, status, i.stderr.Suffix("stderr"))
}

type request struct {
	ID    string          `json:"id"`
	Input json.RawMessage `json:"input"`
}

type response struct {
	ID     string          `json:"id"`
	Output json.RawMessage `json:"output"`
	Error  *string         `json:"error"`
}

func (i *instance) Invoke(ctx context.Context, input json.RawMessage) (json.RawMessage, error) {
	if !i.Healthy() {
		return nil, problem.Runtime("function %s: the process is no longer running", i.spec.Ref())
	}
	i.nextID++
	id := strconv.Itoa(i.nextID)
	req, err := json.Marshal(request{ID: id, Input: input})
	if err != nil {
		return nil, problem.Validation("function %s: input: %v", i.spec.Ref(), err)
	}
	i.stderr.Reset()
	if _, err := i.stdin.Write(append(req, '\n')); err != nil {
		i.broken = true
		return nil, i.exitError("while receiving a call", err)
	}
	line, err := i.readLine(ctx)
	if err != nil {
		i.broken = true
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, i.exitError("while handling a call", err)
	}
	var resp response
	if err := json.Unmarshal(line, &resp); err != nil {
		// The stream can no longer be trusted to be in step.
		i.broken = true
		return nil, problem.Runtime("function %s answered with invalid JSON %q: %v", i.spec.Ref(), preview(line), err)
	}
	if resp.ID != id {
		i.broken = true
		return nil, problem.Runtime("function %s answered call %q while call %q was waiting", i.spec.Ref(), resp.ID, id)
	}
	if resp.Error != nil {
		return nil, problem.Runtime("function %s: %s", i.spec.Ref(), *resp.Error)
	}
	if len(resp.Output) == 0 {
		return json.RawMessage("null"), nil
	}
	return resp.Output, nil
}

func preview(b []byte) string {
	const max = 120
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}

func (i *instance) Healthy() bool {
	if i.broken {
		return false
	}
	select {
	case <-i.exited:
		return false
	default:
		return true
	}
}

// Close asks the process to stop by closing its stdin, and kills it (with
// its children) if it has not exited after the grace period.
func (i *instance) Close(ctx context.Context) error {
	i.closeOnce.Do(func() {
		_ = i.stdin.Close()
		select {
		case <-i.exited:
		case <-time.After(i.r.opts.StopGrace):
			i.kill()
			<-i.exited
		case <-ctx.Done():
			i.kill()
			<-i.exited
		}
	})
	return nil
}

func (i *instance) kill() {
	killProcess(i.cmd)
}

var _ function.Runtime = (*Runtime)(nil)
