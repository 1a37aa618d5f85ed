package engine_test

import (
	"context"
	"errors"
	"testing"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/engine"
)

// TestFollowHistoryDropsASlowFollower: a follower that does not keep up
// with the invocation is dropped once its buffer is full, rather than held
// in memory, and resumes from the last seq it got to read the rest; the
// history shows every task that ran, those without I/O included.
func TestFollowHistoryDropsASlowFollower(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, t.TempDir())
	defer st.Close()
	e := newEngine(t, st, func(o *engine.Options) { o.WatchBuffer = 4 })
	defer e.Close()
	if _, err := e.ApplyWorkflow(ctx, "loop.yaml", []byte(`document: {dsl: '1.0.0', namespace: default, name: loop, version: '1.0.0'}
do:
  - wait1:
      wait: {milliseconds: 100}
  - each:
      for: {each: n, in: '${ [range(30)] }'}
      do:
        - double:
            set: {n: '${ $n * 2 }'}
`)); err != nil {
		t.Fatal(err)
	}
	inv, err := e.Invoke(ctx, "default", "loop", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	// The follower reads the first event, then stalls until the loop has
	// run: the 30 records of the loop overflow its buffer of 4.
	var got []core.Event
	err = e.FollowHistory(ctx, inv.ID, 0, func(ev core.Event) error {
		got = append(got, ev)
		if ev.Type == core.TimerScheduled {
			if _, err := e.Wait(ctx, inv.ID); err != nil {
				return err
			}
		}
		return nil
	})
	if !errors.Is(err, engine.ErrFollowerBehind) {
		t.Fatalf("FollowHistory = %v after %d events, want ErrFollowerBehind", err, len(got))
	}
	last := got[len(got)-1].Seq
	err = e.FollowHistory(ctx, inv.ID, last, func(ev core.Event) error {
		if ev.Seq != last+1 {
			t.Fatalf("resumed at seq %d after %d", ev.Seq, last)
		}
		last = ev.Seq
		got = append(got, ev)
		return nil
	})
	if err != nil {
		t.Fatalf("resumed FollowHistory: %v", err)
	}
	ended := 0
	for _, ev := range got {
		if ev.Type == core.TaskEnded {
			ended++
		}
	}
	// 30 sets, the for, the wait.
	if ended != 32 || !got[len(got)-1].Terminal() {
		t.Errorf("%d TaskEnded records, last %s; want 32 and the end", ended, got[len(got)-1].Type)
	}
	history, err := e.History(ctx, inv.ID)
	if err != nil || len(history) != len(got) {
		t.Errorf("history has %d events (%v), the follower got %d", len(history), err, len(got))
	}
}
