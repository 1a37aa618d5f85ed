package wasm

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/batonflow/baton/function"
	"github.com/batonflow/baton/function/internal/tail"
	"github.com/batonflow/baton/problem"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
)

// reactorInstance is a live module built against the Baton ABI: it keeps
// its memory and Go runtime between calls.
type reactorInstance struct {
	r      *Runtime
	spec   *function.Spec
	mod    *module
	inst   api.Module
	alloc  api.Function
	handle api.Function
	stderr *tail.Buffer
	memory *memoryLease

	// inputPtr and inputCap describe the guest's input buffer: the ABI
	// keeps it valid until the next baton_alloc, so inputs that fit are
	// written without asking the guest again.
	inputPtr uint32
	inputCap uint32
	stack    [2]uint64
	broken   bool

	closeOnce sync.Once
}

func (r *Runtime) startReactor(ctx context.Context, spec *function.Spec, mod *module, cfg wazero.ModuleConfig, phases *function.Phases) (*reactorInstance, error) {
	stderr := tail.New(stderrKept)
	begin := time.Now()
	memory := r.memory.lease()
	inst, err := mod.eng.rt.InstantiateModule(experimental.WithMemoryAllocator(ctx, memory), mod.compiled, cfg.WithStdout(stderr).WithStderr(stderr))
	phases.Instantiate = time.Since(begin)
	if err != nil {
		r.memory.recycle(memory)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, problem.Runtime("function %s could not be instantiated: %v", spec.Ref(), err)
	}
	if init := inst.ExportedFunction(exportInitialize); init != nil {
		begin = time.Now()
		_, err = init.Call(ctx)
		phases.Init = time.Since(begin)
		if err != nil {
			_ = inst.Close(context.Background())
			r.memory.recycle(memory)
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, problem.Runtime("function %s failed to initialise: %v", spec.Ref(), callFailure(spec, err, stderr.Suffix("stderr")))
		}
	}
	return &reactorInstance{
		r: r, spec: spec, mod: mod, inst: inst, stderr: stderr, memory: memory,
		alloc:  inst.ExportedFunction(exportAlloc),
		handle: inst.ExportedFunction(exportHandle),
	}, nil
}

func (i *reactorInstance) Invoke(ctx context.Context, input json.RawMessage) (out json.RawMessage, err error) {
	i.r.compute(ctx, func() { out, err = i.invoke(ctx, input) })
	return out, err
}

func (i *reactorInstance) invoke(ctx context.Context, input json.RawMessage) (json.RawMessage, error) {
	if i.broken {
		return nil, problem.Runtime("function %s: instance is no longer usable", i.spec.Ref())
	}
	i.stderr.Reset()
	n := uint32(len(input))
	if uint64(len(input)) > uint64(^uint32(0)) {
		return nil, problem.Validation("function %s: input too large", i.spec.Ref())
	}
	if n > i.inputCap || i.inputPtr == 0 {
		i.stack[0] = uint64(n)
		if err := i.alloc.CallWithStack(ctx, i.stack[:]); err != nil {
			return nil, i.fail(err)
		}
		i.inputPtr, i.inputCap = uint32(i.stack[0]), n
	}
	mem := i.inst.Memory()
	if !mem.Write(i.inputPtr, input) {
		i.broken = true
		return nil, problem.Runtime("function %s: baton_alloc returned a buffer outside its memory", i.spec.Ref())
	}
	i.stack[0], i.stack[1] = uint64(i.inputPtr), uint64(n)
	if err := i.handle.CallWithStack(ctx, i.stack[:]); err != nil {
		return nil, i.fail(err)
	}
	ptr, size := uint32(i.stack[0]>>32), uint32(i.stack[0])
	if size > uint32(i.r.opts.MaxOutput)+1 {
		return nil, problem.Runtime("function %s returned %d bytes, more than the %d allowed", i.spec.Ref(), size, i.r.opts.MaxOutput)
	}
	res, ok := mem.Read(ptr, size)
	if !ok || size == 0 {
		i.broken = true
		return nil, problem.Runtime("function %s: baton_handle returned a result outside its memory", i.spec.Ref())
	}
	// The result lives in guest memory, which the next call reuses.
	body := bytes.Clone(res[1:])
	switch res[0] {
	case 0:
		return body, nil
	case 1:
		return nil, guestProblem(i.spec, body)
	default:
		i.broken = true
		return nil, problem.Runtime("function %s: unknown result status %d", i.spec.Ref(), res[0])
	}
}

// fail marks the instance broken after a failed guest call: a trap, an
// exit, or a stop by the context leaves the guest in no state to go on.
func (i *reactorInstance) fail(err error) error {
	i.broken = true
	return callFailure(i.spec, err, i.stderr.Suffix("stderr"))
}

// MemoryBytes implements function.MemoryReporter: the linear memory, which
// is nearly all an instance holds (its compiled code is shared).
func (i *reactorInstance) MemoryBytes() int64 {
	if m := i.inst.Memory(); m != nil {
		return int64(m.Size())
	}
	return 0
}

func (i *reactorInstance) Healthy() bool { return !i.broken && !i.inst.IsClosed() }

func (i *reactorInstance) Close(ctx context.Context) error {
	var err error
	i.closeOnce.Do(func() {
		err = i.inst.Close(ctx)
		i.r.memory.recycle(i.memory)
		i.r.release(i.mod)
	})
	return err
}

// commandInstance runs a WASI command: every call is a fresh instance of
// the compiled module, with the input on stdin and the output read from
// stdout. The pool still counts it as an instance, which bounds the
// function's concurrency.
type commandInstance struct {
	r         *Runtime
	spec      *function.Spec
	mod       *module
	cfg       wazero.ModuleConfig
	closeOnce sync.Once
}

func (c *commandInstance) Invoke(ctx context.Context, input json.RawMessage) (out json.RawMessage, err error) {
	c.r.compute(ctx, func() { out, err = c.invoke(ctx, input) })
	return out, err
}

func (c *commandInstance) invoke(ctx context.Context, input json.RawMessage) (json.RawMessage, error) {
	stdout := &limitedBuffer{limit: c.r.opts.MaxOutput}
	stderr := tail.New(stderrKept)
	cfg := c.cfg.
		WithStdin(bytes.NewReader(input)).
		WithStdout(stdout).
		WithStderr(stderr).
		WithStartFunctions(exportStart)
	memory := c.r.memory.lease()
	mod, err := c.mod.eng.rt.InstantiateModule(experimental.WithMemoryAllocator(ctx, memory), c.mod.compiled, cfg)
	if mod != nil {
		_ = mod.Close(context.Background())
	}
	c.r.memory.recycle(memory)
	if stdout.exceeded {
		return nil, problem.Runtime("function %s wrote more than %d bytes of output", c.spec.Ref(), c.r.opts.MaxOutput)
	}
	if err != nil {
		return nil, callFailure(c.spec, err, stderr.Suffix("stderr"))
	}
	out := bytes.TrimSpace(stdout.buf.Bytes())
	if len(out) == 0 {
		return json.RawMessage("null"), nil
	}
	if !json.Valid(out) {
		return nil, problem.Runtime("function %s wrote invalid JSON on stdout: %q%s", c.spec.Ref(), preview(out), stderr.Suffix("stderr"))
	}
	return out, nil
}

func preview(b []byte) string {
	const max = 120
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}

func (c *commandInstance) Healthy() bool { return true }

func (c *commandInstance) Close(context.Context) error {
	c.closeOnce.Do(func() { c.r.release(c.mod) })
	return nil
}
