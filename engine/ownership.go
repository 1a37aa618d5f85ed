package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/batonflow/baton/cluster"
	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/store"
)

// ClusterOptions make an engine one replica among several sharing a store
// that coordinates them (store/postgres). The engine then runs only the
// invocations of the partitions it owns (see package cluster), fences
// every history write with the partition's epoch, and hands the others'
// work to them through the store.
type ClusterOptions struct {
	Coordinator store.Coordinator
	// ReplicaID names this run of the replica; empty means
	// host-pid-random. A restarted process must take a new one.
	ReplicaID string
	// Config is the lease timing; the partition count comes from the
	// store.
	Config cluster.Config
	// HandoverGrace bounds how long a partition being handed over waits
	// for its in-flight calls to return (DefaultHandoverGrace when zero);
	// calls still running then are sent again by the next owner.
	HandoverGrace time.Duration
	// Poll is how often an owner looks for work in its partitions that no
	// notification announced (DefaultClusterPoll when zero).
	Poll time.Duration
}

// Defaults of ClusterOptions.
const (
	DefaultHandoverGrace = 5 * time.Second
	DefaultClusterPoll   = time.Second
	// notifyDebounce gathers the partitions of starts made within it into
	// one notification: every NOTIFY serialises commits on the server.
	notifyDebounce = 5 * time.Millisecond
)

// ClusterStatus describes a replica's part in the cluster.
type ClusterStatus struct {
	Replica string `json:"replica"`
	// Partitions are the partitions it owns.
	Partitions []int `json:"partitions"`
	// FencedWrites counts history writes the store refused because the
	// partition had passed to another replica (a stale epoch): each is a
	// write that did not happen, never one that committed.
	FencedWrites int64 `json:"fencedWrites"`
	// Handovers counts partitions handed over gracefully.
	Handovers int64 `json:"handovers"`
	// Renewals counts heartbeats that renewed the leases; RenewalFailures
	// those that did not reach the database.
	Renewals        int64 `json:"renewals"`
	RenewalFailures int64 `json:"renewalFailures"`
	// Acquisitions counts partitions acquired; Takeovers those among them
	// whose former owner's lease had run out (a failover, not a release).
	Acquisitions int64 `json:"acquisitions"`
	Takeovers    int64 `json:"takeovers"`
	// Losses counts partitions lost without a handover: a renewal that
	// did not take, or a refused write.
	Losses int64 `json:"losses"`
	// Sources are the schedules, schedule.on workflows and triggers this
	// replica runs ("kind key"): those whose partition it owns.
	Sources []string `json:"sources,omitempty"`
}

type clusterState struct {
	e     *Engine
	co    store.Coordinator
	id    string
	cfg   cluster.Config
	grace time.Duration
	poll  time.Duration

	mu   sync.Mutex
	node *cluster.Node
	// pending are partitions to scan, gathered from notifications.
	pending map[int]bool
	// toNotify are partitions with new work to announce, debounced.
	toNotify map[int]bool
	notifyAt *time.Timer
	left     chan struct{}
	leftOnce sync.Once

	wake     chan struct{} // tick now
	scanWake chan struct{}
	handed   chan int // partitions whose handover has finished
	done     chan struct{}

	// sources are the start sources run here by kind (see ownedSources);
	// guarded by mu.
	sources map[string][]string

	fencedWrites atomic.Int64
	handovers    atomic.Int64
	// live is the number of live replicas at the last heartbeat, among
	// which the namespaces' QoS quotas are split.
	live            atomic.Int64
	renewals        atomic.Int64
	renewalFailures atomic.Int64
	acquisitions    atomic.Int64
	takeovers       atomic.Int64
	losses          atomic.Int64
	joined          atomic.Bool
	// renewedAt is when the last successful tick was sent, on this
	// process's monotonic clock (nanoseconds since started): every lease
	// it renewed lasts at least LeaseTTL from then.
	started   time.Time
	renewedAt atomic.Int64
}

