package cluster_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/batonflow/baton/cluster"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// table is the partitions table in its simplest form, for driving Nodes
// by hand: every statement succeeds at once at time now.
type table struct {
	now  time.Time
	rows []cluster.Row
	live []string
}

func newTable(p int) *table {
	tb := &table{now: t0}
	for i := range p {
		tb.rows = append(tb.rows, cluster.Row{Partition: i})
	}
	return tb
}

func (tb *table) snapshot() cluster.Snapshot {
	return cluster.Snapshot{Now: tb.now, Live: slices.Clone(tb.live), Rows: slices.Clone(tb.rows)}
}

// round lets each node tick once and carries out its plan, handovers
// included (nothing runs, so they complete at once).
func (tb *table) round(nodes ...*cluster.Node) {
	for _, n := range nodes {
		for _, l := range n.Leases() {
			if r := &tb.rows[l.Partition]; r.Owner == n.ID() && r.Epoch == l.Epoch && r.Until.After(tb.now) {
				r.Until = tb.now.Add(10 * time.Second)
			}
		}
		plan := n.Tick(tb.snapshot())
		for _, p := range plan.Handover {
			if l, ok := n.Stopped(p); ok {
				if r := &tb.rows[p]; r.Owner == n.ID() && r.Epoch == l.Epoch {
					r.Owner, r.Until = "", tb.now
				}
			}
		}
		for _, want := range plan.Acquire {
			r := &tb.rows[want.Partition]
			ok := r.Epoch == want.Epoch && (r.Owner == "" || !r.Until.After(tb.now))
			if ok {
				r.Owner, r.Epoch, r.Until = n.ID(), r.Epoch+1, tb.now.Add(10*time.Second)
			}
			n.Acquired(cluster.Lease{Partition: r.Partition, Epoch: r.Epoch, Until: r.Until}, ok)
		}
	}
	tb.now = tb.now.Add(3 * time.Second)
}

func TestNodesBalanceAsReplicasJoinAndLeave(t *testing.T) {
	tb := newTable(64)
	cfg := cluster.Config{Partitions: 64}
	a := cluster.NewNode("a", cfg)
	tb.live = []string{"a"}
	tb.round(a)
	if got := len(a.Owned()); got != 64 {
		t.Fatalf("a single replica owns %d of 64 partitions", got)
	}
	b, c := cluster.NewNode("b", cfg), cluster.NewNode("c", cfg)
	tb.live = []string{"a", "b", "c"}
	for range 4 {
		tb.round(a, b, c)
	}
	counts := []int{len(a.Owned()), len(b.Owned()), len(c.Owned())}
	for i, n := range counts {
		if n > 22 || n < 20 {
			t.Fatalf("three replicas own %v partitions; each should hold 20 to 22 (replica %d)", counts, i)
		}
	}
	if counts[0]+counts[1]+counts[2] != 64 {
		t.Fatalf("owned %v: some partition has no owner", counts)
	}
	// c leaves gracefully: it hands everything over, the others take it.
	c.Leave()
	tb.live = []string{"a", "b"}
	for range 3 {
		tb.round(a, b, c)
	}
	if !c.Left() || len(a.Owned())+len(b.Owned()) != 64 || len(a.Owned()) != 32 {
		t.Fatalf("after c left: a %d, b %d, c %d partitions", len(a.Owned()), len(b.Owned()), len(c.Owned()))
	}
}

func TestNodeTakesOverADeadPeersPartitions(t *testing.T) {
	tb := newTable(8)
	cfg := cluster.Config{Partitions: 8}
	a, b := cluster.NewNode("a", cfg), cluster.NewNode("b", cfg)
	tb.live = []string{"a", "b"}
	tb.round(a, b)
	tb.round(a, b)
	// b dies: it stops renewing, and its heartbeat ages out of the live
	// replicas before its leases expire. a takes b's partitions as soon
	// as they do, and not before.
	tb.live = []string{"a"}
	tb.round(a)
	if got := len(a.Owned()); got != 4 {
		t.Fatalf("a owns %v while b's leases are in force; want its own 4", a.Owned())
	}
	for range 3 {
		tb.round(a)
	}
	if got := len(a.Owned()); got != 8 {
		t.Fatalf("a owns %v after b's leases expired; want all 8", a.Owned())
	}
}

