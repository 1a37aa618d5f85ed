package postgres

// functionNamespacesSchema moves functions under namespaces: existing ones
// are the default namespace's.
const functionNamespacesSchema = `
ALTER TABLE functions ADD COLUMN namespace text NOT NULL DEFAULT 'default';
ALTER TABLE functions DROP CONSTRAINT functions_name_version_key;
ALTER TABLE functions ADD CONSTRAINT functions_namespace_name_version_key UNIQUE (namespace, name, version);
`
