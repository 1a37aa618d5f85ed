// Package ctk runs the Serverless Workflow Conformance Test Kit against
// Baton. Its tests execute every scenario of the official feature files
// (../shared/spec/serverless-workflow/ctk/features, beside the repository)
// with godog, on a real engine over an SQLite store, with the engine's HTTP
// client pointed at local stand-ins for the public services the scenarios
// call. The package has no code outside its tests.
package ctk
