package sqlite

// functionNamespacesSchema moves functions under namespaces. SQLite cannot
// change a table's unique key in place, so the table is rebuilt; ord is
// copied so that "newest version" keeps its meaning.
const functionNamespacesSchema = `
CREATE TABLE functions_ns (
	ord        INTEGER PRIMARY KEY AUTOINCREMENT,
	namespace  TEXT    NOT NULL DEFAULT 'default',
	name       TEXT    NOT NULL,
	version    TEXT    NOT NULL,
	spec       BLOB    NOT NULL,
	created_at INTEGER NOT NULL,
	UNIQUE (namespace, name, version)
);
INSERT INTO functions_ns (ord, namespace, name, version, spec, created_at)
	SELECT ord, 'default', name, version, spec, created_at FROM functions;
DROP TABLE functions;
ALTER TABLE functions_ns RENAME TO functions;
`
