package httpcall

import (
	"context"
	"encoding/base64"
	"net/http"
	"sort"
	"strings"

	"github.com/batonflow/baton/expr"
	"github.com/batonflow/baton/problem"
)

// credential is a resolved authentication policy, ready to be put on a
// request.
type credential struct {
	scheme   string // "basic", "bearer", "digest", "oauth2" or "oidc"
	username string
	password string
	token    string
	// oauth is set for oauth2 and oidc, whose token is obtained when the
	// call is sent (it needs the call's context).
	oauth *oauthSpec
}

// apply puts the credential on a request's headers. Digest has nothing to
// put before the server's challenge; send answers it.
func (c *credential) apply(h http.Header) {
	switch c.scheme {
	case "basic":
		h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(c.username+":"+c.password)))
	case "bearer":
		h.Set("Authorization", "Bearer "+c.token)
	}
}

// schemes lists the DSL's authentication schemes in the order used to name
// them in messages.
var schemes = []string{"basic", "bearer", "certificate", "digest", "oauth2", "oidc"}

// resolveAuthentication turns the endpoint's `authentication` into a
// credential: an inline policy, or `use: name` of the workflow's
// use.authentications, each scheme given inline or as `use: secret`.
func (c *Client) resolveAuthentication(spec any, req *Request) (*credential, *problem.Problem) {
	if spec == nil {
		return nil, nil
	}
	policy, ok := spec.(map[string]any)
	if !ok {
		return nil, problem.Configuration("endpoint.authentication must be an object, got %s", describe(spec))
	}
	label := "endpoint.authentication"
	if ref, has := policy["use"]; has {
		name, ok := ref.(string)
		if !ok || name == "" {
			return nil, problem.Configuration("endpoint.authentication.use must name a policy of use.authentications")
		}
		named, found := req.Authentications[name]
		if !found {
			return nil, problem.Configuration("authentication policy %q is not defined in use.authentications", name)
		}
		policy, ok = named.(map[string]any)
		if !ok {
			return nil, problem.Configuration("authentication policy %q must be an object, got %s", name, describe(named))
		}
		if _, nested := policy["use"]; nested {
			return nil, problem.Configuration("authentication policy %q may not refer to another policy with use", name)
		}
		label = "authentication policy " + quote(name)
		// Named policies are not part of the task's `with`, so the core
		// has not evaluated the expressions they may hold.
		if containsExpression(policy) {
			evaluated, err := c.evalPolicy(policy, req)
			if err != nil {
				return nil, problem.Expression("%s: %v", label, err)
			}
			if policy, ok = evaluated.(map[string]any); !ok {
				return nil, problem.Configuration("%s evaluated to %s, not an object", label, describe(evaluated))
			}
		}
	}

	var present []string
	for _, s := range schemes {
		if _, has := policy[s]; has {
			present = append(present, s)
		}
	}
	switch len(present) {
	case 0:
		keys := make([]string, 0, len(policy))
		for k := range policy {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return nil, problem.Configuration("%s defines no known scheme (want one of %s), got keys [%s]", label, strings.Join(schemes, ", "), strings.Join(keys, ", "))
	case 1:
	default:
		return nil, problem.Configuration("%s defines several schemes (%s); use exactly one", label, strings.Join(present, ", "))
	}

	scheme := present[0]
	config, ok := policy[scheme].(map[string]any)
	if !ok {
		return nil, problem.Configuration("%s: %s must be an object, got %s", label, scheme, describe(policy[scheme]))
	}
	switch scheme {
	case "basic":
		fields, p := policyFields(label, scheme, config, req.Secrets, "username", "password")
		if p != nil {
			return nil, p
		}
		if strings.Contains(fields[0], ":") {
			return nil, problem.Configuration("%s: a basic username may not contain ':'", label)
		}
		return &credential{scheme: scheme, username: fields[0], password: fields[1]}, nil
	case "bearer":
		fields, p := policyFields(label, scheme, config, req.Secrets, "token")
		if p != nil {
			return nil, p
		}
		if fields[0] == "" {
			return nil, problem.Configuration("%s: bearer token is empty", label)
		}
		if strings.ContainsAny(fields[0], "\r\n") {
			return nil, problem.Configuration("%s: bearer token may not contain line breaks", label)
		}
		return &credential{scheme: scheme, token: fields[0]}, nil
	case "digest":
		fields, p := policyFields(label, scheme, config, req.Secrets, "username", "password")
		if p != nil {
			return nil, p
		}
		return &credential{scheme: scheme, username: fields[0], password: fields[1]}, nil
	case "oauth2", "oidc":
		spec, p := parseOAuth(label, scheme, config, req.Secrets)
		if p != nil {
			return nil, p
		}
		return &credential{scheme: scheme, oauth: spec}, nil
	default:
		return nil, problem.Configuration("%s: authentication %s is not supported: Baton cannot present client certificates", label, scheme)
	}
}

// policyFields reads the named string fields of a scheme's configuration,
// from the configuration itself or, with `use: secret`, from that secret.
func policyFields(label, scheme string, config map[string]any, secrets map[string]any, names ...string) ([]string, *problem.Problem) {
	source := config
	origin := label + ": " + scheme
	if ref, has := config["use"]; has {
		secretName, ok := ref.(string)
		if !ok || secretName == "" {
			return nil, problem.Configuration("%s.use must name a secret", origin)
		}
		secret, found := secrets[secretName]
		if !found {
			return nil, problem.Configuration("%s: secret %q is not available", origin, secretName)
		}
		if source, ok = secret.(map[string]any); !ok {
			return nil, problem.Configuration("%s: secret %q must be an object with %s", origin, secretName, strings.Join(names, " and "))
		}
		origin = "secret " + quote(secretName)
	}
	out := make([]string, len(names))
	for i, name := range names {
		v, has := source[name]
		if !has || v == nil {
			return nil, problem.Configuration("%s has no %s", origin, name)
		}
		s, ok := scalarString(v)
		if !ok {
			// The value is deliberately left out of the message: it is a
			// credential.
			return nil, problem.Configuration("%s: %s must be a string, got %s", origin, name, describe(v))
		}
		out[i] = s
	}
	return out, nil
}

func (c *Client) evalPolicy(policy map[string]any, req *Request) (any, error) {
	if req.EvalAuthentication != nil {
		return req.EvalAuthentication(policy)
	}
	return c.expressions().EvalValue(policy, req.Input, expr.Vars{"secret": req.Secrets}, false)
}

func containsExpression(v any) bool {
	switch x := v.(type) {
	case string:
		return expr.IsExpr(x)
	case map[string]any:
		for _, item := range x {
			if containsExpression(item) {
				return true
			}
		}
	case []any:
		for _, item := range x {
			if containsExpression(item) {
				return true
			}
		}
	}
	return false
}

// Authorization resolves an authentication policy (inline, or `use: name`
// of req.Authentications) the way an HTTP endpoint's is, and returns the
// Authorization header value it produces, "" for no policy. It serves
// protocols that carry the same credentials elsewhere, such as gRPC
// metadata; OAuth2 tokens come from this client's cache. Digest is refused:
// it needs an HTTP challenge.
func (c *Client) Authorization(ctx context.Context, spec any, req Request) (string, *problem.Problem) {
	cred, p := c.resolveAuthentication(spec, &req)
	if p != nil || cred == nil {
		return "", p
	}
	switch cred.scheme {
	case "digest":
		return "", problem.Configuration("digest authentication needs an HTTP challenge and cannot be used here")
	case "oauth2", "oidc":
		token, p := c.accessToken(ctx, cred.oauth)
		if p != nil {
			return "", p
		}
		return "Bearer " + token, nil
	}
	h := http.Header{}
	cred.apply(h)
	return h.Get("Authorization"), nil
}