func newClusterState(e *Engine, opts ClusterOptions) (*clusterState, error) {
	if opts.Coordinator == nil {
		return nil, errors.New("engine: a cluster needs a coordinating store")
	}
	id := opts.ReplicaID
	if id == "" {
		host, _ := os.Hostname()
		var b [4]byte
		_, _ = rand.Read(b[:])
		id = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	}
	cfg := opts.Config
	cfg.Partitions = opts.Coordinator.Partitions()
	cfg = cfg.WithDefaults()
	if cfg.RenewEvery >= cfg.LeaseTTL {
		return nil, fmt.Errorf("engine: leases renewed every %v would expire first (TTL %v)", cfg.RenewEvery, cfg.LeaseTTL)
	}
	grace := opts.HandoverGrace
	if grace <= 0 {
		grace = DefaultHandoverGrace
	}
	poll := opts.Poll
	if poll <= 0 {
		poll = DefaultClusterPoll
	}
	return &clusterState{
		e: e, co: opts.Coordinator, id: id, cfg: cfg, grace: grace, poll: poll,
		node:     cluster.NewNode(id, cfg),
		pending:  map[int]bool{},
		toNotify: map[int]bool{},
		sources:  map[string][]string{},
		left:     make(chan struct{}),
		wake:     make(chan struct{}, 1),
		scanWake: make(chan struct{}, 1),
		handed:   make(chan int, cfg.Partitions),
		done:     make(chan struct{}),
		started:  time.Now(),
	}, nil
}

func (e *Engine) startCluster() {
	go e.cluster.run(e.ctx)
	go e.sched.run(e.ctx)
	if e.starter != nil {
		go e.starter.run(e.ctx)
	}
	e.log.Info("cluster replica started", "replica", e.cluster.id, "partitions", e.cluster.cfg.Partitions,
		"leaseTTL", e.cluster.cfg.LeaseTTL, "renewEvery", e.cluster.cfg.RenewEvery)
}

// ClusterStatus reports the replica's partitions and counters; ok is false
// when the engine is not a cluster replica.
func (e *Engine) ClusterStatus() (ClusterStatus, bool) {
	c := e.cluster
	if c == nil {
		return ClusterStatus{}, false
	}
	c.mu.Lock()
	owned := c.node.Owned()
	sources := c.sourcesRun()
	c.mu.Unlock()
	return ClusterStatus{
		Replica: c.id, Partitions: owned, Sources: sources,
		FencedWrites: c.fencedWrites.Load(), Handovers: c.handovers.Load(),
		Renewals: c.renewals.Load(), RenewalFailures: c.renewalFailures.Load(),
		Acquisitions: c.acquisitions.Load(), Takeovers: c.takeovers.Load(), Losses: c.losses.Load(),
	}, true
}

// LeaveCluster hands every partition this replica owns over to the
// others (in-flight calls return and are recorded first, within the
// handover grace) and removes the replica from the cluster. It returns
// when that is done or ctx ends; the engine keeps serving API calls,
// which it forwards to the partitions' new owners. Without a cluster it
// does nothing.
func (e *Engine) LeaveCluster(ctx context.Context) error {
	c := e.cluster
	if c == nil {
		return nil
	}
	c.mu.Lock()
	c.node.Leave()
	c.mu.Unlock()
	c.kick(c.wake)
	select {
	case <-c.left:
	case <-ctx.Done():
		return fmt.Errorf("replica %s: handing partitions over: %w", c.id, ctx.Err())
	case <-c.done:
		return fmt.Errorf("replica %s: the engine stopped before its partitions were handed over", c.id)
	}
	return c.co.LeaveCluster(ctx, c.id)
}

func (c *clusterState) kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (c *clusterState) run(ctx context.Context) {
	defer close(c.done)
	listening := make(chan struct{})
	go func() {
		defer close(listening)
		_ = c.co.ListenCluster(ctx, c.heard)
	}()
	defer func() { <-listening }()
	tick := time.NewTimer(0)
	defer tick.Stop()
	poll := time.NewTicker(c.poll)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			tick.Reset(c.tick(ctx))
		case <-c.wake:
			next := c.tick(ctx)
			if !tick.Stop() {
				select {
				case <-tick.C:
				default:
				}
			}
			tick.Reset(next)
		case <-poll.C:
			c.mu.Lock()
			var parts []int
			for _, p := range c.node.Owned() {
				if c.node.Accepting(p) {
					parts = append(parts, p)
				}
			}
			c.mu.Unlock()
			c.scan(ctx, parts)
		case <-c.scanWake:
			c.mu.Lock()
			var parts []int
			for p := range c.pending {
				parts = append(parts, p)
			}
			clear(c.pending)
			c.mu.Unlock()
			slices.Sort(parts)
			c.scan(ctx, parts)
		case p := <-c.handed:
			c.release(ctx, p)
		}
	}
}

