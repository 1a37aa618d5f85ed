package qos

import (
	"container/heap"
	"time"
)

// Discipline configures a Queue: its seats, how classes share them and
// how long queues may grow.
type Discipline struct {
	// Seats is how many items may be dispatched at once; 0 means no limit
	// (the gate is held back by the caller's allow function instead).
	Seats int
	// Weights are the classes' shares of contended seats (System's is
	// unused). A class with no queued work lends its share to the others.
	Weights [numClasses]float64
	// Reserve is how many seats each class keeps for itself: other
	// classes never borrow them, even when they stand idle. By default
	// only critical reserves. The reserved seats are the pool's last: the
	// other classes fill at most the shared (unreserved) seats, and while
	// the reserving class is within its share (see Lead) its calls count
	// among them (see canTake).
	Reserve [numClasses]int
	// Lead is, for a class with a reserve (critical), the seat-time it
	// may take ahead of the stride beyond its weight's share: while its
	// pass is no further than Lead (over its weight) ahead of the lowest
	// pass of the other classes with queued work, it is *within its
	// share*: its queued items go before every other class, and the
	// other classes' calls running beside its calls are held to the
	// shared seats less its calls (see canTake). Beyond it, it competes
	// by stride like the others. This is a priority queue policed by a
	// token bucket in virtual time (as Expedited Forwarding is policed
	// by its rate): a class below its share is never kept waiting by a
	// lower one, a flood of it gets its share and one burst of Lead.
	Lead [numClasses]time.Duration
	// Nominal is the seats a class with a reserve is served first up to
	// even beyond its share (see Lead): its weight's share of the pool,
	// rounded down, never every shared seat. Beyond its share its
	// reserved seats are those beyond its nominal ones (see canTake), so
	// that policing never leaves it less than its nominal seats and its
	// reserve.
	Nominal [numClasses]int
	// FlowLimit bounds the items one flow may have queued, ClassLimit the
	// items one class may have queued, Limit all queued items; 0 is no
	// bound. Continuations are never refused and not counted against the
	// limits: they belong to admitted workflows, which are never dropped.
	FlowLimit  int
	ClassLimit [numClasses]int
	Limit      int
	// EDF orders a flow's items by deadline (earliest first, no deadline
	// last) before their arrival; without it, arrival order alone.
	EDF bool
	// Continuations puts a flow's items of already running workflows
	// before those that begin one (Sequoia's "favour running chains").
	Continuations bool
	// OthersYield says that the calls of the classes without a reserve
	// may compute at a lower operating-system priority (Seat.Yield): a
	// seat held by one that does (MarkYielding) is then no core taken
	// from a reserving class's call, so within its share that class takes
	// seats as if the yielding ones were free (see canTake).
	OthersYield bool
}

// Item is one unit of work waiting in a Queue.
type Item struct {
	Class Class
	// Flow is the namespace the work belongs to; FlowWeight its share of
	// the class (1 when zero).
	Flow       string
	FlowWeight float64
	// Deadline is when the work is of no use any more; zero for none.
	Deadline time.Time
	// Cost is the expected seat time, for fair shares between flows and
	// classes (a millisecond when unknown).
	Cost time.Duration
	// Continuation marks work of a workflow that already runs.
	Continuation bool
	// Exempt items are not counted against the bounds and never evicted:
	// asynchronous starts, which wait rather than being refused (their
	// number is bounded by their sources, which wait with them).
	Exempt bool
	// Value is the caller's.
	Value any

	seq   uint64
	index int // in its flow's heap; -1 when not queued
	flow  *flowState
}

// Queued reports whether the item waits in a queue.
func (it *Item) Queued() bool { return it.flow != nil }

// maxIdleFlows is how many flows a class remembers before it forgets
// those without queued work.
const maxIdleFlows = 1024

// Queue is the pure queueing discipline of one gate. It is not safe for
// concurrent use; Scheduler serialises it.
type Queue struct {
	d       Discipline
	classes [numClasses]classState
	inUse   [numClasses]int
	used    int // seats in use by classes other than System
	// yielding is how many of them are held by calls that yield the CPU
	// (MarkYielding).
	yielding int
	queued   int // non-continuation items queued, for Limit
	seq      uint64
	vtime    float64 // virtual time between classes
}

type classState struct {
	pass    float64
	vtime   float64 // virtual time between the class's flows
	flows   map[string]*flowState
	active  []*flowState // flows with queued items
	queued  int          // items queued, continuations included
	bounded int          // non-continuation items queued, for ClassLimit
	cost    time.Duration
}

type flowState struct {
	name    string
	weight  float64
	pass    float64
	items   itemHeap
	bounded int
}

