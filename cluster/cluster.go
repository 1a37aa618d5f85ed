// Package cluster is the ownership protocol of Baton replicas sharing one
// PostgreSQL database, as pure code in the manner of etcd's raft: it has no
// clock, no I/O and no goroutines. The caller reads the database, feeds
// what it read to a Node and carries out the Plan the Node returns.
//
// Invocations map to a fixed set of partitions (PartitionOf). Each
// partition is owned by at most one replica under a lease stored in the
// database and timed by the database's clock: every time a Node sees comes
// from a database round trip, never from the replica it runs in, so a
// replica whose clock is skewed or paused cannot extend its own lease.
// Acquiring a partition bumps its epoch, and every history append carries
// the owner's epoch as a fence checked in the append's own transaction:
// a former owner that was paused or cut off past its lease finds another
// epoch there and its write is refused. The fence, not the lease, is what
// keeps two owners from committing; the lease only decides when a
// partition may be taken over.
//
// Balance: every live replica targets ceil(P / live) partitions. A replica
// under its target acquires free or expired partitions; one over it hands
// partitions over gracefully (stop admitting work, let in-flight calls
// return, release the lease) while another live replica is short of its
// target.
package cluster

import (
	"hash/fnv"
	"slices"
	"time"
)

// Defaults of Config.
const (
	DefaultPartitions = 64
	DefaultLeaseTTL   = 10 * time.Second
	DefaultRenewEvery = 3 * time.Second
	// DefaultReplicaTTL is shorter than the lease: a replica that died
	// stops counting as live before its leases expire, so that when they
	// do the others' shares already include its partitions.
	DefaultReplicaTTL = 7 * time.Second
)

// Config is the protocol's timing and size. Partitions is fixed when the
// cluster is created (the database stores it); the durations may differ
// between replicas, though they should not.
type Config struct {
	Partitions int
	// LeaseTTL is how long an acquired or renewed lease lasts, on the
	// database's clock.
	LeaseTTL time.Duration
	// RenewEvery is how often a replica heartbeats, renews its leases and
	// looks at the partitions. It must be well under LeaseTTL.
	RenewEvery time.Duration
	// ReplicaTTL is how long a replica counts as live after its last
	// heartbeat, on the database's clock. It should exceed two RenewEvery
	// and stay under LeaseTTL.
	ReplicaTTL time.Duration
}

// OrphanAfter is how long after a lease ran out, on the database's clock,
// any replica takes the partition if the one that balance counted on did
// not: a third of a renewal period. The replicas wake when a lease runs
// out (Plan.After), so a live taker has acquired by then.
func (c Config) OrphanAfter() time.Duration { return c.RenewEvery / 3 }

// FailoverBound is the longest a killed replica's partition stays without
// an owner, on the database's clock, not counting the acquisitions' own
// round trips: the rest of its lease (at most LeaseTTL), then
// OrphanAfter, by which every live replica tries to take it.
func (c Config) FailoverBound() time.Duration {
	c = c.WithDefaults()
	return c.LeaseTTL + c.OrphanAfter()
}

