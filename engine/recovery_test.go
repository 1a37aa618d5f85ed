package engine_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/store"
	"github.com/batonflow/baton/store/postgres"
)

// gatedStore holds the listing of running invocations and the reading of
// histories until the test opens the gates, so that a test can act while
// invocations are still waiting to be resumed.
type gatedStore struct {
	store.Store
	listing chan struct{} // closed: RunningInvocations answers
	mu      sync.Mutex
	open    map[string]bool // histories readable before the gate opens
	gate    chan struct{}   // closed: every history is readable
	reads   map[string]int
}

func (g *gatedStore) RunningInvocations(ctx context.Context) ([]*store.Invocation, error) {
	select {
	case <-g.listing:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.Store.RunningInvocations(ctx)
}

func (g *gatedStore) History(ctx context.Context, id string) ([]core.Event, error) {
	g.mu.Lock()
	g.reads[id]++
	open := g.open[id]
	g.mu.Unlock()
	if !open {
		select {
		case <-g.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return g.Store.History(ctx, id)
}

func (g *gatedStore) allow(id string) {
	g.mu.Lock()
	g.open[id] = true
	g.mu.Unlock()
}

const napDoc = `
document: {dsl: '1.0.0', namespace: default, name: %s, version: '1.0.0'}
do:
  - nap:
      wait: {milliseconds: %d}
  - done:
      set: {slept: true}
`

// seedNapping starts n invocations of a workflow that sleeps for nap, and
// stops the engine with all of them running.
func seedNapping(t *testing.T, dir, name string, n int, nap time.Duration) []string {
	t.Helper()
	ctx := context.Background()
	st := openStore(t, dir)
	defer st.Close()
	e := newEngine(t, st)
	defer e.Close()
	if _, err := e.ApplyWorkflow(ctx, name+".yaml", []byte(fmt.Sprintf(napDoc, name, nap.Milliseconds()))); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, n)
	for i := range ids {
		inv, err := e.Invoke(ctx, "default", name, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = inv.ID
	}
	return ids
}

// terminalEvents counts the terminal events in an invocation's history.
func terminalEvents(t *testing.T, st store.Store, id string) int {
	t.Helper()
	hist, err := st.History(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ev := range hist {
		if ev.Terminal() {
			n++
		}
	}
	return n
}

// TestRecoveryResumesLazily: Start returns before anything is resumed;
// invocations acted on while waiting (Cancel, Wait, before and after the
// listing) are resumed on demand, and each invocation is resumed once.
func TestRecoveryResumesLazily(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	ids := seedNapping(t, dir, "nap", 40, time.Hour)

	st := openStore(t, dir)
	defer st.Close()
	g := &gatedStore{Store: st, listing: make(chan struct{}), open: map[string]bool{}, gate: make(chan struct{}), reads: map[string]int{}}
	e := newEngine(t, g)
	defer e.Close()
	if s := e.RecoveryStatus(); !s.Listing || s.Resumed != 0 {
		t.Fatalf("after Start: %+v, want listing and nothing resumed", s)
	}
	cancelled := func(id string) {
		t.Helper()
		if err := e.CancelInvocation(ctx, id, ""); err != nil {
			t.Fatalf("cancel %s: %v", id, err)
		}
		got, err := e.Wait(ctx, id)
		if err != nil || got.Status != core.StatusCancelled {
			t.Fatalf("%s: %+v %v, want cancelled", id, got, err)
		}
	}

	// Before the listing: the invocation is found in the store.
	g.allow(ids[0])
	cancelled(ids[0])

	close(g.listing)
	// The listing queues the rest; the workers block on the histories.
	for e.RecoveryStatus().Listing {
		time.Sleep(time.Millisecond)
	}
	// A queued invocation is resumed on demand, then cancelled.
	target := ids[len(ids)-1]
	g.allow(target)
	cancelled(target)

	close(g.gate)
	if err := e.AwaitRecovery(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids[1 : len(ids)-1] {
		cancelled(id)
	}
	for _, id := range ids {
		if n := terminalEvents(t, st, id); n != 1 {
			t.Errorf("%s: %d terminal events", id, n)
		}
	}
	// The first one was listed as running, then found ended: skipped.
	s := e.RecoveryStatus()
	if s.Resumed != int64(len(ids)) || s.Failed != 0 {
		t.Errorf("status %+v: want %d resumed, once each", s, len(ids))
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, id := range ids[1:] {
		if g.reads[id] != 1 {
			t.Errorf("%s: history read %d times, want once", id, g.reads[id])
		}
	}
}

// TestRecoveryTimersDueFirst: of the invocations left running, those whose
// timers are due are resumed before those whose timers are far off.
func TestRecoveryTimersDueFirst(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	// The far timers start first, so start order alone would put them first.
	farIDs := seedNapping(t, dir, "far", 20, time.Hour)
	soonIDs := seedNapping(t, dir, "soon", 20, 5*time.Second)

	st := openStore(t, dir)
	defer st.Close()
	timers, err := st.(store.PendingTimers).PendingTimers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(timers) != 40 {
		t.Fatalf("%d pending timers, want 40", len(timers))
	}
	for _, id := range soonIDs {
		if !timers[id].Before(timers[farIDs[0]]) {
			t.Fatalf("pending timers %v: %s is not due before %s", timers, id, farIDs[0])
		}
	}
	rec := &readOrder{Store: st}
	e := newEngine(t, rec)
	defer e.Close()
	if err := e.AwaitRecovery(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range soonIDs {
		if inv, err := e.Wait(ctx, id); err != nil || inv.Status != core.StatusCompleted {
			t.Fatalf("%s: %+v %v", id, inv, err)
		}
	}
	if s := e.RecoveryStatus(); s.Resumed != 40 {
		t.Errorf("status %+v, want 40 resumed", s)
	}
	// Workers take jobs in order; one that took a due job may read its
	// history after another took a far one, so only the first reads are
	// certain to be of due ones (there are at most 8 workers).
	soon := map[string]bool{}
	for _, id := range soonIDs {
		soon[id] = true
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for i, id := range rec.reads[:10] {
		if !soon[id] {
			t.Fatalf("read %d is of %s, whose timer is an hour off; reads: %v", i, id, rec.reads)
		}
	}
}

// readOrder records the order in which histories are read.
type readOrder struct {
	store.Store
	mu    sync.Mutex
	reads []string
}

func (r *readOrder) History(ctx context.Context, id string) ([]core.Event, error) {
	r.mu.Lock()
	r.reads = append(r.reads, id)
	r.mu.Unlock()
	return r.Store.History(ctx, id)
}

func (r *readOrder) PendingTimers(ctx context.Context) (map[string]time.Time, error) {
	return r.Store.(store.PendingTimers).PendingTimers(ctx)
}

// TestRecoveryDropsLostPartitions: a replica that loses its partitions
// while their invocations wait to be resumed, or are being resumed, runs
// none of them: the queued ones are dropped and those in flight are not
// made live under a stale fence.
func TestRecoveryDropsLostPartitions(t *testing.T) {
	dsn := clusterSchema(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a := newReplica(t, dsn, "a")
	waitFor(t, 10*time.Second, "a owns every partition", func() bool { return len(owned(a)) == 64 })
	if _, err := a.ApplyWorkflow(ctx, "nap.yaml", []byte(fmt.Sprintf(napDoc, "nap", time.Hour.Milliseconds()))); err != nil {
		t.Fatal(err)
	}
	const n = 60
	for range n {
		if _, err := a.Invoke(ctx, "default", "nap", "", nil); err != nil {
			t.Fatal(err)
		}
	}
	lengths := func(st store.Store) map[string]int {
		invs, err := st.RunningInvocations(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int{}
		for _, inv := range invs {
			hist, err := st.History(ctx, inv.ID)
			if err != nil {
				t.Fatal(err)
			}
			out[inv.ID] = len(hist)
		}
		return out
	}
	before := lengths(a.st)
	if len(before) != n {
		t.Fatalf("%d running, want %d", len(before), n)
	}
	a.close()

	st, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	g := &gatedStore{Store: st, listing: make(chan struct{}), open: map[string]bool{}, gate: make(chan struct{}), reads: map[string]int{}}
	close(g.listing)
	b := newEngine(t, g, func(o *engine.Options) {
		o.Cluster = &engine.ClusterOptions{Coordinator: st, ReplicaID: "b", Config: fastLeases, Poll: 100 * time.Millisecond}
	})
	defer b.Close()
	waitFor(t, 20*time.Second, "b queues every invocation", func() bool { return b.RecoveryStatus().Total >= n })
	// The partitions pass to another replica, as from one that froze.
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `UPDATE partitions SET owner = 'z', epoch = epoch + 1, lease_until = now() + interval '1 hour'`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "b notices the loss", func() bool {
		s, _ := b.ClusterStatus()
		return len(s.Partitions) == 0
	})
	close(g.gate)
	if err := b.AwaitRecovery(ctx); err != nil {
		t.Fatal(err)
	}
	if s := b.RecoveryStatus(); s.Resumed != 0 || s.Skipped != s.Total {
		t.Errorf("after the loss: %+v, want nothing resumed", s)
	}
	after := lengths(st)
	if len(after) != n {
		t.Errorf("%d running after the loss, want %d", len(after), n)
	}
	for id, l := range after {
		if l != before[id] {
			t.Errorf("%s: history grew from %d to %d events after its partition was lost", id, before[id], l)
		}
	}
}

// TestRecoveryCancelReachesQueuedSubflows: cancelling a parent cancels its
// subflow even when the subflow is still waiting to be resumed.
func TestRecoveryCancelReachesQueuedSubflows(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dir := t.TempDir()
	st := openStore(t, dir)
	e := newEngine(t, st)
	parentDoc := `
document: {dsl: '1.0.0', namespace: default, name: parent, version: '1.0.0'}
do:
  - sub:
      run:
        workflow: {namespace: default, name: nap, version: '1.0.0'}
`
	for _, doc := range []string{fmt.Sprintf(napDoc, "nap", time.Hour.Milliseconds()), parentDoc} {
		if _, err := e.ApplyWorkflow(ctx, "w.yaml", []byte(doc)); err != nil {
			t.Fatal(err)
		}
	}
	parent, err := e.Invoke(ctx, "default", "parent", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var child *store.Invocation
	for child == nil {
		invs, _, err := st.ListInvocations(ctx, store.InvocationFilter{Namespace: "default", Workflow: "nap"})
		if err != nil {
			t.Fatal(err)
		}
		if len(invs) == 1 {
			hist, _ := st.History(ctx, invs[0].ID)
			for _, ev := range hist {
				if ev.Type == core.TimerScheduled {
					child = invs[0]
				}
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.Close()
	st.Close()

	st = openStore(t, dir)
	defer st.Close()
	g := &gatedStore{Store: st, listing: make(chan struct{}), open: map[string]bool{parent.ID: true}, gate: make(chan struct{}), reads: map[string]int{}}
	close(g.listing)
	e = newEngine(t, g)
	defer e.Close()
	// The child's history is gated: it is queued, or held by a worker
	// that took it; either way the cancel must reach it.
	for e.RecoveryStatus().Listing {
		time.Sleep(time.Millisecond)
	}
	// The cancel waits for a resumption in progress: the gate opens
	// meanwhile.
	cancelled := make(chan error, 1)
	go func() { cancelled <- e.CancelInvocation(ctx, parent.ID, "") }()
	for e.RecoveryStatus().Resumed == 0 {
		time.Sleep(time.Millisecond)
	}
	close(g.gate)
	if err := <-cancelled; err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{parent.ID, child.ID} {
		got, err := e.Wait(ctx, id)
		if err != nil || got.Status != core.StatusCancelled {
			g.mu.Lock()
			t.Fatalf("%s: %+v %v, want cancelled; recovery %+v, reads %v (parent %s)", id, got, err, e.RecoveryStatus(), g.reads, parent.ID)
		}
	}
}
