// Package openapicall executes the Serverless Workflow DSL's `call:
// openapi` task: it loads the OpenAPI document (Swagger 2.0 or OpenAPI
// 3.x, JSON or YAML), finds the operation by its id, builds the request
// from the operation's parameters, and sends it through httpcall, which
// gives the call the output modes, authentication and errors of `call:
// http`.
package openapicall

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"

	"github.com/batonflow/baton/httpcall"
	"github.com/batonflow/baton/problem"
)

// maxDocumentBytes bounds a loaded OpenAPI document.
const maxDocumentBytes = 16 << 20

// Client runs `call: openapi` tasks. Loaded documents are cached by URL
// for the life of the client: a workflow calling one API many times
// parses its document once.
type Client struct {
	// HTTP sends the operations' requests.
	HTTP *httpcall.Client
	// Documents loads OpenAPI documents over http(s); nil means
	// http.DefaultClient.
	Documents *http.Client

	mu   sync.Mutex
	docs map[string]*document
}

// Request is one execution of a `call: openapi` task.
type Request struct {
	// Args is the task's evaluated `with`: document, operationId,
	// parameters, authentication, output, redirect.
	Args            map[string]any
	IdempotencyKey  string
	Authentications map[string]any
	Secrets         map[string]any
	// Redact masks secret values; see httpcall.Request.Redact.
	Redact func(string) string
}

type document struct {
	source *url.URL
	root   map[string]any
}

// Do runs the call and returns the task's output or its DSL error.
func (c *Client) Do(ctx context.Context, req Request) (any, *problem.Problem) {
	args := req.Args
	opID, ok := args["operationId"].(string)
	if !ok || opID == "" {
		return nil, problem.Configuration("with.operationId is required and must be a string")
	}
	doc, p := c.load(ctx, args["document"])
	if p != nil {
		return nil, p
	}
	op, p := doc.operation(opID)
	if p != nil {
		return nil, p
	}
	params, _ := args["parameters"].(map[string]any)
	if args["parameters"] != nil && params == nil {
		return nil, problem.Configuration("with.parameters must be an object")
	}
	built, p := doc.build(op, params)
	if p != nil {
		return nil, p
	}
	endpoint := map[string]any{"uri": built.url}
	if auth := args["authentication"]; auth != nil {
		endpoint["authentication"] = auth
	}
	httpArgs := map[string]any{"method": op.method, "endpoint": endpoint, "headers": built.headers}
	if built.hasBody {
		httpArgs["body"] = built.body
	}
	for _, k := range []string{"output", "redirect"} {
		if v, ok := args[k]; ok {
			httpArgs[k] = v
		}
	}
	return c.HTTP.Do(ctx, httpcall.Request{
		Args:            httpArgs,
		IdempotencyKey:  req.IdempotencyKey,
		Authentications: req.Authentications,
		Secrets:         req.Secrets,
		Redact:          req.Redact,
	})
}

// load returns the document an externalResource names, from the cache
// when it was loaded before.
func (c *Client) load(ctx context.Context, resource any) (*document, *problem.Problem) {
	res, ok := resource.(map[string]any)
	if !ok {
		return nil, problem.Configuration("with.document must be an external resource")
	}
	var raw string
	switch ep := res["endpoint"].(type) {
	case string:
		raw = ep
	case map[string]any:
		raw, _ = ep["uri"].(string)
		if ep["authentication"] != nil {
			return nil, problem.Configuration("with.document: authenticated OpenAPI documents are not supported")
		}
	}
	u, err := url.Parse(raw)
	if err != nil || raw == "" || !u.IsAbs() {
		return nil, problem.Configuration("with.document.endpoint %q is not an absolute URI", raw)
	}
	key := u.String()
	c.mu.Lock()
	doc := c.docs[key]
	c.mu.Unlock()
	if doc != nil {
		return doc, nil
	}
	body, p := c.fetch(ctx, u)
	if p != nil {
		return nil, p
	}
	root, err := decode(body)
	if err != nil {
		return nil, problem.Configuration("OpenAPI document %s: %v", u.Redacted(), err)
	}
	if root["swagger"] == nil && root["openapi"] == nil {
		return nil, problem.Configuration("%s is not an OpenAPI document (no swagger or openapi version)", u.Redacted())
	}
	doc = &document{source: u, root: root}
	c.mu.Lock()
	if c.docs == nil {
		c.docs = make(map[string]*document)
	}
	c.docs[key] = doc
	c.mu.Unlock()
	return doc, nil
}

