package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/batonflow/baton/api/apitest"
	"github.com/batonflow/baton/auth"
	"github.com/batonflow/baton/store"
)

func TestBrowserChecks(t *testing.T) {
	h := NewHandler(apitest.NewEngine(), WithAllowedHosts("baton.example"), WithAllowedOrigins("https://console.example"))
	doc := `{"document": {"dsl": "1.0.0", "namespace": "default", "name": "x", "version": "1.0.0"}, "do": [{"a": {"set": {"x": 1}}}]}`
	cases := []struct {
		name, method, path, host, origin, contentType, body string
		want                                                int
	}{
		{"loopback IP", "GET", "/v1/workflows", "127.0.0.1:8780", "", "", "", 200},
		{"IPv6 loopback", "GET", "/v1/workflows", "[::1]:8780", "", "", "", 200},
		{"any IP literal", "GET", "/v1/workflows", "10.1.2.3:8780", "", "", "", 200},
		{"localhost", "GET", "/v1/workflows", "localhost:8780", "", "", "", 200},
		{"allowed name", "GET", "/v1/workflows", "Baton.Example", "", "", "", 200},
		{"rebinding name", "GET", "/v1/workflows", "evil.example:8780", "", "", "", 403},
		{"rebinding name, health", "GET", "/healthz", "evil.example", "", "", "", 403},
		{"same origin POST", "POST", "/v1/workflows", "127.0.0.1:8780", "http://127.0.0.1:8780", "application/json", doc, 201},
		{"allowed origin POST", "POST", "/v1/workflows", "baton.example", "https://console.example", "application/json", doc, 201},
		{"cross-site POST", "POST", "/v1/workflows", "127.0.0.1:8780", "http://evil.example", "application/json", doc, 403},
		{"null origin POST", "POST", "/v1/workflows", "127.0.0.1:8780", "null", "application/json", doc, 403},
		{"scheme mismatch", "POST", "/v1/workflows", "127.0.0.1:8780", "https://127.0.0.1:8780", "application/json", doc, 403},
		{"cross-site GET is only read", "GET", "/v1/workflows", "127.0.0.1:8780", "http://evil.example", "", "", 200},
		{"text/plain POST", "POST", "/v1/workflows/default/x/invocations", "127.0.0.1:8780", "", "text/plain", "{}", 415},
		{"form POST", "POST", "/v1/workflows/default/x/invocations", "127.0.0.1:8780", "", "application/x-www-form-urlencoded", "{}", 415},
		{"multipart to a JSON route", "PUT", "/v1/secrets/x", "127.0.0.1:8780", "", "multipart/form-data; boundary=x", "{}", 415},
		{"body without a type", "POST", "/v1/workflows/default/x/invocations", "127.0.0.1:8780", "", "", "{}", 415},
		{"YAML document", "POST", "/v1/workflows", "127.0.0.1:8780", "", "application/yaml", doc, 201},
		{"JSON with a charset", "POST", "/v1/workflows", "127.0.0.1:8780", "", "application/json; charset=utf-8", doc, 201},
		{"empty POST without a type", "POST", "/v1/invocations/nope/cancel", "127.0.0.1:8780", "", "", "", 404},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var r *http.Request
			if tc.body != "" {
				r = httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
			} else {
				r = httptest.NewRequest(tc.method, tc.path, nil)
			}
			r.Host = tc.host
			if tc.origin != "" {
				r.Header.Set("Origin", tc.origin)
			}
			if tc.contentType != "" {
				r.Header.Set("Content-Type", tc.contentType)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code != tc.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.want, rec.Body.String())
			}
			if tc.want >= 400 && rec.Header().Get("Content-Type") != ProblemContentType {
				t.Fatalf("refusal is no problem document: %s", rec.Header().Get("Content-Type"))
			}
		})
	}
}

type memoryAudit struct {
	mu      sync.Mutex
	entries []*store.AuditEntry
}

func (m *memoryAudit) AppendAudit(_ context.Context, e *store.AuditEntry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	e.Seq = int64(len(m.entries) + 1)
	m.entries = append(m.entries, e)
	return nil
}

func (m *memoryAudit) ListAudit(_ context.Context, f store.AuditFilter) ([]*store.AuditEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []*store.AuditEntry{}
	for _, e := range m.entries {
		keep := f.Namespaces == nil
		for _, ns := range f.Namespaces {
			keep = keep || ns == e.Namespace
		}
		if keep && e.Seq > f.After {
			out = append(out, e)
		}
	}
	return out, nil
}

// TestAuditRecordsChanges records successful administrative changes with
// their subject and namespace, and leaves out reads, failures and
// operations.
func TestAuditRecordsChanges(t *testing.T) {
	audit := &memoryAudit{}
	principals := staticAuth{"dev": {Subject: "token:dev", Grants: []auth.Grant{{Namespace: "default", Role: auth.Developer}}}}
	h := NewHandler(apitest.NewEngine(), WithAuth(principals), WithAudit(audit))
	send := func(method, path, body string) int {
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		r.Host = "127.0.0.1"
		r.Header.Set("Authorization", "Bearer dev")
		if body != "" {
			r.Header.Set("Content-Type", "application/json")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec.Code
	}
	doc := `{"document": {"dsl": "1.0.0", "namespace": "default", "name": "x", "version": "1.0.0"}, "do": [{"a": {"set": {"x": 1}}}]}`
	if code := send("POST", "/v1/workflows", doc); code != 201 {
		t.Fatalf("apply: %d", code)
	}
	if code := send("GET", "/v1/workflows", ""); code != 200 {
		t.Fatalf("list: %d", code)
	}
	if code := send("POST", "/v1/workflows/default/x/invocations", "{}"); code != 202 {
		t.Fatalf("invoke: %d", code)
	}
	if code := send("DELETE", "/v1/workflows/default/missing", ""); code != 404 {
		t.Fatalf("delete missing: %d", code)
	}
	if code := send("DELETE", "/v1/workflows/default/x", ""); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	if len(audit.entries) != 2 {
		t.Fatalf("audit has %d entries, want the apply and the delete: %+v", len(audit.entries), audit.entries)
	}
	first, second := audit.entries[0], audit.entries[1]
	if first.Subject != "token:dev" || first.Namespace != "default" || first.Action != "POST /v1/workflows" || first.Status != 201 {
		t.Errorf("apply entry %+v", first)
	}
	if second.Action != "DELETE /v1/workflows/{namespace}/{name}" || second.Target != "/v1/workflows/default/x" || second.Status != 204 {
		t.Errorf("delete entry %+v", second)
	}
	// A developer does not read the audit log.
	if code := send("GET", "/v1/audit", ""); code != 403 {
		t.Fatalf("audit as developer: %d", code)
	}
}
