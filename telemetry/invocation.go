package telemetry

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/batonflow/baton/problem"
)

// Keys of the InvocationStarted event's Info that record the invocation's
// trace identity.
const (
	// InfoTraceparent is the invocation span in W3C form,
	// 00-<trace id>-<span id>-<flags>: the id to look the trace up by,
	// and what a resumed invocation reopens. Its flags are the caller's
	// (01 for a new trace); the sampler decides again, the same way, on
	// each reopening.
	InfoTraceparent = "traceparent"
	// InfoCaller is the span id of the caller's span when the invocation
	// joined a caller's trace (an incoming traceparent, or the call of a
	// parent invocation).
	InfoCaller = "traceCaller"
	// InfoTracestate is the caller's W3C tracestate, when it sent one.
	InfoTracestate = "tracestate"
)

// Plan chooses the trace identity of a new invocation and returns it as
// the Info entries to record with its InvocationStarted event. The
// invocation joins the trace of ctx's span context when there is one (a
// request's traceparent, see Extract, or the call span of a parent
// invocation); otherwise it begins a new trace. Plan starts no span: Open
// does, in whichever process runs the invocation.
func (t *Tracer) Plan(ctx context.Context) map[string]any {
	caller := trace.SpanContextFromContext(ctx)
	tid, flags := caller.TraceID(), caller.TraceFlags()
	if !caller.IsValid() {
		tid, flags = newTraceID(), trace.FlagsSampled
	}
	info := map[string]any{InfoTraceparent: traceparent(tid, newSpanID(), flags)}
	if caller.IsValid() {
		info[InfoCaller] = caller.SpanID().String()
		if ts := caller.TraceState().String(); ts != "" {
			info[InfoTracestate] = ts
		}
	}
	return info
}

func traceparent(tid trace.TraceID, sid trace.SpanID, flags trace.TraceFlags) string {
	return "00-" + tid.String() + "-" + sid.String() + "-" + flags.String()
}

// parseTraceparent reads the ids and flags of a version-00 traceparent.
func parseTraceparent(s string) (trace.TraceID, trace.SpanID, trace.TraceFlags, error) {
	parts := strings.Split(s, "-")
	if len(parts) != 4 || parts[0] != "00" || len(parts[3]) != 2 {
		return trace.TraceID{}, trace.SpanID{}, 0, fmt.Errorf("telemetry: malformed traceparent %q", s)
	}
	tid, err := trace.TraceIDFromHex(parts[1])
	if err != nil {
		return trace.TraceID{}, trace.SpanID{}, 0, fmt.Errorf("telemetry: traceparent %q: %w", s, err)
	}
	sid, err := trace.SpanIDFromHex(parts[2])
	if err != nil {
		return trace.TraceID{}, trace.SpanID{}, 0, fmt.Errorf("telemetry: traceparent %q: %w", s, err)
	}
	var flags trace.TraceFlags
	switch parts[3] {
	case "00":
	case "01":
		flags = trace.FlagsSampled
	default:
		return trace.TraceID{}, trace.SpanID{}, 0, fmt.Errorf("telemetry: traceparent %q: unknown flags", s)
	}
	return tid, sid, flags, nil
}

// Attributes describe the invocation on its span.
type Attributes struct {
	ID, Namespace, Workflow, Version string
	// Parent is the invocation that started this one as a subflow.
	Parent string
}

// Open starts (or, for a resumed invocation, starts again) the span of an
// invocation whose identity Plan recorded in info, at the time the
// invocation started. Info without a valid record (an invocation started
// with tracing off) gets a new trace. The span is ended by End; an
// invocation that stops here to go on elsewhere is simply dropped, its
// span unended and so never exported twice.
func (t *Tracer) Open(info map[string]any, attrs Attributes, started time.Time) *Invocation {
	ctx := context.Background()
	if s, _ := info[InfoTraceparent].(string); s != "" {
		if tid, sid, flags, err := parseTraceparent(s); err == nil {
			if caller, _ := info[InfoCaller].(string); caller != "" {
				if csid, err := trace.SpanIDFromHex(caller); err == nil {
					cfg := trace.SpanContextConfig{TraceID: tid, SpanID: csid, TraceFlags: flags, Remote: true}
					if ts, _ := info[InfoTracestate].(string); ts != "" {
						if state, err := trace.ParseTraceState(ts); err == nil {
							cfg.TraceState = state
						}
					}
					ctx = trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(cfg))
				}
			}
			ctx = withFixedIDs(ctx, tid, sid)
		}
	}
	kv := []attribute.KeyValue{
		attribute.String("baton.invocation.id", attrs.ID),
		attribute.String("baton.namespace", attrs.Namespace),
		attribute.String("baton.workflow", attrs.Workflow),
		attribute.String("baton.workflow.version", attrs.Version),
	}
	if attrs.Parent != "" {
		kv = append(kv, attribute.String("baton.invocation.parent", attrs.Parent))
	}
	ctx, span := t.tracer.Start(ctx, "workflow "+attrs.Namespace+"/"+attrs.Workflow,
		trace.WithTimestamp(started), trace.WithAttributes(kv...))
	// Children draw their ids at random again.
	ctx = trace.ContextWithSpan(context.Background(), span)
	return &Invocation{t: t, span: span, ctx: ctx, open: make(map[string]openTask)}
}

