package httpcall

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/batonflow/baton/problem"
)

// Token caching: a token is reused until shortly before it expires, so that
// a call made just before the deadline does not reach the service with a
// token that expired on the way.
const (
	tokenExpiryMargin = 30 * time.Second
	// defaultTokenLifetime applies to a token response without expires_in,
	// which RFC 6749 allows; a short reuse keeps the authority's load down
	// without betting on a lifetime nobody stated.
	defaultTokenLifetime = time.Minute
	discoveryLifetime    = time.Hour
	maxTokenResponse     = 1 << 20
)

// Token request encodings of the DSL's oauth2 `request.encoding`.
const (
	encodingForm = "application/x-www-form-urlencoded"
	encodingJSON = "application/json"
)

// Grant types the engine can run on its own, without a person in the loop.
const (
	grantClientCredentials = "client_credentials"
	grantPassword          = "password"
	grantTokenExchange     = "urn:ietf:params:oauth:grant-type:token-exchange"
)

// oauthSpec is a resolved oauth2 or oidc policy: everything a token request
// needs.
type oauthSpec struct {
	oidc          bool
	authority     string
	tokenEndpoint string // oauth2: endpoints.token, relative to the authority unless absolute
	grant         string
	clientID      string
	clientSecret  string
	assertion     string
	clientAuth    string
	encoding      string
	issuers       []string
	scopes        []string
	audiences     []string
	username      string
	password      string
	subjectToken  string
	subjectType   string
	actorToken    string
	actorType     string
}

