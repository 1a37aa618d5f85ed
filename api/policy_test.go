package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/batonflow/baton/api"
	"github.com/batonflow/baton/policy"
	"github.com/batonflow/baton/store"
)

// memStates keeps policy documents in memory.
type memStates struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *memStates) GetState(_ context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[key]
	if !ok {
		return nil, store.ErrNotFound
	}
	return v, nil
}

func (s *memStates) PutState(_ context.Context, key string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string][]byte{}
	}
	s.m[key] = value
	return nil
}

func TestPolicyRoutes(t *testing.T) {
	caps, _ := policy.ParseCapabilities("script")
	svc := policy.NewService(&policy.Server{Defaults: policy.Policy{Capabilities: caps}}, &memStates{})
	f := newFixture(t, api.WithPolicies(svc))

	decode := func(r response) api.NamespacePolicy {
		t.Helper()
		if r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		var p api.NamespacePolicy
		if err := json.Unmarshal(r.body, &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	got := decode(f.do(http.MethodGet, "/v1/namespaces/team-a/policy", ""))
	if got.Namespace != "team-a" || got.Policy.Capabilities.Shell != nil ||
		*got.Effective.Capabilities.Shell || !*got.Effective.Capabilities.Script ||
		*got.Effective.Limits.HistoryEvents != policy.DefaultHistoryEvents {
		t.Fatalf("default policy: %+v", got)
	}

	got = decode(f.do(http.MethodPut, "/v1/namespaces/team-a/policy",
		`{"capabilities":{"shell":true},"limits":{"subflowDepth":3},"egress":{"deny":["10.0.0.0/8"]},"retention":"7d"}`))
	if !*got.Policy.Capabilities.Shell || *got.Effective.Limits.SubflowDepth != 3 ||
		got.Effective.Egress.Deny[0] != "10.0.0.0/8" {
		t.Fatalf("after PUT: %s", mustJSON(t, got))
	}
	if !strings.Contains(string(mustJSON(t, got.Effective)), `"retention":"7d"`) {
		t.Fatalf("retention: %s", mustJSON(t, got.Effective))
	}
	// PUT replaces: what the new document leaves out is inherited again.
	got = decode(f.do(http.MethodPut, "/v1/namespaces/team-a/policy", `{"limits":{"subflowDepth":5}}`))
	if *got.Effective.Capabilities.Shell || *got.Effective.Limits.SubflowDepth != 5 {
		t.Fatalf("after a second PUT: %s", mustJSON(t, got))
	}
	if other := decode(f.do(http.MethodGet, "/v1/namespaces/team-b/policy", "")); *other.Effective.Limits.SubflowDepth != policy.DefaultSubflowDepth {
		t.Fatalf("another namespace changed: %+v", other)
	}

	p := decodeProblem(t, f.do(http.MethodPut, "/v1/namespaces/team-a/policy", `{"capabilities":{"root":true}}`), http.StatusBadRequest)
	if !strings.Contains(p.Detail, `unknown field "root"`) {
		t.Fatalf("unknown field: %+v", p)
	}
	p = decodeProblem(t, f.do(http.MethodPut, "/v1/namespaces/team-a/policy", `{"limits":{"historyEvents":-1}}`), http.StatusBadRequest)
	if !strings.Contains(p.Detail, "limits.historyEvents") {
		t.Fatalf("invalid limit: %+v", p)
	}
	decodeProblem(t, f.do(http.MethodGet, "/v1/namespaces/-bad-/policy", ""), http.StatusBadRequest)

	bare := newFixture(t)
	decodeProblem(t, bare.do(http.MethodGet, "/v1/namespaces/team-a/policy", ""), http.StatusNotImplemented)
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