func (c *Client) fetch(ctx context.Context, u *url.URL) ([]byte, *problem.Problem) {
	switch u.Scheme {
	case "file":
		b, err := os.ReadFile(u.Path)
		if err != nil {
			return nil, problem.Configuration("cannot read OpenAPI document %s: %v", u.Redacted(), err)
		}
		return b, nil
	case "http", "https":
	default:
		return nil, problem.Configuration("OpenAPI document %s: only file, http and https are supported", u.Redacted())
	}
	hc := c.Documents
	if hc == nil {
		hc = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, problem.Configuration("OpenAPI document %s: %v", u.Redacted(), err)
	}
	req.Header.Set("Accept", "application/json, application/yaml;q=0.9, */*;q=0.5")
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, problem.Timeout("loading OpenAPI document %s: %v", u.Redacted(), ctx.Err())
		}
		return nil, problem.Communication(http.StatusServiceUnavailable, "loading OpenAPI document %s: %v", u.Redacted(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, problem.Communication(resp.StatusCode, "loading OpenAPI document %s: %s", u.Redacted(), resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxDocumentBytes+1))
	if err != nil {
		return nil, problem.Communication(http.StatusServiceUnavailable, "loading OpenAPI document %s: %v", u.Redacted(), err)
	}
	if len(b) > maxDocumentBytes {
		return nil, problem.Configuration("OpenAPI document %s is larger than %d bytes", u.Redacted(), maxDocumentBytes)
	}
	return b, nil
}

// decode reads JSON, or YAML (a superset) when the text is not JSON, into
// plain JSON data.
func decode(b []byte) (map[string]any, error) {
	var root map[string]any
	if err := json.Unmarshal(b, &root); err == nil {
		return root, nil
	}
	var v any
	if err := yaml.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("neither JSON nor YAML: %w", err)
	}
	j, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("YAML that is not JSON data: %w", err)
	}
	if err := json.Unmarshal(j, &root); err != nil {
		return nil, fmt.Errorf("the document is not an object")
	}
	return root, nil
}

// operation is one operation of the document.
type operation struct {
	method   string
	path     string
	pathItem map[string]any
	op       map[string]any
	params   []map[string]any
}

var methods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

