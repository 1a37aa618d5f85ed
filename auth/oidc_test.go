package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// issuer is a test OpenID provider: a discovery document and a key set
// over httptest, and keys to sign tokens with.
type issuer struct {
	srv        *httptest.Server
	rsaKey     *rsa.PrivateKey
	ecKey      *ecdsa.PrivateKey
	keyFetches atomic.Int32
}

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	iss := &issuer{rsaKey: rsaKey, ecKey: ecKey}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"issuer": iss.srv.URL, "jwks_uri": iss.srv.URL + "/keys"})
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		iss.keyFetches.Add(1)
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
			{Key: &rsaKey.PublicKey, KeyID: "rsa", Algorithm: "RS256", Use: "sig"},
			{Key: &ecKey.PublicKey, KeyID: "ec", Algorithm: "ES256", Use: "sig"},
		}})
	})
	// Started only once iss.srv is set, which the handlers read.
	iss.srv = httptest.NewUnstartedServer(mux)
	iss.srv.Start()
	t.Cleanup(iss.srv.Close)
	return iss
}

func (iss *issuer) sign(t *testing.T, alg jose.SignatureAlgorithm, kid string, key any, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", kid).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestOIDC(t *testing.T) {
	iss := newIssuer(t)
	now := time.Now()
	o, err := NewOIDC(context.Background(), OIDCConfig{
		Issuer: iss.srv.URL, Audience: "baton", GrantsClaim: "baton_grants",
		NamespaceClaim: "groups", RoleClaim: "baton_role",
	})
	if err != nil {
		t.Fatal(err)
	}
	claims := func(mod func(c map[string]any)) map[string]any {
		c := map[string]any{
			"iss": iss.srv.URL, "aud": []string{"other", "baton"}, "sub": "alice",
			"exp": now.Add(time.Hour).Unix(), "nbf": now.Add(-time.Minute).Unix(), "iat": now.Unix(),
			"baton_grants": []string{"team-a:developer"},
		}
		if mod != nil {
			mod(c)
		}
		return c
	}
	otherKey, _ := rsa.GenerateKey(rand.Reader, 2048)

	t.Run("RS256 grants", func(t *testing.T) {
		p, err := o.Verify(context.Background(), iss.sign(t, jose.RS256, "rsa", iss.rsaKey, claims(nil)))
		if err != nil {
			t.Fatal(err)
		}
		if p.Subject != "oidc:alice" || !p.Can(Developer, "team-a") || p.Can(Admin, "team-a") || p.Can(Viewer, "team-b") {
			t.Fatalf("principal %+v", p)
		}
	})
	t.Run("ES256 with namespace and role claims", func(t *testing.T) {
		raw := iss.sign(t, jose.ES256, "ec", iss.ecKey, claims(func(c map[string]any) {
			delete(c, "baton_grants")
			c["groups"] = []string{"team-x", "team-y"}
			c["baton_role"] = "operator"
		}))
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", "Bearer "+raw)
		p, err := o.Authenticate(r)
		if err != nil {
			t.Fatal(err)
		}
		if !p.Can(Operator, "team-x") || !p.Can(Operator, "team-y") || p.Can(Developer, "team-x") {
			t.Fatalf("principal %+v", p)
		}
	})
	refused := map[string]string{
		"expired":        iss.sign(t, jose.RS256, "rsa", iss.rsaKey, claims(func(c map[string]any) { c["exp"] = now.Add(-time.Hour).Unix() })),
		"no expiry":      iss.sign(t, jose.RS256, "rsa", iss.rsaKey, claims(func(c map[string]any) { delete(c, "exp") })),
		"not yet valid":  iss.sign(t, jose.RS256, "rsa", iss.rsaKey, claims(func(c map[string]any) { c["nbf"] = now.Add(time.Hour).Unix() })),
		"other issuer":   iss.sign(t, jose.RS256, "rsa", iss.rsaKey, claims(func(c map[string]any) { c["iss"] = "https://evil.example" })),
		"other audience": iss.sign(t, jose.RS256, "rsa", iss.rsaKey, claims(func(c map[string]any) { c["aud"] = "someone-else" })),
		"foreign key":    iss.sign(t, jose.RS256, "rsa", otherKey, claims(nil)),
		"unknown key id": iss.sign(t, jose.RS256, "nope", otherKey, claims(nil)),
		"no grant":       iss.sign(t, jose.RS256, "rsa", iss.rsaKey, claims(func(c map[string]any) { delete(c, "baton_grants") })),
		"bad grant":      iss.sign(t, jose.RS256, "rsa", iss.rsaKey, claims(func(c map[string]any) { c["baton_grants"] = []string{"team-a:root"} })),
		"HS256 with the public key": func() string {
			// An attacker signing with HMAC keyed by the public key, in
			// the hope the verifier takes the key for a secret.
			signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte("public-key-bytes")}, (&jose.SignerOptions{}).WithHeader("kid", "rsa"))
			raw, _ := jwt.Signed(signer).Claims(claims(nil)).Serialize()
			return raw
		}(),
		"tampered payload": func() string {
			raw := iss.sign(t, jose.RS256, "rsa", iss.rsaKey, claims(nil))
			parts := strings.Split(raw, ".")
			forged := iss.sign(t, jose.RS256, "rsa", otherKey, claims(func(c map[string]any) { c["baton_grants"] = []string{"*:admin"} }))
			return parts[0] + "." + strings.Split(forged, ".")[1] + "." + parts[2]
		}(),
	}
	for name, raw := range refused {
		t.Run(name, func(t *testing.T) {
			if p, err := o.Verify(context.Background(), raw); !errors.Is(err, ErrInvalidCredentials) {
				t.Fatalf("accepted or wrong error: %+v %v", p, err)
			}
		})
	}
	if n := iss.keyFetches.Load(); n != 1 {
		t.Errorf("the key set was fetched %d times; an unknown key id refetches at most once a minute", n)
	}
	// Baton's own tokens are left to the token authenticator.
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer baton_0123456789abcdef_secret")
	if _, err := o.Authenticate(r); !errors.Is(err, ErrNoCredentials) {
		t.Fatalf("a baton token: %v", err)
	}
}

func TestOIDCConfigErrors(t *testing.T) {
	iss := newIssuer(t)
	for name, cfg := range map[string]OIDCConfig{
		"no audience":      {Issuer: iss.srv.URL, GrantsClaim: "g"},
		"no claim mapping": {Issuer: iss.srv.URL, Audience: "baton"},
		"wrong issuer":     {Issuer: iss.srv.URL + "/other", Audience: "baton", GrantsClaim: "g"},
	} {
		if _, err := NewOIDC(context.Background(), cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