// heard takes in a notification: partitions with new work, or nil to look
// at everything again.
func (c *clusterState) heard(parts []int) {
	if parts == nil {
		c.kick(c.wake)
		return
	}
	c.mu.Lock()
	for _, p := range parts {
		if c.node.Accepting(p) {
			c.pending[p] = true
		}
	}
	waiting := len(c.pending) > 0
	c.mu.Unlock()
	if waiting {
		c.kick(c.scanWake)
	}
}

// tick runs one round of the protocol and returns when the next is due.
func (c *clusterState) tick(ctx context.Context) time.Duration {
	c.mu.Lock()
	leases, leaving := c.node.Leases(), c.node.Leaving()
	c.mu.Unlock()
	sent := time.Since(c.started)
	snap, err := c.co.ClusterTick(ctx, c.id, leaving, leases, c.cfg)
	if err == nil {
		c.renewedAt.Store(int64(sent))
		c.renewals.Add(1)
		c.joined.Store(true)
	}
	if err != nil {
		if ctx.Err() == nil {
			c.renewalFailures.Add(1)
			c.e.log.Warn("cluster: heartbeat failed; fenced writes keep the partitions safe meanwhile", "replica", c.id, "err", err)
		}
		return c.cfg.RenewEvery
	}
	c.live.Store(int64(len(snap.Live)))
	c.mu.Lock()
	plan := c.node.Tick(snap)
	c.mu.Unlock()
	c.losses.Add(int64(len(plan.Stop)))
	for _, p := range plan.Stop {
		c.e.log.Warn("cluster: partition lost", "replica", c.id, "partition", p)
		c.e.stopPartition(p)
	}
	if len(plan.Stop)+len(plan.Handover) > 0 {
		c.e.sourcesMoved()
	}
	for _, p := range plan.Handover {
		c.e.calls.Add(1)
		go func() {
			defer c.e.calls.Done()
			c.handover(ctx, p)
		}()
	}
	var acquired []int
	next := c.cfg.RenewEvery
	for _, row := range plan.Acquire {
		l, ok, err := c.co.AcquirePartition(ctx, c.id, row, c.cfg.LeaseTTL)
		if err != nil {
			// A lock timeout or a lost connection: try again soon rather
			// than a renewal period later, the partition may have no owner.
			next = min(next, c.cfg.OrphanAfter())
			if ctx.Err() == nil {
				c.e.log.Warn("cluster: cannot acquire partition", "replica", c.id, "partition", row.Partition, "err", err)
			}
			ok = false
		}
		c.mu.Lock()
		start := c.node.Acquired(l, ok)
		c.mu.Unlock()
		if start {
			acquired = append(acquired, l.Partition)
			c.acquisitions.Add(1)
			if row.Owner != "" && row.Owner != c.id {
				c.takeovers.Add(1)
			}
		}
	}
	if len(acquired) > 0 {
		c.e.log.Info("cluster: partitions acquired", "replica", c.id, "partitions", acquired)
		c.scan(ctx, acquired)
		c.e.sourcesMoved()
	}
	c.checkLeft()
	// A dead replica's lease is taken the moment it runs out. After counts
	// from the snapshot, which was read before the acquisitions and scans
	// above took their time.
	if plan.After > 0 && plan.After+10*time.Millisecond < next {
		return max(plan.After+10*time.Millisecond-(time.Since(c.started)-sent), 0)
	}
	return next
}

func (c *clusterState) checkLeft() {
	c.mu.Lock()
	left := c.node.Left()
	c.mu.Unlock()
	if left {
		c.leftOnce.Do(func() { close(c.left) })
	}
}

// scan queues for resumption the running invocations of owned partitions
// that are not live here (new starts from other replicas, or everything
// after an acquisition, a takeover included) and applies the cancellations
// requested for them. Resumes run off the loop, which must keep renewing
// the leases, on the engine's one resume path (see recovery).
func (c *clusterState) scan(ctx context.Context, parts []int) {
	if len(parts) == 0 {
		return
	}
	invs, err := c.co.RunningInPartitions(ctx, parts)
	if err != nil {
		if ctx.Err() == nil {
			c.e.log.Warn("cluster: cannot list the partitions' invocations", "replica", c.id, "err", err)
		}
		return
	}
	var todo []*resumeJob
	c.mu.Lock()
	for _, inv := range invs {
		p := cluster.PartitionOf(inv.ID, c.cfg.Partitions)
		if !c.node.Accepting(p) {
			continue
		}
		epoch, _ := c.node.Fence(p)
		todo = append(todo, &resumeJob{inv: inv, fence: &store.Fence{Partition: p, Epoch: epoch, Owner: c.id}})
	}
	c.mu.Unlock()
	if n := c.e.recovery.add(todo); n > 100 {
		c.e.log.Info("cluster: resuming the partitions' invocations in the background", "replica", c.id, "count", n)
	}
	cancels, err := c.co.CancelRequests(ctx, parts)
	if err != nil && ctx.Err() == nil {
		c.e.log.Warn("cluster: cannot read cancel requests", "replica", c.id, "err", err)
	}
	if len(cancels) == 0 {
		return
	}
	c.e.calls.Add(1)
	go func() {
		defer c.e.calls.Done()
		for _, req := range cancels {
			c.applyCancel(ctx, req)
		}
	}()
}

