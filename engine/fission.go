package engine

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/batonflow/baton/httpcall"
	"github.com/batonflow/baton/problem"
)

// FunctionFission is the function name under which the core hands over
// the calls of Fission functions (`run: fission://NAMESPACE/NAME` in a
// Fission Workflows document). Its arguments are namespace, name, method,
// headers, query and body.
const FunctionFission = "fission"

// FissionExecutor calls Fission functions through a Fission router, the
// way Fission Workflows did: POST or GET to
// ROUTER/fission-function/NAME (or .../NAMESPACE/NAME outside the default
// namespace) with the task's body, headers and query. Its output is the
// response envelope of `call: http` with output: response, which the core
// splits into the task's output and its outputHeaders().
type FissionExecutor struct {
	router *url.URL
	http   *httpcall.Client
}

// NewFissionExecutor returns an executor for the router at routerURL
// (for example http://router.fission). client may be nil. Register it as
// Options.Executors[FunctionFission].
func NewFissionExecutor(routerURL string, client *http.Client, logger *slog.Logger) (*FissionExecutor, error) {
	u, err := url.Parse(strings.TrimRight(routerURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("fission router %q: %w", routerURL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("fission router %q must be an absolute http or https URL", routerURL)
	}
	return &FissionExecutor{
		router: u,
		http:   &httpcall.Client{HTTP: client, Logger: logger, UserAgent: "baton/" + Version},
	}, nil
}

// Execute sends one call to the router.
func (f *FissionExecutor) Execute(ctx context.Context, req *CallRequest) (CallResult, error) {
	namespace, _ := req.Args["namespace"].(string)
	name, _ := req.Args["name"].(string)
	if name == "" {
		return CallResult{}, problem.Configuration("%s: a fission call needs the name of the function", req.Name)
	}
	path := "/fission-function/" + url.PathEscape(name)
	if namespace != "" && namespace != "default" {
		path = "/fission-function/" + url.PathEscape(namespace) + "/" + url.PathEscape(name)
	}
	endpoint := *f.router
	endpoint.Path = strings.TrimRight(endpoint.Path, "/") + path
	method, _ := req.Args["method"].(string)
	if method == "" {
		method = http.MethodGet
	}
	args := map[string]any{
		"method": method,
		// Braces in a function name must not read as a URI template.
		"endpoint": strings.NewReplacer("{", "%7B", "}", "%7D").Replace(endpoint.String()),
		"output":   httpcall.OutputResponse,
	}
	for _, k := range []string{"headers", "query", "body"} {
		if v, ok := req.Args[k]; ok && v != nil {
			args[k] = v
		}
	}
	out, p := f.http.Do(ctx, httpcall.Request{Args: args, IdempotencyKey: req.IdempotencyKey})
	if p != nil {
		return CallResult{}, p
	}
	return CallResult{Output: out, Info: map[string]any{"fissionFunction": strings.TrimPrefix(path, "/fission-function/")}}, nil
}

// CloseIdleConnections releases the executor's idle connections.
func (f *FissionExecutor) CloseIdleConnections() { f.http.CloseIdleConnections() }
