// Package sqlitetest holds test helpers that look into a data directory's
// SQLite database directly, for what the store offers no read-only view of.
package sqlitetest

import (
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the driver the store opens its database with
)

// WaitListenStarted waits until the listen task of an invocation has
// recorded where it starts reading the event log (its cursor in the
// SQLite database of dir): only then is an event ingested sure to be one
// the listen consumes, however slow the machine. An empty
// task matches any listen of the invocation.
func WaitListenStarted(t testing.TB, dir, invocation, task string) {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dir, "baton.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	prefix := "listen/" + invocation + "/"
	if task != "" {
		prefix += task + "/"
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		var n int
		err := db.QueryRow(`SELECT count(*) FROM event_cursors WHERE substr(name, 1, ?) = ?`, len(prefix), prefix).Scan(&n)
		if err != nil {
			t.Fatalf("reading the listen positions: %v", err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the listen %s of %s recorded no start position", task, invocation)
		}
	}
}
