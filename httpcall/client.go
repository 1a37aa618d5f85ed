// Package httpcall executes the Serverless Workflow DSL's `call: http` task:
// it turns the task's evaluated `with` arguments into an HTTP request (URI
// template, query, headers, body, authentication, idempotency key), sends
// it, and turns the response into the task's output or into a DSL error.
package httpcall

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/batonflow/baton/expr"
	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/telemetry"
)

// DefaultMaxResponseBytes bounds a response body when Client.MaxResponseBytes
// is zero.
const DefaultMaxResponseBytes = 32 << 20

// DefaultUserAgent is sent when neither Client.UserAgent nor the task's
// headers name one.
const DefaultUserAgent = "baton"

// Client runs `call: http` tasks. Its zero value is ready to use; a Client
// is safe for concurrent use and must not be copied after first use.
type Client struct {
	// HTTP sends the requests. When nil, the client uses its own
	// http.Client over NewTransport, created on first use.
	HTTP *http.Client
	// UserAgent is sent unless the task sets User-Agent; DefaultUserAgent
	// when empty.
	UserAgent string
	// MaxResponseBytes bounds the body read from a response, so that one
	// runaway service cannot exhaust the engine's memory;
	// DefaultMaxResponseBytes when zero.
	MaxResponseBytes int64
	// Logger receives a debug record per call; slog.Default() when nil.
	Logger *slog.Logger

	initHTTP sync.Once
	ownHTTP  *http.Client
	initExpr sync.Once
	ownExpr  *expr.Evaluator
	// tokens caches OAuth2 access tokens and OIDC discovery results.
	tokens tokenCache
}

// Request is one execution of a `call: http` task.
type Request struct {
	// Args is the task's `with`, runtime expressions already evaluated:
	// method, endpoint (a URI template string or {uri, authentication}),
	// headers, query, body, output (content, response or raw) and redirect.
	Args map[string]any
	// Input is the task's transformed input. URI template variables are
	// its top-level keys.
	Input any
	// IdempotencyKey is sent as the Idempotency-Key header when non-empty
	// and the task does not set that header itself.
	IdempotencyKey string
	// Authentications is the workflow's use.authentications, as data, for
	// endpoints that say `authentication: {use: name}`.
	Authentications map[string]any
	// Secrets holds the secrets an authentication scheme may name with
	// `use: secret`; each is an object with the scheme's fields (username
	// and password, or token).
	Secrets map[string]any
	// EvalAuthentication evaluates the runtime expressions of a named
	// authentication policy, which the core does not evaluate because it
	// is not part of `with`. When nil, they are evaluated with the task's
	// input as `.` and Secrets as $secret.
	EvalAuthentication func(policy any) (any, error)
	// Redact masks secret values in what the call records besides the
	// response itself: the request echo of `output: response` (headers
	// and URI) and the debug log. Nil masks nothing.
	Redact func(string) string
}

// NewTransport returns a transport tuned for an engine that calls a few
// hosts at high concurrency: idle keep-alive connections are kept per host
// in large numbers, so that bursts of calls reuse connections instead of
// dialling (and leaving TIME_WAIT sockets behind).
func NewTransport() *http.Transport {
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// NewHTTPClient returns an http.Client over NewTransport. Redirects are
// decided per call, following the task's `redirect` argument.
func NewHTTPClient() *http.Client {
	return &http.Client{Transport: NewTransport()}
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	c.initHTTP.Do(func() { c.ownHTTP = NewHTTPClient() })
	return c.ownHTTP
}

func (c *Client) expressions() *expr.Evaluator {
	c.initExpr.Do(func() { c.ownExpr = expr.NewEvaluator() })
	return c.ownExpr
}

func (c *Client) userAgent() string {
	if c.UserAgent != "" {
		return c.UserAgent
	}
	return DefaultUserAgent
}

func (c *Client) maxResponseBytes() int64 {
	if c.MaxResponseBytes > 0 {
		return c.MaxResponseBytes
	}
	return DefaultMaxResponseBytes
}

func (c *Client) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}

// CloseIdleConnections closes the keep-alive connections of the client's
// own transport (or of HTTP's), for an orderly shutdown.
func (c *Client) CloseIdleConnections() {
	c.httpClient().CloseIdleConnections()
}

func redactWith(redact func(string) string, s string) string {
	if redact == nil {
		return s
	}
	return redact(s)
}