func TestNodeStopsWhatTheDatabaseNoLongerConfirms(t *testing.T) {
	tb := newTable(4)
	a := cluster.NewNode("a", cluster.Config{Partitions: 4})
	tb.live = []string{"a"}
	tb.round(a)
	epoch, ok := a.Fence(2)
	if !ok || epoch != 1 {
		t.Fatalf("fence of partition 2 = %d, %v; want epoch 1", epoch, ok)
	}
	// Another replica took partition 2 (a was paused past its lease).
	tb.rows[2] = cluster.Row{Partition: 2, Owner: "z", Epoch: 2, Until: tb.now.Add(10 * time.Second)}
	// And partition 3's lease expired.
	tb.rows[3].Until = tb.now
	plan := a.Tick(tb.snapshot())
	if !slices.Equal(plan.Stop, []int{2, 3}) {
		t.Fatalf("stop %v; want [2 3]", plan.Stop)
	}
	if _, ok := a.Fence(2); ok {
		t.Fatal("a still fences partition 2 after it was taken over")
	}
	if a.Lost(0, 7) {
		t.Fatal("a refusal under another epoch dropped partition 0")
	}
	if !a.Lost(0, 1) || a.Accepting(0) {
		t.Fatal("a refusal under the owned epoch did not drop partition 0")
	}
}

func TestPartitionOfIsStableAndSpread(t *testing.T) {
	// The mapping is part of the stored format.
	if got := cluster.PartitionOf("0190b6a2-7c1e-7d4a-9b1f-3c2d4e5f6a7b", 64); got != cluster.PartitionOf("0190b6a2-7c1e-7d4a-9b1f-3c2d4e5f6a7b", 64) {
		t.Fatal("PartitionOf is not deterministic")
	}
	counts := make([]int, 64)
	for i := range 64000 {
		counts[cluster.PartitionOf(fmt.Sprintf("inv-%d", i), 64)]++
	}
	for p, c := range counts {
		if c < 800 || c > 1200 {
			t.Fatalf("partition %d got %d of 64000 ids; the hash is badly spread", p, c)
		}
	}
}

// A replica that joined and died at once still counts as live until its
// heartbeat ages, and balance counts on it to take its share of a dead
// peer's partitions. Failover must not wait for that: once the leases
// have been out for OrphanAfter, the survivor takes them all.
func TestNodeTakesOrphansADeadJoinerWasCountedOn(t *testing.T) {
	tb := newTable(8)
	cfg := cluster.Config{Partitions: 8}
	a, b := cluster.NewNode("a", cfg), cluster.NewNode("b", cfg)
	tb.live = []string{"a", "b"}
	tb.round(a, b)
	tb.round(a, b)
	// b dies; c joins and dies before its first acquisition.
	tb.live = []string{"a", "c"}
	var until time.Time
	for _, r := range tb.rows {
		if r.Owner == "b" {
			until = r.Until
		}
	}
	for i := range tb.rows {
		if tb.rows[i].Owner == "a" { // a renewed since
			tb.rows[i].Until = until.Add(5 * time.Second)
		}
	}
	tb.now = until
	plan := a.Tick(tb.snapshot())
	if len(plan.Acquire) != 0 {
		t.Fatalf("a acquires %v the moment b's leases run out; c is short and counted on", plan.Acquire)
	}
	if want := cfg.WithDefaults().OrphanAfter(); plan.After != want {
		t.Fatalf("a plans to wake after %v; want %v, when b's partitions become orphans", plan.After, want)
	}
	tb.now = until.Add(plan.After)
	tb.round(a)
	if got := len(a.Owned()); got != 8 {
		t.Fatalf("a owns %v once b's partitions were orphans; want all 8", a.Owned())
	}
	if bound := cfg.FailoverBound(); bound != 10*time.Second+time.Second {
		t.Fatalf("failover bound %v; want the lease plus a third of the renewal period", bound)
	}
}
