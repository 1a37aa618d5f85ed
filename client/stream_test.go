package client_test

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batonflow/baton/api"
	"github.com/batonflow/baton/client"
	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/store/sqlite"
)

// TestFollowInvocation follows a run whose history outgrows the server's
// buffer for a slow reader: the server drops the stream, the client
// resumes it from the last entry, and the reader gets every entry once, in
// order, then the terminal status.
func TestFollowInvocation(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "baton.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	eng, err := engine.New(engine.Options{Store: st, WatchBuffer: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	srv := httptest.NewServer(api.NewHandler(eng))
	defer srv.Close()
	c, err := client.New(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.ApplyWorkflow(ctx, "loop.yaml", []byte(`document: {dsl: '1.0.0', namespace: default, name: loop, version: '1.0.0'}
do:
  - pause:
      wait: {milliseconds: 200}
  - each:
      for: {each: n, in: '${ [range(20)] }'}
      do:
        - double:
            set: {n: '${ $n * 2 }'}
`)); err != nil {
		t.Fatal(err)
	}
	inv, err := eng.Invoke(ctx, "default", "loop", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var last int64
	var final *api.StreamStatus
	var stalled atomic.Bool
	err = c.FollowInvocation(ctx, inv.ID, 0, func(ev client.StreamEvent) error {
		if ev.Status != nil {
			final = ev.Status
			return nil
		}
		if ev.History.Seq != last+1 {
			t.Errorf("entry %d after %d", ev.History.Seq, last)
		}
		last = ev.History.Seq
		// Stall once, while the loop runs, so the server drops us.
		if ev.History.Type == core.TimerScheduled && !stalled.Swap(true) {
			if _, err := eng.Wait(ctx, inv.ID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("FollowInvocation: %v", err)
	}
	history, err := c.History(ctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	if last != history[len(history)-1].Seq || final == nil || final.Status != core.StatusCompleted {
		t.Errorf("followed to seq %d with status %+v; the history ends at %d", last, final, history[len(history)-1].Seq)
	}
	// Following an ended invocation from its end returns at once.
	if err := c.FollowInvocation(ctx, inv.ID, last, func(client.StreamEvent) error { return nil }); err != nil {
		t.Errorf("FollowInvocation after the end: %v", err)
	}
	// An unknown invocation is a problem, not an endless retry.
	if err := c.FollowInvocation(ctx, "nope", 0, func(client.StreamEvent) error { return nil }); err == nil {
		t.Error("FollowInvocation of an unknown invocation succeeded")
	}
}
