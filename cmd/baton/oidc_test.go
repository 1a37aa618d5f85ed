package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// TestServerOIDC starts the real server against a test OpenID provider
// (discovery and keys over httptest) and calls it with JWTs signed by the
// provider's key: the grants in the token decide, and a token of another
// issuer is refused.
func TestServerOIDC(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var provider *httptest.Server
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"issuer": provider.URL, "jwks_uri": provider.URL + "/jwks"})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	})
	// Started only once provider is set, which the handlers read.
	provider = httptest.NewUnstartedServer(mux)
	provider.Start()
	defer provider.Close()

	srv := startServerWith(t, t.TempDir(), "--oidc-issuer", provider.URL, "--oidc-audience", "baton")
	defer srv.stop()

	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	token := func(iss string, grants ...string) string {
		raw, err := jwt.Signed(signer).Claims(map[string]any{
			"iss": iss, "aud": "baton", "sub": "carol", "exp": time.Now().Add(time.Hour).Unix(), "baton_grants": grants,
		}).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	dev := token(provider.URL, "team-a:developer")
	doc := strings.Replace(helloDoc("1.0.0"), "namespace: default", "namespace: team-a", 1)
	if code, body := srv.send(t, attack{"POST", "/v1/workflows", doc, bearer(dev)}); code != 201 {
		t.Fatalf("apply with an OIDC developer token: %d %s", code, body)
	}
	if code, body := srv.send(t, attack{"POST", "/v1/workflows/team-a/hello/invocations?wait=30s", `{"name": "Oidc"}`, bearer(dev)}); code != 200 || !strings.Contains(body, "Hello, Oidc!") {
		t.Fatalf("invoke: %d %s", code, body)
	}
	if code, _ := srv.send(t, attack{"POST", "/v1/workflows", helloDoc("1.0.0"), bearer(dev)}); code != 403 {
		t.Errorf("applying into default with a team-a grant: %d, want 403", code)
	}
	if code, _ := srv.send(t, attack{"GET", "/v1/workflows", "", bearer(token("https://evil.example", "*:admin"))}); code != 401 {
		t.Errorf("a token of another issuer: %d, want 401", code)
	}
	res := baton(t, srv.env(), "audit", "list", "-o", "json")
	if res.code != 0 || !strings.Contains(res.stdout, `"subject": "oidc:carol"`) {
		t.Errorf("the audit log does not name the OIDC subject: %+v", res)
	}
}
