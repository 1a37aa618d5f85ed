// Package http calls functions served by another platform: OpenFaaS,
// Knative, the Fission router, a Lambda function URL, or any endpoint that
// takes a JSON body and answers with JSON.
//
// A call is a POST of the input to the spec's URL with the spec's headers
// (and those whose values come from secrets); a 2xx response's body is the
// output. Other statuses and unreachable endpoints are communication
// errors carrying the status, so a workflow's retry policy decides what
// to retry; this runtime never retries on its own. An instance is a
// concurrency slot: starting one sends the optional warm-up request, which
// is how a prepared function wakes a scaled-to-zero backend in advance.
package http

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	stdhttp "net/http"
	"net/url"
	"strings"
	"time"

	"github.com/batonflow/baton/function"
	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/telemetry"
)

// DefaultMaxResponse caps a response body.
const DefaultMaxResponse = 16 << 20

// Secrets resolves a secret's name to its value.
type Secrets interface {
	Secret(ctx context.Context, name string) (string, error)
}

// Options configure a Runtime.
type Options struct {
	// Client sends the requests; the default has no timeout of its own
	// (every call carries its function's timeout).
	Client *stdhttp.Client
	// Secrets resolves Spec.SecretHeaders; a spec naming secrets fails to
	// start without it.
	Secrets Secrets
	Logger  *slog.Logger
	// MaxResponse caps a response body in bytes. Default:
	// DefaultMaxResponse.
	MaxResponse int64
}

// Runtime is the http function.Runtime.
type Runtime struct {
	opts Options
}

// New returns an http runtime.
func New(opts Options) *Runtime {
	if opts.Client == nil {
		opts.Client = &stdhttp.Client{Transport: stdhttp.DefaultTransport.(*stdhttp.Transport).Clone()}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxResponse <= 0 {
		opts.MaxResponse = DefaultMaxResponse
	}
	return &Runtime{opts: opts}
}

// Retire implements function.Runtime.
func (r *Runtime) Retire(*function.Spec) {}

// Close implements function.Runtime: idle connections are dropped.
func (r *Runtime) Close(context.Context) error {
	r.opts.Client.CloseIdleConnections()
	return nil
}

type instance struct {
	r       *Runtime
	spec    *function.Spec
	headers stdhttp.Header
}

// Start implements function.Runtime: it resolves the headers' secrets and
// sends the warm-up request, if the spec has one (the init phase).
func (r *Runtime) Start(ctx context.Context, spec *function.Spec) (function.Instance, function.Phases, error) {
	var phases function.Phases
	h := stdhttp.Header{}
	for k, v := range spec.Headers {
		h.Set(k, v)
	}
	for k, name := range spec.SecretHeaders {
		if r.opts.Secrets == nil {
			return nil, phases, problem.Configuration("function %s needs secret %q, and no secret store is configured", spec.Ref(), name)
		}
		v, err := r.opts.Secrets.Secret(ctx, name)
		if err != nil {
			return nil, phases, problem.Configuration("function %s: secret %q: %v", spec.Ref(), name, err)
		}
		h.Set(k, v)
	}
	inst := &instance{r: r, spec: spec, headers: h}
	if spec.Warmup != "" {
		begin := time.Now()
		err := inst.warmUp(ctx)
		phases.Init = time.Since(begin)
		if err != nil {
			return nil, phases, err
		}
	}
	return inst, phases, nil
}

func (i *instance) warmUp(ctx context.Context) error {
	target, err := resolve(i.spec.URL, i.spec.Warmup)
	if err != nil {
		return problem.Configuration("function %s: warm-up url: %v", i.spec.Ref(), err)
	}
	ctx, cancel := context.WithTimeout(ctx, i.spec.EffectiveTimeout())
	defer cancel()
	req, err := stdhttp.NewRequestWithContext(ctx, stdhttp.MethodGet, target, nil)
	if err != nil {
		return problem.Configuration("function %s: warm-up url: %v", i.spec.Ref(), err)
	}
	req.Header = i.headers.Clone()
	resp, err := i.r.opts.Client.Do(req)
	if err != nil {
		return i.transportError(ctx, "warm-up", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, i.r.opts.MaxResponse))
	if resp.StatusCode >= 300 {
		return problem.Communication(resp.StatusCode, "function %s: warm-up request to %s answered %s", i.spec.Ref(), target, resp.Status)
	}
	return nil
}

func resolve(base, ref string) (string, error) {
	b, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	r, err := url.Parse(ref)
	if err != nil {
		return "", err
	}
	return b.ResolveReference(r).String(), nil
}

func (i *instance) Invoke(ctx context.Context, input json.RawMessage) (json.RawMessage, error) {
	req, err := stdhttp.NewRequestWithContext(ctx, stdhttp.MethodPost, i.spec.URL, bytes.NewReader(input))
	if err != nil {
		return nil, problem.Configuration("function %s: url: %v", i.spec.Ref(), err)
	}
	req.Header = i.headers.Clone()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if info, ok := function.CallInfoFrom(ctx); ok && info.IdempotencyKey != "" {
		req.Header.Set("Idempotency-Key", info.IdempotencyKey)
	}
	telemetry.Inject(ctx, req.Header)
	resp, err := i.r.opts.Client.Do(req)
	if err != nil {
		return nil, i.transportError(ctx, "call", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, i.r.opts.MaxResponse+1))
	if err != nil {
		return nil, i.transportError(ctx, "response", err)
	}
	if int64(len(body)) > i.r.opts.MaxResponse {
		return nil, problem.Runtime("function %s answered more than %d bytes", i.spec.Ref(), i.r.opts.MaxResponse)
	}
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return nil, problem.Communication(resp.StatusCode, "function %s answered %s: %s", i.spec.Ref(), resp.Status, preview(body))
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return json.RawMessage("null"), nil
	}
	if !json.Valid(body) {
		return nil, problem.Runtime("function %s answered with invalid JSON (%s): %q", i.spec.Ref(), resp.Header.Get("Content-Type"), preview(body))
	}
	return body, nil
}

// transportError explains a request that got no response: the deadline
// passed (the pool reports it as a timeout) or the endpoint is
// unreachable.
func (i *instance) transportError(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var ue *url.Error
	if errors.As(err, &ue) && ue.Timeout() {
		return problem.Timeout("function %s: %s timed out: %v", i.spec.Ref(), what, ue.Err)
	}
	return problem.Communication(503, "function %s is unreachable: %v", i.spec.Ref(), err)
}

func preview(b []byte) string {
	const max = 200
	s := strings.TrimSpace(string(b))
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

// An http instance holds no state that a failed call could spoil.
func (i *instance) Healthy() bool { return true }

func (i *instance) Close(context.Context) error { return nil }

var _ function.Runtime = (*Runtime)(nil)
