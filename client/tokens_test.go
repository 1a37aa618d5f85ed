package client_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/batonflow/baton/api"
	"github.com/batonflow/baton/api/apitest"
	"github.com/batonflow/baton/auth"
	"github.com/batonflow/baton/client"
	"github.com/batonflow/baton/problem"
)

type oneToken string

func (o oneToken) Authenticate(r *http.Request) (*auth.Principal, error) {
	switch auth.BearerToken(r) {
	case "":
		return nil, auth.ErrNoCredentials
	case string(o):
		return &auth.Principal{Subject: "test", Grants: []auth.Grant{{Namespace: "default", Role: auth.Viewer}}}, nil
	}
	return nil, auth.ErrInvalidCredentials
}

// TestWithToken sends the token on every request; without it the server
// answers 401, with a weaker role 403, both as problems.
func TestWithToken(t *testing.T) {
	srv := httptest.NewServer(api.NewHandler(apitest.NewEngine(), api.WithAuth(oneToken("s3cret"))))
	defer srv.Close()
	ctx := context.Background()

	anonymous, err := client.New(srv.URL, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := anonymous.ListWorkflows(ctx); problemStatus(err) != http.StatusUnauthorized {
		t.Fatalf("without a token: %v", err)
	}
	viewer, err := client.NewWith(srv.URL, srv.Client(), client.WithToken("s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := viewer.ListWorkflows(ctx); err != nil {
		t.Fatalf("with the token: %v", err)
	}
	if err := viewer.SetSecretIn(ctx, "default", "k", "v"); problemStatus(err) != http.StatusForbidden {
		t.Fatalf("a viewer setting a secret: %v", err)
	}
}

func problemStatus(err error) int {
	if p, ok := err.(*problem.Problem); ok {
		return p.Status
	}
	return 0
}