func (d *document) operation(id string) (*operation, *problem.Problem) {
	paths, _ := d.root["paths"].(map[string]any)
	names := make([]string, 0, len(paths))
	for p := range paths {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, path := range names {
		item, _ := d.resolve(paths[path]).(map[string]any)
		for _, m := range methods {
			op, _ := item[m].(map[string]any)
			if op == nil || op["operationId"] != id {
				continue
			}
			o := &operation{method: strings.ToUpper(m), path: path, pathItem: item, op: op}
			// Operation parameters override path-level ones with the
			// same name and location.
			seen := map[string]bool{}
			for _, list := range []any{op["parameters"], item["parameters"]} {
				entries, _ := list.([]any)
				for _, entry := range entries {
					param, _ := d.resolve(entry).(map[string]any)
					name, _ := param["name"].(string)
					in, _ := param["in"].(string)
					if param == nil || seen[in+"/"+name] {
						continue
					}
					seen[in+"/"+name] = true
					o.params = append(o.params, param)
				}
			}
			return o, nil
		}
	}
	return nil, problem.Configuration("OpenAPI document %s has no operation %q", d.source.Redacted(), id)
}

// resolve follows a local $ref (#/...) to what it points at.
func (d *document) resolve(v any) any {
	for range 16 { // refs may chain; a cycle stops here
		m, ok := v.(map[string]any)
		if !ok {
			return v
		}
		ref, ok := m["$ref"].(string)
		if !ok || !strings.HasPrefix(ref, "#/") {
			return v
		}
		var cur any = d.root
		for _, seg := range strings.Split(ref[2:], "/") {
			seg = strings.ReplaceAll(strings.ReplaceAll(seg, "~1", "/"), "~0", "~")
			obj, _ := cur.(map[string]any)
			cur = obj[seg]
		}
		v = cur
	}
	return v
}

type builtRequest struct {
	url     string
	headers map[string]any
	body    any
	hasBody bool
}

// build fills the operation's parameters in.
func (d *document) build(op *operation, args map[string]any) (*builtRequest, *problem.Problem) {
	base, p := d.baseURL(op)
	if p != nil {
		return nil, p
	}
	path := op.path
	query := url.Values{}
	out := &builtRequest{headers: map[string]any{}}
	var cookies []string
	used := map[string]bool{}
	for _, param := range op.params {
		name, _ := param["name"].(string)
		in, _ := param["in"].(string)
		value, given := args[name]
		required, _ := param["required"].(bool)
		if !given || value == nil {
			if required || in == "path" {
				return nil, problem.Configuration("operation %s: the %s parameter %q is required", op.op["operationId"], in, name)
			}
			continue
		}
		used[name] = true
		switch in {
		case "path":
			s, p := scalar(op, name, value)
			if p != nil {
				return nil, p
			}
			path = strings.ReplaceAll(path, "{"+name+"}", url.PathEscape(s))
		case "query":
			values, p := listValues(op, name, value)
			if p != nil {
				return nil, p
			}
			if explode(param) {
				query[name] = append(query[name], values...)
			} else {
				query.Set(name, strings.Join(values, separator(param)))
			}
		case "header":
			s, p := scalar(op, name, value)
			if p != nil {
				return nil, p
			}
			out.headers[name] = s
		case "cookie":
			s, p := scalar(op, name, value)
			if p != nil {
				return nil, p
			}
			cookies = append(cookies, name+"="+url.QueryEscape(s))
		case "body":
			out.body, out.hasBody = value, true
		default:
			return nil, problem.Configuration("operation %s: %s parameters (%q) are not supported", op.op["operationId"], in, name)
		}
	}
	if _, ok := op.op["requestBody"]; ok {
		// OpenAPI 3 has no body parameter: the DSL's parameters carry the
		// request body under "body".
		if v, ok := args["body"]; ok && !used["body"] {
			out.body, out.hasBody, used["body"] = v, true, true
		}
	}
	for name := range args {
		if !used[name] {
			return nil, problem.Configuration("operation %s has no parameter %q", op.op["operationId"], name)
		}
	}
	if len(cookies) > 0 {
		out.headers["Cookie"] = strings.Join(cookies, "; ")
	}
	if out.hasBody {
		if ct := contentType(op); ct != "" {
			out.headers["Content-Type"] = ct
		}
	}
	u := strings.TrimSuffix(base, "/") + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	out.url = u
	return out, nil
}

// baseURL is where the operation's paths start: Swagger 2's
// scheme://host/basePath, or OpenAPI 3's first server, defaulting to the
// document's own location as both versions say.
func (d *document) baseURL(op *operation) (string, *problem.Problem) {
	if _, v2 := d.root["swagger"]; v2 {
		schemes := stringList(op.op["schemes"])
		if len(schemes) == 0 {
			schemes = stringList(d.root["schemes"])
		}
		scheme := d.source.Scheme
		if scheme != "http" && scheme != "https" || len(schemes) > 0 && !contains(schemes, scheme) {
			switch {
			case contains(schemes, "https"):
				scheme = "https"
			case len(schemes) > 0:
				scheme = schemes[0]
			default:
				scheme = "https"
			}
		}
		host, _ := d.root["host"].(string)
		if host == "" {
			host = d.source.Host
		}
		basePath, _ := d.root["basePath"].(string)
		return scheme + "://" + host + "/" + strings.TrimPrefix(basePath, "/"), nil
	}
	var servers []any
	for _, src := range []any{op.op["servers"], op.pathItem["servers"], d.root["servers"]} {
		if list, ok := src.([]any); ok && len(list) > 0 {
			servers = list
			break
		}
	}
	raw := "/"
	if len(servers) > 0 {
		server, _ := servers[0].(map[string]any)
		raw, _ = server["url"].(string)
		vars, _ := server["variables"].(map[string]any)
		for name, v := range vars {
			def, _ := v.(map[string]any)
			val, _ := def["default"].(string)
			raw = strings.ReplaceAll(raw, "{"+name+"}", val)
		}
	}
	ref, err := url.Parse(raw)
	if err != nil {
		return "", problem.Configuration("OpenAPI server URL %q: %v", raw, err)
	}
	resolved := d.source.ResolveReference(ref)
	if resolved.Scheme != "http" && resolved.Scheme != "https" {
		return "", problem.Configuration("OpenAPI server URL %q does not resolve to an http(s) URL", raw)
	}
	return resolved.String(), nil
}

func contentType(op *operation) string {
	if consumes := stringList(op.op["consumes"]); len(consumes) > 0 {
		if contains(consumes, "application/json") {
			return "application/json"
		}
		return consumes[0]
	}
	if rb, ok := op.op["requestBody"].(map[string]any); ok {
		content, _ := rb["content"].(map[string]any)
		if _, ok := content["application/json"]; ok {
			return "application/json"
		}
		for ct := range content {
			return ct
		}
	}
	return "application/json"
}

// explode reports whether an array query parameter repeats its name
// (Swagger 2 collectionFormat multi, OpenAPI 3 form style's default).
func explode(param map[string]any) bool {
	if cf, ok := param["collectionFormat"].(string); ok {
		return cf == "multi"
	}
	if _, v2 := param["type"]; v2 {
		return false // Swagger 2's default collectionFormat is csv
	}
	if e, ok := param["explode"].(bool); ok {
		return e
	}
	style, _ := param["style"].(string)
	return style == "" || style == "form"
}

func separator(param map[string]any) string {
	switch param["collectionFormat"] {
	case "ssv":
		return " "
	case "tsv":
		return "\t"
	case "pipes":
		return "|"
	}
	switch param["style"] {
	case "spaceDelimited":
		return " "
	case "pipeDelimited":
		return "|"
	}
	return ","
}

func scalar(op *operation, name string, v any) (string, *problem.Problem) {
	switch x := v.(type) {
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	}
	return "", problem.Configuration("operation %s: parameter %q must be a string, number or boolean", op.op["operationId"], name)
}

func listValues(op *operation, name string, v any) ([]string, *problem.Problem) {
	items, ok := v.([]any)
	if !ok {
		s, p := scalar(op, name, v)
		return []string{s}, p
	}
	out := make([]string, 0, len(items))
	for _, item := range items {
		s, p := scalar(op, name, item)
		if p != nil {
			return nil, p
		}
		out = append(out, s)
	}
	return out, nil
}

func stringList(v any) []string {
	items, _ := v.([]any)
	out := make([]string, 0, len(items))
	for _, item := range items {
		if s, ok := item.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
