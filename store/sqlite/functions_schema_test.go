package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"slices"
	"testing"
)

// TestFunctionNamespacesMigration upgrades a database whose functions
// predate namespaces: they become the default namespace's, keep their
// order, and the same name can then be deployed in another namespace.
func TestFunctionNamespacesMigration(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "baton.db")
	before := slices.Index(migrations, functionNamespacesSchema)
	if before < 0 {
		t.Fatal("the function namespaces migration is not in the list")
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	stmts := []string{`CREATE TABLE schema_version (version INTEGER NOT NULL)`, `INSERT INTO schema_version (version) VALUES (0)`}
	stmts = append(stmts, migrations[:before]...)
	stmts = append(stmts,
		`INSERT INTO functions (name, version, spec, created_at) VALUES ('hello', '1', '{"v":1}', 1), ('hello', '2', '{"v":2}', 2)`)
	for _, q := range stmts {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%.60s: %v", q, err)
		}
	}
	if _, err := db.ExecContext(ctx, `UPDATE schema_version SET version = ?`, before); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open upgrades: %v", err)
	}
	defer s.Close()
	fn, err := s.GetFunction(ctx, "default", "hello", "")
	if err != nil || fn.Namespace != "default" || fn.Version != "2" || string(fn.Spec) != `{"v":2}` {
		t.Fatalf("newest hello after the upgrade: %+v, %v", fn, err)
	}
	if _, err := s.GetFunction(ctx, "team-a", "hello", ""); err == nil {
		t.Fatal("an old function showed up in another namespace")
	}
}
