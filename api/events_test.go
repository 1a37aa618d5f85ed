package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/batonflow/baton/api/apitest"
)

// An engine without an event log answers the event and trigger routes
// with 501 problem documents rather than 404s or panics.
func TestEventRoutesWithoutEventLog(t *testing.T) {
	h := NewHandler(apitest.NewEngine(), WithAllowedHosts("example.com"))
	tests := []struct{ method, path, body string }{
		{http.MethodPost, "/v1/events", `{"specversion":"1.0","id":"1","source":"/s","type":"t"}`},
		{http.MethodGet, "/v1/events", ""},
		{http.MethodGet, "/v1/triggers", ""},
		{http.MethodPost, "/v1/triggers", `{"name":"x","workflow":"w","kind":"http","spec":"x"}`},
		{http.MethodDelete, "/v1/triggers/x", ""},
		{http.MethodPost, "/v1/hooks/x", `{}`},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/cloudevents+json")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusNotImplemented || rec.Header().Get("Content-Type") != ProblemContentType {
				t.Fatalf("%d %s: %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body.String())
			}
		})
	}
}