// cacheKey identifies the token a spec obtains. It is a hash, so that the
// credentials it covers do not sit in memory as map keys in clear.
func (s *oauthSpec) cacheKey() string {
	h := sha256.New()
	for _, part := range []string{
		fmt.Sprint(s.oidc), s.authority, s.tokenEndpoint, s.grant, s.clientID, s.clientSecret, s.assertion,
		s.clientAuth, s.encoding, strings.Join(s.scopes, " "), strings.Join(s.audiences, " "), strings.Join(s.issuers, " "),
		s.username, s.password, s.subjectToken, s.subjectType, s.actorToken, s.actorType,
	} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// parseOAuth reads an oauth2 or oidc configuration (inline, or the object a
// `use: secret` named).
func parseOAuth(label, scheme string, config map[string]any, secrets map[string]any) (*oauthSpec, *problem.Problem) {
	origin := label + ": " + scheme
	if ref, has := config["use"]; has {
		name, ok := ref.(string)
		if !ok || name == "" {
			return nil, problem.Configuration("%s.use must name a secret", origin)
		}
		secret, found := secrets[name]
		if !found {
			return nil, problem.Configuration("%s: secret %q is not available", origin, name)
		}
		if config, ok = secret.(map[string]any); !ok {
			return nil, problem.Configuration("%s: secret %q must be an object with the %s properties", origin, name, scheme)
		}
		origin = "secret " + quote(name)
	}
	str := func(m map[string]any, key string) (string, *problem.Problem) {
		v, has := m[key]
		if !has || v == nil {
			return "", nil
		}
		s, ok := v.(string)
		if !ok {
			return "", problem.Configuration("%s: %s must be a string, got %s", origin, key, describe(v))
		}
		return s, nil
	}
	list := func(key string) ([]string, *problem.Problem) {
		v, has := config[key]
		if !has || v == nil {
			return nil, nil
		}
		items, ok := v.([]any)
		if !ok {
			return nil, problem.Configuration("%s: %s must be a list of strings, got %s", origin, key, describe(v))
		}
		out := make([]string, 0, len(items))
		for _, item := range items {
			s, ok := item.(string)
			if !ok {
				return nil, problem.Configuration("%s: %s must be a list of strings, got an item %s", origin, key, describe(item))
			}
			out = append(out, s)
		}
		return out, nil
	}
	spec := &oauthSpec{oidc: scheme == "oidc"}
	var p *problem.Problem
	fields := []struct {
		dst *string
		key string
	}{
		{&spec.authority, "authority"}, {&spec.grant, "grant"},
		{&spec.username, "username"}, {&spec.password, "password"},
	}
	for _, f := range fields {
		if *f.dst, p = str(config, f.key); p != nil {
			return nil, p
		}
	}
	if spec.issuers, p = list("issuers"); p != nil {
		return nil, p
	}
	if spec.scopes, p = list("scopes"); p != nil {
		return nil, p
	}
	if spec.audiences, p = list("audiences"); p != nil {
		return nil, p
	}
	object := func(key string) (map[string]any, *problem.Problem) {
		v, has := config[key]
		if !has || v == nil {
			return nil, nil
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil, problem.Configuration("%s: %s must be an object, got %s", origin, key, describe(v))
		}
		return m, nil
	}
	client, p := object("client")
	if p != nil {
		return nil, p
	}
	if client != nil {
		for _, f := range []struct {
			dst *string
			key string
		}{{&spec.clientID, "id"}, {&spec.clientSecret, "secret"}, {&spec.assertion, "assertion"}, {&spec.clientAuth, "authentication"}} {
			if *f.dst, p = str(client, f.key); p != nil {
				return nil, p
			}
		}
	}
	request, p := object("request")
	if p != nil {
		return nil, p
	}
	if request != nil {
		if spec.encoding, p = str(request, "encoding"); p != nil {
			return nil, p
		}
	}
	for _, tok := range []struct {
		key       string
		tok, kind *string
	}{{"subject", &spec.subjectToken, &spec.subjectType}, {"actor", &spec.actorToken, &spec.actorType}} {
		m, p := object(tok.key)
		if p != nil {
			return nil, p
		}
		if m == nil {
			continue
		}
		if *tok.tok, p = str(m, "token"); p != nil {
			return nil, p
		}
		if *tok.kind, p = str(m, "type"); p != nil {
			return nil, p
		}
	}
	if !spec.oidc {
		endpoints, p := object("endpoints")
		if p != nil {
			return nil, p
		}
		if endpoints != nil {
			if spec.tokenEndpoint, p = str(endpoints, "token"); p != nil {
				return nil, p
			}
		}
		if spec.tokenEndpoint == "" {
			spec.tokenEndpoint = "/oauth2/token"
		}
	}
	return spec, spec.check(origin)
}

func (s *oauthSpec) check(origin string) *problem.Problem {
	if s.authority == "" {
		return problem.Configuration("%s: authority is required", origin)
	}
	if u, err := url.Parse(s.authority); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return problem.Configuration("%s: authority %q is not an absolute http or https URI", origin, s.authority)
	}
	if s.grant == "" {
		s.grant = grantClientCredentials
	}
	switch s.grant {
	case grantClientCredentials:
	case grantPassword:
		if s.username == "" {
			return problem.Configuration("%s: the password grant needs a username", origin)
		}
	case grantTokenExchange:
		if s.subjectToken == "" || s.subjectType == "" {
			return problem.Configuration("%s: the token exchange grant needs subject.token and subject.type", origin)
		}
	default:
		return problem.Configuration("%s: grant %q needs a person to authorize it; a workflow can use client_credentials, password or token exchange", origin, s.grant)
	}
	if s.clientAuth == "" {
		s.clientAuth = "client_secret_post"
	}
	switch s.clientAuth {
	case "client_secret_basic", "client_secret_post":
		if s.clientID == "" {
			return problem.Configuration("%s: client.authentication %s needs client.id", origin, s.clientAuth)
		}
	case "client_secret_jwt", "private_key_jwt":
		if s.assertion == "" {
			return problem.Configuration("%s: client.authentication %s needs a signed client.assertion", origin, s.clientAuth)
		}
	case "none":
	default:
		return problem.Configuration("%s: client.authentication %q is not one of client_secret_basic, client_secret_post, client_secret_jwt, private_key_jwt, none", origin, s.clientAuth)
	}
	if s.encoding == "" {
		s.encoding = encodingForm
	}
	if s.encoding != encodingForm && s.encoding != encodingJSON {
		return problem.Configuration("%s: request.encoding %q is not %s or %s", origin, s.encoding, encodingForm, encodingJSON)
	}
	return nil
}

// tokenCache holds access tokens by spec, and OIDC discovery results by
// authority. Each entry has its own lock, so that concurrent calls needing
// the same token make one token request between them while calls needing
// other tokens are not held up.
type tokenCache struct {
	mu      sync.Mutex
	entries map[string]*cachedToken
}

type cachedToken struct {
	mu      sync.Mutex
	value   string
	expires time.Time
}

func (c *tokenCache) entry(key string) *cachedToken {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = make(map[string]*cachedToken)
	}
	e := c.entries[key]
	if e == nil {
		e = &cachedToken{}
		c.entries[key] = e
	}
	return e
}

// get returns the cached value for key, or fetches and caches a new one.
func (c *tokenCache) get(key string, fetch func() (string, time.Duration, *problem.Problem)) (string, *problem.Problem) {
	e := c.entry(key)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.value != "" && time.Now().Before(e.expires) {
		return e.value, nil
	}
	value, lifetime, p := fetch()
	if p != nil {
		return "", p
	}
	e.value, e.expires = value, time.Now().Add(lifetime)
	return value, nil
}

