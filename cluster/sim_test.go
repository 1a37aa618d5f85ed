package cluster_test

import (
	"container/heap"
	"flag"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonflow/baton/cluster"
)

// The simulation drives replicas running cluster.Node against a model of
// the PostgreSQL tables and statements the store uses (store/postgres
// cluster.go), on a virtual clock, with crashes, pauses, graceful
// departures, lost notifications, slow round trips and skewed replica
// clocks. Every seed replays exactly: the world draws all its randomness
// from one generator and never iterates a map where order matters.
var (
	simSeeds = flag.Int("sim.seeds", 1000, "number of seeds TestSimulation runs")
	simSeed  = flag.Int64("sim.seed", -1, "run only this seed of TestSimulation, with a trace")
)

// base is the database clock's origin; replicas' own clocks are offset
// from it by up to an hour either way and run 20% slow to 25% fast.
var base = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

type event struct {
	at  time.Duration
	seq int64
	fn  func()
}

type queue []*event

func (q queue) Len() int { return len(q) }
func (q queue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q queue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *queue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// ---- the database model ----

type dbPartition struct {
	owner string
	epoch int64
	until time.Duration
}

type dbInvocation struct {
	id          string
	partition   int
	next, steps int
}

type acquisition struct {
	owner string
	at    time.Duration
}

// db models the tables partitions, replicas and invocations+history and
// the statements run on them. Each statement (or transaction) is applied
// atomically when its request reaches the database, which is what row
// locks give the real ones: the fence check holds the partition row
// share-locked until the append commits, and an acquisition locks it for
// update, so the two are ordered.
type db struct {
	w         *world
	parts     []dbPartition
	heartbeat map[string]time.Duration
	draining  map[string]bool
	invs      map[string]*dbInvocation
	order     []string
	// acquired[p][e-1] is who acquired partition p at epoch e: the oracle
	// that accepted appends are checked against.
	acquired [][]acquisition
}

func (d *db) now() time.Duration { return d.w.now }

func (d *db) dbTime(t time.Duration) time.Time { return base.Add(t) }

// tick is one replica's round trip: upsert its heartbeat, renew its
// leases (UPDATE ... WHERE owner=$me AND epoch=$e AND lease_until > now()),
// read now(), the live replicas and every partition row.
func (d *db) tick(id string, draining bool, leases []cluster.Lease) cluster.Snapshot {
	now := d.now()
	d.heartbeat[id] = now
	d.draining[id] = draining
	for _, l := range leases {
		p := &d.parts[l.Partition]
		if p.owner == id && p.epoch == l.Epoch && p.until > now {
			p.until = now + d.w.cfg.LeaseTTL
		}
	}
	snap := cluster.Snapshot{Now: d.dbTime(now)}
	for id, hb := range d.heartbeat {
		if hb > now-d.w.cfg.ReplicaTTL && !d.draining[id] {
			snap.Live = append(snap.Live, id)
		}
	}
	slices.Sort(snap.Live)
	for i, p := range d.parts {
		snap.Rows = append(snap.Rows, cluster.Row{Partition: i, Owner: p.owner, Epoch: p.epoch, Until: d.dbTime(p.until)})
	}
	return snap
}

// acquire is UPDATE partitions SET owner=$me, epoch=epoch+1,
// lease_until=now()+ttl WHERE id=$p AND epoch=$seen AND (owner=” OR
// lease_until <= now()) RETURNING epoch, lease_until.
func (d *db) acquire(id string, r cluster.Row) (cluster.Lease, bool) {
	now := d.now()
	p := &d.parts[r.Partition]
	if p.epoch != r.Epoch || (p.owner != "" && p.until > now) {
		return cluster.Lease{}, false
	}
	p.owner, p.epoch, p.until = id, p.epoch+1, now+d.w.cfg.LeaseTTL
	d.acquired[r.Partition] = append(d.acquired[r.Partition], acquisition{owner: id, at: now})
	if int64(len(d.acquired[r.Partition])) != p.epoch {
		d.w.violate("partition %d: epoch %d after %d acquisitions", r.Partition, p.epoch, len(d.acquired[r.Partition]))
	}
	return cluster.Lease{Partition: r.Partition, Epoch: p.epoch, Until: d.dbTime(p.until)}, true
}

// release is UPDATE partitions SET owner=”, lease_until=now() WHERE
// id=$p AND owner=$me AND epoch=$e.
func (d *db) release(id string, l cluster.Lease) {
	p := &d.parts[l.Partition]
	if p.owner == id && p.epoch == l.Epoch {
		p.owner, p.until = "", d.now()
	}
}

func (d *db) leave(id string) {
	delete(d.heartbeat, id)
	delete(d.draining, id)
}

func (d *db) create(inv *dbInvocation) {
	d.invs[inv.id] = inv
	d.order = append(d.order, inv.id)
}

// scan is SELECT id FROM invocations WHERE status='running' AND
// partition = ANY($1) ORDER BY started_at.
func (d *db) scan(parts []int) []string {
	var ids []string
	for _, id := range d.order {
		inv := d.invs[id]
		if inv.next < inv.steps && slices.Contains(parts, inv.partition) {
			ids = append(ids, id)
		}
	}
	return ids
}

func (d *db) load(id string) (next int, done bool) {
	inv := d.invs[id]
	return inv.next, inv.next >= inv.steps
}

type appendResult int

const (
	accepted appendResult = iota
	fenced
	conflict
)

// append is the fenced transaction: check the partition row (owner,
// epoch, lease) under a share lock, then insert the event whose seq must
// follow the last one (the history's primary key).
func (d *db) append(a *attempt, epoch int64) appendResult {
	inv := d.invs[a.inv]
	p := d.parts[inv.partition]
	if p.owner != a.replica || p.epoch != epoch || p.until <= d.now() {
		d.w.stats.refusals++
		return fenced
	}
	if inv.next != a.step {
		d.w.violate("invocation %s: step %d appended at seq %d", a.inv, a.step, inv.next)
		return conflict
	}
	// The oracle: the epoch that commits is the partition's latest
	// acquisition, and it was the committer's.
	acq := d.acquired[inv.partition]
	if int64(len(acq)) != epoch || acq[epoch-1].owner != a.replica {
		d.w.violate("stale commit: %s appended to partition %d with epoch %d; latest acquisition is epoch %d", a.replica, inv.partition, epoch, len(acq))
	}
	inv.next++
	a.state = "accepted"
	d.w.stats.commits++
	return accepted
}

// ---- replicas ----

type attempt struct {
	inv     string
	step    int
	replica string
	// state is "open" until the result commits ("accepted") or the
	// attempt is abandoned: "crash" (its replica was killed), "lost" (its
	// partition was lost before it committed).
	state string
}

type run struct {
	id   string
	step int
}

type part struct {
	epoch    int64
	runs     map[string]*run
	loading  map[string]bool
	handing  bool
	inflight map[*attempt]bool
}

type replica struct {
	w      *world
	slot   int
	id     string
	node   *cluster.Node
	state  string // "up", "paused", "dead"
	held   []func()
	rate   float64
	offset time.Duration
	parts  map[int]*part

	ticking   bool
	again     bool
	tickToken int
	pending   int // acquisitions of the current tick awaiting their answer
	wake      time.Duration
	// upSince is when the replica last started or resumed.
	upSince time.Duration
}

// after runs fn once d has passed on the replica's own clock, unless the
// replica died; while it is paused, fn waits for it to resume.
func (r *replica) after(d time.Duration, fn func()) {
	r.w.deliver(r, time.Duration(float64(d)/r.rate), fn)
}

// request sends op to the database; the answer comes back to then.
func request[T any](r *replica, op func() T, then func(T)) {
	w := r.w
	w.at(w.delay(), func() {
		res := op()
		w.deliver(r, w.delay(), func() { then(res) })
	})
}

func (r *replica) start() {
	r.node = cluster.NewNode(r.id, r.w.cfg)
	r.tickNow()
	r.poll()
}

func (r *replica) tickNow() {
	if r.ticking {
		r.again = true
		return
	}
	r.ticking = true
	r.tickToken++
	draining := r.node.Leaving()
	request(r, func() cluster.Snapshot { return r.w.db.tick(r.id, draining, r.node.Leases()) }, r.ticked)
}

func (r *replica) ticked(s cluster.Snapshot) {
	plan := r.node.Tick(s)
	for _, p := range plan.Stop {
		r.stopLost(p)
	}
	for _, p := range plan.Handover {
		r.handover(p)
	}
	if r.node.Left() {
		request(r, func() struct{} { r.w.db.leave(r.id); return struct{}{} }, func(struct{}) {
			r.w.trace("%s left", r.id)
			r.state = "dead"
			r.w.restartLater(r.slot, r.w.span(time.Second, 5*time.Second))
		})
		return
	}
	r.wake = plan.After
	r.pending = len(plan.Acquire)
	for _, row := range plan.Acquire {
		request(r, func() acquireAnswer {
			l, ok := r.w.db.acquire(r.id, row)
			return acquireAnswer{l, ok}
		}, func(a acquireAnswer) {
			if r.node.Acquired(a.lease, a.ok) {
				r.w.trace("%s acquired %d@%d", r.id, a.lease.Partition, a.lease.Epoch)
				r.parts[a.lease.Partition] = &part{epoch: a.lease.Epoch, runs: map[string]*run{}, loading: map[string]bool{}, inflight: map[*attempt]bool{}}
				r.scan([]int{a.lease.Partition})
			}
			r.pending--
			r.tickDone()
		})
	}
	r.tickDone()
}

type acquireAnswer struct {
	lease cluster.Lease
	ok    bool
}

func (r *replica) tickDone() {
	if r.pending > 0 || !r.ticking {
		return
	}
	r.ticking = false
	if r.again {
		r.again = false
		r.tickNow()
		return
	}
	token := r.tickToken
	next := r.w.cfg.RenewEvery
	if r.wake > 0 && r.wake+10*time.Millisecond < next {
		next = r.wake + 10*time.Millisecond
	}
	r.after(next, func() {
		if token == r.tickToken {
			r.tickNow()
		}
	})
}

// poll is the fallback for lost notifications: every second the owner
// looks for running invocations of its partitions.
func (r *replica) poll() {
	var ps []int
	for _, p := range r.node.Owned() {
		if r.node.Accepting(p) {
			ps = append(ps, p)
		}
	}
	if len(ps) > 0 {
		r.scan(ps)
	}
	r.after(time.Second, r.poll)
}

func (r *replica) scan(ps []int) {
	epochs := make(map[int]int64, len(ps))
	for _, p := range ps {
		epochs[p] = r.parts[p].epoch
	}
	request(r, func() []string { return r.w.db.scan(ps) }, func(ids []string) {
		for _, id := range ids {
			p := r.w.partition(id)
			pt := r.parts[p]
			if pt == nil || pt.epoch != epochs[p] || pt.handing || pt.runs[id] != nil || pt.loading[id] {
				continue
			}
			pt.loading[id] = true
			r.load(pt, p, id)
		}
	})
}

// load reads an invocation's history afresh before resuming it, as the
// engine's resume does: the scan that found it may be older than the
// replica's own last append.
func (r *replica) load(pt *part, p int, id string) {
	request(r, func() loadAnswer { next, done := r.w.db.load(id); return loadAnswer{next, done} }, func(a loadAnswer) {
		delete(pt.loading, id)
		if r.parts[p] != pt || pt.handing || pt.runs[id] != nil || a.done {
			return
		}
		rn := &run{id: id, step: a.next}
		pt.runs[id] = rn
		r.step(pt, p, rn)
	})
}

type loadAnswer struct {
	next int
	done bool
}

// step calls the counting endpoint for the run's current step, then
// appends the result fenced by the partition's epoch.
func (r *replica) step(pt *part, p int, rn *run) {
	w := r.w
	a := &attempt{inv: rn.id, step: rn.step, replica: r.id, state: "open"}
	w.attempts = append(w.attempts, a)
	w.hits[stepKey{rn.id, rn.step}]++
	pt.inflight[a] = true
	r.after(w.callTime(), func() {
		if r.parts[p] != pt || a.state != "open" {
			return // the partition was lost meanwhile: abandoned already
		}
		request(r, func() appendResult { return w.db.append(a, pt.epoch) }, func(res appendResult) {
			delete(pt.inflight, a)
			switch res {
			case accepted:
				rn.step++
				if rn.step >= w.steps[rn.id] {
					delete(pt.runs, rn.id)
					w.trace("%s finished %s", r.id, rn.id)
				} else if r.parts[p] == pt && !pt.handing {
					r.step(pt, p, rn)
				} else {
					delete(pt.runs, rn.id)
				}
			default:
				if a.state == "open" {
					a.state = "lost"
				}
				w.trace("%s refused on %d@%d", r.id, p, pt.epoch)
				if r.node.Lost(p, pt.epoch) {
					r.stopLost(p)
				}
			}
			if pt.handing && len(pt.inflight) == 0 && r.parts[p] == pt {
				r.handedOver(p)
			}
		})
	})
}

// stopLost stops a partition's work without writing.
func (r *replica) stopLost(p int) {
	pt := r.parts[p]
	if pt == nil {
		return
	}
	delete(r.parts, p)
	for a := range pt.inflight {
		if a.state == "open" {
			a.state = "lost"
		}
	}
	r.w.trace("%s stopped %d@%d", r.id, p, pt.epoch)
}

func (r *replica) handover(p int) {
	pt := r.parts[p]
	if pt == nil {
		// Acquired in the same breath as planned away; nothing runs.
		if l, ok := r.node.Stopped(p); ok {
			r.release(l)
		}
		return
	}
	pt.handing = true
	if len(pt.inflight) == 0 {
		r.handedOver(p)
	}
}

func (r *replica) handedOver(p int) {
	delete(r.parts, p)
	l, ok := r.node.Stopped(p)
	if !ok {
		return
	}
	r.w.stats.handovers++
	r.release(l)
}

func (r *replica) release(l cluster.Lease) {
	request(r, func() struct{} { r.w.db.release(r.id, l); return struct{}{} }, func(struct{}) {
		r.w.trace("%s released %d@%d", r.id, l.Partition, l.Epoch)
		// Tell the others, so that one takes the partition at once.
		r.w.notifyAll(r, func(o *replica) { o.tickNow() })
	})
}

// ---- the world ----

type stepKey struct {
	inv  string
	step int
}

type simStats struct {
	events, commits, refusals, handovers, crashes, pauses, leaves int
	failovers                                                     []time.Duration
}

type world struct {
	rng   *rand.Rand
	cfg   cluster.Config
	now   time.Duration
	seq   int64
	q     queue
	db    *db
	slots []*replica
	next  int // replica incarnation counter

	graceful   bool // no crashes, pauses or slow round trips
	dropNotify float64
	slowNet    float64

	steps    map[string]int
	hits     map[stepKey]int
	attempts []*attempt
	stats    simStats
	errs     []string
	log      *strings.Builder
	digest   uint64
}

func (w *world) at(d time.Duration, fn func()) {
	w.seq++
	heap.Push(&w.q, &event{at: w.now + d, seq: w.seq, fn: fn})
}

func (w *world) deliver(r *replica, d time.Duration, fn func()) {
	w.at(d, func() {
		switch r.state {
		case "dead":
		case "paused":
			r.held = append(r.held, fn)
		default:
			fn()
		}
	})
}

func (w *world) span(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(w.rng.Int64N(int64(hi-lo)+1))
}

// delay is a one-way trip between a replica and the database.
func (w *world) delay() time.Duration {
	if !w.graceful && w.rng.Float64() < w.slowNet {
		return w.span(200*time.Millisecond, 3*time.Second)
	}
	return w.span(100*time.Microsecond, 20*time.Millisecond)
}

func (w *world) callTime() time.Duration {
	if w.rng.IntN(20) == 0 {
		return w.span(500*time.Millisecond, 2*time.Second)
	}
	return w.span(time.Millisecond, 300*time.Millisecond)
}

func (w *world) partition(id string) int { return cluster.PartitionOf(id, w.cfg.Partitions) }

func (w *world) violate(format string, args ...any) {
	w.errs = append(w.errs, fmt.Sprintf("at %v: ", w.now)+fmt.Sprintf(format, args...))
}

func (w *world) trace(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	h := fnv.New64a()
	_, _ = fmt.Fprintf(h, "%d %d %s", w.digest, w.now, msg)
	w.digest = h.Sum64()
	if w.log != nil {
		fmt.Fprintf(w.log, "%12v %s\n", w.now, msg)
	}
}

func (w *world) notifyAll(from *replica, fn func(*replica)) {
	for _, o := range w.slots {
		if o == nil || o == from || w.rng.Float64() < w.dropNotify {
			continue
		}
		w.deliver(o, w.delay(), func() { fn(o) })
	}
}

func (w *world) spawn(slot int) {
	w.next++
	r := &replica{
		w: w, slot: slot, id: fmt.Sprintf("r%d", w.next), state: "up",
		rate:   0.8 + 0.45*w.rng.Float64(),
		offset: w.span(-time.Hour, time.Hour),
		parts:  map[int]*part{}, upSince: w.now,
	}
	w.slots[slot] = r
	w.trace("%s starts in slot %d (clock %+v, rate %.2f)", r.id, slot, r.offset, r.rate)
	r.start()
}

func (w *world) restartLater(slot int, d time.Duration) {
	w.at(d, func() { w.spawn(slot) })
}

func (w *world) crash(slot int) {
	r := w.slots[slot]
	if r.state == "dead" {
		return
	}
	w.stats.crashes++
	var owned []int
	for p, row := range w.db.parts {
		if row.owner == r.id && row.until > w.now {
			owned = append(owned, p)
		}
	}
	r.state = "dead"
	for _, pt := range r.parts {
		for a := range pt.inflight {
			if a.state == "open" {
				a.state = "crash"
			}
		}
	}
	w.trace("%s killed owning %v", r.id, owned)
	w.watchFailover(r.id, owned)
	w.restartLater(slot, w.span(200*time.Millisecond, 8*time.Second))
}

// watchFailover measures, for each partition a killed replica held, how
// long until another replica acquired it, when another replica was up
// (not paused, not leaving) all along.
func (w *world) watchFailover(id string, owned []int) {
	killed := w.now
	for _, p := range owned {
		epoch := w.db.parts[p].epoch
		var check func()
		check = func() {
			if w.db.parts[p].epoch > epoch {
				for _, r := range w.slots {
					if r != nil && r.id != id && r.state == "up" && r.upSince <= killed && !r.node.Leaving() {
						w.stats.failovers = append(w.stats.failovers, w.db.acquired[p][epoch].at-killed)
						break
					}
				}
				return
			}
			w.at(100*time.Millisecond, check)
		}
		w.at(100*time.Millisecond, check)
	}
}

func (w *world) pause(slot int, d time.Duration) {
	r := w.slots[slot]
	if r.state != "up" {
		return
	}
	w.stats.pauses++
	r.state = "paused"
	w.trace("%s paused for %v", r.id, d)
	w.at(d, func() {
		if r.state != "paused" {
			return
		}
		r.state, r.upSince = "up", w.now
		w.trace("%s resumed", r.id)
		held := r.held
		r.held = nil
		for _, fn := range held {
			if r.state == "up" {
				fn()
			} else if r.state == "paused" {
				r.held = append(r.held, fn)
			}
		}
	})
}

func (w *world) leave(slot int) {
	r := w.slots[slot]
	if r.state != "up" || r.node.Leaving() {
		return
	}
	w.stats.leaves++
	w.trace("%s leaves", r.id)
	r.node.Leave()
	r.tickNow()
}

// checkBeliefs asserts that no two replicas believe they own a partition
// under the same epoch, and that a belief never runs ahead of the
// database.
func (w *world) checkBeliefs() {
	type belief struct {
		p     int
		epoch int64
	}
	seen := map[belief]string{}
	for _, r := range w.slots {
		if r == nil || r.state == "dead" {
			continue
		}
		for _, p := range r.node.Owned() {
			e, _ := r.node.Fence(p)
			b := belief{p, e}
			if other, dup := seen[b]; dup {
				w.violate("%s and %s both own partition %d at epoch %d", other, r.id, p, e)
			}
			seen[b] = r.id
			if e > w.db.parts[p].epoch {
				w.violate("%s believes in epoch %d of partition %d, the database has %d", r.id, e, p, w.db.parts[p].epoch)
			}
		}
	}
	w.at(500*time.Millisecond, w.checkBeliefs)
}

type simResult struct {
	stats  simStats
	digest uint64
	errs   []string
}

// simulate runs one seed: faults for a minute while invocations arrive,
// then a healed cluster until every invocation completes.
func simulate(seed int64, log *strings.Builder) simResult {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x62617430))
	w := &world{
		rng: rng,
		cfg: cluster.Config{
			Partitions: []int{1, 4, 8, 16, 64}[rng.IntN(5)],
			LeaseTTL:   10 * time.Second,
			RenewEvery: 3 * time.Second,
			ReplicaTTL: 7 * time.Second,
		},
		steps: map[string]int{},
		hits:  map[stepKey]int{},
		log:   log,
	}
	w.db = &db{
		w: w, parts: make([]dbPartition, w.cfg.Partitions), acquired: make([][]acquisition, w.cfg.Partitions),
		heartbeat: map[string]time.Duration{}, draining: map[string]bool{}, invs: map[string]*dbInvocation{},
	}
	// Every fifth seed only has graceful departures and joins: then no
	// call may be sent twice.
	w.graceful = seed%5 == 0
	w.dropNotify = []float64{0, 0.1, 0.5, 1}[rng.IntN(4)]
	w.slowNet = []float64{0, 0.01, 0.05}[rng.IntN(3)]
	replicas := 1 + rng.IntN(5)
	if w.graceful && replicas == 1 {
		replicas = 2
	}
	w.slots = make([]*replica, replicas)
	for i := range replicas {
		// Replicas join over the first seconds, so that the first ones
		// take everything and hand it over as the others arrive.
		slot := i
		w.at(w.span(0, 5*time.Second), func() { w.spawn(slot) })
	}
	w.at(0, w.checkBeliefs)

	const faultsEnd, arrivalsEnd = 60 * time.Second, 45 * time.Second
	invocations := 50 + rng.IntN(150)
	for i := range invocations {
		id := fmt.Sprintf("inv-%d", i)
		w.steps[id] = 1 + rng.IntN(6)
		var arrive func()
		arrive = func() {
			var up []*replica
			for _, r := range w.slots {
				if r != nil && r.state == "up" {
					up = append(up, r)
				}
			}
			if len(up) == 0 {
				w.at(500*time.Millisecond, arrive)
				return
			}
			// Any replica serves a start: it writes the invocation and
			// notifies the owner, whoever that is.
			r := up[rng.IntN(len(up))]
			inv := &dbInvocation{id: id, partition: w.partition(id), steps: w.steps[id]}
			request(r, func() struct{} {
				w.db.create(inv)
				w.notifyAll(nil, func(o *replica) {
					if o.node.Accepting(inv.partition) {
						o.scan([]int{inv.partition})
					}
				})
				return struct{}{}
			}, func(struct{}) {})
		}
		w.at(w.span(time.Second, arrivalsEnd), arrive)
	}
	faults := rng.IntN(12)
	for range faults {
		at := w.span(2*time.Second, faultsEnd)
		slot := rng.IntN(replicas)
		kind := rng.IntN(3)
		if w.graceful {
			kind = 2
		}
		w.at(at, func() {
			if w.slots[slot] == nil {
				return
			}
			switch kind {
			case 0:
				w.crash(slot)
			case 1:
				// Often past the lease, so that the paused owner comes
				// back believing it still owns what others took.
				w.pause(slot, w.span(500*time.Millisecond, 25*time.Second))
			case 2:
				w.leave(slot)
			}
		})
	}

	deadline := faultsEnd + 3*time.Minute
	finished := false
	var checkDone func()
	checkDone = func() {
		finished = w.allDone(invocations) && w.settled()
		w.at(time.Second, checkDone)
	}
	w.at(faultsEnd, checkDone)
	for w.q.Len() > 0 && !finished {
		ev := heap.Pop(&w.q).(*event)
		w.now = ev.at
		w.stats.events++
		ev.fn()
		if len(w.errs) > 0 {
			break
		}
		if w.now > deadline {
			break
		}
	}
	if len(w.errs) == 0 {
		w.finalChecks(invocations)
	}
	return simResult{stats: w.stats, digest: w.digest, errs: w.errs}
}

