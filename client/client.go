// Package client is a Go client of Baton's REST API (package api). Errors
// the server reports come back as *problem.Problem, decoded from the
// server's problem documents; failures to reach the server are ordinary
// errors.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/batonflow/baton/api"
	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/lang"
	"github.com/batonflow/baton/problem"
)

// Client talks to one Baton server. It is safe for concurrent use.
type Client struct {
	base *url.URL
	http *http.Client
	// namespace is sent with function requests (see WithNamespace).
	namespace string
	token     string // see WithToken
}

// New returns a client of the server at baseURL (e.g.
// http://127.0.0.1:8780). A nil httpClient means http.DefaultClient;
// requests are bounded by their contexts, so the client needs no timeout of
// its own (and one shorter than a wait would cut waits short).
func New(baseURL string, httpClient *http.Client) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("server URL %q: %w", baseURL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("server URL %q: want http://HOST:PORT or https://HOST:PORT", baseURL)
	}
	if httpClient == nil {
		httpClient = http.DefaultClient
	}
	return &Client{base: u, http: httpClient}, nil
}

// BaseURL returns the server's URL as the client uses it.
func (c *Client) BaseURL() string { return c.base.String() }

// request is one API call.
type request struct {
	method      string
	segments    []string // path segments, escaped by do
	query       url.Values
	body        []byte
	contentType string
	header      http.Header // extra request headers
}

func (c *Client) url(segments []string, query url.Values) string {
	var b strings.Builder
	b.WriteString(c.base.String())
	for _, s := range segments {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	if len(query) > 0 {
		b.WriteByte('?')
		b.WriteString(query.Encode())
	}
	return b.String()
}

// do sends req and decodes a successful JSON response into out (when out is
// not nil). It returns the response's status code.
func (c *Client) do(ctx context.Context, req request, out any) (int, error) {
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	httpReq, err := http.NewRequestWithContext(ctx, req.method, c.url(req.segments, req.query), body)
	if err != nil {
		return 0, fmt.Errorf("building request: %w", err)
	}
	httpReq.Header.Set("Accept", "application/json, "+api.ProblemContentType)
	if req.contentType != "" {
		httpReq.Header.Set("Content-Type", req.contentType)
	}
	for k, v := range req.header {
		httpReq.Header[k] = v
	}
	if c.token != "" {
		httpReq.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(httpReq)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return 0, ctxErr
		}
		var urlErr *url.Error
		if errors.As(err, &urlErr) {
			err = urlErr.Err
		}
		return 0, fmt.Errorf("cannot reach the baton server at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, fmt.Errorf("reading the response to %s %s: %w", req.method, httpReq.URL.Path, err)
	}
	if resp.StatusCode >= 400 {
		return resp.StatusCode, decodeProblem(resp, data)
	}
	if out != nil && resp.StatusCode != http.StatusNoContent {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decoding the response to %s %s: %w", req.method, httpReq.URL.Path, err)
		}
	}
	return resp.StatusCode, nil
}

// decodeProblem reads an error response. Anything between the client and the
// server (a proxy, a server of another kind) may answer with something other
// than a problem document; that is turned into one so callers see a single
// error type.
func decodeProblem(resp *http.Response, data []byte) *problem.Problem {
	mediaType, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mediaType == api.ProblemContentType || mediaType == "application/json" {
		var p problem.Problem
		if err := json.Unmarshal(data, &p); err == nil && p.Type != "" {
			if p.Status == 0 {
				p.Status = resp.StatusCode
			}
			return &p
		}
	}
	typ := problem.TypeInternal
	switch {
	case resp.StatusCode == http.StatusNotFound:
		typ = problem.TypeNotFound
	case resp.StatusCode == http.StatusConflict:
		typ = problem.TypeConflict
	case resp.StatusCode < 500:
		typ = problem.TypeBadRequest
	}
	detail := strings.TrimSpace(string(data))
	if len(detail) > 200 {
		detail = detail[:200] + "…"
	}
	return problem.New(typ, resp.StatusCode, http.StatusText(resp.StatusCode), detail)
}

// Health checks that the server is up.
func (c *Client) Health(ctx context.Context) error {
	var h api.Health
	if _, err := c.do(ctx, request{method: http.MethodGet, segments: []string{"healthz"}}, &h); err != nil {
		return err
	}
	if h.Status != "ok" {
		return fmt.Errorf("server at %s reports status %q", c.base, h.Status)
	}
	return nil
}