// WithDefaults fills the zero fields.
func (c Config) WithDefaults() Config {
	if c.Partitions <= 0 {
		c.Partitions = DefaultPartitions
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.RenewEvery <= 0 {
		c.RenewEvery = DefaultRenewEvery
	}
	if c.ReplicaTTL <= 0 {
		c.ReplicaTTL = DefaultReplicaTTL
	}
	return c
}

// PartitionOf is the partition of an invocation id among n partitions. It
// is part of the stored format: changing it moves invocations between
// partitions of existing clusters.
func PartitionOf(id string, n int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return int(h.Sum32() % uint32(n))
}

// Lease is a partition held by a replica: the epoch its acquisition set
// and when it ends on the database's clock.
type Lease struct {
	Partition int
	Epoch     int64
	Until     time.Time
}

// Row is a partition's row as read from the database. Owner is "" when
// the partition was never acquired or was released.
type Row struct {
	Partition int
	Owner     string
	Epoch     int64
	Until     time.Time
}

// held reports whether the row's lease is in force at now.
func (r Row) held(now time.Time) bool { return r.Owner != "" && r.Until.After(now) }

// Snapshot is what one round trip to the database returns, after it
// recorded this replica's heartbeat and renewed its leases (see
// Node.Leases): the database's time, the live replicas that take
// partitions (draining ones excluded), and every partition's row.
type Snapshot struct {
	Now  time.Time
	Live []string
	Rows []Row
}

// Plan is what a Node asks its caller to do after a Tick.
type Plan struct {
	// Acquire lists partitions to take, as observed: the acquisition must
	// be conditional on the row still having the observed epoch and being
	// free or expired. Report each outcome with Acquired.
	Acquire []Row
	// Stop lists partitions this replica no longer owns (lease lost,
	// taken over): their work must stop at once, without writing; writes
	// would be refused anyway.
	Stop []int
	// Handover lists partitions to give up gracefully: admit no new work
	// there, let in-flight calls return and record their results, then
	// call Stopped and release the lease it returns.
	Handover []int
	// After, when not zero, is how long after the snapshot (on the
	// database's clock) the earliest lease of another replica runs out,
	// or an expired one becomes an orphan (Config.OrphanAfter): ticking
	// again then, rather than a renewal period later, is what keeps
	// failover close to the lease.
	After time.Duration
}

// Node is one replica's side of the protocol. It is not safe for
// concurrent use.
type Node struct {
	id  string
	cfg Config
	// now is the latest database time seen.
	now   time.Time
	owned map[int]Lease
	// handing marks owned partitions being handed over.
	handing map[int]bool
	// leaving is set by Leave: hand everything over, take nothing.
	leaving bool
}

// NewNode returns the protocol state of replica id, owning nothing. An id
// names one run of a replica: a restarted process takes a new one, so it
// never mistakes a lease of its former self for its own.
func NewNode(id string, cfg Config) *Node {
	return &Node{id: id, cfg: cfg.WithDefaults(), owned: map[int]Lease{}, handing: map[int]bool{}}
}

// ID is the replica's id.
func (n *Node) ID() string { return n.id }

// Config is the configuration the node runs with.
func (n *Node) Config() Config { return n.cfg }

// Leases are the leases to renew in the next round trip, sorted by
// partition: renewal must be conditional on owner and epoch, and on the
// lease not having expired.
func (n *Node) Leases() []Lease {
	out := make([]Lease, 0, len(n.owned))
	for _, l := range n.owned {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b Lease) int { return a.Partition - b.Partition })
	return out
}

// Fence returns the epoch to fence appends to partition p with, and
// whether this replica believes it owns p. A belief is all it is: the
// database has the last word.
func (n *Node) Fence(p int) (int64, bool) {
	l, ok := n.owned[p]
	return l.Epoch, ok
}

// Accepting reports whether new work of partition p may start here: p is
// owned and not being handed over.
func (n *Node) Accepting(p int) bool {
	_, ok := n.owned[p]
	return ok && !n.handing[p]
}