// NewQueue returns an empty queue.
func NewQueue(d Discipline) *Queue {
	q := &Queue{d: d}
	for i := range q.classes {
		q.classes[i].flows = map[string]*flowState{}
	}
	return q
}

// Discipline returns the queue's configuration.
func (q *Queue) Discipline() Discipline { return q.d }

// SetSeats changes the number of seats; items already dispatched keep
// theirs.
func (q *Queue) SetSeats(n int) { q.d.Seats = n }

// Outcome of Push.
type Outcome int

const (
	// Queued: the item waits for Next.
	Queued Outcome = iota
	// Refused: a bound is reached; the item is not queued.
	Refused
)

// Push queues an item. When the queue is full and the item's class ranks
// above a queued item's, the youngest item of the lowest such class is
// evicted to make room (so batch is shed first) and returned; the caller
// refuses it. An item whose own flow or class is full is Refused.
func (q *Queue) Push(it *Item) (Outcome, *Item) {
	c := &q.classes[it.Class]
	f := c.flows[it.Flow]
	if it.bounded() {
		if q.d.FlowLimit > 0 && f != nil && f.bounded >= q.d.FlowLimit {
			return Refused, nil
		}
		if l := q.d.ClassLimit[it.Class]; l > 0 && c.bounded >= l {
			return Refused, nil
		}
	}
	var evicted *Item
	if it.bounded() && q.d.Limit > 0 && q.queued >= q.d.Limit {
		evicted = q.victim(it.Class)
		if evicted == nil {
			return Refused, nil
		}
		q.Remove(evicted)
	}
	if f == nil {
		f = &flowState{name: it.Flow}
		c.flows[it.Flow] = f
	}
	f.weight = it.FlowWeight
	if f.weight <= 0 {
		f.weight = 1
	}
	if c.queued == 0 {
		// A class that was idle starts at the current virtual time: idling
		// earns no credit to spend in a burst later.
		c.pass = max(c.pass, q.vtime)
	}
	if len(f.items) == 0 {
		f.pass = max(f.pass, c.vtime)
		c.active = append(c.active, f)
	}
	q.seq++
	it.seq = q.seq
	it.flow = f
	heap.Push(&flowHeap{f, q.d}, it)
	c.queued++
	c.cost += it.cost()
	if it.bounded() {
		f.bounded++
		c.bounded++
		q.queued++
	}
	return Queued, evicted
}

// victim is the youngest non-continuation item of the lowest class below
// class, or nil.
func (q *Queue) victim(class Class) *Item {
	for k := Class(numClasses - 1); k > class; k-- {
		var youngest *Item
		for _, f := range q.classes[k].active {
			for _, it := range f.items {
				if it.bounded() && (youngest == nil || it.seq > youngest.seq) {
					youngest = it
				}
			}
		}
		if youngest != nil {
			return youngest
		}
	}
	return nil
}

// Remove takes a queued item out (its waiter gave up); false when it is
// not queued.
func (q *Queue) Remove(it *Item) bool {
	f := it.flow
	if f == nil || it.index < 0 || it.index >= len(f.items) || f.items[it.index] != it {
		return false
	}
	heap.Remove(&flowHeap{f, q.d}, it.index)
	q.unqueued(it)
	return true
}

func (q *Queue) unqueued(it *Item) {
	c := &q.classes[it.Class]
	f := it.flow
	it.flow = nil
	c.queued--
	c.cost -= it.cost()
	if it.bounded() {
		f.bounded--
		c.bounded--
		q.queued--
	}
	if len(f.items) == 0 {
		for i, a := range c.active {
			if a == f {
				c.active = append(c.active[:i], c.active[i+1:]...)
				break
			}
		}
	}
}