func (w *world) allDone(n int) bool {
	if len(w.db.invs) < n {
		return false
	}
	for _, inv := range w.db.invs {
		if inv.next < inv.steps {
			return false
		}
	}
	return true
}

// settled reports whether no replica is paused and every call has been
// recorded or abandoned.
func (w *world) settled() bool {
	for _, r := range w.slots {
		if r != nil && r.state == "paused" {
			return false
		}
	}
	for _, a := range w.attempts {
		if a.state == "open" {
			return false
		}
	}
	return true
}

func (w *world) finalChecks(n int) {
	if !w.allDone(n) {
		var stuck []string
		for _, id := range w.db.order {
			if inv := w.db.invs[id]; inv.next < inv.steps {
				stuck = append(stuck, fmt.Sprintf("%s (partition %d, step %d/%d)", id, inv.partition, inv.next, inv.steps))
			}
		}
		w.violate("work lost: %d of %d invocations created, not complete: %s", len(w.db.invs), n, strings.Join(stuck[:min(len(stuck), 5)], ", "))
		return
	}
	accepted := map[stepKey]int{}
	for _, a := range w.attempts {
		k := stepKey{a.inv, a.step}
		switch a.state {
		case "accepted":
			accepted[k]++
		case "open":
			w.violate("call %s/%d by %s neither recorded nor abandoned", a.inv, a.step, a.replica)
		}
	}
	for k, hits := range w.hits {
		if accepted[k] != 1 {
			w.violate("step %s/%d recorded %d times", k.inv, k.step, accepted[k])
		}
		if w.graceful && hits != 1 {
			w.violate("step %s/%d called %d times with only graceful handovers", k.inv, k.step, hits)
		}
	}
	for id, steps := range w.steps {
		for s := range steps {
			if w.hits[stepKey{id, s}] == 0 {
				w.violate("step %s/%d never called", id, s)
			}
		}
	}
}

