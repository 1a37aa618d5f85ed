package storetest

import (
	"testing"

	"github.com/batonflow/baton/store"
)

// testFunctionNamespaces checks that namespaces are the tenancy unit of
// functions: the same name and version in two namespaces is two
// functions, and nothing done in one namespace shows in the other.
func testFunctionNamespaces(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx, p := openStore(t, open), ctxOf(t), prefix(t)
	name := p + "greet"
	nsA, nsB := p+"team-a", p+"team-b"
	a := &store.Function{Namespace: nsA, Name: name, Version: "1", Spec: []byte(`{"team":"a"}`), CreatedAt: at(0)}
	b := &store.Function{Namespace: nsB, Name: name, Version: "1", Spec: []byte(`{"team":"b"}`), CreatedAt: at(0)}
	must(t, s.PutFunction(ctx, a), "PutFunction team-a")
	// Another spec under the same name and version is no conflict in
	// another namespace.
	must(t, s.PutFunction(ctx, b), "PutFunction team-b")

	for _, want := range []*store.Function{a, b} {
		got, err := s.GetFunction(ctx, want.Namespace, name, "")
		must(t, err, "GetFunction "+want.Namespace)
		if got.Namespace != want.Namespace || string(got.Spec) != string(want.Spec) {
			t.Fatalf("GetFunction(%s) = %s %s, want %s %s", want.Namespace, got.Namespace, got.Spec, want.Namespace, want.Spec)
		}
		list, err := s.ListFunctions(ctx, want.Namespace)
		must(t, err, "ListFunctions "+want.Namespace)
		if len(list) != 1 || list[0].Namespace != want.Namespace || string(list[0].Spec) != string(want.Spec) {
			t.Fatalf("ListFunctions(%s) = %d functions, want only its own", want.Namespace, len(list))
		}
	}
	_, err := s.GetFunction(ctx, "", name, "")
	wantErr(t, err, store.ErrNotFound, "GetFunction in the default namespace")

	all, err := s.ListFunctions(ctx, "")
	must(t, err, "ListFunctions of every namespace")
	seen := map[string]bool{}
	for _, fn := range all {
		if fn.Name == name {
			seen[fn.Namespace] = true
		}
	}
	if !seen[nsA] || !seen[nsB] {
		t.Fatalf("ListFunctions(\"\") saw %v of this test's namespaces, want both", seen)
	}

	must(t, s.DeleteFunction(ctx, nsA, name, ""), "DeleteFunction team-a")
	_, err = s.GetFunction(ctx, nsA, name, "1")
	wantErr(t, err, store.ErrNotFound, "GetFunction team-a after delete")
	if _, err := s.GetFunction(ctx, nsB, name, "1"); err != nil {
		t.Fatalf("deleting team-a's %s removed team-b's: %v", name, err)
	}
	wantErr(t, s.DeleteFunction(ctx, nsA, name, ""), store.ErrNotFound, "DeleteFunction team-a again")
}