// canTake reports whether class k may take a free seat now.
//
// A class with a reserve (critical) lends nothing but borrows every idle
// seat, short of the unused reserves of other classes: its call never
// waits while a seat is free.
//
// The other classes share the unreserved seats (as many as the CPUs in
// a CPU-bound pool): while a reserving class is within its share (see
// Lead), its calls count among them, so the calls of other classes
// beside its calls are held to the shared seats less its calls and its
// calls compute on as many CPUs as they would alone (a seat freed
// beside them is not refilled until they end). Where the others yield
// the CPU (OthersYield), within its share it takes up to every seat of
// the pool whatever their yielding calls hold, as it would alone. Beyond its share
// it has its nominal seats among the shared ones and its reserve on top,
// and the others compete for the rest by weight: a flood of critical
// calls leaves the other classes their share.
func (q *Queue) canTake(k Class) bool {
	if q.d.Seats <= 0 || k == System {
		return true
	}
	if q.d.Reserve[k] > 0 && q.d.OthersYield && q.d.Seats > 1 && q.withinShare(k) {
		// Calls that yield their cores to its calls: a seat they hold
		// would only keep its call waiting while it, at their lower
		// priority, took longer to end. Seats of calls that do not
		// yield count. (A pool of one seat reserves none, and keeps to
		// its one call.)
		return q.used-q.yielding < q.d.Seats
	}
	if q.used >= q.d.Seats {
		return false
	}
	if q.d.Reserve[k] > 0 {
		unusedOthers := 0
		for j := Critical; j < numClasses; j++ {
			if j != k {
				unusedOthers += max(0, q.d.Reserve[j]-q.inUse[j])
			}
		}
		return q.d.Seats-q.used > min(unusedOthers, q.d.Seats-1)
	}
	reserved, shared := 0, 0
	for j := Critical; j < numClasses; j++ {
		reserved += q.d.Reserve[j]
		shared += q.inUse[j]
		if q.d.Reserve[j] > 0 && !q.withinShare(j) {
			// Its calls beyond its nominal seats, up to its reserve,
			// hold its reserved seats.
			shared -= min(q.d.Reserve[j], max(0, q.inUse[j]-q.d.Nominal[j]))
		}
	}
	// Reserves never take every seat: a pool of one seat reserves none.
	return shared < q.d.Seats-min(reserved, q.d.Seats-1)
}

// withinShare reports whether class k has a lead (see Discipline.Lead)
// and its pass is no further than the lead ahead of the lowest pass of
// the other classes with queued work: a class that others wait behind
// only while it has taken no more than its share and its burst.
func (q *Queue) withinShare(k Class) bool {
	lead := q.d.Lead[k]
	if lead <= 0 {
		return false
	}
	floor, any := 0.0, false
	for j := Critical; j < numClasses; j++ {
		if c := &q.classes[j]; j != k && c.queued > 0 && (!any || c.pass < floor) {
			floor, any = c.pass, true
		}
	}
	return !any || q.classes[k].pass <= floor+lead.Seconds()/q.weight(k)
}

// Next dispatches the next item, taking a seat for it, or returns nil
// when no item may go now. allow, when not nil, may hold a class back.
// A class within its share (see Discipline.Lead) or below its nominal
// seats goes first; otherwise classes are chosen by stride scheduling
// over their weights among those with queued work that may take a seat;
// flows of the class likewise over their weights; within the flow the
// heap's order decides.
func (q *Queue) Next(allow func(Class) bool) *Item {
	best := -1
	for k := range q.classes {
		c := &q.classes[k]
		if c.queued == 0 || !q.canTake(Class(k)) || (allow != nil && !allow(Class(k))) {
			continue
		}
		if k == int(System) || q.withinShare(Class(k)) || q.inUse[k] < q.d.Nominal[k] {
			best = k
			break
		}
		if best < 0 || c.pass < q.classes[best].pass {
			best = k
		}
	}
	if best < 0 {
		return nil
	}
	c := &q.classes[best]
	var f *flowState
	for _, a := range c.active {
		if f == nil || a.pass < f.pass || (a.pass == f.pass && a.name < f.name) {
			f = a
		}
	}
	it := heap.Pop(&flowHeap{f, q.d}).(*Item)
	q.unqueued(it)
	cost := it.cost().Seconds()
	if best != int(System) {
		q.vtime = c.pass
		c.pass += cost / q.weight(Class(best))
	}
	c.vtime = f.pass
	f.pass += cost / f.weight
	if len(c.flows) > maxIdleFlows {
		// Forget flows without work, so that namespaces come and go
		// without the map growing; they lose only their place in the
		// stride, which a returning flow takes from the class's time.
		for name, fl := range c.flows {
			if len(fl.items) == 0 {
				delete(c.flows, name)
			}
		}
	}
	q.take(it.Class)
	return it
}

// Charge accounts a seat used by an item that did not pass through Next:
// a seat taken at once (TryTake) or handed from a workflow's call to its
// next one. While its class (its flow) has work queued, it pays for it in
// the stride as if Next had dispatched it, so that a chain of calls gets
// no more than its share of a contended gate; a class with nothing queued
// pays nothing: it would otherwise come back to contention with a debt
// and wait behind classes it is entitled to go before. A class with a
// lead (see Discipline.Lead) pays whenever another class waits, queued or
// not, as a policer counts every packet of its class: its calls seated at
// once would otherwise never count against its share, and a flood of them
// would hold the other classes beside it to the seats its calls leave.
// The seat itself stays taken.
func (q *Queue) Charge(it *Item) {
	cost := it.cost().Seconds()
	c := &q.classes[it.Class]
	if c.queued == 0 {
		if !q.policed(it.Class) {
			return
		}
		// Idle, it earned no credit (as in Push).
		c.pass = max(c.pass, q.vtime)
	}
	if it.Class != System {
		c.pass += cost / q.weight(it.Class)
	}
	if f := c.flows[it.Flow]; f != nil && len(f.items) > 0 && f.weight > 0 {
		f.pass += cost / f.weight
	}
}

