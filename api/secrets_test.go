package api_test

import (
	"bytes"
	"context"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/batonflow/baton/api"
	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/secret"
	"github.com/batonflow/baton/store/sqlite"
)

func TestSecretRoutes(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "baton.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	secrets, err := secret.New(st, bytes.Repeat([]byte{3}, secret.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, api.WithSecrets(secrets))

	ref := decode[api.SecretRef](t, f.do(http.MethodPut, "/v1/secrets/petstore", `{"value": {"username": "alice", "password": "hunter2-hunter2"}}`), http.StatusOK)
	if ref.Name != "petstore" {
		t.Fatalf("PUT answered %+v", ref)
	}
	decode[api.SecretRef](t, f.do(http.MethodPut, "/v1/secrets/apiKey", `{"value": "k3y-k3y-k3y"}`), http.StatusOK)
	list := f.do(http.MethodGet, "/v1/secrets", "")
	got := decode[api.SecretList](t, list, http.StatusOK)
	if !reflect.DeepEqual(got.Items, []api.SecretRef{{Name: "apiKey"}, {Name: "petstore"}}) {
		t.Fatalf("GET /v1/secrets = %+v", got)
	}
	if strings.Contains(string(list.body), "hunter2") || strings.Contains(string(list.body), "k3y") {
		t.Fatalf("the listing shows a value: %s", list.body)
	}
	values, err := secrets.Secrets(ctx, []string{"apiKey"})
	if err != nil || values["apiKey"] != "k3y-k3y-k3y" {
		t.Fatalf("stored value = %v, %v", values, err)
	}

	// Another namespace has its own secrets under the same names.
	decode[api.SecretRef](t, f.do(http.MethodPut, "/v1/secrets/apiKey?namespace=team-b", `{"value": "b-b-b-b"}`), http.StatusOK)
	if got := decode[api.SecretList](t, f.do(http.MethodGet, "/v1/secrets?namespace=team-b", ""), http.StatusOK); !reflect.DeepEqual(got.Items, []api.SecretRef{{Name: "apiKey"}}) {
		t.Fatalf("GET /v1/secrets?namespace=team-b = %+v", got)
	}
	if values, _ := secrets.Secrets(ctx, []string{"apiKey"}); values["apiKey"] != "k3y-k3y-k3y" {
		t.Fatalf("team-b's apiKey replaced default's: %v", values)
	}
	if r := f.do(http.MethodDelete, "/v1/secrets/petstore?namespace=team-b", ""); r.status != http.StatusNotFound {
		t.Fatalf("deleting default's secret through team-b: %d", r.status)
	}

	for _, tc := range []struct {
		path, body string
		status     int
	}{
		{"/v1/secrets/bad%20name", `{"value": "x"}`, http.StatusBadRequest},
		{"/v1/secrets/ok", `{"value": null}`, http.StatusBadRequest},
		{"/v1/secrets/ok", `{"value": "x", "extra": 1}`, http.StatusBadRequest},
		{"/v1/secrets/ok", `not json with secret-in-it`, http.StatusBadRequest},
		{"/v1/secrets/ok?namespace=*", `{"value": "x"}`, http.StatusBadRequest},
		{"/v1/secrets/ok?namespace=a/b", `{"value": "x"}`, http.StatusBadRequest},
	} {
		r := f.do(http.MethodPut, tc.path, tc.body)
		p := decodeProblem(t, r, tc.status)
		if strings.Contains(p.Detail, "secret-in-it") {
			t.Fatalf("the problem repeats the body: %s", p.Detail)
		}
	}

	if r := f.do(http.MethodDelete, "/v1/secrets/apiKey", ""); r.status != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", r.status, r.body)
	}
	decodeProblem(t, f.do(http.MethodDelete, "/v1/secrets/apiKey", ""), http.StatusNotFound)

	// Without a secret store the routes say so.
	bare := newFixture(t)
	decodeProblem(t, bare.do(http.MethodGet, "/v1/secrets", ""), http.StatusNotImplemented)
	// The fake engine derives no lifecycle events.
	decodeProblem(t, bare.do(http.MethodGet, "/v1/invocations/x/events", ""), http.StatusNotImplemented)
}

func TestLifecycleEventsRoute(t *testing.T) {
	_, srv := startRealEngine(t, engine.Options{})
	f := &fixture{t: t, srv: srv}
	f.apply(helloDoc("1.0.0", "Hello"))
	inv := decode[api.Invocation](t, f.do(http.MethodPost, "/v1/workflows/default/hello/invocations?wait=5s", `{"name": "Ada"}`), http.StatusOK)
	events := decode[api.LifecycleEvents](t, f.do(http.MethodGet, "/v1/invocations/"+inv.ID+"/events", ""), http.StatusOK)
	var types []string
	for _, ev := range events.Items {
		types = append(types, ev["type"].(string))
	}
	want := []string{engine.EventWorkflowStarted, engine.EventTaskStarted, engine.EventTaskCompleted, engine.EventWorkflowCompleted}
	if !reflect.DeepEqual(types, want) {
		t.Fatalf("event types = %v, want %v", types, want)
	}
	decodeProblem(t, f.do(http.MethodGet, "/v1/invocations/unknown/events", ""), http.StatusNotFound)
}
