package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations are applied in order, each in its own transaction together with
// the bump of schema_version, so a crash mid-migration leaves the database at
// the previous version. New versions append to this list; existing entries
// never change once released.
var migrations = []string{
	// 1: the initial schema.
	`
CREATE TABLE workflows (
	-- ord gives the creation order that "newest version" means; an explicit
	-- INTEGER PRIMARY KEY survives VACUUM, unlike an implicit rowid.
	ord        INTEGER PRIMARY KEY AUTOINCREMENT,
	namespace  TEXT    NOT NULL,
	name       TEXT    NOT NULL,
	version    TEXT    NOT NULL,
	format     TEXT    NOT NULL,
	source     BLOB    NOT NULL,
	created_at INTEGER NOT NULL,
	UNIQUE (namespace, name, version)
);
CREATE INDEX workflows_by_name ON workflows (namespace, name, ord);

CREATE TABLE invocations (
	id         TEXT    PRIMARY KEY,
	namespace  TEXT    NOT NULL,
	workflow   TEXT    NOT NULL,
	version    TEXT    NOT NULL,
	status     TEXT    NOT NULL,
	input      BLOB,
	output     BLOB,
	error      BLOB,
	started_at INTEGER NOT NULL,
	ended_at   INTEGER NOT NULL DEFAULT 0,
	durable    INTEGER NOT NULL,
	parent     TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX invocations_by_start    ON invocations (started_at DESC, id DESC);
CREATE INDEX invocations_by_workflow ON invocations (namespace, workflow, started_at DESC, id DESC);
CREATE INDEX invocations_by_status   ON invocations (status, started_at DESC, id DESC);

CREATE TABLE history (
	invocation_id TEXT    NOT NULL REFERENCES invocations (id),
	seq           INTEGER NOT NULL,
	event         BLOB    NOT NULL,
	PRIMARY KEY (invocation_id, seq)
) WITHOUT ROWID;

CREATE TABLE functions (
	ord        INTEGER PRIMARY KEY AUTOINCREMENT,
	name       TEXT    NOT NULL,
	version    TEXT    NOT NULL,
	spec       BLOB    NOT NULL,
	created_at INTEGER NOT NULL,
	UNIQUE (name, version)
);
`,
	// 2: secrets (values encrypted by package secret) and schedules.
	`
CREATE TABLE secrets (
	name       TEXT    PRIMARY KEY,
	value      BLOB    NOT NULL,
	updated_at INTEGER NOT NULL
);

CREATE TABLE schedules (
	namespace       TEXT    NOT NULL,
	name            TEXT    NOT NULL,
	version         TEXT    NOT NULL,
	next_run        INTEGER NOT NULL DEFAULT 0,
	last_run        INTEGER NOT NULL DEFAULT 0,
	last_invocation TEXT    NOT NULL DEFAULT '',
	created_at      INTEGER NOT NULL,
	PRIMARY KEY (namespace, name, version)
);
`,
	// 3: small named blobs of learned state (the prewarm planner's
	// statistics), see store.Store.GetState.
	`
CREATE TABLE state (
	key        TEXT    PRIMARY KEY,
	value      BLOB    NOT NULL,
	updated_at INTEGER NOT NULL
);
`,
	// 4: the event log, its consumers' positions and the triggers.
	eventsSchema,
	// 5: function modules and the idempotency keys of starts.
	blobsAndKeysSchema,
	// 6: finished invocations by end time, and idempotency keys by
	// invocation, for the retention sweeper.
	`
CREATE INDEX invocations_by_end ON invocations (ended_at) WHERE ended_at > 0;
CREATE INDEX idempotency_keys_by_invocation ON idempotency_keys (invocation_id);
`,
	// 7: API tokens (hashed) and the audit log.
	tokensSchema,
	// 8: functions belong to a namespace; the same name in two namespaces
	// is two functions.
	functionNamespacesSchema,
	// 9: histories in append order, one row per append (history_log.go).
	historyLogSchema,
}

// migrate brings the schema up to the newest version. It runs on the write
// connection before the writer starts, so nothing else writes meanwhile.
func migrate(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("create schema_version: %w", err)
	}
	var current int
	err := conn.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&current)
	switch {
	case err == sql.ErrNoRows:
		if _, err := conn.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (0)`); err != nil {
			return fmt.Errorf("initialise schema_version: %w", err)
		}
	case err != nil:
		return fmt.Errorf("read schema_version: %w", err)
	}
	if current > len(migrations) {
		return fmt.Errorf("database schema version %d is newer than this binary supports (%d)", current, len(migrations))
	}
	for v := current + 1; v <= len(migrations); v++ {
		if err := applyMigration(ctx, conn, v); err != nil {
			return err
		}
	}
	return nil
}

func applyMigration(ctx context.Context, conn *sql.Conn, version int) (err error) {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migration %d: begin: %w", version, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if _, err = tx.ExecContext(ctx, migrations[version-1]); err != nil {
		return fmt.Errorf("migration %d: %w", version, err)
	}
	if _, err = tx.ExecContext(ctx, `UPDATE schema_version SET version = ?`, version); err != nil {
		return fmt.Errorf("migration %d: record version: %w", version, err)
	}
	if err = tx.Commit(); err != nil {
		return fmt.Errorf("migration %d: commit: %w", version, err)
	}
	return nil
}