func TestSimulation(t *testing.T) {
	if *simSeed >= 0 {
		var log strings.Builder
		res := simulate(*simSeed, &log)
		t.Logf("trace of seed %d:\n%s", *simSeed, log.String())
		if len(res.errs) > 0 {
			t.Fatalf("seed %d: %s", *simSeed, strings.Join(res.errs, "\n"))
		}
		return
	}
	seeds := *simSeeds
	// Seeds are independent worlds: they run on every core, and the
	// lowest failing seed is reported whatever the order they finish in.
	results := make([]simResult, seeds)
	next := make(chan int64)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for seed := range next {
				results[seed] = simulate(seed, nil)
			}
		})
	}
	for seed := range int64(seeds) {
		next <- seed
	}
	close(next)
	wg.Wait()
	var total simStats
	for seed, res := range results {
		if len(res.errs) > 0 {
			t.Fatalf("seed %d violates the protocol:\n%s\nreplay it: go test ./cluster -run 'TestSimulation$' -sim.seed=%d -v",
				seed, strings.Join(res.errs, "\n"), seed)
		}
		s := res.stats
		total.events += s.events
		total.commits += s.commits
		total.refusals += s.refusals
		total.handovers += s.handovers
		total.crashes += s.crashes
		total.pauses += s.pauses
		total.leaves += s.leaves
		total.failovers = append(total.failovers, s.failovers...)
	}
	// The faults must have exercised every path the invariants guard.
	if total.refusals == 0 || total.handovers == 0 || len(total.failovers) == 0 || total.pauses == 0 {
		t.Fatalf("the simulation did not exercise fencing, handover and failover: %+v", total)
	}
	sort.Slice(total.failovers, func(i, j int) bool { return total.failovers[i] < total.failovers[j] })
	q := func(f float64) time.Duration { return total.failovers[int(f*float64(len(total.failovers)-1))] }
	t.Logf("%d seeds, %d events: %d commits, %d stale writes refused, %d graceful handovers, %d kills, %d pauses, %d departures; failover after a kill p50 %v p99 %v max %v",
		seeds, total.events, total.commits, total.refusals, total.handovers, total.crashes, total.pauses, total.leaves,
		q(0.5), q(0.99), q(1))
}

// TestSimulationReplaysExactly runs seeds twice and compares their traces.
func TestSimulationReplaysExactly(t *testing.T) {
	for seed := range int64(20) {
		a, b := simulate(seed, nil), simulate(seed, nil)
		if a.digest != b.digest || a.stats.events != b.stats.events {
			t.Fatalf("seed %d: two runs differ (digest %x vs %x, %d vs %d events)", seed, a.digest, b.digest, a.stats.events, b.stats.events)
		}
	}
}
