package engine_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/batonflow/baton/cluster"
	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/store/postgres"
)

// clusterSchema returns the DSN of a fresh PostgreSQL schema, dropped when
// the test ends; it skips without PostgreSQL unless CI is set.
func clusterSchema(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv("BATON_TEST_POSTGRES")
	if dsn == "" {
		dsn = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL at %s is required in CI: %v", dsn, err)
		}
		t.Skipf("PostgreSQL at %s is unreachable: %v", dsn, err)
	}
	defer conn.Close(ctx)
	var b [8]byte
	_, _ = rand.Read(b[:])
	schema := "baton_test_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Errorf("drop schema: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// fastLeases keep the tests short; the protocol is the same.
var fastLeases = cluster.Config{LeaseTTL: 1500 * time.Millisecond, RenewEvery: 200 * time.Millisecond, ReplicaTTL: 1000 * time.Millisecond}

type replica struct {
	*engine.Engine
	st *postgres.Store
}

func newReplica(t *testing.T, dsn, id string) *replica {
	t.Helper()
	st, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, st, func(o *engine.Options) {
		o.Cluster = &engine.ClusterOptions{Coordinator: st, ReplicaID: id, Config: fastLeases, Poll: 100 * time.Millisecond}
	})
	r := &replica{Engine: e, st: st}
	t.Cleanup(func() { r.close() })
	return r
}

var closeOnce sync.Map

func (r *replica) close() {
	if _, done := closeOnce.LoadOrStore(r, true); done {
		return
	}
	_ = r.Engine.Close()
	_ = r.st.Close()
}

func owned(r *replica) []int {
	s, _ := r.ClusterStatus()
	return s.Partitions
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestClusterReplicasShareTheWork(t *testing.T) {
	dsn := clusterSchema(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var c counter
	srv := httptest.NewServer(&c)
	defer srv.Close()
	a, b := newReplica(t, dsn, "a"), newReplica(t, dsn, "b")
	waitFor(t, 10*time.Second, "the replicas split the partitions", func() bool {
		return len(owned(a))+len(owned(b)) == 64 && len(owned(a)) == 32
	})
	doc := `
document: {dsl: '1.0.0', namespace: default, name: chain, version: '1.0.0'}
do:
  - one:
      call: http
      with: {method: post, endpoint: ` + srv.URL + `/one}
  - nap:
      wait: {milliseconds: 20}
  - two:
      call: http
      with: {method: post, endpoint: ` + srv.URL + `/two}
`
	if _, err := a.ApplyWorkflow(ctx, "c.yaml", []byte(doc)); err != nil {
		t.Fatal(err)
	}
	// Starts go to either replica, waits to the other: each invocation
	// runs on its partition's owner.
	const n = 60
	ids := make([]string, n)
	for i := range n {
		via := []*replica{a, b}[i%2]
		inv, err := via.Invoke(ctx, "default", "chain", "", map[string]any{"i": i})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = inv.ID
	}
	for i, id := range ids {
		via := []*replica{b, a}[i%2]
		done, err := via.Wait(ctx, id)
		if err != nil || done.Status != core.StatusCompleted {
			t.Fatalf("invocation %d: %+v, %v", i, done, err)
		}
	}
	hits, total := c.snapshot()
	if total != 2*n || len(hits) != 2*n {
		t.Fatalf("%d calls over %d keys for %d invocations of two calls; want each call once", total, len(hits), n)
	}

	// A cancellation through the replica that does not own the invocation
	// reaches its owner.
	sleepy := `
document: {dsl: '1.0.0', namespace: default, name: sleepy, version: '1.0.0'}
do:
  - nap:
      wait: {hours: 1}
`
	if _, err := a.ApplyWorkflow(ctx, "s.yaml", []byte(sleepy)); err != nil {
		t.Fatal(err)
	}
	inv, err := a.Invoke(ctx, "default", "sleepy", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	other := b
	if slices.Contains(owned(b), cluster.PartitionOf(inv.ID, 64)) {
		other = a
	}
	if err := other.CancelInvocation(ctx, inv.ID, "asked of the other replica"); err != nil {
		t.Fatalf("cancel through the other replica: %v", err)
	}
	if done, err := other.Wait(ctx, inv.ID); err != nil || done.Status != core.StatusCancelled {
		t.Fatalf("after a remote cancel: %+v, %v", done, err)
	}
	wantCancelReason(t, other.Engine, inv.ID, "asked of the other replica")

	// b leaves gracefully: a takes every partition, and b still serves
	// starts, which a runs.
	leaveCtx, stop := context.WithTimeout(ctx, 10*time.Second)
	defer stop()
	began := time.Now()
	if err := b.LeaveCluster(leaveCtx); err != nil {
		t.Fatal(err)
	}
	t.Logf("b handed its partitions over in %v", time.Since(began))
	waitFor(t, 10*time.Second, "a owns every partition", func() bool { return len(owned(a)) == 64 })
	inv, err = b.Invoke(ctx, "default", "chain", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if done, err := b.Wait(ctx, inv.ID); err != nil || done.Status != core.StatusCompleted {
		t.Fatalf("started through a departed replica: %+v, %v", done, err)
	}
}

func TestClusterRefusesAStaleOwnersWrite(t *testing.T) {
	dsn := clusterSchema(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	release := make(chan struct{})
	var calls sync.WaitGroup
	calls.Add(1)
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(calls.Done)
		<-release
		fmt.Fprint(w, `{"ok": true}`)
	}))
	defer srv.Close()
	defer close(release)
	a := newReplica(t, dsn, "a")
	waitFor(t, 10*time.Second, "a owns every partition", func() bool { return len(owned(a)) == 64 })
	doc := `
document: {dsl: '1.0.0', namespace: default, name: slow, version: '1.0.0'}
do:
  - call:
      call: http
      with: {method: post, endpoint: ` + srv.URL + `}
`
	if _, err := a.ApplyWorkflow(ctx, "s.yaml", []byte(doc)); err != nil {
		t.Fatal(err)
	}
	inv, err := a.Invoke(ctx, "default", "slow", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	calls.Wait()
	// While a's call is in flight, another replica takes the partition
	// over, as it would from a replica frozen past its lease.
	p := cluster.PartitionOf(inv.ID, 64)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `UPDATE partitions SET owner = 'z', epoch = epoch + 1, lease_until = now() + interval '1 hour' WHERE id = $1`, p); err != nil {
		t.Fatal(err)
	}
	before, err := a.History(ctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	release <- struct{}{}
	waitFor(t, 10*time.Second, "a's stale write is refused", func() bool {
		s, _ := a.ClusterStatus()
		return s.FencedWrites == 1 && !slices.Contains(s.Partitions, p)
	})
	after, err := a.History(ctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Fatalf("history grew from %d to %d events after the partition was taken", len(before), len(after))
	}
	if got, _ := a.GetInvocation(ctx, inv.ID); got.Status != core.StatusRunning {
		t.Fatalf("status %s; the stale owner must not have finished it", got.Status)
	}
}
