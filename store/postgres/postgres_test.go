package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/store"
	"github.com/batonflow/baton/store/storetest"
)

const defaultTestDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

func testDSN() string {
	if dsn := os.Getenv("BATON_TEST_POSTGRES"); dsn != "" {
		return dsn
	}
	return defaultTestDSN
}

// requirePostgres skips the test when the server is unreachable, unless CI
// is set: there a missing service is a failure.
func requirePostgres(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, testDSN())
	if err == nil {
		err = conn.Ping(ctx)
		_ = conn.Close(ctx)
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL at %s is required in CI: %v", testDSN(), err)
		}
		t.Skipf("PostgreSQL at %s is unreachable: %v", testDSN(), err)
	}
}

// freshSchema creates a schema that only this test uses, drops it when the
// test ends, and returns a DSN whose search_path points at it.
func freshSchema(t testing.TB) string {
	t.Helper()
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	schema := "baton_test_" + hex.EncodeToString(b[:])
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, testDSN())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, testDSN())
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return withSearchPath(t, testDSN(), schema)
}

func withSearchPath(t testing.TB, dsn, schema string) string {
	if strings.Contains(dsn, "://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("parse DSN: %v", err)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " search_path=" + schema
}

func openDSN(t testing.TB, dsn string, opts ...Option) *Store {
	t.Helper()
	s, err := Open(context.Background(), dsn, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	requirePostgres(t)
	var mu sync.Mutex
	dsns := map[*testing.T]string{}
	storetest.Run(t, func(t *testing.T) store.Store {
		mu.Lock()
		dsn, ok := dsns[t]
		if !ok {
			dsn = freshSchema(t)
			dsns[t] = dsn
		}
		mu.Unlock()
		return openDSN(t, dsn)
	})
}

func TestConcurrentOpenMigratesOnce(t *testing.T) {
	requirePostgres(t)
	dsn := freshSchema(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	stores := make([]*Store, 4)
	for i := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = Open(context.Background(), dsn)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: Open: %v", i, err)
		}
		defer stores[i].Close()
	}
	var v int
	if err := stores[0].pool.QueryRow(context.Background(), "SELECT version FROM schema_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != len(migrations) {
		t.Fatalf("schema version %d, want %d", v, len(migrations))
	}
}

// Two replicas appending to the same invocations keep each history
// contiguous: the row lock orders their batches.
func TestReplicasShareHistories(t *testing.T) {
	requirePostgres(t)
	dsn := freshSchema(t)
	a, b := openDSN(t, dsn), openDSN(t, dsn)
	defer a.Close()
	defer b.Close()
	ctx := context.Background()
	const invocations, perReplica, appends = 4, 8, 10
	for i := range invocations {
		inv := &store.Invocation{ID: fmt.Sprintf("inv-%d", i), Namespace: "ns", Workflow: "wf", Version: "1", StartedAt: time.Now(), Durable: true}
		if err := a.CreateInvocation(ctx, inv, []core.Event{{Type: core.InvocationStarted, Time: time.Now()}}, true); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*perReplica)
	for r, s := range []*Store{a, b} {
		for g := range perReplica {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := range appends {
					id := fmt.Sprintf("inv-%d", (g+n)%invocations)
					ev := core.Event{Type: core.TaskStarted, Time: time.Now(), Task: fmt.Sprintf("r%d/g%d/%d", r, g, n)}
					if err := s.Append(ctx, id, []core.Event{ev}, true); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	total := 0
	for i := range invocations {
		h, err := b.History(ctx, fmt.Sprintf("inv-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		for j, ev := range h {
			if ev.Seq != int64(j+1) {
				t.Fatalf("inv-%d: event %d has seq %d", i, j, ev.Seq)
			}
		}
		total += len(h) - 1
	}
	if total != 2*perReplica*appends {
		t.Fatalf("%d events appended, want %d", total, 2*perReplica*appends)
	}
}

func TestReplicasCreateRace(t *testing.T) {
	requirePostgres(t)
	dsn := freshSchema(t)
	a, b := openDSN(t, dsn), openDSN(t, dsn)
	defer a.Close()
	defer b.Close()
	ctx := context.Background()
	for round := range 20 {
		id := fmt.Sprintf("race-%d", round)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, s := range []*Store{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				inv := &store.Invocation{ID: id, Namespace: "ns", Workflow: fmt.Sprint(i), Version: "1", StartedAt: time.Now(), Durable: true}
				errs[i] = s.CreateInvocation(ctx, inv, []core.Event{{Type: core.InvocationStarted, Time: time.Now(), Task: fmt.Sprint(i)}}, true)
			}()
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, store.ErrConflict):
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d replicas created %s, want exactly 1 (%v)", round, won, id, errs)
		}
		inv, err := a.GetInvocation(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		h, err := a.History(ctx, id)
		if err != nil || len(h) != 1 || h[0].Task != inv.Workflow {
			t.Fatalf("round %d: the history %v (%v) is not the winner's (%s)", round, h, err, inv.Workflow)
		}
	}
}

func TestUnwaitedFailureSurfaces(t *testing.T) {
	requirePostgres(t)
	s := openDSN(t, freshSchema(t), WithLogger(slog.New(slog.DiscardHandler)))
	ctx := context.Background()
	inv := &store.Invocation{ID: "ok", Namespace: "ns", Workflow: "wf", Version: "1", StartedAt: time.Now(), Durable: true}
	if err := s.CreateInvocation(ctx, inv, nil, true); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, "missing", []core.Event{{Type: core.TaskStarted, Time: time.Now()}}, false); err != nil {
		t.Fatal(err)
	}
	err := s.Append(ctx, "ok", []core.Event{{Type: core.TaskStarted, Time: time.Now()}}, true)
	if !errors.Is(err, store.ErrUnwaitedWriteFailed) || !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("waited Append after a failed unwaited one: %v", err)
	}
	if err := s.Append(ctx, "ok", nil, true); err != nil {
		t.Fatalf("failure reported twice: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, "ok", nil, true); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v, want ErrClosed", err)
	}
}

func TestBadDSN(t *testing.T) {
	if s, err := Open(context.Background(), "postgres://%zz"); err == nil {
		_ = s.Close()
		t.Fatal("Open accepted a malformed DSN")
	}
}
