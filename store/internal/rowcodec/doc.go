// Package rowcodec turns Baton's store values into column values and back
// the same way for every SQL backend, so that a history written by one
// backend's rules reads back identically through another's and the two
// cannot drift apart in how they store JSON, events, times and cursors.
// Everything here is independent of the database driver: the backends keep
// their SQL, placeholders and driver types.
package rowcodec