// forget drops a cached value that the service refused.
func (c *tokenCache) forget(key, value string) {
	e := c.entry(key)
	e.mu.Lock()
	if e.value == value {
		e.value, e.expires = "", time.Time{}
	}
	e.mu.Unlock()
}

// accessToken returns a token for spec, from the cache while it is valid.
func (c *Client) accessToken(ctx context.Context, spec *oauthSpec) (string, *problem.Problem) {
	return c.tokens.get("token:"+spec.cacheKey(), func() (string, time.Duration, *problem.Problem) {
		endpoint, p := c.tokenEndpoint(ctx, spec)
		if p != nil {
			return "", 0, p
		}
		return c.requestToken(ctx, spec, endpoint)
	})
}

// tokenEndpoint is the oauth2 policy's endpoints.token resolved against its
// authority, or the token_endpoint of the OIDC authority's discovery
// document.
func (c *Client) tokenEndpoint(ctx context.Context, spec *oauthSpec) (string, *problem.Problem) {
	authority, _ := url.Parse(spec.authority)
	if !spec.oidc {
		ref, err := url.Parse(spec.tokenEndpoint)
		if err != nil {
			return "", problem.Configuration("oauth2 endpoints.token %q is not a valid URI reference: %v", spec.tokenEndpoint, err)
		}
		if ref.IsAbs() {
			return ref.String(), nil
		}
		// The token path is relative to the authority, which may itself
		// have a path (a Keycloak realm, say): join, do not replace.
		joined := *authority
		joined.Path = strings.TrimSuffix(authority.Path, "/") + "/" + strings.TrimPrefix(ref.Path, "/")
		joined.RawPath = ""
		if ref.RawQuery != "" {
			joined.RawQuery = ref.RawQuery
		}
		return joined.String(), nil
	}
	discoveryURL := strings.TrimSuffix(spec.authority, "/") + "/.well-known/openid-configuration"
	var issuer string
	endpoint, p := c.tokens.get("oidc:"+discoveryURL, func() (string, time.Duration, *problem.Problem) {
		doc, p := c.fetchJSON(ctx, discoveryURL)
		if p != nil {
			return "", 0, p
		}
		te, _ := doc["token_endpoint"].(string)
		if te == "" {
			return "", 0, problem.Communication(http.StatusBadGateway, "OIDC discovery %s names no token_endpoint", discoveryURL)
		}
		issuer, _ = doc["issuer"].(string)
		// The issuer travels with the endpoint so that a cached entry
		// can be checked again against another policy's issuers.
		return issuer + "\n" + te, discoveryLifetime, nil
	})
	if p != nil {
		return "", p
	}
	issuer, te, _ := strings.Cut(endpoint, "\n")
	if len(spec.issuers) > 0 && !slices.Contains(spec.issuers, issuer) {
		return "", problem.Configuration("OIDC authority %s has issuer %q, which is not among the policy's issuers", spec.authority, issuer)
	}
	return te, nil
}

func (c *Client) fetchJSON(ctx context.Context, target string) (map[string]any, *problem.Problem) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, problem.Configuration("cannot request %s: %v", target, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent())
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, transportProblemFor(ctx, "GET "+target, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenResponse))
	if err != nil {
		return nil, transportProblemFor(ctx, "GET "+target, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, problem.Communication(http.StatusBadGateway, "GET %s answered %s", target, resp.Status)
	}
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, problem.Communication(http.StatusBadGateway, "GET %s did not answer a JSON object: %v", target, err)
	}
	return doc, nil
}

