package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/batonflow/baton/api"
	"github.com/batonflow/baton/function"
	"github.com/batonflow/baton/problem"
)

// TestFunctionsAreNamespaced deploys "hello" in two namespaces and checks
// that every function route acts in its ?namespace= only.
func TestFunctionsAreNamespaced(t *testing.T) {
	f := newFunctionFixture(t)
	ctx := context.Background()
	a, b := f.client.WithNamespace("team-a"), f.client.WithNamespace("team-b")
	spec := function.Spec{Name: "hello", Runtime: function.KindProcess, Command: "a"}
	ref, err := a.DeployFunction(ctx, spec)
	if err != nil || *ref != (api.FunctionRef{Namespace: "team-a", Name: "hello", Version: "1"}) {
		t.Fatalf("deploy in team-a: %+v, %v", ref, err)
	}
	spec.Command = "b"
	for range 2 { // team-b's is at version 2, another spec under the same name
		spec.Command += "b"
		if _, err := b.DeployFunction(ctx, spec); err != nil {
			t.Fatalf("deploy in team-b: %v", err)
		}
	}

	for _, tc := range []struct {
		ns      string
		version string
		command string
	}{{"team-a", "1", "a"}, {"team-b", "2", "bbb"}} {
		c := f.client.WithNamespace(tc.ns)
		list, err := c.ListFunctions(ctx)
		if err != nil || len(list) != 1 || list[0].Namespace != tc.ns || list[0].Version != tc.version {
			t.Fatalf("%s lists %+v, %v; want its own hello only", tc.ns, list, err)
		}
		got, err := c.GetFunction(ctx, "hello", "")
		if err != nil || len(got.Versions) == 0 || got.Spec.Namespace != tc.ns || got.Spec.Command != tc.command || got.Versions[len(got.Versions)-1] != tc.version {
			t.Fatalf("%s gets %+v, %v", tc.ns, got, err)
		}
		res, err := c.InvokeFunction(ctx, "hello", "", json.RawMessage(`"hi"`))
		if err != nil || res.Version != tc.version || !strings.HasPrefix(res.Instance, tc.ns+"/") {
			t.Fatalf("%s invokes %+v, %v; want its own version %s", tc.ns, res, err, tc.version)
		}
	}
	// The default namespace has no hello, and team-a has no version 2.
	if list, err := f.client.ListFunctions(ctx); err != nil || len(list) != 0 {
		t.Fatalf("default lists %+v, %v", list, err)
	}
	_, err = f.client.GetFunction(ctx, "hello", "")
	wantProblem(t, err, http.StatusNotFound, problem.TypeNotFound)
	_, err = f.client.InvokeFunction(ctx, "hello", "", nil)
	wantProblem(t, err, http.StatusNotFound, problem.TypeNotFound)
	_, err = a.InvokeFunction(ctx, "hello", "2", nil)
	wantProblem(t, err, http.StatusNotFound, problem.TypeNotFound)

	// Deleting team-a's leaves team-b's.
	if err := a.DeleteFunction(ctx, "hello", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetFunction(ctx, "hello", "1"); err != nil {
		t.Fatalf("team-b's hello after deleting team-a's: %v", err)
	}

	// A spec naming another namespace than the request's is refused, and
	// so is a namespace that is no name.
	_, err = a.DeployFunction(ctx, function.Spec{Namespace: "team-b", Name: "sneaky", Runtime: function.KindProcess, Command: "x"})
	wantProblem(t, err, http.StatusBadRequest, problem.TypeBadRequest)
	_, err = f.client.WithNamespace("-bad-").ListFunctions(ctx)
	wantProblem(t, err, http.StatusBadRequest, problem.TypeBadRequest)
}