// policed reports whether class k has a lead and another class has work
// queued: its seats then count against its lead however it got them.
func (q *Queue) policed(k Class) bool {
	if q.d.Lead[k] <= 0 {
		return false
	}
	for j := Critical; j < numClasses; j++ {
		if j != k && q.classes[j].queued > 0 {
			return true
		}
	}
	return false
}

func (q *Queue) weight(k Class) float64 {
	if w := q.d.Weights[k]; w > 0 {
		return w
	}
	return 1
}

func (q *Queue) take(k Class) {
	q.inUse[k]++
	if k != System {
		q.used++
	}
}

// TryTake takes a seat for class k at once when nothing of a class that
// could be served first is queued and a seat is free: the fast path of an
// idle gate, which then costs no queueing at all. A class with a lead
// beyond its share and its nominal seats is not served first: it queues
// while others wait.
func (q *Queue) TryTake(k Class) bool {
	if k != System {
		for j := Class(0); j <= k; j++ {
			if q.classes[j].queued > 0 {
				return false
			}
		}
		if q.policed(k) && !q.withinShare(k) && q.inUse[k] >= q.d.Nominal[k] {
			// Beyond its share it competes by stride with the classes
			// that wait.
			return false
		}
		if !q.canTake(k) {
			return false
		}
	}
	q.take(k)
	return true
}

// Done gives back a seat of class k.
func (q *Queue) Done(k Class) {
	q.inUse[k]--
	if k != System {
		q.used--
	}
}

// MarkYielding counts a seat taken (n = 1) or given back (n = -1) by a
// call that yields the CPU, when yields; see Discipline.OthersYield.
func (q *Queue) MarkYielding(yields bool, n int) {
	if yields {
		q.yielding += n
	}
}

// InUse is the seats class k holds.
func (q *Queue) InUse(k Class) int { return q.inUse[k] }

// Used is the seats held by every class but System.
func (q *Queue) Used() int { return q.used }

// Len is the number of items queued in class k.
func (q *Queue) Len(k Class) int { return q.classes[k].queued }

// Total is the number of items queued.
func (q *Queue) Total() int {
	n := 0
	for k := range q.classes {
		n += q.classes[k].queued
	}
	return n
}

// Ahead is the number of queued items and their expected cost in class k
// and every class served before it.
func (q *Queue) Ahead(k Class) (int, time.Duration) {
	n, cost := 0, time.Duration(0)
	for j := Class(0); j <= k; j++ {
		n += q.classes[j].queued
		cost += q.classes[j].cost
	}
	return n, cost
}

// FlowDepths returns the queued items of class k by flow.
func (q *Queue) FlowDepths(k Class) map[string]int {
	out := make(map[string]int, len(q.classes[k].active))
	for _, f := range q.classes[k].active {
		out[f.name] = len(f.items)
	}
	return out
}

func (it *Item) bounded() bool { return !it.Continuation && !it.Exempt }

func (it *Item) cost() time.Duration {
	if it.Cost <= 0 {
		return time.Millisecond
	}
	return it.Cost
}

// itemHeap orders one flow's items.
type itemHeap []*Item

type flowHeap struct {
	f *flowState
	d Discipline
}

func (h *flowHeap) Len() int { return len(h.f.items) }
func (h *flowHeap) Less(i, j int) bool {
	a, b := h.f.items[i], h.f.items[j]
	if h.d.Continuations && a.Continuation != b.Continuation {
		return a.Continuation
	}
	if h.d.EDF && !a.Deadline.Equal(b.Deadline) {
		switch {
		case a.Deadline.IsZero():
			return false
		case b.Deadline.IsZero():
			return true
		}
		return a.Deadline.Before(b.Deadline)
	}
	return a.seq < b.seq
}
func (h *flowHeap) Swap(i, j int) {
	items := h.f.items
	items[i], items[j] = items[j], items[i]
	items[i].index = i
	items[j].index = j
}
func (h *flowHeap) Push(x any) {
	it := x.(*Item)
	it.index = len(h.f.items)
	h.f.items = append(h.f.items, it)
}
func (h *flowHeap) Pop() any {
	old := h.f.items
	n := len(old)
	it := old[n-1]
	old[n-1] = nil
	it.index = -1
	h.f.items = old[:n-1]
	return it
}
