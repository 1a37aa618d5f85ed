package api

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonflow/baton/api/apitest"
	"github.com/batonflow/baton/auth"
	"github.com/batonflow/baton/secret"
	"github.com/batonflow/baton/store"
	"github.com/batonflow/baton/store/sqlite"
)

var methodToken = regexp.MustCompile(`^[A-Za-z]{1,10}$`)

// FuzzAPI sends random methods, paths, headers and bodies through the
// whole handler (browser checks, authentication, access rules, handlers
// over the in-memory engine): nothing may panic or fail with 500.
//
//	go test -fuzz FuzzAPI ./api
func FuzzAPI(f *testing.F) {
	doc := `{"document": {"dsl": "1.0.0", "namespace": "default", "name": "x", "version": "1.0.0"}, "do": [{"a": {"set": {"x": 1}}}]}`
	seeds := []struct{ method, target, headers, body string }{
		{"GET", "/healthz", "", ""},
		{"POST", "/v1/workflows", "Content-Type: application/json\nAuthorization: Bearer admin", doc},
		{"POST", "/v1/workflows?format=fission&namespace=team-b", "Content-Type: application/yaml\nAuthorization: Bearer dev", "tasks: {}"},
		{"POST", "/v1/workflows/default/x/invocations?wait=1ms", "Content-Type: application/json\nAuthorization: Bearer admin", `{"a": 1}`},
		{"GET", "/v1/invocations?namespace=team-b&status=running&limit=5", "Authorization: Bearer dev", ""},
		{"POST", "/v1/invocations/x/cancel", "Authorization: Bearer admin\nOrigin: http://evil.example", ""},
		{"PUT", "/v1/secrets/a?namespace=*", "Content-Type: application/json\nAuthorization: Bearer admin", `{"value": 1}`},
		{"PUT", "/v1/secrets/a?namespace=team-b", "Content-Type: application/json\nAuthorization: Bearer admin", `{"value": {"u": "x"}}`},
		{"DELETE", "/v1/secrets/a?namespace=default", "Authorization: Bearer dev", ""},
		{"POST", "/v1/tokens", "Content-Type: application/json\nAuthorization: Bearer admin", `{"namespace": "a", "role": "viewer", "expiresIn": "-1h"}`},
		{"POST", "/v1/triggers", "Content-Type: application/json\nAuthorization: Bearer dev", `{"namespace": 7}`},
		{"POST", "/v1/events", "Content-Type: text/plain\nCe-Specversion: 1.0\nAuthorization: Bearer admin", "x"},
		{"GET", "/v1/audit?after=-1", "Authorization: Bearer admin", ""},
		{"DELETE", "/v1/workflows/%2F/x/versions/..", "Authorization: Bearer admin\nHost: evil.example", ""},
		{"GET", "/v1/workflows", "Authorization: Bearer baton_0123456789abcdef_x", ""},
	}
	for _, s := range seeds {
		f.Add(s.method, s.target, s.headers, s.body)
	}
	principals := staticAuth{
		"admin": {Subject: "admin", Grants: []auth.Grant{{Namespace: auth.AllNamespaces, Role: auth.Admin}}},
		"dev":   {Subject: "dev", Grants: []auth.Grant{{Namespace: "default", Role: auth.Developer}, {Namespace: "team-b", Role: auth.Viewer}}},
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(f.TempDir(), "fuzz.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	secrets, err := secret.New(st, make([]byte, secret.KeySize))
	if err != nil {
		f.Fatal(err)
	}
	h := NewHandler(apitest.NewEngine(), WithAuth(principals), WithAudit(&memoryAudit{}), WithTokens(&auth.Tokens{Store: &memoryTokens{}}),
		WithSecrets(secrets),
		WithMaxWait(time.Millisecond), WithMaxBodyBytes(1<<16))
	f.Fuzz(func(t *testing.T, method, target, headers, body string) {
		if !methodToken.MatchString(method) {
			return
		}
		u, err := url.ParseRequestURI(target)
		if err != nil || !strings.HasPrefix(u.Path, "/") {
			return
		}
		r := &http.Request{
			Method: method, URL: u, RequestURI: target, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{}, Host: "127.0.0.1:8780", RemoteAddr: "127.0.0.1:1",
			Body: http.NoBody, ContentLength: int64(len(body)),
		}
		if body != "" {
			r.Body = httpBody(body)
		}
		lines := bufio.NewScanner(strings.NewReader(headers))
		for lines.Scan() {
			k, v, ok := strings.Cut(lines.Text(), ":")
			if !ok {
				continue
			}
			k = strings.TrimSpace(k)
			if k == "" || strings.ContainsAny(k, " \t\r\n") {
				continue
			}
			if strings.EqualFold(k, "Host") {
				r.Host = strings.TrimSpace(v)
				continue
			}
			r.Header.Add(k, strings.TrimSpace(v))
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code == http.StatusInternalServerError {
			t.Fatalf("%s %s (%q): 500 %s", method, target, headers, rec.Body.String())
		}
	})
}

// memoryTokens is a store.TokenStore in a map.
type memoryTokens struct {
	mu   sync.Mutex
	rows map[string]*store.Token
}

func (m *memoryTokens) PutToken(_ context.Context, t *store.Token) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rows == nil {
		m.rows = map[string]*store.Token{}
	}
	if _, ok := m.rows[t.ID]; ok {
		return store.ErrConflict
	}
	m.rows[t.ID] = t
	return nil
}

func (m *memoryTokens) GetToken(_ context.Context, id string) (*store.Token, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t, ok := m.rows[id]; ok {
		return t, nil
	}
	return nil, store.ErrNotFound
}

func (m *memoryTokens) ListTokens(context.Context) ([]*store.Token, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []*store.Token{}
	for _, t := range m.rows {
		out = append(out, t)
	}
	return out, nil
}

func (m *memoryTokens) DeleteToken(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.rows[id]; !ok {
		return store.ErrNotFound
	}
	delete(m.rows, id)
	return nil
}

type stringBody struct{ *strings.Reader }

func (stringBody) Close() error { return nil }

func httpBody(s string) stringBody { return stringBody{strings.NewReader(s)} }
