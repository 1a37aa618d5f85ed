// Package telemetry is Baton's OpenTelemetry tracing: one trace per
// invocation, a span per task and per call, and the W3C trace context
// carried across HTTP boundaries. The engine talks to it through two small
// types, Tracer (one per engine) and Invocation (one per live invocation);
// a nil *Tracer means tracing is off and costs the engine a nil check.
//
// An invocation's trace identity is chosen once, when it starts, and
// recorded in its history (see Record): an invocation resumed by another
// process, after a crash or on another replica, reopens the same span ids
// and its later tasks join the same trace.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// instrumentation names the tracer, as OpenTelemetry asks libraries to.
const instrumentation = "github.com/batonflow/baton/engine"

// Tracer starts the spans of every invocation of an engine.
type Tracer struct {
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
}

// New returns a tracer over an SDK tracer provider built with opts (an
// exporter or a span processor, a sampler, a resource). The provider gets
// Baton's ID generator, which is what lets a resumed invocation reopen its
// recorded span.
func New(opts ...sdktrace.TracerProviderOption) *Tracer {
	opts = append(opts, sdktrace.WithIDGenerator(idGenerator{}))
	tp := sdktrace.NewTracerProvider(opts...)
	return &Tracer{provider: tp, tracer: tp.Tracer(instrumentation)}
}

// Shutdown flushes the spans not yet exported and stops the exporter.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	if err := t.provider.Shutdown(ctx); err != nil {
		return fmt.Errorf("telemetry: flushing spans: %w", err)
	}
	return nil
}

// Environment variables read by FromEnv itself; the exporter reads the
// OTEL_EXPORTER_OTLP_* ones (headers, timeout, TLS...), the SDK the
// OTEL_TRACES_SAMPLER*, OTEL_BSP_* and OTEL_SPAN_* ones, and the resource
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
const (
	envDisabled       = "OTEL_SDK_DISABLED"
	envExporter       = "OTEL_TRACES_EXPORTER"
	envEndpoint       = "OTEL_EXPORTER_OTLP_ENDPOINT"
	envTracesEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	envProtocol       = "OTEL_EXPORTER_OTLP_PROTOCOL"
	envTracesProtocol = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
)

// FromEnv returns the tracer the standard OTEL_* variables ask for, or nil
// when they ask for none. Tracing is on when OTEL_TRACES_EXPORTER is
// "otlp", or when it is unset and an OTLP endpoint is set
// (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT); it
// is off with OTEL_TRACES_EXPORTER=none or OTEL_SDK_DISABLED=true. Unlike
// the SDK's own default, an unconfigured process exports nothing: a
// workflow engine must not start sending data to localhost:4318 because
// nobody said otherwise. Spans go over OTLP/HTTP with protobuf.
func FromEnv(ctx context.Context, version string, logger *slog.Logger) (*Tracer, error) {
	on, err := enabledByEnv()
	if err != nil || !on {
		return nil, err
	}
	for _, key := range []string{envTracesProtocol, envProtocol} {
		if p := os.Getenv(key); p != "" {
			if p != "http/protobuf" {
				return nil, fmt.Errorf("telemetry: %s=%s: Baton exports traces over OTLP/HTTP only; set http/protobuf (port 4318)", key, p)
			}
			break
		}
	}
	exporter, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("telemetry: OTLP exporter: %w", err)
	}
	// The environment comes last so that OTEL_SERVICE_NAME and
	// OTEL_RESOURCE_ATTRIBUTES override Baton's defaults.
	res, err := resource.New(ctx,
		resource.WithTelemetrySDK(),
		resource.WithAttributes(
			attribute.String("service.name", "baton"),
			attribute.String("service.version", version),
		),
		resource.WithFromEnv(),
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	if logger != nil {
		logger.Info("tracing on: exporting spans over OTLP", "endpoint", endpointForLog())
	}
	return New(sdktrace.WithBatcher(exporter), sdktrace.WithResource(res)), nil
}

func enabledByEnv() (bool, error) {
	if strings.EqualFold(os.Getenv(envDisabled), "true") {
		return false, nil
	}
	switch exp := strings.TrimSpace(os.Getenv(envExporter)); exp {
	case "":
		return os.Getenv(envEndpoint) != "" || os.Getenv(envTracesEndpoint) != "", nil
	case "none":
		return false, nil
	case "otlp":
		return true, nil
	default:
		return false, fmt.Errorf("telemetry: %s=%s: Baton exports traces with otlp (or none)", envExporter, exp)
	}
}