// current reports whether a fence is still this replica's hold on its
// partition: owned under the same epoch and accepting work.
func (c *clusterState) current(f store.Fence) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	epoch, owned := c.node.Fence(f.Partition)
	return owned && epoch == f.Epoch && c.node.Accepting(f.Partition)
}

func (c *clusterState) applyCancel(ctx context.Context, req store.CancelRequest) {
	id := req.Invocation
	// One waiting in the queue is resumed now, to take the request in.
	c.e.recovery.ensure(ctx, id)
	c.e.mu.Lock()
	in := c.e.live[id]
	c.e.mu.Unlock()
	if in == nil {
		inv, err := c.e.store.GetInvocation(ctx, id)
		if err != nil || inv.Status == core.StatusRunning {
			return // not resumed yet: the next scan applies it
		}
	} else if in.cancel(req.Reason) {
		// As a local cancel does, the subflows running here stop too.
		c.e.cancelSubtree(id)
	} else {
		return
	}
	if err := c.co.DoneCancel(ctx, id); err != nil && ctx.Err() == nil {
		c.e.log.Warn("cluster: cannot clear a cancel request", "invocation", id, "err", err)
	}
}

// leaseFresh reports whether the leases renewed by the last successful
// tick are surely still in force, by this process's monotonic clock with
// a margin of one renewal period. A replica that was frozen or cut off
// past that starts no new calls: the database would refuse their results,
// and another replica is likely making them already. Only durations are
// measured here, so a skewed wall clock does not matter.
func (c *clusterState) leaseFresh() bool {
	since := time.Since(c.started) - time.Duration(c.renewedAt.Load())
	return since < c.cfg.LeaseTTL-c.cfg.RenewEvery
}

// unload stops an instance that cannot go on here for now; if its
// partition is still owned, the next scan resumes it from its history.
func (c *clusterState) unload(in *instance) {
	c.e.log.Debug("cluster: leases not renewed in time; the invocation is unloaded until they are", "replica", c.id, "invocation", in.inv.ID)
	in.stop()
	in.forget()
}

// fenceFor tells whether an invocation's partition is owned here and
// accepting work, and its fence when it is.
func (c *clusterState) fenceFor(id string) (*store.Fence, bool) {
	p := cluster.PartitionOf(id, c.cfg.Partitions)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.node.Accepting(p) {
		return nil, false
	}
	epoch, _ := c.node.Fence(p)
	return &store.Fence{Partition: p, Epoch: epoch, Owner: c.id}, true
}

// startOnceElsewhere records an invocation (under its idempotency key
// when once is set) without running it, and tells its partition's owner,
// which runs it: another replica, or this one when its scan finds it. A
// key already held returns the record holding it and starts nothing.
func (c *clusterState) startOnceElsewhere(ctx context.Context, inv *store.Invocation, started core.Event,
	once *store.IdempotencyRecord) (*store.Invocation, *store.IdempotencyRecord, error) {
	held, err := c.e.create(ctx, inv, started, once)
	if err != nil || held != nil {
		return nil, held, err
	}
	c.announce(cluster.PartitionOf(inv.ID, c.cfg.Partitions))
	snapshot := *inv
	return &snapshot, nil, nil
}

func (c *clusterState) requestCancel(ctx context.Context, id, reason string) error {
	if err := c.co.RequestCancel(ctx, id, reason); err != nil {
		return err
	}
	c.announce(cluster.PartitionOf(id, c.cfg.Partitions))
	return nil
}

