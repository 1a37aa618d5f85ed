package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonflow/baton/core"
)

// writerDataVersion reads PRAGMA data_version on the write connection,
// which changes only when another connection commits.
func writerDataVersion(t *testing.T, s *Store) int64 {
	t.Helper()
	var v int64
	err := s.exec(context.Background(), func(ctx context.Context, conn *sql.Conn) error {
		return conn.QueryRowContext(ctx, "PRAGMA data_version").Scan(&v)
	})
	if err != nil {
		t.Fatalf("data_version: %v", err)
	}
	return v
}

// Checkpoints run beside the writer, and the WAL still starts again from
// its beginning under a steady stream of commits: it stays far shorter
// than what was written through it, and every history comes back whole
// after a reopen.
func TestCheckpointsKeepTheWALShort(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	path := filepath.Join(t.TempDir(), "baton.db")
	const restartFrames = 64
	s, err := Open(ctx, path, withCheckpoints(time.Millisecond, restartFrames))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	version := writerDataVersion(t, s)

	const (
		workers = 8
		appends = 150
	)
	payload := strings.Repeat("x", 8<<10)
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		firstErr  error
		walMax    int64
		written   int64
		walSample = func() {
			if fi, err := os.Stat(path + "-wal"); err == nil {
				mu.Lock()
				walMax = max(walMax, fi.Size())
				mu.Unlock()
			}
		}
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("inv-%d", w)
			err := s.CreateInvocation(ctx, testInvocation(id), started(), true)
			for i := 0; err == nil && i < appends; i++ {
				err = s.Append(ctx, id, []core.Event{{Type: core.TaskStarted, Time: time.Now(), Task: "/do/0", Input: payload}}, true)
				walSample()
				mu.Lock()
				written += int64(len(payload))
				mu.Unlock()
			}
			if err != nil {
				mu.Lock()
				firstErr = errors.Join(firstErr, fmt.Errorf("%s: %w", id, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	if runs := s.w.ckpt.runs.Load(); runs == 0 {
		t.Fatal("the checkpointer never ran")
	}
	// Without restarts the WAL holds every page written (~10 MB here);
	// each restart brings it back to a few times restartFrames pages.
	if walMax > written/4 {
		t.Fatalf("the WAL grew to %d bytes for %d bytes of events: it did not start again", walMax, written)
	}
	if got := writerDataVersion(t, s); got != version {
		t.Fatalf("the write connection's data_version went from %d to %d: checkpoints look like another writer's commits, which make the writer reload what it knows", version, got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	for w := range workers {
		id := fmt.Sprintf("inv-%d", w)
		events, err := s.History(ctx, id)
		if err != nil || len(events) != appends+1 {
			t.Fatalf("%s after reopening: %d events (%v), want %d", id, len(events), err, appends+1)
		}
		if got, _ := events[appends].Input.(string); got != payload {
			t.Fatalf("%s: last event's input has %d bytes, want %d", id, len(got), len(payload))
		}
	}
}

func TestWriterLeavesCheckpointsToTheCheckpointer(t *testing.T) {
	s := openTemp(t)
	var auto int64
	err := s.exec(context.Background(), func(ctx context.Context, conn *sql.Conn) error {
		return conn.QueryRowContext(ctx, "PRAGMA wal_autocheckpoint").Scan(&auto)
	})
	if err != nil || auto != 0 {
		t.Fatalf("write connection: wal_autocheckpoint = %d (%v), want 0", auto, err)
	}
}

// A checkpoint that fails may have failed an fsync, which a later one
// would not report: the store stops as after a failed WAL sync.
func TestFailedCheckpointStopsTheStore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := openTemp(t, withCheckpoints(time.Millisecond, defaultRestartFrames))
	if err := s.CreateInvocation(ctx, testInvocation("inv-1"), started(), true); err != nil {
		t.Fatal(err)
	}
	// The checkpointer's next checkpoint fails on its closed connection.
	if err := s.w.ckpt.conn.Close(); err != nil {
		t.Fatal(err)
	}
	var err error
	for ctx.Err() == nil {
		err = s.Append(ctx, "inv-1", []core.Event{{Type: core.TaskStarted, Time: time.Now(), Task: "/do/0"}}, true)
		if err != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if !errors.Is(err, errSyncFailed) {
		t.Fatalf("append after a failed checkpoint: %v, want the store stopped", err)
	}
}
