package secret_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/batonflow/baton/secret"
	"github.com/batonflow/baton/store"
)

// TestNamespaces keeps each namespace's secrets to itself: same names in
// two namespaces are two secrets, lists and reads see one namespace, a name
// cannot reach into another namespace, and a sealed value moved into
// another namespace does not open.
func TestNamespaces(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	s, err := secret.New(st, bytes.Repeat([]byte{2}, secret.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.Set(ctx, "apiKey", "default-key"))
	must(s.SetIn(ctx, "team-a", "apiKey", "a-key"))
	must(s.SetIn(ctx, "team-b", "other", "b-other"))

	for ns, want := range map[string][]string{"default": {"apiKey"}, "team-a": {"apiKey"}, "team-b": {"other"}, "team-c": {}} {
		got, err := s.NamesIn(ctx, ns)
		must(err)
		if !slices.Equal(got, want) {
			t.Errorf("NamesIn(%s) = %q, want %q", ns, got, want)
		}
	}
	got, err := s.SecretsIn(ctx, "team-a", []string{"apiKey", "other", "team-b/other", "../team-b/other"})
	must(err)
	if len(got) != 1 || got["apiKey"] != "a-key" {
		t.Fatalf("SecretsIn(team-a) = %v, want only its own apiKey", got)
	}
	got, err = s.Secrets(ctx, []string{"apiKey", "team-a/apiKey"})
	must(err)
	if len(got) != 1 || got["apiKey"] != "default-key" {
		t.Fatalf("Secrets (default) = %v", got)
	}

	// A row copied from team-a into team-b's keys does not open there.
	rows, err := st.GetSecrets(ctx, []string{"team-a/apiKey"})
	if err != nil || len(rows) != 1 {
		t.Fatalf("raw rows %v %v", rows, err)
	}
	must(st.PutSecret(ctx, &store.Secret{Name: "team-b/apiKey", Value: rows[0].Value}))
	if _, err := s.SecretsIn(ctx, "team-b", []string{"apiKey"}); err == nil {
		t.Fatal("a value sealed for team-a opened in team-b")
	}

	must(s.DeleteIn(ctx, "team-a", "apiKey"))
	if err := s.DeleteIn(ctx, "team-a", "apiKey"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleting again: %v", err)
	}
	if got, _ := s.Secrets(ctx, []string{"apiKey"}); got["apiKey"] != "default-key" {
		t.Fatalf("deleting team-a's apiKey touched default's: %v", got)
	}
	for _, bad := range []string{"", "a/b", "*"} {
		if err := s.SetIn(ctx, bad, "x", "v"); err == nil {
			t.Errorf("SetIn(%q) succeeded", bad)
		}
	}
}
