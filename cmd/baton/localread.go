package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/batonflow/baton/api"
	"github.com/batonflow/baton/client"
	"github.com/batonflow/baton/engine"
)

// localReadable marks the commands of the invocation group that --data
// serves from a local data directory: the ones that only read.
const localReadable = "baton/local-read"

// addLocalData gives the invocation group --data: its reading commands
// then look at the invocations `baton run` kept in that data directory
// instead of asking a server.
func addLocalData(group *cobra.Command, r *remote) {
	group.PersistentFlags().StringVar(&r.localData, "data", "",
		"read the invocations `baton run` kept in this data directory instead of a server's (get, list, history)")
}

// localClient serves the API over the data directory's store, without
// running anything, on a loopback port of this process, and returns a
// client of it and what closes it all.
func localClient(ctx context.Context, cmd *cobra.Command, dir string) (*client.Client, func(), error) {
	if cmd.Annotations[localReadable] == "" {
		return nil, nil, fmt.Errorf("--data works with invocation get, list and history; %s needs a server", cmd.CommandPath())
	}
	if _, err := os.Stat(filepath.Join(dir, databaseFile)); err != nil {
		return nil, nil, fmt.Errorf("--data %s: no %s there (baton run --data %s keeps one)", dir, databaseFile, dir)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := openStore(ctx, storeTarget{dataDir: dir}, "invocation", logger)
	if err != nil {
		return nil, nil, err
	}
	// Not started: nothing resumes, the engine only answers from the store.
	eng, err := engine.New(engine.Options{Store: st, Logger: logger})
	if err != nil {
		return nil, nil, errors.Join(err, st.Close())
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, errors.Join(err, eng.Close(), st.Close())
	}
	srv := &http.Server{Handler: api.NewHandler(eng, api.WithLogger(logger))}
	go srv.Serve(ln)
	closeAll := func() {
		_ = srv.Close()
		_ = eng.Close()
		_ = st.Close()
	}
	c, err := client.New("http://"+ln.Addr().String(), &http.Client{})
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return c, closeAll, nil
}
