package sqlite

// eventsSchema is migration 4: the CloudEvents log, the positions of its
// consumers (listen tasks, event-driven starts) and the triggers.
// AUTOINCREMENT keeps a deleted newest event's position from being reused,
// which consumers that remember positions rely on.
const eventsSchema = `
CREATE TABLE events (
	seq         INTEGER PRIMARY KEY AUTOINCREMENT,
	id          TEXT    NOT NULL,
	source      TEXT    NOT NULL,
	type        TEXT    NOT NULL,
	time        INTEGER NOT NULL DEFAULT 0,
	received_at INTEGER NOT NULL,
	event       BLOB    NOT NULL,
	UNIQUE (source, id)
);
CREATE INDEX events_by_type ON events (type, seq);

CREATE TABLE event_cursors (
	name     TEXT    PRIMARY KEY,
	position INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE triggers (
	name            TEXT    PRIMARY KEY,
	namespace       TEXT    NOT NULL,
	workflow        TEXT    NOT NULL,
	kind            TEXT    NOT NULL,
	spec            TEXT    NOT NULL,
	next_run        INTEGER NOT NULL DEFAULT 0,
	last_run        INTEGER NOT NULL DEFAULT 0,
	last_invocation TEXT    NOT NULL DEFAULT '',
	created_at      INTEGER NOT NULL
);
`
