package secret_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/batonflow/baton/secret"
	"github.com/batonflow/baton/store"
	"github.com/batonflow/baton/store/sqlite"
)

func openStore(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "baton.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestSealedAtRest(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	key := bytes.Repeat([]byte{1}, secret.KeySize)
	s, err := secret.New(st, key)
	if err != nil {
		t.Fatal(err)
	}
	creds := map[string]any{"username": "alice", "password": "very-secret-password"}
	if err := s.Set(ctx, "creds", creds); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, "token", "plain-token-value"); err != nil {
		t.Fatal(err)
	}
	rows, err := st.GetSecrets(ctx, []string{"creds", "token"})
	if err != nil || len(rows) != 2 {
		t.Fatalf("GetSecrets = %v, %v", rows, err)
	}
	for _, row := range rows {
		if bytes.Contains(row.Value, []byte("very-secret-password")) || bytes.Contains(row.Value, []byte("plain-token-value")) {
			t.Fatalf("secret %s is stored in clear", row.Name)
		}
	}
	got, err := s.Secrets(ctx, []string{"creds", "token", "absent"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"creds": creds, "token": "plain-token-value"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Secrets = %v, want %v", got, want)
	}
	names, err := s.Names(ctx)
	if err != nil || !reflect.DeepEqual(names, []string{"creds", "token"}) {
		t.Fatalf("Names = %v, %v", names, err)
	}

	// Another key cannot open them.
	other, _ := secret.New(st, bytes.Repeat([]byte{2}, secret.KeySize))
	if _, err := other.Secrets(ctx, []string{"token"}); err == nil {
		t.Fatal("a secret opened with the wrong key")
	}
	// A sealed value copied under another name does not open either.
	row := rows[0]
	if err := st.PutSecret(ctx, &store.Secret{Name: "copied", Value: row.Value}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Secrets(ctx, []string{"copied"}); err == nil {
		t.Fatal("a sealed value opened under another name")
	}

	for _, bad := range []string{"", "1abc", "has space", "a/b", string(bytes.Repeat([]byte("a"), 254))} {
		if err := s.Set(ctx, bad, "v"); err == nil {
			t.Errorf("Set(%q) succeeded", bad)
		}
	}
	if err := s.Set(ctx, "nothing", nil); err == nil {
		t.Error("a null value was stored")
	}
}

func TestLoadKey(t *testing.T) {
	dir := t.TempDir()
	first, err := secret.LoadKey("", dir)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(filepath.Join(dir, secret.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %v, want 0600", info.Mode().Perm())
	}
	again, err := secret.LoadKey("", dir)
	if err != nil || !bytes.Equal(first, again) {
		t.Fatalf("the key file's key changed between loads: %v", err)
	}
	explicit := hex.EncodeToString(bytes.Repeat([]byte{9}, secret.KeySize))
	if k, err := secret.LoadKey(explicit, dir); err != nil || !bytes.Equal(k, bytes.Repeat([]byte{9}, secret.KeySize)) {
		t.Fatalf("explicit hex key: %v", err)
	}
	if _, err := secret.LoadKey("c2hvcnQ=", dir); err == nil {
		t.Fatal("a short key was accepted")
	}
	if _, err := secret.LoadKey("", ""); err == nil {
		t.Fatal("LoadKey without key or directory succeeded")
	}
}
