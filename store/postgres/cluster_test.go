package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/batonflow/baton/cluster"
	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/store"
)

// idIn returns an invocation id that falls in partition p.
func idIn(t *testing.T, p, partitions int) string {
	for i := range 100000 {
		id := fmt.Sprintf("inv-%d", i)
		if cluster.PartitionOf(id, partitions) == p {
			return id
		}
	}
	t.Fatalf("no id in partition %d", p)
	return ""
}

func rowOf(t *testing.T, snap cluster.Snapshot, p int) cluster.Row {
	t.Helper()
	for _, r := range snap.Rows {
		if r.Partition == p {
			return r
		}
	}
	t.Fatalf("partition %d missing from the snapshot", p)
	return cluster.Row{}
}

// expire ends a partition's lease now, as the database clock passing the
// lease would.
func expire(t *testing.T, dsn string, p int) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `UPDATE partitions SET lease_until = now() - interval '1 second' WHERE id = $1`, p); err != nil {
		t.Fatal(err)
	}
}

func TestLeasesFenceAStaleOwner(t *testing.T) {
	requirePostgres(t)
	dsn := freshSchema(t)
	ctx := context.Background()
	a, b := openDSN(t, dsn), openDSN(t, dsn)
	defer a.Close()
	defer b.Close()
	cfg := cluster.Config{}.WithDefaults()
	if a.Partitions() != cluster.DefaultPartitions {
		t.Fatalf("partitions = %d, want %d", a.Partitions(), cluster.DefaultPartitions)
	}

	snap, err := a.ClusterTick(ctx, "a", false, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Rows) != a.Partitions() || !slices.Equal(snap.Live, []string{"a"}) {
		t.Fatalf("snapshot: %d rows, live %v", len(snap.Rows), snap.Live)
	}
	const p = 5
	la, ok, err := a.AcquirePartition(ctx, "a", rowOf(t, snap, p), cfg.LeaseTTL)
	if err != nil || !ok || la.Epoch != 1 || !la.Until.After(snap.Now) {
		t.Fatalf("a acquires: %+v, %v, %v", la, ok, err)
	}
	// The lease holds: b cannot take the partition, nor a a second time
	// with what it saw before.
	if _, ok, err := b.AcquirePartition(ctx, "b", rowOf(t, snap, p), cfg.LeaseTTL); err != nil || ok {
		t.Fatalf("b acquired a held partition: %v, %v", ok, err)
	}

	id := idIn(t, p, a.Partitions())
	fa := store.Fence{Partition: p, Epoch: la.Epoch, Owner: "a"}
	inv := &store.Invocation{ID: id, Namespace: "ns", Workflow: "wf", Version: "1", Status: core.StatusRunning, StartedAt: time.Now().UTC(), Durable: true}
	started := core.Event{Seq: 1, Type: core.InvocationStarted, Time: time.Now().UTC()}
	if err := a.CreateInvocationFenced(ctx, fa, inv, []core.Event{started}, true); err != nil {
		t.Fatalf("fenced create: %v", err)
	}
	step := func(seq int64) []core.Event {
		return []core.Event{{Seq: seq, Type: core.TaskStarted, Task: "/do/0/t", Time: time.Now().UTC()}}
	}
	if err := a.AppendFenced(ctx, fa, id, step(2), true); err != nil {
		t.Fatalf("fenced append by the owner: %v", err)
	}
	running, err := b.RunningInPartitions(ctx, []int{p})
	if err != nil || len(running) != 1 || running[0].ID != id {
		t.Fatalf("running in partition %d: %v, %v", p, running, err)
	}

	// a freezes past its lease; b takes the partition over.
	expire(t, dsn, p)
	snap, err = b.ClusterTick(ctx, "b", false, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	lb, ok, err := b.AcquirePartition(ctx, "b", rowOf(t, snap, p), cfg.LeaseTTL)
	if err != nil || !ok || lb.Epoch != 2 {
		t.Fatalf("b takes over: %+v, %v, %v", lb, ok, err)
	}
	// a wakes up believing it owns the partition: its writes are refused,
	// its renewal does not take.
	if err := a.AppendFenced(ctx, fa, id, step(3), true); !errors.Is(err, store.ErrFenced) {
		t.Fatalf("stale append: %v, want ErrFenced", err)
	}
	other := idIn(t, p, a.Partitions()) + "-other"
	for i := 0; cluster.PartitionOf(other, a.Partitions()) != p; i++ {
		other = fmt.Sprintf("%s-other-%d", id, i)
	}
	inv2 := *inv
	inv2.ID = other
	if err := a.CreateInvocationFenced(ctx, fa, &inv2, []core.Event{started}, true); !errors.Is(err, store.ErrFenced) {
		t.Fatalf("stale create: %v, want ErrFenced", err)
	}
	snap, err = a.ClusterTick(ctx, "a", false, []cluster.Lease{la}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r := rowOf(t, snap, p); r.Owner != "b" || r.Epoch != 2 {
		t.Fatalf("after a's renewal: %+v, want b's epoch 2", r)
	}
	fb := store.Fence{Partition: p, Epoch: lb.Epoch, Owner: "b"}
	if err := b.AppendFenced(ctx, fb, id, step(3), true); err != nil {
		t.Fatalf("the new owner's append: %v", err)
	}
	history, err := b.History(ctx, id)
	if err != nil || len(history) != 3 {
		t.Fatalf("history: %d events, %v; want 3 with no stale one", len(history), err)
	}
	if _, err := b.GetInvocation(ctx, other); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the stale create left a row: %v", err)
	}

	// b renews, then releases; a can take the partition at once.
	snap, err = b.ClusterTick(ctx, "b", false, []cluster.Lease{lb}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r := rowOf(t, snap, p); !r.Until.After(lb.Until) && !r.Until.Equal(lb.Until) {
		t.Fatalf("renewal moved the lease back: %v before %v", r.Until, lb.Until)
	}
	if err := b.ReleasePartition(ctx, "b", lb); err != nil {
		t.Fatal(err)
	}
	snap, err = a.ClusterTick(ctx, "a", false, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := a.AcquirePartition(ctx, "a", rowOf(t, snap, p), cfg.LeaseTTL); err != nil || !ok {
		t.Fatalf("a after the release: %v, %v", ok, err)
	}
	if !slices.Equal(snap.Live, []string{"a", "b"}) {
		t.Fatalf("live %v, want a and b", snap.Live)
	}
	if err := b.LeaveCluster(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ClusterTick(ctx, "a", true, nil, cfg); err != nil {
		t.Fatal(err)
	}
	snap, err = b.ClusterTick(ctx, "c", false, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(snap.Live, []string{"c"}) {
		t.Fatalf("live %v after b left and a drains, want only c", snap.Live)
	}
}

func TestCancelRequestsAndNotifications(t *testing.T) {
	requirePostgres(t)
	dsn := freshSchema(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := openDSN(t, dsn)
	defer s.Close()
	heard := make(chan []int, 16)
	listenCtx, stopListening := context.WithCancel(ctx)
	listening := make(chan error, 1)
	go func() { listening <- s.ListenCluster(listenCtx, func(p []int) { heard <- p }) }()

	id := idIn(t, 7, s.Partitions())
	inv := &store.Invocation{ID: id, Namespace: "ns", Workflow: "wf", Version: "1", Status: core.StatusRunning, StartedAt: time.Now().UTC(), Durable: true}
	if err := s.CreateInvocation(ctx, inv, []core.Event{{Seq: 1, Type: core.InvocationStarted, Time: time.Now().UTC()}}, true); err != nil {
		t.Fatal(err)
	}
	if err := s.RequestCancel(ctx, id, "stuck on a dead endpoint"); err != nil {
		t.Fatal(err)
	}
	// A second request keeps the first one's reason.
	if err := s.RequestCancel(ctx, id, "again"); err != nil {
		t.Fatal(err)
	}
	if err := s.RequestCancel(ctx, "nope", ""); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("cancel of an unknown invocation: %v", err)
	}
	reqs, err := s.CancelRequests(ctx, []int{7})
	if want := []store.CancelRequest{{Invocation: id, Reason: "stuck on a dead endpoint"}}; err != nil || !slices.Equal(reqs, want) {
		t.Fatalf("cancel requests: %v, %v; want %v", reqs, err, want)
	}
	if reqs, err := s.CancelRequests(ctx, []int{8}); err != nil || len(reqs) != 0 {
		t.Fatalf("cancel requests of another partition: %v, %v", reqs, err)
	}
	if err := s.DoneCancel(ctx, id); err != nil {
		t.Fatal(err)
	}
	if reqs, _ := s.CancelRequests(ctx, []int{7}); len(reqs) != 0 {
		t.Fatalf("cancel requests after done: %v", reqs)
	}

	// The listener may still be connecting: notify until it hears.
	for {
		if err := s.NotifyPartitions(ctx, []int{7, 9}); err != nil {
			t.Fatal(err)
		}
		select {
		case p := <-heard:
			if !slices.Equal(p, []int{7, 9}) {
				t.Fatalf("heard %v, want [7 9]", p)
			}
			stopListening()
			if err := <-listening; err != nil {
				t.Fatalf("listen: %v", err)
			}
			return
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			t.Fatal("no notification heard")
		}
	}
}
