package httpcall

import (
	"bytes"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/batonflow/baton/problem"
)

// Output modes of `with.output`.
const (
	OutputContent  = "content"
	OutputResponse = "response"
	OutputRaw      = "raw"
)

// call is a `call: http` task's arguments, checked and resolved: everything
// needed to send the request.
type call struct {
	method   string
	url      *url.URL
	header   http.Header
	body     []byte
	hasBody  bool
	output   string
	redirect bool
	// digest is set when the endpoint uses digest authentication, which
	// needs the server's challenge before it can authorize the request.
	digest *credential
	// oauth is set when the endpoint uses oauth2 or oidc: the token is
	// fetched (or taken from the cache) just before sending.
	oauth *oauthSpec
	// redact masks secret values in the request echo of `output: response`.
	redact func(string) string
}

// prepare checks the evaluated `with` arguments and resolves the URI
// template, query, headers, body and authentication.
func (c *Client) prepare(req *Request) (*call, *problem.Problem) {
	args := req.Args
	out := &call{output: OutputContent}

	method, ok := args["method"].(string)
	if !ok || method == "" {
		return nil, problem.Configuration("with.method is required and must be a string, got %s", describe(args["method"]))
	}
	out.method = strings.ToUpper(method)
	if !isToken(out.method) {
		return nil, problem.Configuration("with.method %q is not a valid HTTP method", method)
	}

	if v, has := args["output"]; has && v != nil {
		mode, ok := v.(string)
		switch mode = strings.ToLower(mode); {
		case !ok:
			return nil, problem.Configuration("with.output must be a string, got %s", describe(v))
		case mode == OutputContent || mode == OutputResponse || mode == OutputRaw:
			out.output = mode
		default:
			return nil, problem.Configuration("with.output %q is not one of content, response, raw", v)
		}
	}
	if v, has := args["redirect"]; has && v != nil {
		b, ok := v.(bool)
		if !ok {
			return nil, problem.Configuration("with.redirect must be a boolean, got %s", describe(v))
		}
		out.redirect = b
	}

	template, authSpec, p := endpointOf(args["endpoint"])
	if p != nil {
		return nil, p
	}
	vars, _ := req.Input.(map[string]any)
	expanded, err := ExpandTemplate(template, vars)
	if err != nil {
		return nil, problem.FromError(err)
	}
	u, err := url.Parse(expanded)
	if err != nil {
		return nil, problem.Configuration("endpoint %q is not a valid URI: %v", expanded, unwrapURLError(err))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, problem.Configuration("endpoint %q must be an absolute http or https URI", u.Redacted())
	}
	if u.Host == "" {
		return nil, problem.Configuration("endpoint %q has no host", u.Redacted())
	}
	if p := mergeQuery(u, args["query"]); p != nil {
		return nil, p
	}
	out.url = u

	out.header = make(http.Header, 4)
	if p := fillHeaders(out.header, args["headers"]); p != nil {
		return nil, p
	}
	if body, has := args["body"]; has && body != nil {
		encoded, p := encodeBody(body, out.header)
		if p != nil {
			return nil, p
		}
		out.body, out.hasBody = encoded, true
	}
	if req.IdempotencyKey != "" && out.header.Get("Idempotency-Key") == "" {
		out.header.Set("Idempotency-Key", req.IdempotencyKey)
	}
	if out.header.Get("User-Agent") == "" {
		out.header.Set("User-Agent", c.userAgent())
	}

	cred, p := c.resolveAuthentication(authSpec, req)
	if p != nil {
		return nil, p
	}
	if cred != nil {
		cred.apply(out.header)
		switch cred.scheme {
		case "digest":
			out.digest = cred
		case "oauth2", "oidc":
			out.oauth = cred.oauth
		}
	}
	out.redact = req.Redact
	return out, nil
}

// endpointOf reads `endpoint`: a URI template string or {uri, authentication}.
func endpointOf(v any) (template string, auth any, p *problem.Problem) {
	switch e := v.(type) {
	case string:
		template = e
	case map[string]any:
		s, ok := e["uri"].(string)
		if !ok {
			return "", nil, problem.Configuration("with.endpoint.uri is required and must be a string, got %s", describe(e["uri"]))
		}
		template, auth = s, e["authentication"]
	default:
		return "", nil, problem.Configuration("with.endpoint is required and must be a URI or an object with uri, got %s", describe(v))
	}
	if strings.TrimSpace(template) == "" {
		return "", nil, problem.Configuration("with.endpoint has an empty URI")
	}
	return template, auth, nil
}

