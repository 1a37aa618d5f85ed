package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/store"
	"github.com/batonflow/baton/store/storetest"
)

// opener returns an open function for storetest that gives each test its
// own database file and reopens that same file when called again in the
// same test.
func opener() func(t *testing.T) store.Store {
	var mu sync.Mutex
	paths := map[*testing.T]string{}
	return func(t *testing.T) store.Store {
		t.Helper()
		mu.Lock()
		path, ok := paths[t]
		if !ok {
			path = filepath.Join(t.TempDir(), "baton.db")
			paths[t] = path
		}
		mu.Unlock()
		s, err := Open(context.Background(), path)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	}
}

func TestConformance(t *testing.T) {
	storetest.Run(t, opener())
}

func openTemp(t *testing.T, opts ...Option) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "baton.db"), opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestOpenRejectsNonFilePaths(t *testing.T) {
	for _, path := range []string{"", ":memory:", "file:x.db", "x.db?mode=ro"} {
		if s, err := Open(context.Background(), path); err == nil {
			_ = s.Close()
			t.Errorf("Open(%q) succeeded", path)
		}
	}
}

func TestPragmas(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	checks := []struct {
		pragma string
		want   int64
	}{
		// NORMAL: the commit itself does not fsync; the syncer does before
		// anyone hears of it (TestAnswersWaitForTheWALSync).
		{"synchronous", 1},
		{"foreign_keys", 1},
		{"busy_timeout", 5000},
	}
	for _, c := range checks {
		err := s.exec(ctx, func(ctx context.Context, conn *sql.Conn) error {
			var got int64
			if err := conn.QueryRowContext(ctx, "PRAGMA "+c.pragma).Scan(&got); err != nil {
				return err
			}
			if got != c.want {
				t.Errorf("write connection: PRAGMA %s = %d, want %d", c.pragma, got, c.want)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("PRAGMA %s: %v", c.pragma, err)
		}
	}
	var mode string
	if err := s.readDB.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode %q (%v), want wal", mode, err)
	}
}

func TestSchemaVersionRecorded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "baton.db")
	for range 2 { // the second open finds the schema current
		s, err := Open(context.Background(), path)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		var v int
		if err := s.readDB.QueryRow("SELECT version FROM schema_version").Scan(&v); err != nil {
			t.Fatal(err)
		}
		if v != len(migrations) {
			t.Fatalf("schema version %d, want %d", v, len(migrations))
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "baton.db")
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	err = s.exec(context.Background(), func(ctx context.Context, conn *sql.Conn) error {
		_, err := conn.ExecContext(ctx, "UPDATE schema_version SET version = version + 1")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(context.Background(), path); err == nil {
		_ = s.Close()
		t.Fatal("Open accepted a schema newer than it knows")
	}
}

func TestUnwaitedFailureSurfaces(t *testing.T) {
	s := openTemp(t, WithLogger(slog.New(slog.DiscardHandler)))
	ctx := context.Background()
	inv := &store.Invocation{ID: "ok", Namespace: "ns", Workflow: "wf", Version: "1", StartedAt: time.Now(), Durable: true}
	if err := s.CreateInvocation(ctx, inv, nil, true); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, "missing", []core.Event{{Type: core.TaskStarted, Time: time.Now()}}, false); err != nil {
		t.Fatalf("unwaited Append returned %v before it was written", err)
	}
	err := s.Append(ctx, "ok", []core.Event{{Type: core.TaskStarted, Time: time.Now()}}, true)
	if !errors.Is(err, store.ErrUnwaitedWriteFailed) || !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("waited Append after a failed unwaited one: %v, want ErrUnwaitedWriteFailed wrapping ErrNotFound", err)
	}
	// The caller's own write went through, and the failure is reported once.
	h, err := s.History(ctx, "ok")
	if err != nil || len(h) != 1 {
		t.Fatalf("history %v (%v), want the waited event", h, err)
	}
	if err := s.Append(ctx, "ok", nil, true); err != nil {
		t.Fatalf("failure reported twice: %v", err)
	}

	if err := s.Append(ctx, "missing", nil, false); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); !errors.Is(err, store.ErrUnwaitedWriteFailed) {
		t.Fatalf("Close after a failed unwaited write: %v, want ErrUnwaitedWriteFailed", err)
	}
	if err := s.Append(ctx, "ok", nil, true); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v, want ErrClosed", err)
	}
}

func TestWaiterContextCancelled(t *testing.T) {
	s := openTemp(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	inv := &store.Invocation{ID: "x", Namespace: "ns", Workflow: "wf", Version: "1", StartedAt: time.Now(), Durable: true}
	if err := s.CreateInvocation(ctx, inv, nil, true); !errors.Is(err, context.Canceled) {
		t.Fatalf("CreateInvocation with a cancelled context: %v", err)
	}
}

func TestConcurrentAppendsAreCounted(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	const n = 64
	for i := range n {
		inv := &store.Invocation{ID: string(rune('A' + i)), Namespace: "ns", Workflow: "wf", Version: "1", StartedAt: time.Now(), Durable: true}
		if err := s.CreateInvocation(ctx, inv, nil, true); err != nil {
			t.Fatal(err)
		}
	}
	before, beforeWrites := s.Stats().Commits, s.Stats().Writes
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				if err := s.Append(ctx, string(rune('A'+i)), []core.Event{{Type: core.TaskStarted, Time: time.Now()}}, true); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	// How many appends share a commit depends on the machine's timing:
	// BenchmarkAppendParallel reports it (writes/commit). Here the
	// counters must account for every waited append, each committed.
	stats := s.Stats()
	if writes := stats.Writes - beforeWrites; writes != n*20 {
		t.Fatalf("Stats counted %d writes for %d appends", writes, n*20)
	}
	if commits := stats.Commits - before; commits < 1 || commits > n*20 {
		t.Fatalf("%d commits for %d appends", commits, n*20)
	}
	for i := range n {
		h, err := s.History(ctx, string(rune('A'+i)))
		if err != nil || len(h) != 20 || h[19].Seq != 20 {
			t.Fatalf("history of %c: %d events, %v", 'A'+i, len(h), err)
		}
	}
}

// The writer remembers each invocation's last seq between batches; a commit
// by another connection to the same file must make it forget.
func TestAnotherWriterInvalidatesKnownSeqs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "baton.db")
	ctx := context.Background()
	a, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	inv := &store.Invocation{ID: "shared", Namespace: "ns", Workflow: "wf", Version: "1", StartedAt: time.Now(), Durable: true}
	if err := a.CreateInvocation(ctx, inv, []core.Event{{Type: core.InvocationStarted, Time: time.Now()}}, true); err != nil {
		t.Fatal(err)
	}
	for i, s := range []*Store{a, b, b, a, b, a} {
		if err := s.Append(ctx, "shared", []core.Event{{Type: core.TaskStarted, Time: time.Now(), Task: fmt.Sprint(i)}}, true); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	h, err := a.History(ctx, "shared")
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 7 {
		t.Fatalf("history has %d events, want 7", len(h))
	}
	for i, ev := range h[1:] {
		if ev.Seq != int64(i+2) || ev.Task != fmt.Sprint(i) {
			t.Fatalf("event %d: seq %d task %q", i+1, ev.Seq, ev.Task)
		}
	}
}

func TestFilesOwnerOnly(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "perm.db")
	// A database an older version left readable by everyone is narrowed.
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		s, err := Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.PutState(context.Background(), "k", []byte("v")); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			info, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if perm := info.Mode().Perm(); perm != 0o600 {
				t.Errorf("round %d: %s has mode %o, want 600", round, filepath.Base(p), perm)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
