package httpcall

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonflow/baton/problem"
)

// authority is an in-process OAuth2/OIDC token server and a protected API.
type authority struct {
	srv *httptest.Server

	mu        sync.Mutex
	requests  []url.Values // token requests' parameters, client credentials included
	issued    int
	revoked   map[string]bool
	expiresIn float64
}

func newAuthority(t *testing.T) *authority {
	a := &authority{revoked: map[string]bool{}, expiresIn: 3600}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /realms/demo/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"issuer": a.srv.URL + "/realms/demo", "token_endpoint": a.srv.URL + "/realms/demo/connect/token"})
	})
	token := func(w http.ResponseWriter, r *http.Request) {
		params := url.Values{}
		body, _ := io.ReadAll(r.Body)
		if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
			var obj map[string]any
			if err := json.Unmarshal(body, &obj); err != nil {
				http.Error(w, "bad json", http.StatusBadRequest)
				return
			}
			for k, v := range obj {
				switch v := v.(type) {
				case string:
					params.Set(k, v)
				case []any:
					for _, item := range v {
						params.Add(k, fmt.Sprint(item))
					}
				}
			}
		} else {
			params, _ = url.ParseQuery(string(body))
		}
		if id, secret, ok := r.BasicAuth(); ok {
			id, _ = url.QueryUnescape(id)
			secret, _ = url.QueryUnescape(secret)
			params.Set("basic_client_id", id)
			params.Set("basic_client_secret", secret)
		}
		a.mu.Lock()
		a.requests = append(a.requests, params)
		id, secret := params.Get("client_id")+params.Get("basic_client_id"), params.Get("client_secret")+params.Get("basic_client_secret")
		if id != "baton" || secret != "s3cr3t:&=" {
			a.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error": "invalid_client", "error_description": "bad client credentials"}`))
			return
		}
		a.issued++
		tok := fmt.Sprintf("tok-%d", a.issued)
		expires := a.expiresIn
		a.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": expires})
	}
	mux.HandleFunc("POST /oauth2/token", token)
	mux.HandleFunc("POST /realms/demo/connect/token", token)
	mux.HandleFunc("GET /api", func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		a.mu.Lock()
		valid := ok && strings.HasPrefix(tok, "tok-") && !a.revoked[tok]
		a.mu.Unlock()
		if !valid {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"token": tok})
	})
	a.srv = httptest.NewServer(mux)
	t.Cleanup(a.srv.Close)
	return a
}

func (a *authority) tokenRequests() []url.Values {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]url.Values(nil), a.requests...)
}

func apiCall(a *authority, auth map[string]any) Request {
	return Request{Args: map[string]any{
		"method":   "get",
		"endpoint": map[string]any{"uri": a.srv.URL + "/api", "authentication": auth},
	}}
}

func tokenOf(t *testing.T, out any) string {
	t.Helper()
	m, ok := out.(map[string]any)
	if !ok {
		t.Fatalf("output = %v", out)
	}
	return m["token"].(string)
}

func TestOAuth2ClientCredentials(t *testing.T) {
	a := newAuthority(t)
	c := &Client{}
	auth := map[string]any{"oauth2": map[string]any{
		"authority": a.srv.URL,
		"grant":     "client_credentials",
		"client":    map[string]any{"id": "baton", "secret": "s3cr3t:&=", "authentication": "client_secret_basic"},
		"scopes":    []any{"pets:read", "pets:write"},
		"audiences": []any{"petstore"},
	}}
	for i := range 3 {
		out, p := c.Do(context.Background(), apiCall(a, auth))
		if p != nil {
			t.Fatalf("call %d: %v", i, p)
		}
		if tok := tokenOf(t, out); tok != "tok-1" {
			t.Fatalf("call %d used %s, want the cached tok-1", i, tok)
		}
	}
	reqs := a.tokenRequests()
	if len(reqs) != 1 {
		t.Fatalf("%d token requests for 3 calls, want 1 (cached)", len(reqs))
	}
	r := reqs[0]
	if r.Get("grant_type") != "client_credentials" || r.Get("scope") != "pets:read pets:write" || r.Get("audience") != "petstore" ||
		r.Get("basic_client_id") != "baton" || r.Get("client_secret") != "" {
		t.Fatalf("token request = %v", r)
	}

	// A token the API refuses before it expires is replaced once.
	a.mu.Lock()
	a.revoked["tok-1"] = true
	a.mu.Unlock()
	out, p := c.Do(context.Background(), apiCall(a, auth))
	if p != nil {
		t.Fatal(p)
	}
	if tok := tokenOf(t, out); tok != "tok-2" {
		t.Fatalf("after revocation the call used %s, want a fresh tok-2", tok)
	}
}