// requestToken makes the token request of RFC 6749 section 4 (or RFC 8693
// for token exchange) and returns the access token and how long to reuse it.
func (c *Client) requestToken(ctx context.Context, spec *oauthSpec, endpoint string) (string, time.Duration, *problem.Problem) {
	params := url.Values{"grant_type": {spec.grant}}
	if len(spec.scopes) > 0 {
		params.Set("scope", strings.Join(spec.scopes, " "))
	}
	for _, aud := range spec.audiences {
		params.Add("audience", aud)
	}
	switch spec.grant {
	case grantPassword:
		params.Set("username", spec.username)
		params.Set("password", spec.password)
	case grantTokenExchange:
		params.Set("subject_token", spec.subjectToken)
		params.Set("subject_token_type", spec.subjectType)
		if spec.actorToken != "" {
			params.Set("actor_token", spec.actorToken)
			params.Set("actor_token_type", spec.actorType)
		}
	}
	header := http.Header{}
	switch spec.clientAuth {
	case "client_secret_basic":
		// RFC 6749 2.3.1: the id and secret are form-encoded before they
		// go into the Basic credentials.
		header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString(
			[]byte(url.QueryEscape(spec.clientID)+":"+url.QueryEscape(spec.clientSecret))))
	case "client_secret_post":
		params.Set("client_id", spec.clientID)
		if spec.clientSecret != "" {
			params.Set("client_secret", spec.clientSecret)
		}
	case "client_secret_jwt", "private_key_jwt":
		if spec.clientID != "" {
			params.Set("client_id", spec.clientID)
		}
		params.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
		params.Set("client_assertion", spec.assertion)
	case "none":
		if spec.clientID != "" {
			params.Set("client_id", spec.clientID)
		}
	}
	var body []byte
	if spec.encoding == encodingJSON {
		obj := make(map[string]any, len(params))
		for k, vs := range params {
			if len(vs) == 1 {
				obj[k] = vs[0]
			} else {
				obj[k] = vs
			}
		}
		body, _ = json.Marshal(obj)
	} else {
		body = []byte(params.Encode())
	}
	header.Set("Content-Type", spec.encoding)
	header.Set("Accept", "application/json")
	header.Set("User-Agent", c.userAgent())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return "", 0, problem.Configuration("cannot build the token request to %s: %v", endpoint, err)
	}
	req.Header = header
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return "", 0, transportProblemFor(ctx, "POST "+endpoint, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenResponse))
	if err != nil {
		return "", 0, transportProblemFor(ctx, "POST "+endpoint, err)
	}
	var answer struct {
		AccessToken      string   `json:"access_token"`
		TokenType        string   `json:"token_type"`
		ExpiresIn        *float64 `json:"expires_in"`
		Error            string   `json:"error"`
		ErrorDescription string   `json:"error_description"`
	}
	decodeErr := json.Unmarshal(raw, &answer)
	if resp.StatusCode != http.StatusOK {
		// The authority refused the credentials: the call cannot be
		// authorized, which the DSL reports as an authentication error.
		status := http.StatusUnauthorized
		if resp.StatusCode >= 500 {
			status = http.StatusBadGateway
		}
		msg := resp.Status
		if answer.Error != "" {
			msg += ": " + answer.Error
			if answer.ErrorDescription != "" {
				msg += " (" + answer.ErrorDescription + ")"
			}
		}
		if status == http.StatusUnauthorized {
			return "", 0, authenticationProblem("token request to %s was refused: %s", endpoint, msg)
		}
		return "", 0, problem.Communication(status, "token request to %s failed: %s", endpoint, msg)
	}
	if decodeErr != nil || answer.AccessToken == "" {
		return "", 0, problem.Communication(http.StatusBadGateway, "token endpoint %s answered no access_token", endpoint)
	}
	if answer.TokenType != "" && !strings.EqualFold(answer.TokenType, "bearer") && spec.grant != grantTokenExchange {
		return "", 0, problem.Configuration("token endpoint %s issued a %q token; only bearer tokens can be sent", endpoint, answer.TokenType)
	}
	if len(spec.issuers) > 0 && !spec.oidc {
		if p := checkIssuer(answer.AccessToken, spec.issuers); p != nil {
			return "", 0, p
		}
	}
	lifetime := defaultTokenLifetime
	if answer.ExpiresIn != nil {
		lifetime = time.Duration(*answer.ExpiresIn * float64(time.Second))
		if lifetime > 2*tokenExpiryMargin {
			lifetime -= tokenExpiryMargin
		} else {
			lifetime /= 2
		}
	}
	return answer.AccessToken, lifetime, nil
}

// checkIssuer compares the iss claim of a JWT access token with the
// policy's issuers. The signature is not verified: the token comes straight
// from the authority the workflow named, over the connection Baton opened;
// the check guards against an authority that is not the expected one.
func checkIssuer(token string, issuers []string) *problem.Problem {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return problem.Configuration("the policy lists issuers but the access token is not a JWT whose issuer could be checked")
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return problem.Configuration("the access token's JWT payload is not base64url: %v", err)
	}
	var claims struct {
		Issuer string `json:"iss"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return problem.Configuration("the access token's JWT payload is not JSON: %v", err)
	}
	if !slices.Contains(issuers, claims.Issuer) {
		return authenticationProblem("the access token was issued by %q, which is not among the policy's issuers", claims.Issuer)
	}
	return nil
}

func transportProblemFor(ctx context.Context, target string, err error) *problem.Problem {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return problem.Timeout("%s: no response before the task's deadline", target)
	}
	if ctx.Err() != nil {
		return problem.Communication(500, "%s: the call was cancelled before it completed", target)
	}
	return problem.Communication(http.StatusServiceUnavailable, "%s: service unavailable: %v", target, unwrapURLError(err))
}

func authenticationProblem(format string, args ...any) *problem.Problem {
	return problem.Newf(problem.TypeAuthentication, http.StatusUnauthorized, "Authentication Error", format, args...)
}
