package postgres

import (
	"context"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestFunctionNamespacesMigration upgrades a database whose functions
// predate namespaces: they become the default namespace's, and the same
// name and version can then be deployed in another namespace.
func TestFunctionNamespacesMigration(t *testing.T) {
	requirePostgres(t)
	ctx := context.Background()
	dsn := freshSchema(t)
	before := slices.Index(migrations, functionNamespacesSchema)
	if before < 0 {
		t.Fatal("the function namespaces migration is not in the list")
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	stmts := []string{`CREATE TABLE schema_version (version integer NOT NULL)`}
	stmts = append(stmts, migrations[:before]...)
	stmts = append(stmts,
		`INSERT INTO functions (name, version, spec, created_at) VALUES ('hello', '1', '{"v":1}', now()), ('hello', '2', '{"v":2}', now())`)
	for _, q := range stmts {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%.60s: %v", q, err)
		}
	}
	if _, err := conn.Exec(ctx, `INSERT INTO schema_version (version) VALUES ($1)`, before); err != nil {
		t.Fatal(err)
	}
	if err := conn.Close(ctx); err != nil {
		t.Fatal(err)
	}

	s := openDSN(t, dsn)
	defer s.Close()
	fn, err := s.GetFunction(ctx, "default", "hello", "")
	if err != nil || fn.Namespace != "default" || fn.Version != "2" || string(fn.Spec) != `{"v":2}` {
		t.Fatalf("newest hello after the upgrade: %+v, %v", fn, err)
	}
	if _, err := s.GetFunction(ctx, "team-a", "hello", ""); err == nil {
		t.Fatal("an old function showed up in another namespace")
	}
}