// announce notifies the owner of a partition that work waits there,
// gathering the announcements of a few milliseconds into one.
func (c *clusterState) announce(p int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.toNotify[p] = true
	if c.notifyAt != nil {
		return
	}
	c.notifyAt = time.AfterFunc(notifyDebounce, func() {
		c.mu.Lock()
		parts := make([]int, 0, len(c.toNotify))
		for p := range c.toNotify {
			parts = append(parts, p)
		}
		clear(c.toNotify)
		c.notifyAt = nil
		c.mu.Unlock()
		slices.Sort(parts)
		// The owner's poll finds the work anyway if this is lost.
		if err := c.co.NotifyPartitions(context.Background(), parts); err != nil {
			c.e.log.Warn("cluster: cannot notify partitions", "partitions", parts, "err", err)
		}
	})
}

// fenced takes in a write the store refused: the partition has a new
// owner. Its work stops here.
func (c *clusterState) fenced(f *store.Fence) {
	if f == nil {
		return
	}
	c.fencedWrites.Add(1)
	c.e.log.Warn("cluster: write refused, the partition belongs to another replica now (stale epoch)",
		"replica", c.id, "partition", f.Partition, "epoch", f.Epoch)
	c.mu.Lock()
	lost := c.node.Lost(f.Partition, f.Epoch)
	c.mu.Unlock()
	if lost {
		c.losses.Add(1)
		c.e.stopPartition(f.Partition)
		c.e.sourcesMoved()
	}
}

// handover gives a partition up gracefully: no new calls start, those in
// flight return and are recorded (within the grace), then its instances
// stop and the lease is released.
func (c *clusterState) handover(ctx context.Context, p int) {
	began := time.Now()
	ins := c.e.partitionInstances(p)
	for _, in := range ins {
		in.mu.Lock()
		in.parking = true
		in.mu.Unlock()
	}
	deadline := time.Now().Add(c.grace)
	for _, in := range ins {
		for !in.idle() && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(2 * time.Millisecond)
		}
	}
	c.e.stopPartition(p)
	c.e.log.Info("cluster: partition handed over", "replica", c.id, "partition", p,
		"invocations", len(ins), "took", time.Since(began))
	c.handed <- p
}

func (c *clusterState) release(ctx context.Context, p int) {
	c.mu.Lock()
	l, ok := c.node.Stopped(p)
	c.mu.Unlock()
	if ok {
		if err := c.co.ReleasePartition(ctx, c.id, l); err != nil {
			// The lease runs out by itself.
			c.e.log.Warn("cluster: cannot release partition", "partition", p, "err", err)
		} else {
			c.handovers.Add(1)
		}
	}
	c.checkLeft()
}

// partitionInstances returns the live instances of a partition.
func (e *Engine) partitionInstances(p int) []*instance {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []*instance
	for _, in := range e.live {
		if in.fence != nil && in.fence.Partition == p {
			out = append(out, in)
		}
	}
	return out
}

// stopPartition stops a partition's instances without writing anything:
// their history is durable, and the next owner replays it.
func (e *Engine) stopPartition(p int) {
	e.recovery.dropPartition(p)
	for _, in := range e.partitionInstances(p) {
		in.stop()
		in.forget()
		e.invocationEnded(in.inv.ID)
	}
}

// idle reports whether nothing of the instance is in flight: no call, no
// batch being written.
func (in *instance) idle() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.calls) == 0 && !in.draining && len(in.inbox) == 0
}

// createFenced stores a new invocation and its first event under the
// instance's fence.
func (e *Engine) createFenced(ctx context.Context, in *instance, started core.Event) error {
	return e.cluster.co.CreateInvocationFenced(ctx, *in.fence, &in.inv, []core.Event{started}, true)
}

// appendHistory appends to an instance's history, under its fence when it
// has one.
func (e *Engine) appendHistory(in *instance, batch []core.Event, wait bool) error {
	if in.fence != nil {
		return e.cluster.co.AppendFenced(e.ctx, *in.fence, in.inv.ID, batch, wait)
	}
	return e.store.Append(e.ctx, in.inv.ID, batch, wait)
}

// ready reports why the replica should not be sent work, or nil: it has
// joined the cluster (its heartbeat is recorded, so it holds partitions or
// may take them), its leases are fresh (the database answers it), and it
// is not handing its partitions over.
func (c *clusterState) ready() error {
	c.mu.Lock()
	leaving := c.node.Leaving()
	c.mu.Unlock()
	switch {
	case leaving:
		return errors.New("leaving the cluster: its partitions are being handed over")
	case !c.joined.Load():
		return errors.New("not joined the cluster yet: no heartbeat recorded")
	case !c.leaseFresh():
		return fmt.Errorf("cluster heartbeats have failed for longer than %v: it may not hold its partitions", c.cfg.LeaseTTL-c.cfg.RenewEvery)
	}
	return nil
}