func TestOAuth2FromSecretWithPostAndExpiry(t *testing.T) {
	a := newAuthority(t)
	a.expiresIn = 1 // reused for half of it, then renewed
	c := &Client{}
	req := apiCall(a, map[string]any{"use": "petstore"})
	req.Authentications = map[string]any{"petstore": map[string]any{"oauth2": map[string]any{"use": "oauth"}}}
	req.Secrets = map[string]any{"oauth": map[string]any{
		"authority": a.srv.URL,
		"client":    map[string]any{"id": "baton", "secret": "s3cr3t:&="},
		"request":   map[string]any{"encoding": "application/json"},
	}}
	out, p := c.Do(context.Background(), req)
	if p != nil {
		t.Fatal(p)
	}
	if tok := tokenOf(t, out); tok != "tok-1" {
		t.Fatalf("token = %s", tok)
	}
	if r := a.tokenRequests()[0]; r.Get("client_id") != "baton" || r.Get("client_secret") != "s3cr3t:&=" || r.Get("grant_type") != "client_credentials" {
		t.Fatalf("client_secret_post request = %v", r)
	}
	time.Sleep(700 * time.Millisecond)
	out, p = c.Do(context.Background(), req)
	if p != nil {
		t.Fatal(p)
	}
	if tok := tokenOf(t, out); tok != "tok-2" {
		t.Fatalf("after expiry the call used %s, want tok-2", tok)
	}
}

func TestOIDCDiscovery(t *testing.T) {
	a := newAuthority(t)
	c := &Client{}
	auth := map[string]any{"oidc": map[string]any{
		"authority": a.srv.URL + "/realms/demo",
		"client":    map[string]any{"id": "baton", "secret": "s3cr3t:&="},
		"issuers":   []any{a.srv.URL + "/realms/demo"},
	}}
	out, p := c.Do(context.Background(), apiCall(a, auth))
	if p != nil {
		t.Fatal(p)
	}
	if tok := tokenOf(t, out); tok != "tok-1" {
		t.Fatalf("token = %s", tok)
	}
	// An authority whose issuer is not listed is refused.
	auth["oidc"].(map[string]any)["issuers"] = []any{"https://elsewhere.example"}
	_, p = c.Do(context.Background(), apiCall(a, auth))
	if p == nil || p.Type != problem.TypeConfiguration || !strings.Contains(p.Detail, "issuer") {
		t.Fatalf("unexpected issuer: %v", p)
	}
}

func TestOAuth2Problems(t *testing.T) {
	a := newAuthority(t)
	tests := []struct {
		name     string
		config   map[string]any
		wantType string
		wantText string
	}{
		{"refused credentials", map[string]any{"authority": a.srv.URL, "client": map[string]any{"id": "baton", "secret": "wrong"}},
			problem.TypeAuthentication, "invalid_client"},
		{"no authority", map[string]any{"client": map[string]any{"id": "baton"}}, problem.TypeConfiguration, "authority"},
		{"interactive grant", map[string]any{"authority": a.srv.URL, "grant": "authorization_code", "client": map[string]any{"id": "baton"}},
			problem.TypeConfiguration, "authorization_code"},
		{"bad client authentication", map[string]any{"authority": a.srv.URL, "client": map[string]any{"id": "baton", "authentication": "magic"}},
			problem.TypeConfiguration, "magic"},
		{"password grant without username", map[string]any{"authority": a.srv.URL, "grant": "password", "client": map[string]any{"id": "baton"}},
			problem.TypeConfiguration, "username"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, p := (&Client{}).Do(context.Background(), apiCall(a, map[string]any{"oauth2": tc.config}))
			if p == nil || p.Type != tc.wantType || !strings.Contains(p.Detail, tc.wantText) {
				t.Fatalf("problem = %v, want %s mentioning %q", p, tc.wantType, tc.wantText)
			}
			if strings.Contains(p.Detail, "s3cr3t") || strings.Contains(p.Detail, "wrong") {
				t.Fatalf("the problem repeats the client secret: %s", p.Detail)
			}
		})
	}
}