// mergeQuery adds `with.query` to the URI's own query string; a parameter
// named in both takes the value of `with.query`. The URI's query is left
// byte for byte as written when there is nothing to merge.
func mergeQuery(u *url.URL, v any) *problem.Problem {
	if v == nil {
		return nil
	}
	params, ok := v.(map[string]any)
	if !ok {
		return problem.Configuration("with.query must be an object, got %s", describe(v))
	}
	if len(params) == 0 {
		return nil
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return problem.Configuration("endpoint %q has an invalid query: %v", u.Redacted(), err)
	}
	for name, value := range params {
		values, err := fieldValues("query parameter", name, value)
		if err != nil {
			return problem.Configuration("with.query: %v", err)
		}
		if values == nil {
			continue
		}
		q[name] = values
	}
	u.RawQuery = q.Encode()
	return nil
}

func fillHeaders(h http.Header, v any) *problem.Problem {
	if v == nil {
		return nil
	}
	headers, ok := v.(map[string]any)
	if !ok {
		return problem.Configuration("with.headers must be an object, got %s", describe(v))
	}
	// Sorted, so that "content-type" and "Content-Type" given together
	// resolve the same way on every run.
	names := make([]string, 0, len(headers))
	for name := range headers {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !isToken(name) {
			return problem.Configuration("with.headers: %q is not a valid header name", name)
		}
		values, err := fieldValues("header", name, headers[name])
		if err != nil {
			return problem.Configuration("with.headers: %v", err)
		}
		for _, value := range values {
			if !validHeaderValue(value) {
				return problem.Configuration("with.headers: the value of %q may not contain line breaks or control characters", name)
			}
		}
		if values != nil {
			h[http.CanonicalHeaderKey(name)] = values
		}
	}
	return nil
}

// encodeBody encodes `with.body`. A string sent with a non-JSON
// Content-Type goes out as it is; an object sent as
// application/x-www-form-urlencoded is form-encoded; everything else is
// JSON, labelled application/json unless the workflow chose a type.
func encodeBody(body any, h http.Header) ([]byte, *problem.Problem) {
	contentType := h.Get("Content-Type")
	mediaType := mediaTypeOf(contentType)
	if contentType != "" && !isJSONMediaType(mediaType) {
		if s, ok := body.(string); ok {
			return []byte(s), nil
		}
		if form, ok := body.(map[string]any); ok && mediaType == "application/x-www-form-urlencoded" {
			values := make(url.Values, len(form))
			for name, value := range form {
				items, err := fieldValues("form field", name, value)
				if err != nil {
					return nil, problem.Configuration("with.body: %v", err)
				}
				if items != nil {
					values[name] = items
				}
			}
			return []byte(values.Encode()), nil
		}
	}
	encoded, err := marshalJSON(body)
	if err != nil {
		return nil, problem.Configuration("with.body cannot be encoded as JSON: %v", err)
	}
	if contentType == "" {
		h.Set("Content-Type", "application/json")
	}
	return encoded, nil
}

func mediaTypeOf(contentType string) string {
	if contentType == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		mt, _, _ = strings.Cut(contentType, ";")
		mt = strings.ToLower(strings.TrimSpace(mt))
	}
	return mt
}

func isJSONMediaType(mt string) bool {
	return mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json")
}

// isToken reports whether s is an RFC 9110 token, the grammar of methods
// and header names.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			continue
		}
		if strings.IndexByte("!#$%&'*+-.^_`|~", c) < 0 {
			return false
		}
	}
	return true
}

// validHeaderValue refuses the control characters RFC 9110 forbids in field
// values (tab is allowed), which net/http would otherwise reject as a
// transport error, indistinguishable from a network failure.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	default:
		if _, ok := scalarString(x); ok {
			return "a number"
		}
		return fmt.Sprintf("a value of Go type %T", v)
	}
}

func quote(s string) string { return strconv.Quote(s) }

func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

func (c *call) bodyReader() *bytes.Reader {
	if !c.hasBody {
		return nil
	}
	return bytes.NewReader(c.body)
}