// Invocation is the trace of one live invocation. Its task methods
// implement the core machine's observer; they are called from the
// invocation's own goroutine, calls end on theirs.
type Invocation struct {
	t    *Tracer
	span trace.Span
	ctx  context.Context // carries span

	mu   sync.Mutex
	open map[string]openTask // by activation key
	// replay holds the tasks started while a history is replayed: those
	// that end within it were traced by the process that ran them.
	replay    map[string]replayedTask
	replaying bool
}

type openTask struct {
	span trace.Span
	ref  string
}

type replayedTask struct {
	ref, name string
	at        time.Time
}

// Replaying marks the start (true) and end (false) of a history's replay.
// Tasks the replay starts and ends are not traced again; those still open
// at its end (calls that were in flight, waits) get spans from their
// recorded start.
func (in *Invocation) Replaying(on bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if on {
		in.replaying = true
		in.replay = make(map[string]replayedTask)
		return
	}
	in.endReplayLocked()
}

// endReplayLocked opens the spans of the tasks a replay left open. The
// engine executes the calls a replay leaves pending before it says the
// replay is over, so StartCall ends it too.
func (in *Invocation) endReplayLocked() {
	if !in.replaying {
		return
	}
	in.replaying = false
	keys := make([]string, 0, len(in.replay))
	for k := range in.replay {
		keys = append(keys, k)
	}
	// Enclosing tasks first: they started no later and have shorter refs.
	slices.SortFunc(keys, func(a, b string) int {
		ta, tb := in.replay[a], in.replay[b]
		if c := ta.at.Compare(tb.at); c != 0 {
			return c
		}
		return len(ta.ref) - len(tb.ref)
	})
	for _, k := range keys {
		t := in.replay[k]
		in.startTaskLocked(k, t.ref, t.name, t.at, attribute.Bool("baton.resumed", true))
	}
	in.replay = nil
}

// TaskStarted opens a task's span, as a child of the task that encloses it.
func (in *Invocation) TaskStarted(key, ref, name string, at time.Time) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.replaying {
		in.replay[key] = replayedTask{ref: ref, name: name, at: at}
		return
	}
	in.startTaskLocked(key, ref, name, at)
}

func (in *Invocation) startTaskLocked(key, ref, name string, at time.Time, extra ...attribute.KeyValue) {
	attrs := append([]attribute.KeyValue{
		attribute.String("baton.task.key", key),
		attribute.String("baton.task.ref", ref),
	}, extra...)
	_, span := in.t.tracer.Start(in.parentLocked(key, ref), "task "+name,
		trace.WithTimestamp(at), trace.WithAttributes(attrs...))
	in.open[key] = openTask{span: span, ref: ref}
}

// parentLocked finds the span of the task enclosing an activation: its ref
// is a path prefix of the activation's ref, and its key is that ref
// followed by a prefix of the activation's iteration marks ([i], {i}, #n,
// !), which nested activations extend.
func (in *Invocation) parentLocked(key, ref string) context.Context {
	if len(in.open) == 0 {
		return in.ctx
	}
	inst := key[min(len(ref), len(key)):]
	for p := ref; ; {
		i := strings.LastIndexByte(p, '/')
		if i <= 0 {
			return in.ctx
		}
		p = p[:i]
		for j := len(inst); j >= 0; j-- {
			if j < len(inst) && !strings.ContainsRune("[{#!", rune(inst[j])) {
				continue
			}
			if t, ok := in.open[p+inst[:j]]; ok && t.ref == p {
				return trace.ContextWithSpan(context.Background(), t.span)
			}
		}
	}
}