// ApplyWorkflow stores a workflow document (YAML or JSON) in any language
// the server runs. filename names the document in validation errors; ""
// lets the server choose. opts may force the language and, for Fission
// documents, the namespace.
func (c *Client) ApplyWorkflow(ctx context.Context, filename string, src []byte, opts lang.Options) (*api.WorkflowRef, error) {
	query := url.Values{}
	if filename != "" {
		query.Set("filename", filename)
	}
	if opts.Format != "" {
		query.Set("format", opts.Format)
	}
	if opts.Namespace != "" {
		query.Set("namespace", opts.Namespace)
	}
	contentType := "application/yaml"
	if trimmed := bytes.TrimSpace(src); len(trimmed) > 0 && trimmed[0] == '{' {
		contentType = "application/json"
	}
	var ref api.WorkflowRef
	_, err := c.do(ctx, request{
		method: http.MethodPost, segments: []string{"v1", "workflows"}, query: query,
		body: src, contentType: contentType,
	}, &ref)
	if err != nil {
		return nil, err
	}
	return &ref, nil
}

// ListWorkflows returns every stored workflow version.
func (c *Client) ListWorkflows(ctx context.Context) ([]api.WorkflowSummary, error) {
	var list api.WorkflowList
	if _, err := c.do(ctx, request{method: http.MethodGet, segments: []string{"v1", "workflows"}}, &list); err != nil {
		return nil, err
	}
	return list.Items, nil
}

func workflowSegments(namespace, name, version string) []string {
	s := []string{"v1", "workflows", namespace, name}
	if version != "" {
		s = append(s, "versions", version)
	}
	return s
}

// GetWorkflow returns a workflow version, the newest when version is "".
func (c *Client) GetWorkflow(ctx context.Context, namespace, name, version string) (*api.Workflow, error) {
	var wf api.Workflow
	if _, err := c.do(ctx, request{method: http.MethodGet, segments: workflowSegments(namespace, name, version)}, &wf); err != nil {
		return nil, err
	}
	return &wf, nil
}

// DeleteWorkflow deletes a workflow version, every version when version is
// "".
func (c *Client) DeleteWorkflow(ctx context.Context, namespace, name, version string) error {
	_, err := c.do(ctx, request{method: http.MethodDelete, segments: workflowSegments(namespace, name, version)}, nil)
	return err
}

// InvokeOptions tune Invoke.
type InvokeOptions struct {
	// Version selects the workflow version; "" runs the newest.
	Version string
	// Wait asks the server to hold the response until the invocation ends
	// or Wait passes (the server caps it, by default at 5 minutes).
	Wait time.Duration
	// IdempotencyKey, when set, makes the start safe to retry: the same
	// key with the same request starts nothing new and returns the
	// invocation the first request started; with another request it is a
	// conflict.
	IdempotencyKey string
}

// Invoke starts an invocation. input is the JSON input, nil for a null
// input. When the invocation ended within opts.Wait the whole invocation is
// returned; otherwise only its ID is set and its Status is running.
func (c *Client) Invoke(ctx context.Context, namespace, name string, input json.RawMessage, opts InvokeOptions) (*api.Invocation, error) {
	query := url.Values{}
	if opts.Version != "" {
		query.Set("version", opts.Version)
	}
	if opts.Wait > 0 {
		query.Set("wait", opts.Wait.String())
	}
	var header http.Header
	if opts.IdempotencyKey != "" {
		header = http.Header{api.IdempotencyKeyHeader: {opts.IdempotencyKey}}
	}
	var raw json.RawMessage
	status, err := c.do(ctx, request{
		method: http.MethodPost, segments: []string{"v1", "workflows", namespace, name, "invocations"},
		query: query, body: input, contentType: "application/json", header: header,
	}, &raw)
	if err != nil {
		return nil, err
	}
	var inv api.Invocation
	if err := json.Unmarshal(raw, &inv); err != nil {
		return nil, fmt.Errorf("decoding the invocation: %w", err)
	}
	if status == http.StatusAccepted {
		inv = api.Invocation{ID: inv.ID, Status: core.StatusRunning}
	}
	return &inv, nil
}

// GetInvocation returns an invocation.
func (c *Client) GetInvocation(ctx context.Context, id string) (*api.Invocation, error) {
	return c.WaitInvocation(ctx, id, 0)
}

// WaitInvocation returns an invocation once it has ended or wait has passed
// (capped by the server), whichever comes first.
func (c *Client) WaitInvocation(ctx context.Context, id string, wait time.Duration) (*api.Invocation, error) {
	query := url.Values{}
	if wait > 0 {
		query.Set("wait", wait.String())
	}
	var inv api.Invocation
	if _, err := c.do(ctx, request{method: http.MethodGet, segments: []string{"v1", "invocations", id}, query: query}, &inv); err != nil {
		return nil, err
	}
	return &inv, nil
}