// Owned returns the owned partitions, sorted.
func (n *Node) Owned() []int {
	out := make([]int, 0, len(n.owned))
	for p := range n.owned {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// Leave starts a graceful departure: the next Tick hands every partition
// over and nothing more is acquired. The caller should also mark the
// replica draining in the database so that the others stop counting it.
func (n *Node) Leave() { n.leaving = true }

// Leaving reports whether Leave was called.
func (n *Node) Leaving() bool { return n.leaving }

// Left reports whether a departure is complete: nothing is owned.
func (n *Node) Left() bool { return n.leaving && len(n.owned) == 0 }

// Tick takes in a snapshot and plans the next moves.
func (n *Node) Tick(s Snapshot) Plan {
	if s.Now.After(n.now) {
		n.now = s.Now
	}
	rows := make(map[int]Row, len(s.Rows))
	for _, r := range s.Rows {
		rows[r.Partition] = r
	}
	var plan Plan
	// What the database no longer confirms is lost, whatever this replica
	// believed.
	for _, p := range n.Owned() {
		l := n.owned[p]
		r, ok := rows[p]
		if !ok || r.Owner != n.id || r.Epoch != l.Epoch || !r.held(s.Now) {
			n.drop(p)
			plan.Stop = append(plan.Stop, p)
			continue
		}
		l.Until = r.Until
		n.owned[p] = l
	}
	if n.leaving {
		for _, p := range n.Owned() {
			if !n.handing[p] {
				n.handing[p] = true
				plan.Handover = append(plan.Handover, p)
			}
		}
		return plan
	}

	live := s.Live
	if !slices.Contains(live, n.id) {
		live = append(slices.Clip(live), n.id)
	}
	target := (n.cfg.Partitions + len(live) - 1) / len(live)
	// How many partitions each live replica holds, and which are free.
	counts := make(map[string]int, len(live))
	for _, id := range live {
		counts[id] = 0
	}
	var free, orphans []Row
	wakeAt := func(d time.Duration) {
		if d > 0 && (plan.After == 0 || d < plan.After) {
			plan.After = d
		}
	}
	orphanAfter := n.cfg.OrphanAfter()
	for _, r := range s.Rows {
		if r.held(s.Now) {
			if _, ok := counts[r.Owner]; ok {
				counts[r.Owner]++
			}
			// Wake when another replica's lease runs out, whether or not
			// its heartbeat has aged yet: a live owner renews long before
			// (its lease ends later than the next renewal period, which
			// is when the caller would tick anyway), a dead one does not.
			if r.Owner != n.id {
				wakeAt(r.Until.Sub(s.Now))
			}
			continue
		}
		if _, mine := n.owned[r.Partition]; mine {
			continue
		}
		free = append(free, r)
		if r.Owner != "" {
			if expired := s.Now.Sub(r.Until); expired >= orphanAfter {
				orphans = append(orphans, r)
			} else {
				wakeAt(orphanAfter - expired)
			}
		}
	}
	keeping := len(n.owned) - len(n.handing)
	counts[n.id] = keeping
	// short is how many partitions the other live replicas lack.
	short := 0
	for id, c := range counts {
		if id != n.id && c < target {
			short += target - c
		}
	}
	if len(orphans) > 0 {
		// Leases that ran out a while ago and that no replica took: the
		// replicas short of partitions that balance counted on to take
		// them are dead too (their heartbeats have not aged yet). Failover
		// comes before balance: every replica tries them all, each in its
		// own rendezvous order, the database lets one win each, and the
		// surplus is handed over later.
		slices.SortFunc(orphans, func(a, b Row) int { return n.compare(b.Partition, a.Partition) })
		plan.Acquire = orphans
		return plan
	}
	switch {
	case keeping < target || len(free) > short+max(target-keeping, 0):
		// Up to the target, and beyond it for free partitions nobody
		// live is short of: those of a replica that died but still
		// counts as live until its heartbeat ages. Taking them at once
		// is what bounds failover by the lease; the surplus is handed
		// over when the dead replica stops counting or a new one joins.
		want := max(target-keeping, 0)
		if extra := len(free) - short - want; extra > 0 {
			want += (extra + len(live) - 1) / len(live)
		}
		// Replicas that want the same free partitions each prefer other
		// ones (rendezvous order), so few acquisitions collide.
		slices.SortFunc(free, func(a, b Row) int { return n.compare(b.Partition, a.Partition) })
		for _, r := range free[:min(want, len(free))] {
			plan.Acquire = append(plan.Acquire, r)
		}
	case keeping > target:
		// Give up only what another live replica is short of and the
		// free partitions do not cover: a replica that died but still
		// counts as live until its heartbeat ages must not make the
		// others shed partitions nobody takes.
		give := min(keeping-target, short-len(free))
		if give <= 0 {
			break
		}
		mine := make([]int, 0, keeping)
		for p := range n.owned {
			if !n.handing[p] {
				mine = append(mine, p)
			}
		}
		// Hand over the partitions this replica prefers least.
		slices.SortFunc(mine, n.compare)
		for _, p := range mine[:give] {
			n.handing[p] = true
			plan.Handover = append(plan.Handover, p)
		}
	}
	return plan
}

// compare orders partitions by this replica's rendezvous score.
func (n *Node) compare(a, b int) int {
	sa, sb := n.score(a), n.score(b)
	switch {
	case sa < sb:
		return -1
	case sa > sb:
		return 1
	}
	return a - b
}

func (n *Node) score(p int) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(n.id))
	_, _ = h.Write([]byte{0, byte(p >> 24), byte(p >> 16), byte(p >> 8), byte(p)})
	return h.Sum64()
}

// Acquired records the outcome of an acquisition the plan asked for: ok
// with the lease the database granted, or not ok when another replica
// was faster. It reports whether the caller should start the partition's
// work (resume its running invocations under the lease's epoch).
func (n *Node) Acquired(l Lease, ok bool) bool {
	if !ok {
		return false
	}
	n.owned[l.Partition] = l
	delete(n.handing, l.Partition)
	return true
}

// Lost records that the database refused a write fenced by partition p's
// epoch: another replica owns p now. It reports whether p was owned, in
// which case the caller stops p's work without writing.
func (n *Node) Lost(p int, epoch int64) bool {
	l, ok := n.owned[p]
	if !ok || l.Epoch != epoch {
		return false
	}
	n.drop(p)
	return true
}

// Stopped records that the work of a partition being handed over has
// stopped and its in-flight results are recorded. It returns the lease to
// release, and false when there is none (the partition was lost meanwhile,
// or was not being handed over).
func (n *Node) Stopped(p int) (Lease, bool) {
	if !n.handing[p] {
		return Lease{}, false
	}
	l, ok := n.owned[p]
	n.drop(p)
	return l, ok
}

func (n *Node) drop(p int) {
	delete(n.owned, p)
	delete(n.handing, p)
}