// TaskEnded closes a task's span, marked as an error when the task failed.
func (in *Invocation) TaskEnded(key, ref, name string, at time.Time, err *problem.Problem) {
	in.mu.Lock()
	if in.replaying {
		delete(in.replay, key)
		in.mu.Unlock()
		return
	}
	t, ok := in.open[key]
	delete(in.open, key)
	in.mu.Unlock()
	if !ok {
		return
	}
	if err != nil {
		setProblem(t.span, err)
	}
	t.span.End(trace.WithTimestamp(at))
}

func setProblem(span trace.Span, p *problem.Problem) {
	span.SetAttributes(
		attribute.String("error.type", p.Type),
		attribute.Int("baton.error.status", p.Status),
	)
	msg := p.Title
	if p.Detail != "" {
		msg += ": " + p.Detail
	}
	span.SetStatus(codes.Error, msg)
}

// Call is the span of one call a task makes.
type Call struct {
	span  trace.Span
	start time.Time
}

// StartCall opens the span of a call made by task (its activation key) and
// returns ctx carrying it: outgoing requests made under that context carry
// it as their traceparent (see Inject).
func (in *Invocation) StartCall(ctx context.Context, task, function string, attempt int) (context.Context, *Call) {
	in.mu.Lock()
	in.endReplayLocked()
	parent := in.span
	if t, ok := in.open[task]; ok {
		parent = t.span
	}
	in.mu.Unlock()
	start := time.Now()
	ctx, span := in.t.tracer.Start(trace.ContextWithSpan(ctx, parent), "call "+function,
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithTimestamp(start),
		trace.WithAttributes(
			attribute.String("baton.function", function),
			attribute.Int("baton.call.attempt", attempt),
		))
	return ctx, &Call{span: span, start: start}
}

// callInfo maps the keys of a call's history Info to span attributes.
var callInfo = [...]struct{ info, attr string }{
	{"version", "baton.function.version"},
	{"runtime", "baton.function.runtime"},
	{"instance", "baton.function.instance"},
}

// End closes the call's span with what the call's executor reported in its
// history Info: the function version and instance that served it, its
// runtime, and whether it was a cold start, which becomes an event (with
// the start's phases) at the moment the call began waiting for it.
func (c *Call) End(info map[string]any, err *problem.Problem) {
	attrs := make([]attribute.KeyValue, 0, len(callInfo)+1)
	for _, k := range callInfo {
		if v, ok := info[k.info].(string); ok && v != "" {
			attrs = append(attrs, attribute.String(k.attr, v))
		}
	}
	cold, _ := info["cold"].(bool)
	if cold {
		attrs = append(attrs, attribute.Bool("baton.cold_start", true))
	}
	if len(attrs) > 0 {
		c.span.SetAttributes(attrs...)
	}
	if cold {
		var attrs []attribute.KeyValue
		if ms, ok := info["coldStartMs"].(float64); ok {
			attrs = append(attrs, attribute.Float64("baton.cold_start.ms", ms))
		}
		if phases, ok := info["coldStart"].(map[string]any); ok {
			for _, p := range [...]string{"compile", "instantiate", "init"} {
				if v, ok := phases[p+"Ms"].(float64); ok {
					attrs = append(attrs, attribute.Float64("baton.cold_start."+p+".ms", v))
				}
			}
		}
		c.span.AddEvent("cold start", trace.WithTimestamp(c.start), trace.WithAttributes(attrs...))
	}
	if err != nil {
		setProblem(c.span, err)
	}
	c.span.End()
}

// End closes the invocation's span, and the spans of tasks still open
// (cancelled, or cut short by the invocation's fault), at the time of its
// terminal event. status is "completed", "faulted" or "cancelled".
func (in *Invocation) End(status string, err *problem.Problem, at time.Time) {
	in.mu.Lock()
	open := in.open
	in.open = map[string]openTask{}
	in.mu.Unlock()
	for _, t := range open {
		t.span.SetAttributes(attribute.Bool("baton.task.unfinished", true))
		t.span.End(trace.WithTimestamp(at))
	}
	in.span.SetAttributes(attribute.String("baton.status", status))
	if err != nil {
		setProblem(in.span, err)
	}
	in.span.End(trace.WithTimestamp(at))
}
