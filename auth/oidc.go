package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// OIDCConfig describes an OpenID Connect issuer whose JWTs are accepted as
// bearer tokens, and how their claims map to grants.
type OIDCConfig struct {
	// Issuer must equal the tokens' iss claim.
	Issuer string
	// Audience must be one of the tokens' aud claim values.
	Audience string
	// JWKSURL serves the issuer's signing keys; "" reads jwks_uri from
	// the issuer's discovery document (/.well-known/openid-configuration).
	JWKSURL string
	// GrantsClaim names a claim holding "namespace:role" strings (or one
	// such string); each is a grant.
	GrantsClaim string
	// NamespaceClaim and RoleClaim name claims holding namespaces (a
	// string or a list) and one role: the role is granted in each of them.
	NamespaceClaim, RoleClaim string
	// HTTPClient fetches discovery and keys; nil means http.DefaultClient.
	HTTPClient *http.Client
	// Now is the clock for exp and nbf; nil means time.Now.
	Now func() time.Time
}

// Leeway tolerated on exp, nbf and iat, for clocks slightly apart.
const oidcLeeway = 30 * time.Second

// keyRefreshInterval bounds how often an unknown key id makes the
// verifier fetch the key set again (issuers rotate keys; forged key ids
// must not turn the server into a request amplifier).
const keyRefreshInterval = time.Minute

// OIDC verifies RS256 and ES256 JWTs against an issuer's key set.
type OIDC struct {
	cfg OIDCConfig

	mu      sync.Mutex
	keys    jose.JSONWebKeySet
	fetched time.Time
}

// NewOIDC checks cfg and fetches the issuer's keys.
func NewOIDC(ctx context.Context, cfg OIDCConfig) (*OIDC, error) {
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("OIDC needs an issuer and an audience")
	}
	if cfg.GrantsClaim == "" && (cfg.NamespaceClaim == "" || cfg.RoleClaim == "") {
		return nil, errors.New("OIDC needs a grants claim, or a namespace claim and a role claim")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	o := &OIDC{cfg: cfg}
	if o.cfg.JWKSURL == "" {
		var disc struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		if err := o.getJSON(ctx, strings.TrimRight(cfg.Issuer, "/")+"/.well-known/openid-configuration", &disc); err != nil {
			return nil, fmt.Errorf("OIDC discovery: %w", err)
		}
		if disc.Issuer != cfg.Issuer || disc.JWKSURI == "" {
			return nil, fmt.Errorf("OIDC discovery of %s: issuer %q, jwks_uri %q", cfg.Issuer, disc.Issuer, disc.JWKSURI)
		}
		o.cfg.JWKSURL = disc.JWKSURI
	}
	if err := o.refresh(ctx); err != nil {
		return nil, err
	}
	return o, nil
}

func (o *OIDC) getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := o.cfg.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(v)
}

// refresh fetches the key set; the caller holds no lock.
func (o *OIDC) refresh(ctx context.Context) error {
	var set jose.JSONWebKeySet
	if err := o.getJSON(ctx, o.cfg.JWKSURL, &set); err != nil {
		return fmt.Errorf("fetching the OIDC keys: %w", err)
	}
	o.mu.Lock()
	o.keys, o.fetched = set, o.cfg.Now()
	o.mu.Unlock()
	return nil
}

func (o *OIDC) key(ctx context.Context, kid string) (*jose.JSONWebKey, error) {
	for attempt := 0; attempt < 2; attempt++ {
		o.mu.Lock()
		var found []jose.JSONWebKey
		if kid != "" {
			found = o.keys.Key(kid)
		} else if len(o.keys.Keys) == 1 {
			found = o.keys.Keys
		}
		stale := o.cfg.Now().Sub(o.fetched) >= keyRefreshInterval
		o.mu.Unlock()
		if len(found) > 0 {
			return &found[0], nil
		}
		if attempt > 0 || !stale {
			break
		}
		if err := o.refresh(ctx); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("%w: no key %q in the issuer's key set", ErrInvalidCredentials, kid)
}

// looksLikeJWT tells JWTs from Baton's own tokens without parsing.
func looksLikeJWT(s string) bool {
	return strings.Count(s, ".") == 2 && !strings.HasPrefix(s, tokenPrefix)
}

// Authenticate implements Authenticator for bearer JWTs.
func (o *OIDC) Authenticate(r *http.Request) (*Principal, error) {
	raw := BearerToken(r)
	if raw == "" || !looksLikeJWT(raw) {
		return nil, ErrNoCredentials
	}
	return o.Verify(r.Context(), raw)
}

// Verify checks a JWT's signature, issuer, audience and times, and maps
// its claims to grants.
func (o *OIDC) Verify(ctx context.Context, raw string) (*Principal, error) {
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidCredentials, err)
	}
	if len(tok.Headers) != 1 {
		return nil, fmt.Errorf("%w: want one signature", ErrInvalidCredentials)
	}
	key, err := o.key(ctx, tok.Headers[0].KeyID)
	if err != nil {
		return nil, err
	}
	var std jwt.Claims
	var extra map[string]any
	if err := tok.Claims(key.Key, &std, &extra); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidCredentials, err)
	}
	if std.Expiry == nil {
		return nil, fmt.Errorf("%w: the token has no expiry", ErrInvalidCredentials)
	}
	err = std.ValidateWithLeeway(jwt.Expected{
		Issuer: o.cfg.Issuer, AnyAudience: jwt.Audience{o.cfg.Audience}, Time: o.cfg.Now(),
	}, oidcLeeway)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidCredentials, err)
	}
	grants, err := o.grants(extra)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidCredentials, err)
	}
	return &Principal{Subject: "oidc:" + std.Subject, Grants: grants}, nil
}

func stringsOf(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, item := range x {
			if s, ok := item.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// grants maps claims to grants; a token granting nothing is refused, so
// that a misconfigured mapping is an error rather than a useless login.
func (o *OIDC) grants(claims map[string]any) ([]Grant, error) {
	var grants []Grant
	if o.cfg.GrantsClaim != "" {
		for _, s := range stringsOf(claims[o.cfg.GrantsClaim]) {
			ns, roleName, ok := strings.Cut(s, ":")
			role, err := ParseRole(roleName)
			if !ok || err != nil || ValidateNamespace(ns) != nil {
				return nil, fmt.Errorf("claim %s: %q is no NAMESPACE:ROLE grant", o.cfg.GrantsClaim, s)
			}
			grants = append(grants, Grant{Namespace: ns, Role: role})
		}
	}
	if o.cfg.NamespaceClaim != "" && o.cfg.RoleClaim != "" {
		roles := stringsOf(claims[o.cfg.RoleClaim])
		if len(roles) == 1 {
			role, err := ParseRole(roles[0])
			if err != nil {
				return nil, fmt.Errorf("claim %s: %v", o.cfg.RoleClaim, err)
			}
			for _, ns := range stringsOf(claims[o.cfg.NamespaceClaim]) {
				if ValidateNamespace(ns) != nil {
					return nil, fmt.Errorf("claim %s: %q is no namespace", o.cfg.NamespaceClaim, ns)
				}
				grants = append(grants, Grant{Namespace: ns, Role: role})
			}
		}
	}
	if len(grants) == 0 {
		return nil, errors.New("the token's claims grant no role in any namespace")
	}
	return grants, nil
}
