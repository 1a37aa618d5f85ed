package main

import (
	"context"
	"net/http"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/store"
	"github.com/batonflow/baton/store/sqlite"
)

// TestRecoveryKilledMidResume seeds thousands of running invocations,
// kills the server (SIGKILL) while it resumes them in the background, and
// checks after a second server has finished them that none was lost and
// none was resumed twice: each history holds one timer, fired once, and
// one end, and the second server resumed exactly those left running.
func TestRecoveryKilledMidResume(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds thousands of invocations")
	}
	ctx := context.Background()
	data := t.TempDir()
	const n = 6000
	if res := baton(t, nil, "bench", "recovery", "--seed-only", "--data", data, "--invocations", strconv.Itoa(n), "--wait", "3s"); res.code != 0 {
		t.Fatalf("seeding: %s", res.stderr)
	}

	srv := startServerWith(t, data, "--log-level", "info")
	client := &http.Client{Timeout: 5 * time.Second}
	var m recoveryMetrics
	for deadline := time.Now().Add(60 * time.Second); ; {
		var err error
		if m, err = scrapeRecovery(ctx, client, srv.url, srv.token); err != nil {
			t.Fatal(err)
		}
		if m.resumed > 0 && m.queued > 0 {
			break
		}
		if m.queued == 0 && m.resumed > 0 || time.Now().After(deadline) {
			t.Fatalf("never caught the server resuming: %+v\n%s", m, srv.logs)
		}
		time.Sleep(5 * time.Millisecond)
	}
	srv.kill(t)
	t.Logf("killed after %.0f of %d resumed", m.resumed, n)

	left := running(t, data)
	if len(left) == 0 || len(left) > n {
		t.Fatalf("%d running after the kill", len(left))
	}
	srv = startServerWith(t, data, "--log-level", "info")
	for deadline := time.Now().Add(120 * time.Second); ; {
		var err error
		if m, err = scrapeRecovery(ctx, client, srv.url, srv.token); err != nil {
			t.Fatal(err)
		}
		var page struct{ Items []any }
		srv.do(t, "GET", "/v1/invocations?status=running&limit=1", "", &page)
		if m.queued == 0 && m.active == 0 && len(page.Items) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not finished: %+v\n%s", m, srv.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	srv.stop()
	if int(m.resumed) != len(left) || m.skipped != 0 || m.failed != 0 {
		t.Errorf("second server: %+v, want %d resumed, none skipped or failed", m, len(left))
	}

	st, err := sqlite.Open(ctx, filepath.Join(data, databaseFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	seen := 0
	f := store.InvocationFilter{Namespace: "bench", Limit: 1000}
	for {
		page, next, err := st.ListInvocations(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, inv := range page {
			seen++
			if inv.Status != core.StatusCompleted {
				t.Errorf("%s is %s", inv.ID, inv.Status)
			}
			hist, err := st.History(ctx, inv.ID)
			if err != nil {
				t.Fatal(err)
			}
			count := map[core.EventType]int{}
			for i, ev := range hist {
				count[ev.Type]++
				if ev.Seq != int64(i+1) {
					t.Fatalf("%s: event %d has seq %d", inv.ID, i, ev.Seq)
				}
			}
			if count[core.TimerScheduled] != 1 || count[core.TimerFired] != 1 || count[core.InvocationCompleted] != 1 {
				t.Errorf("%s: history %v, want one timer scheduled, fired once, and one end", inv.ID, count)
			}
		}
		if next == "" {
			break
		}
		f.Cursor = next
	}
	if seen != n {
		t.Errorf("%d invocations in the store, want %d", seen, n)
	}
}

// running lists the invocations running in a data directory's store.
func running(t *testing.T, data string) []*store.Invocation {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(data, databaseFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	invs, err := st.RunningInvocations(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return invs
}
