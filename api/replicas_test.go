package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/batonflow/baton/api"
	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/problem"
)

type reply struct {
	status int
	header http.Header
	body   []byte
}

func post(t *testing.T, url, key, body string) reply {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set(api.IdempotencyKeyHeader, key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, data}
}

// TestIdempotentStartAndDrainOverHTTP drives the real engine through the
// API: a retried start with the same key and request answers with the
// first invocation, another request under it is a 409 problem; /readyz is
// 200 until the engine drains, then 503, and starts are refused with a 503
// and Retry-After.
func TestIdempotentStartAndDrainOverHTTP(t *testing.T) {
	ctx := context.Background()
	eng, srv := startRealEngine(t, engine.Options{})
	if _, err := eng.ApplyWorkflow(ctx, "hello.yaml", []byte(helloDoc("1.0.0", "Hello"))); err != nil {
		t.Fatal(err)
	}
	start := srv.URL + "/v1/workflows/default/hello/invocations"

	first := post(t, start+"?wait=5s", "k1", `{"name": "Ada"}`)
	var ended api.Invocation
	if first.status != http.StatusOK || json.Unmarshal(first.body, &ended) != nil || ended.Status != "completed" ||
		first.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first start: %d %s %v", first.status, first.body, first.header)
	}
	again := post(t, start, "k1", `{ "name":"Ada" }`)
	var id api.InvocationID
	if again.status != http.StatusOK || json.Unmarshal(again.body, &ended) != nil || ended.ID != first.header.Get("Location")[len("/v1/invocations/"):] ||
		again.header.Get("Idempotent-Replayed") != "true" || again.header.Get("Location") != first.header.Get("Location") {
		t.Fatalf("retried start: %d %s %v (first %v)", again.status, again.body, again.header, first.header)
	}
	other := post(t, start, "k1", `{"name": "Bo"}`)
	var p problem.Problem
	if other.status != http.StatusConflict || json.Unmarshal(other.body, &p) != nil || !strings.Contains(p.Detail, `idempotency key "k1" was used for another request`) {
		t.Fatalf("another request under the key: %d %s", other.status, other.body)
	}
	if r := post(t, start, strings.Repeat("k", 256), `{}`); r.status != http.StatusBadRequest {
		t.Fatalf("a 256-character key: %d %s", r.status, r.body)
	}
	if r := post(t, start, "k2", `{"name": "Cy"}`); r.status != http.StatusAccepted || json.Unmarshal(r.body, &id) != nil || id.ID == ended.ID {
		t.Fatalf("a new key: %d %s", r.status, r.body)
	}

	resp, err := http.Get(srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz before draining: %d", resp.StatusCode)
	}
	if err := eng.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	resp, err = http.Get(srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "draining") {
		t.Fatalf("/readyz while draining: %d %s", resp.StatusCode, body)
	}
	for _, key := range []string{"", "k3"} {
		r := post(t, start, key, `{}`)
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" || !strings.Contains(string(r.body), "shutting down") {
			t.Fatalf("a start (key %q) while draining: %d %v %s", key, r.status, r.header, r.body)
		}
	}
}