func endpointForLog() string {
	if e := os.Getenv(envTracesEndpoint); e != "" {
		return e
	}
	if e := os.Getenv(envEndpoint); e != "" {
		return e
	}
	return "http://localhost:4318"
}

// propagator is the W3C Trace Context format (traceparent, tracestate):
// what Baton sends on outgoing calls and accepts on incoming requests.
var propagator propagation.TraceContext

// Inject writes the trace context of ctx's span, when it has a valid one,
// into outgoing HTTP headers. Without one (tracing off) it writes nothing.
func Inject(ctx context.Context, h http.Header) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	propagator.Inject(ctx, propagation.HeaderCarrier(h))
}

// InjectMap is Inject for carriers that are not HTTP headers, such as
// gRPC metadata: it calls set for each header to send.
func InjectMap(ctx context.Context, set func(key, value string)) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	c := propagation.MapCarrier{}
	propagator.Inject(ctx, c)
	for k, v := range c {
		set(k, v)
	}
}

// Extract returns ctx carrying the remote span context of an incoming
// request's traceparent header, if it has a valid one: an invocation
// started under it joins the caller's trace.
func Extract(ctx context.Context, h http.Header) context.Context {
	if h.Get("Traceparent") == "" {
		return ctx
	}
	return propagator.Extract(ctx, propagation.HeaderCarrier(h))
}

// FromEvent returns ctx carrying the trace context a CloudEvent carries in
// the Distributed Tracing extension (its traceparent and tracestate
// attributes), when it has a valid one: a run the event starts joins the
// trace of whoever produced it.
func FromEvent(ctx context.Context, event map[string]any) context.Context {
	tp, _ := event["traceparent"].(string)
	if tp == "" {
		return ctx
	}
	c := propagation.MapCarrier{"traceparent": tp}
	if ts, _ := event["tracestate"].(string); ts != "" {
		c["tracestate"] = ts
	}
	return propagator.Extract(ctx, c)
}

// ToEvent sets a CloudEvent's Distributed Tracing extension from ctx's
// span, unless the event has a traceparent already; without a span (tracing
// off) it changes nothing.
func ToEvent(ctx context.Context, event map[string]any) {
	if _, set := event["traceparent"]; set || !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	c := propagation.MapCarrier{}
	propagator.Inject(ctx, c)
	for k, v := range c {
		event[k] = v
	}
}

// idGenerator draws random ids, except for the ids a context asks for:
// those of a resumed invocation's span, recorded when it first started.
type idGenerator struct{}

type fixedIDsKey struct{}

type fixedIDs struct {
	trace trace.TraceID
	span  trace.SpanID
}

func withFixedIDs(ctx context.Context, tid trace.TraceID, sid trace.SpanID) context.Context {
	return context.WithValue(ctx, fixedIDsKey{}, fixedIDs{trace: tid, span: sid})
}

func (idGenerator) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	if f, ok := ctx.Value(fixedIDsKey{}).(fixedIDs); ok {
		return f.trace, f.span
	}
	return newTraceID(), newSpanID()
}

func (idGenerator) NewSpanID(ctx context.Context, tid trace.TraceID) trace.SpanID {
	if f, ok := ctx.Value(fixedIDsKey{}).(fixedIDs); ok && f.trace == tid {
		return f.span
	}
	return newSpanID()
}

// newTraceID and newSpanID draw from math/rand/v2's per-thread generator:
// ids must be unique, not secret, and the call sits on the task path.
func newTraceID() trace.TraceID {
	var id trace.TraceID
	for !id.IsValid() {
		hi, lo := rand.Uint64(), rand.Uint64()
		for i := range 8 {
			id[i], id[8+i] = byte(hi>>(56-8*i)), byte(lo>>(56-8*i))
		}
	}
	return id
}

func newSpanID() trace.SpanID {
	var id trace.SpanID
	for !id.IsValid() {
		v := rand.Uint64()
		for i := range 8 {
			id[i] = byte(v >> (56 - 8*i))
		}
	}
	return id
}
