package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/batonflow/baton/store"
	"github.com/batonflow/baton/store/postgres"
	"github.com/batonflow/baton/store/sqlite"
)

// storeEnv selects the store of `baton server` when --store is not given.
const storeEnv = "BATON_STORE"

// engineStore is everything an engine keeps its state in. Both stores
// implement all of it.
type engineStore interface {
	store.Store
	store.EventLog
	store.Blobs
	store.IdempotentStarts
	store.TokenStore
	store.AuditStore
	store.CommitObserver
	store.InvocationCounter
}

// openedStore is an engine's store and what was taken to open it.
type openedStore struct {
	engineStore
	// desc names the store in logs and errors: the database file, or the
	// PostgreSQL URL without its password.
	desc string
	// dir is the data directory: the SQLite database's, or the one given
	// with --data next to a PostgreSQL store; "" for PostgreSQL without.
	dir string
	// shared is true for PostgreSQL, which other servers may use at the
	// same time.
	shared bool
	lock   *dataLock
}

// storeTarget is where a command keeps its state: a PostgreSQL URL, or a
// data directory's SQLite database.
type storeTarget struct {
	url     string // postgres://...; "" for SQLite
	dataDir string // the --data flag
	// serving is the URL of the API that the opening process serves, if
	// any, written into a data directory's lock for the next comer.
	serving string
}

// addStoreFlag adds --store to a command that can run on PostgreSQL.
func addStoreFlag(cmd *cobra.Command) *string {
	s := new(string)
	cmd.Flags().StringVar(s, "store", "",
		"where the server keeps its state: sqlite (the data directory's "+databaseFile+", the default) or a PostgreSQL URL "+
			"postgres://USER@HOST:PORT/DB shared by several servers (default $"+storeEnv+")")
	return s
}

// resolveStore reads --store (then $BATON_STORE) and --data.
func resolveStore(flag, data string) (storeTarget, error) {
	s := flag
	if s == "" {
		s = os.Getenv(storeEnv)
	}
	switch {
	case s == "" || s == "sqlite":
		return storeTarget{dataDir: data}, nil
	case strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://"):
		return storeTarget{url: s, dataDir: data}, nil
	}
	return storeTarget{}, fmt.Errorf("--store %q: give sqlite or a PostgreSQL URL (postgres://USER@HOST:PORT/DB)", redactURL(s))
}

// redactURL hides the password of a URL for logs and errors.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	return u.Redacted()
}

// openStore opens the target's store for command (the baton subcommand).
// A data directory is locked first, before anything reads it, so that a
// second process on it fails at once instead of running the first one's
// invocations too.
func openStore(ctx context.Context, t storeTarget, command string, logger *slog.Logger) (*openedStore, error) {
	if t.url != "" {
		st, err := postgres.Open(ctx, t.url, postgres.WithLogger(logger))
		if err != nil {
			return nil, fmt.Errorf("opening %s: %w", redactURL(t.url), err)
		}
		return &openedStore{engineStore: st, desc: redactURL(t.url), dir: t.dataDir, shared: true}, nil
	}
	dir, err := dataDir(t.dataDir)
	if err != nil {
		return nil, err
	}
	lock, err := lockDataDir(dir, command, t.serving)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, databaseFile)
	st, err := sqlite.Open(ctx, path, sqlite.WithLogger(logger))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("opening %s: %w", path, err), lock.release())
	}
	return &openedStore{engineStore: st, desc: path, dir: dir, lock: lock}, nil
}

// Close closes the store, then gives up the data directory.
func (o *openedStore) Close() error {
	return errors.Join(o.engineStore.Close(), o.lock.release())
}

// functionCacheRoot is where the function layer keeps its compile cache:
// the data directory, or without one (PostgreSQL) the user's cache
// directory. The cache only saves compile time; nothing in it is state.
func (o *openedStore) functionCacheRoot() string {
	if o.dir != "" {
		return o.dir
	}
	if cache, err := os.UserCacheDir(); err == nil {
		return filepath.Join(cache, "baton")
	}
	return filepath.Join(os.TempDir(), "baton-cache")
}
