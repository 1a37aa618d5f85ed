package postgres

// eventsSchema is migration 4: the CloudEvents log, the positions of its
// consumers (listen tasks, event-driven starts) and the triggers.
// Appends take eventsAppendLock so that positions commit in order (see
// AppendEvents).
const eventsSchema = `
CREATE TABLE events (
	seq         bigserial PRIMARY KEY,
	id          text      NOT NULL,
	source      text      NOT NULL,
	type        text      NOT NULL,
	time        bigint    NOT NULL DEFAULT 0,
	received_at bigint    NOT NULL,
	event       bytea     NOT NULL,
	UNIQUE (source, id)
);
CREATE INDEX events_by_type ON events (type, seq);

CREATE TABLE event_cursors (
	name     text   PRIMARY KEY,
	position bigint NOT NULL
);

CREATE TABLE triggers (
	name            text   PRIMARY KEY,
	namespace       text   NOT NULL,
	workflow        text   NOT NULL,
	kind            text   NOT NULL,
	spec            text   NOT NULL,
	next_run        bigint NOT NULL DEFAULT 0,
	last_run        bigint NOT NULL DEFAULT 0,
	last_invocation text   NOT NULL DEFAULT '',
	created_at      bigint NOT NULL
);
`