// stopAtFirstResponse makes the http.Client hand 3xx responses back instead
// of following them.
func stopAtFirstResponse(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Do runs the call and returns the task's output as plain JSON data, or the
// DSL error the call raised. Errors carry no instance: the caller knows
// which task ran.
func (c *Client) Do(ctx context.Context, req Request) (any, *problem.Problem) {
	started := time.Now()
	prepared, p := c.prepare(&req)
	if p != nil {
		return nil, p
	}
	out, p := c.send(ctx, prepared)
	if log := c.logger(); log.Enabled(ctx, slog.LevelDebug) {
		attrs := []slog.Attr{
			slog.String("method", prepared.method),
			slog.String("url", redactWith(req.Redact, prepared.url.Redacted())),
			slog.Duration("elapsed", time.Since(started)),
		}
		if p != nil {
			attrs = append(attrs, slog.String("error", redactWith(req.Redact, p.Error())))
		}
		log.LogAttrs(ctx, slog.LevelDebug, "http call", attrs...)
	}
	return out, p
}

func (c *Client) send(ctx context.Context, call *call) (any, *problem.Problem) {
	hc := c.httpClient()
	if !call.redirect {
		noFollow := *hc
		noFollow.CheckRedirect = stopAtFirstResponse
		hc = &noFollow
	}
	var token string
	if call.oauth != nil {
		var p *problem.Problem
		if token, p = c.accessToken(ctx, call.oauth); p != nil {
			return nil, p
		}
		call.header.Set("Authorization", "Bearer "+token)
	}
	httpReq, p := newHTTPRequest(ctx, call)
	if p != nil {
		return nil, p
	}
	resp, err := hc.Do(httpReq)
	if err != nil {
		return nil, transportProblem(ctx, call, err)
	}
	if call.oauth != nil && resp.StatusCode == http.StatusUnauthorized {
		// A cached token may have been revoked before it expired: get a
		// fresh one and try once more.
		c.tokens.forget("token:"+call.oauth.cacheKey(), token)
		fresh, p := c.accessToken(ctx, call.oauth)
		if p != nil {
			resp.Body.Close()
			return nil, p
		}
		if fresh != token {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainBytes))
			resp.Body.Close()
			call.header.Set("Authorization", "Bearer "+fresh)
			if httpReq, p = newHTTPRequest(ctx, call); p != nil {
				return nil, p
			}
			if resp, err = hc.Do(httpReq); err != nil {
				return nil, transportProblem(ctx, call, err)
			}
		}
	}
	if call.digest != nil && resp.StatusCode == http.StatusUnauthorized {
		if challenge, ok := pickDigestChallenge(resp.Header); ok {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainBytes))
			resp.Body.Close()
			authorization, err := digestAuthorization(challenge, call.digest.username, call.digest.password, call.method, call.url.RequestURI())
			if err != nil {
				return nil, problem.Runtime("%s %s: %v", call.method, call.url.Redacted(), err)
			}
			call.header.Set("Authorization", authorization)
			if httpReq, p = newHTTPRequest(ctx, call); p != nil {
				return nil, p
			}
			if resp, err = hc.Do(httpReq); err != nil {
				return nil, transportProblem(ctx, call, err)
			}
		}
	}
	defer resp.Body.Close()

	if !statusAccepted(resp.StatusCode, call.redirect) {
		return nil, statusProblem(call, resp)
	}
	content, p := c.readBody(ctx, call, resp)
	if p != nil {
		return nil, p
	}
	return shapeOutput(call, resp, content), nil
}

func newHTTPRequest(ctx context.Context, call *call) (*http.Request, *problem.Problem) {
	var body io.Reader
	if r := call.bodyReader(); r != nil {
		body = r
	}
	httpReq, err := http.NewRequestWithContext(ctx, call.method, call.url.String(), body)
	if err != nil {
		return nil, problem.Configuration("cannot build the request %s %s: %v", call.method, call.url.Redacted(), err)
	}
	httpReq.Header = call.header
	if call.header.Get("Traceparent") == "" {
		// The call joins the workflow's trace, unless the workflow sets
		// the header itself.
		telemetry.Inject(ctx, httpReq.Header)
	}
	if host := call.header.Get("Host"); host != "" {
		httpReq.Host = host
	}
	return httpReq, nil
}

func statusAccepted(status int, redirect bool) bool {
	if status >= 200 && status < 300 {
		return true
	}
	return redirect && status >= 300 && status < 400
}

// transportProblem classifies an error of the HTTP exchange itself: the
// task's deadline is a timeout, a cancellation says so, and everything else
// (DNS, refused or reset connections, TLS, malformed responses) means the
// service is unavailable.
func transportProblem(ctx context.Context, call *call, err error) *problem.Problem {
	target := call.method + " " + call.url.Redacted()
	switch ctxErr := ctx.Err(); {
	case errors.Is(ctxErr, context.DeadlineExceeded):
		return problem.Timeout("%s: no response before the task's deadline", target)
	case errors.Is(ctxErr, context.Canceled):
		return problem.Communication(500, "%s: the call was cancelled before it completed", target)
	}
	var netErr net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout() {
		return problem.Timeout("%s: timed out: %v", target, unwrapURLError(err))
	}
	return problem.Communication(http.StatusServiceUnavailable, "%s: service unavailable: %v", target, unwrapURLError(err))
}
