package api_test

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/batonflow/baton/api"
	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/store/sqlite"
)

// startRealEngine serves the API over a real engine on a SQLite store in a
// temporary directory, for tests that need what a fake engine does not do
// (history, streams, redrive, QoS). opts.Store is set here. The server,
// the engine and the store close when the test ends.
func startRealEngine(t testing.TB, opts engine.Options, apiOpts ...api.Option) (*engine.Engine, *httptest.Server) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "baton.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	opts.Store = st
	eng, err := engine.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	srv := httptest.NewServer(api.NewHandler(eng, apiOpts...))
	t.Cleanup(srv.Close)
	return eng, srv
}
