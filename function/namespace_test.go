package function

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/store"
)

// TestWorkflowCallsResolveInTheirOwnNamespace deploys "greet" in two
// namespaces (team-b's at version 2) and checks that a workflow's call
// reaches its own namespace's function, never the other's.
func TestWorkflowCallsResolveInTheirOwnNamespace(t *testing.T) {
	reg, _ := newTestRegistry(t)
	ctx := context.Background()
	m, err := NewManager(reg, map[Kind]Runtime{KindProcess: &fakeRuntime{}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctx)
	deploy := func(ns, name, command string) {
		t.Helper()
		if _, err := reg.Deploy(ctx, Spec{Namespace: ns, Name: name, Runtime: KindProcess, Command: command}); err != nil {
			t.Fatalf("deploy %s/%s: %v", ns, name, err)
		}
	}
	deploy("team-a", "greet", "a")
	deploy("team-b", "greet", "b1")
	deploy("team-b", "greet", "b2")
	deploy("team-b", "secret-sauce", "b")

	call := func(ns, fn string) (Result, error) {
		return m.Call(ctx, ns, "inv-1", &core.Call{Task: "/do/0/t", Function: fn, Args: map[string]any{"x": 1}, Attempt: 1})
	}
	for _, tc := range []struct{ ns, fn, version string }{
		{"team-a", "greet", "1"},
		{"team-b", "greet", "2"},
		{"team-b", "greet@1", "1"},
	} {
		res, err := call(tc.ns, tc.fn)
		if err != nil {
			t.Fatalf("%s calling %s: %v", tc.ns, tc.fn, err)
		}
		if res.Version != tc.version || !strings.HasPrefix(res.Instance, tc.ns+"/") {
			t.Fatalf("%s calling %s ran version %s on %s, want its own version %s", tc.ns, tc.fn, res.Version, res.Instance, tc.version)
		}
	}
	for _, tc := range []struct{ ns, fn string }{
		{"team-a", "secret-sauce"},
		{"team-a", "greet@2"},
		{"team-a", "team-b/secret-sauce"},
		{DefaultNamespace, "team-b/greet"},
		{DefaultNamespace, "greet"},
	} {
		_, err := call(tc.ns, tc.fn)
		var p *problem.Problem
		if !errors.Is(err, store.ErrNotFound) || !errors.As(err, &p) || p.Type != problem.TypeConfiguration {
			t.Fatalf("%s calling %s: %v, want a not-deployed configuration error", tc.ns, tc.fn, err)
		}
	}
	if got := m.Instances(Qualify("team-a", "greet")); len(got) != 1 || got[0].Version != "1" {
		t.Fatalf("team-a's greet instances: %+v, want the one of version 1", got)
	}

	// Deleting one namespace's function leaves the other's callable.
	if err := reg.Delete(ctx, "team-a", "greet", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := call("team-a", "greet"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("team-a's greet after deleting it: %v, want not found", err)
	}
	if _, err := call("team-b", "greet"); err != nil {
		t.Fatalf("team-b's greet after deleting team-a's: %v", err)
	}
	if list, err := reg.List(ctx, "team-a"); err != nil || len(list) != 0 {
		t.Fatalf("team-a's functions: %d, %v; want none", len(list), err)
	}
}

func TestQualify(t *testing.T) {
	for _, tc := range []struct{ ns, name, ref string }{
		{"", "greet", "greet"},
		{DefaultNamespace, "greet@2", "greet@2"},
		{"team-a", "greet@2", "team-a/greet@2"},
	} {
		ref := Qualify(tc.ns, tc.name)
		if ref != tc.ref {
			t.Fatalf("Qualify(%q, %q) = %q, want %q", tc.ns, tc.name, ref, tc.ref)
		}
		ns, name, version := splitRef(ref)
		want := tc.ns
		if want == "" {
			want = DefaultNamespace
		}
		if ns != want || name+"@"+version != strings.TrimSuffix(tc.name, "@2")+"@"+versionOf(tc.name) {
			t.Fatalf("splitRef(%q) = %q %q %q", ref, ns, name, version)
		}
	}
}

func versionOf(name string) string {
	_, v, _ := strings.Cut(name, "@")
	return v
}