// ListInvocationsOptions select invocations; zero fields match all.
type ListInvocationsOptions struct {
	// Workflow is NAME or NAMESPACE/NAME.
	Workflow  string
	Namespace string
	Status    core.Status
	Limit     int
	Cursor    string
}

// ListInvocations returns a page of invocations, newest first.
func (c *Client) ListInvocations(ctx context.Context, opts ListInvocationsOptions) (*api.InvocationList, error) {
	query := url.Values{}
	for key, value := range map[string]string{
		"workflow": opts.Workflow, "namespace": opts.Namespace, "status": string(opts.Status), "cursor": opts.Cursor,
	} {
		if value != "" {
			query.Set(key, value)
		}
	}
	if opts.Limit > 0 {
		query.Set("limit", strconv.Itoa(opts.Limit))
	}
	var list api.InvocationList
	if _, err := c.do(ctx, request{method: http.MethodGet, segments: []string{"v1", "invocations"}, query: query}, &list); err != nil {
		return nil, err
	}
	return &list, nil
}

// History returns an invocation's events in order.
func (c *Client) History(ctx context.Context, id string) ([]core.Event, error) {
	var h api.History
	if _, err := c.do(ctx, request{method: http.MethodGet, segments: []string{"v1", "invocations", id, "history"}}, &h); err != nil {
		return nil, err
	}
	return h.Items, nil
}

// RetryInvocation continues a faulted or cancelled invocation as itself from
// the task that ended it (a redrive); reason is recorded with it. When it
// ended within wait the whole invocation is returned; otherwise only its ID
// is set and its Status is running.
func (c *Client) RetryInvocation(ctx context.Context, id, reason string, wait time.Duration) (*api.Invocation, error) {
	body, err := json.Marshal(api.RetryRequest{Reason: reason})
	if err != nil {
		return nil, err
	}
	return c.startedBy(ctx, "retry", id, body, wait)
}

// RerunInvocation starts a new invocation of the workflow version id ran,
// with its input, or with input when it is not nil. The result is as
// RetryInvocation's, for the new invocation.
func (c *Client) RerunInvocation(ctx context.Context, id string, input json.RawMessage, wait time.Duration) (*api.Invocation, error) {
	body, err := json.Marshal(api.RerunRequest{Input: input})
	if err != nil {
		return nil, err
	}
	return c.startedBy(ctx, "rerun", id, body, wait)
}

func (c *Client) startedBy(ctx context.Context, action, id string, body []byte, wait time.Duration) (*api.Invocation, error) {
	query := url.Values{}
	if wait > 0 {
		query.Set("wait", wait.String())
	}
	var raw json.RawMessage
	status, err := c.do(ctx, request{
		method: http.MethodPost, segments: []string{"v1", "invocations", id, action},
		query: query, body: body, contentType: "application/json",
	}, &raw)
	if err != nil {
		return nil, err
	}
	var inv api.Invocation
	if err := json.Unmarshal(raw, &inv); err != nil {
		return nil, fmt.Errorf("decoding the invocation: %w", err)
	}
	if status == http.StatusAccepted {
		inv = api.Invocation{ID: inv.ID, Status: core.StatusRunning}
	}
	return &inv, nil
}

// CancelInvocation asks a running invocation to stop, for reason (may be
// empty), which its history and error record. Cancelling one that has
// ended fails with a 409 problem.
func (c *Client) CancelInvocation(ctx context.Context, id, reason string) error {
	req := request{method: http.MethodPost, segments: []string{"v1", "invocations", id, "cancel"}}
	if reason != "" {
		body, err := json.Marshal(api.CancelRequest{Reason: reason})
		if err != nil {
			return err
		}
		req.body, req.contentType = body, "application/json"
	}
	_, err := c.do(ctx, req, nil)
	return err
}

// ConsoleLoginLink asks the server for a one-time link that logs its
// opener into the web console with the client's token (what `baton
// console` prints). The link works once, within two minutes.
func (c *Client) ConsoleLoginLink(ctx context.Context) (string, error) {
	var out struct {
		Path string `json:"path"`
	}
	if _, err := c.do(ctx, request{method: http.MethodPost, segments: []string{"login", "code"}}, &out); err != nil {
		return "", err
	}
	return c.base.String() + out.Path, nil
}
