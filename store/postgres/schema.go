package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrationLock is the advisory lock key that serialises migrations when
// several replicas start at once.
const migrationLock int64 = 0x6261746f6e // "baton"

// migrations are applied in order, each in its own transaction together with
// the bump of schema_version. New versions append to this list; released
// entries never change. Tables are created in the connection's search_path,
// so replicas that share a schema share the state.
//
// JSON goes into json columns rather than jsonb: json keeps the text as
// written and accepts every string Go's encoder produces (jsonb refuses
// \u0000), and Baton never queries inside it.
var migrations = []string{
	// 1: the initial schema.
	`
CREATE TABLE workflows (
	ord        bigserial   PRIMARY KEY,
	namespace  text        NOT NULL,
	name       text        NOT NULL,
	version    text        NOT NULL,
	format     text        NOT NULL,
	source     bytea       NOT NULL,
	created_at timestamptz NOT NULL,
	UNIQUE (namespace, name, version)
);
CREATE INDEX workflows_by_name ON workflows (namespace, name, ord);

CREATE TABLE invocations (
	id         text        PRIMARY KEY,
	namespace  text        NOT NULL,
	workflow   text        NOT NULL,
	version    text        NOT NULL,
	status     text        NOT NULL,
	input      json,
	output     json,
	error      json,
	started_at timestamptz NOT NULL,
	ended_at   timestamptz,
	durable    boolean     NOT NULL,
	parent     text        NOT NULL DEFAULT ''
);
CREATE INDEX invocations_by_start    ON invocations (started_at DESC, id DESC);
CREATE INDEX invocations_by_workflow ON invocations (namespace, workflow, started_at DESC, id DESC);
CREATE INDEX invocations_by_status   ON invocations (status, started_at DESC, id DESC);

CREATE TABLE history (
	invocation_id text   NOT NULL REFERENCES invocations (id),
	seq           bigint NOT NULL,
	event         json   NOT NULL,
	PRIMARY KEY (invocation_id, seq)
);

CREATE TABLE functions (
	ord        bigserial   PRIMARY KEY,
	name       text        NOT NULL,
	version    text        NOT NULL,
	spec       bytea       NOT NULL,
	created_at timestamptz NOT NULL,
	UNIQUE (name, version)
);
`,
	// 2: secrets (values encrypted by package secret) and schedules. The
	// schedule's times are Unix nanoseconds, not timestamptz, because
	// AdvanceSchedule compares them for equality and timestamptz would
	// round them to microseconds.
	`
CREATE TABLE secrets (
	name       text        PRIMARY KEY,
	value      bytea       NOT NULL,
	updated_at timestamptz NOT NULL
);

CREATE TABLE schedules (
	namespace       text        NOT NULL,
	name            text        NOT NULL,
	version         text        NOT NULL,
	next_run        bigint      NOT NULL DEFAULT 0,
	last_run        bigint      NOT NULL DEFAULT 0,
	last_invocation text        NOT NULL DEFAULT '',
	created_at      timestamptz NOT NULL,
	PRIMARY KEY (namespace, name, version)
);
`,
	// 3: small named blobs of learned state (the prewarm planner's
	// statistics), see store.Store.GetState.
	`
CREATE TABLE state (
	key        text        PRIMARY KEY,
	value      bytea       NOT NULL,
	updated_at timestamptz NOT NULL
);
`,
	// 4: the event log, its consumers' positions and the triggers.
	eventsSchema,
	// 5: function modules and the idempotency keys of starts.
	blobsAndKeysSchema,
	// 6: finished invocations by end time, and idempotency keys by
	// invocation, for the retention sweeper.
	`
CREATE INDEX invocations_by_end ON invocations (ended_at) WHERE ended_at IS NOT NULL;
CREATE INDEX idempotency_keys_by_invocation ON idempotency_keys (invocation_id);
`,
	// 7: API tokens (hashed) and the audit log.
	tokensSchema,
	// 8: replicas sharing the database (see package cluster).
	clusterSchema,
	// 9: functions belong to a namespace; the same name in two namespaces
	// is two functions.
	functionNamespacesSchema,
	// 10: the reason a cancellation was asked for travels to the replica
	// that applies it.
	`ALTER TABLE cancel_requests ADD COLUMN reason text NOT NULL DEFAULT '';`,
}

func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	for {
		done, err := migrateOnce(ctx, pool)
		if err != nil || done {
			return err
		}
	}
}

// migrateOnce applies the next pending migration, if any, under the
// advisory lock; it reports whether the schema is current.
func migrateOnce(ctx context.Context, pool *pgxpool.Pool) (done bool, err error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("migrate: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
		return false, fmt.Errorf("migrate: lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)`); err != nil {
		return false, fmt.Errorf("migrate: create schema_version: %w", err)
	}
	var current int
	err = tx.QueryRow(ctx, `SELECT version FROM schema_version`).Scan(&current)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		if _, err := tx.Exec(ctx, `INSERT INTO schema_version (version) VALUES (0)`); err != nil {
			return false, fmt.Errorf("migrate: initialise schema_version: %w", err)
		}
	case err != nil:
		return false, fmt.Errorf("migrate: read schema_version: %w", err)
	}
	if current > len(migrations) {
		return false, fmt.Errorf("database schema version %d is newer than this binary supports (%d)", current, len(migrations))
	}
	if current == len(migrations) {
		return true, tx.Commit(ctx)
	}
	next := current + 1
	if _, err := tx.Exec(ctx, migrations[next-1]); err != nil {
		return false, fmt.Errorf("migration %d: %w", next, err)
	}
	if _, err := tx.Exec(ctx, `UPDATE schema_version SET version = $1`, next); err != nil {
		return false, fmt.Errorf("migration %d: record version: %w", next, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("migration %d: commit: %w", next, err)
	}
	return false, nil
}
