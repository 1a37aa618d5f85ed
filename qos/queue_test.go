package qos

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func disc(seats int) Discipline {
	return Discipline{Seats: seats, Weights: DefaultWeights, Reserve: DefaultReserve, EDF: true, Continuations: true}
}

func item(c Class, flow string, v string) *Item {
	return &Item{Class: c, Flow: flow, Cost: 10 * time.Millisecond, Value: v}
}

// drain dispatches until nothing may go, releasing each seat at once, and
// returns the values in dispatch order.
func drain(q *Queue) []string {
	var out []string
	for it := q.Next(nil); it != nil; it = q.Next(nil) {
		out = append(out, it.Value.(string))
		q.Done(it.Class)
	}
	return out
}

func TestQueueWithinFlowOrder(t *testing.T) {
	deadline := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	tests := []struct {
		name          string
		edf, cont     bool
		items         []*Item
		want          []string
		wantFirstOnly bool
	}{
		{
			name: "fifo without edf",
			items: []*Item{
				{Class: Standard, Flow: "a", Deadline: deadline(300), Value: "1"},
				{Class: Standard, Flow: "a", Deadline: deadline(100), Value: "2"},
				{Class: Standard, Flow: "a", Value: "3"},
			},
			want: []string{"1", "2", "3"},
		},
		{
			name: "edf then fifo, no deadline last",
			edf:  true,
			items: []*Item{
				{Class: Standard, Flow: "a", Value: "none1"},
				{Class: Standard, Flow: "a", Deadline: deadline(300), Value: "300"},
				{Class: Standard, Flow: "a", Deadline: deadline(100), Value: "100a"},
				{Class: Standard, Flow: "a", Deadline: deadline(100), Value: "100b"},
				{Class: Standard, Flow: "a", Value: "none2"},
			},
			want: []string{"100a", "100b", "300", "none1", "none2"},
		},
		{
			name: "continuations first, then edf",
			edf:  true, cont: true,
			items: []*Item{
				{Class: Standard, Flow: "a", Deadline: deadline(100), Value: "new-early"},
				{Class: Standard, Flow: "a", Deadline: deadline(500), Continuation: true, Value: "cont-late"},
				{Class: Standard, Flow: "a", Continuation: true, Value: "cont-none"},
			},
			want: []string{"cont-late", "cont-none", "new-early"},
		},
		{
			name: "no continuation priority",
			edf:  true,
			items: []*Item{
				{Class: Standard, Flow: "a", Deadline: deadline(100), Value: "new-early"},
				{Class: Standard, Flow: "a", Deadline: deadline(500), Continuation: true, Value: "cont-late"},
			},
			want: []string{"new-early", "cont-late"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := disc(1)
			d.EDF, d.Continuations = tt.edf, tt.cont
			q := NewQueue(d)
			for _, it := range tt.items {
				if out, _ := q.Push(it); out != Queued {
					t.Fatalf("push %v refused", it.Value)
				}
			}
			if got := drain(q); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("order %v, want %v", got, tt.want)
			}
		})
	}
}

// TestQueueWeightedFlows checks that backlogged flows of a class are
// served in proportion to their weights.
func TestQueueWeightedFlows(t *testing.T) {
	tests := []struct {
		weights map[string]float64
		want    map[string]int // of 60 dispatches
	}{
		{map[string]float64{"a": 1, "b": 1}, map[string]int{"a": 30, "b": 30}},
		{map[string]float64{"a": 2, "b": 1}, map[string]int{"a": 40, "b": 20}},
		{map[string]float64{"a": 3, "b": 2, "c": 1}, map[string]int{"a": 30, "b": 20, "c": 10}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.weights), func(t *testing.T) {
			q := NewQueue(disc(1))
			for name, w := range tt.weights {
				for range 100 {
					q.Push(&Item{Class: Standard, Flow: name, FlowWeight: w, Cost: 10 * time.Millisecond, Value: name})
				}
			}
			got := map[string]int{}
			for range 60 {
				it := q.Next(nil)
				got[it.Value.(string)]++
				q.Done(it.Class)
			}
			for name, n := range tt.want {
				if d := got[name] - n; d < -1 || d > 1 {
					t.Errorf("flow %s got %d of 60, want %d±1 (all: %v)", name, got[name], n, got)
				}
			}
		})
	}
}

// TestQueueFairByCost: a flow of expensive items gets as much seat time,
// not as many dispatches, as a flow of cheap ones.
func TestQueueFairByCost(t *testing.T) {
	q := NewQueue(disc(1))
	for range 100 {
		q.Push(&Item{Class: Standard, Flow: "slow", Cost: 30 * time.Millisecond, Value: "slow"})
		q.Push(&Item{Class: Standard, Flow: "fast", Cost: 10 * time.Millisecond, Value: "fast"})
	}
	got := map[string]int{}
	for range 40 {
		it := q.Next(nil)
		got[it.Value.(string)]++
		q.Done(it.Class)
	}
	if got["fast"] < 28 || got["fast"] > 32 {
		t.Errorf("fast got %d of 40 dispatches, want about 30 (3× the slow flow's): %v", got["fast"], got)
	}
}

func TestQueueClassesShareByWeight(t *testing.T) {
	q := NewQueue(Discipline{Seats: 1, Weights: [numClasses]float64{0, 50, 35, 15}})
	for range 200 {
		for _, c := range []Class{Critical, Standard, Batch} {
			q.Push(item(c, "ns", c.String()))
		}
	}
	got := map[string]int{}
	for range 100 {
		it := q.Next(nil)
		got[it.Value.(string)]++
		q.Done(it.Class)
	}
	want := map[string]int{"critical": 50, "standard": 35, "batch": 15}
	for c, n := range want {
		if d := got[c] - n; d < -1 || d > 1 {
			t.Errorf("class %s got %d of 100, want %d±1: %v", c, got[c], n, got)
		}
	}
}

// TestQueueBorrowing: a class alone uses every seat but critical's
// reserve; critical gets its reserve at once when it comes.
func TestQueueBorrowing(t *testing.T) {
	q := NewQueue(disc(4))
	for i := range 10 {
		q.Push(item(Batch, "b", fmt.Sprint("b", i)))
	}
	n := 0
	for it := q.Next(nil); it != nil; it = q.Next(nil) {
		n++
	}
	if n != 3 {
		t.Fatalf("batch alone took %d of 4 seats, want 3 (one is critical's reserve)", n)
	}
	if q.Next(nil) != nil {
		t.Fatal("a fourth batch item got a seat")
	}
	q.Push(item(Standard, "s", "s"))
	if q.Next(nil) != nil {
		t.Fatal("standard borrowed critical's reserve")
	}
	q.Push(item(Critical, "c", "c"))
	if it := q.Next(nil); it == nil || it.Value != "c" {
		t.Fatalf("critical did not get its reserved seat: %v", it)
	}
	// A seat freed by batch goes to standard before batch by stride.
	q.Done(Batch)
	if it := q.Next(nil); it == nil || it.Class != Standard {
		t.Fatalf("freed seat went to %v, want standard", it)
	}
	// System is never held back.
	q.Push(item(System, "sys", "sys"))
	if it := q.Next(nil); it == nil || it.Class != System {
		t.Fatalf("system waited: %v", it)
	}
}

func TestQueueTryTake(t *testing.T) {
	q := NewQueue(disc(2))
	if !q.TryTake(Standard) {
		t.Fatal("an idle queue refused the fast path")
	}
	if q.TryTake(Standard) {
		t.Fatal("standard took critical's reserved seat")
	}
	if !q.TryTake(Critical) {
		t.Fatal("critical could not take its reserve")
	}
	if !q.TryTake(System) {
		t.Fatal("system was held back")
	}
	q.Done(Critical)
	q.Push(item(Critical, "c", "queued"))
	if q.TryTake(Critical) {
		t.Fatal("the fast path jumped a queued item of the same class")
	}
}

func TestQueueBounds(t *testing.T) {
	t.Run("flow limit", func(t *testing.T) {
		d := disc(1)
		d.FlowLimit = 2
		q := NewQueue(d)
		for i := range 2 {
			if out, _ := q.Push(item(Standard, "a", fmt.Sprint(i))); out != Queued {
				t.Fatal("refused under the limit")
			}
		}
		if out, _ := q.Push(item(Standard, "a", "x")); out != Refused {
			t.Fatal("flow over its limit was queued")
		}
		if out, _ := q.Push(item(Standard, "b", "y")); out != Queued {
			t.Fatal("another flow was refused for a's limit")
		}
		if out, _ := q.Push(&Item{Class: Standard, Flow: "a", Continuation: true}); out != Queued {
			t.Fatal("a continuation was refused")
		}
	})
	t.Run("class limit", func(t *testing.T) {
		d := disc(1)
		d.ClassLimit[Batch] = 1
		q := NewQueue(d)
		q.Push(item(Batch, "a", "1"))
		if out, _ := q.Push(item(Batch, "b", "2")); out != Refused {
			t.Fatal("batch over its class limit was queued")
		}
		if out, _ := q.Push(item(Standard, "b", "3")); out != Queued {
			t.Fatal("standard refused for batch's limit")
		}
	})
	t.Run("shed batch first, youngest first", func(t *testing.T) {
		d := disc(1)
		d.Limit = 3
		q := NewQueue(d)
		q.Push(item(Standard, "s", "s1"))
		q.Push(item(Batch, "b", "b-old"))
		q.Push(item(Batch, "b", "b-young"))
		out, ev := q.Push(item(Critical, "c", "c1"))
		if out != Queued || ev == nil || ev.Value != "b-young" {
			t.Fatalf("critical into a full queue: %v, evicted %v; want queued, b-young evicted", out, ev)
		}
		if ev.Queued() {
			t.Fatal("the evicted item is still queued")
		}
		out, ev = q.Push(item(Batch, "b", "b-new"))
		if out != Refused || ev != nil {
			t.Fatalf("batch into a queue full of higher classes: %v, %v; want refused", out, ev)
		}
		if got := drain(q); fmt.Sprint(got) != "[c1 s1 b-old]" {
			t.Errorf("left %v", got)
		}
	})
}

func TestQueueRemove(t *testing.T) {
	q := NewQueue(disc(1))
	a, b, c := item(Standard, "f", "a"), item(Standard, "f", "b"), item(Standard, "f", "c")
	q.Push(a)
	q.Push(b)
	q.Push(c)
	if !q.Remove(b) || q.Remove(b) {
		t.Fatal("Remove of a queued item must succeed once")
	}
	if n, cost := q.Ahead(Standard); n != 2 || cost != 20*time.Millisecond {
		t.Fatalf("ahead %d %s after removal", n, cost)
	}
	if got := drain(q); fmt.Sprint(got) != "[a c]" {
		t.Errorf("left %v", got)
	}
	if q.Remove(a) {
		t.Fatal("removed a dispatched item")
	}
}

// TestQueueIdleFlowEarnsNoCredit: a flow that was idle does not get a
// burst ahead of a flow that kept the queue busy.
func TestQueueIdleFlowEarnsNoCredit(t *testing.T) {
	q := NewQueue(disc(1))
	for range 50 {
		q.Push(item(Standard, "busy", "busy"))
	}
	for range 40 {
		q.Done(q.Next(nil).Class)
	}
	for range 10 {
		q.Push(item(Standard, "late", "late"))
	}
	got := drain(q)[:10]
	late := 0
	for _, v := range got {
		if v == "late" {
			late++
		}
	}
	if late < 4 || late > 6 {
		t.Errorf("a returning flow got %d of the next 10 dispatches, want about half: %v", late, got)
	}
}

// TestQueueInvariants drives random operations and checks what must hold
// whatever happens: seats never exceed their number, bounds hold, counts
// agree, and every backlogged flow is served within a bounded number of
// dispatches (no starvation whatever the weights).
func TestQueueInvariants(t *testing.T) {
	for seed := range uint64(200) {
		r := rand.New(rand.NewPCG(seed, seed^0x9e37))
		d := disc(1 + r.IntN(4))
		d.FlowLimit, d.Limit = 1+r.IntN(8), 1+r.IntN(20)
		d.ClassLimit = [numClasses]int{0, 1 + r.IntN(10), 1 + r.IntN(10), 1 + r.IntN(10)}
		d.EDF, d.Continuations = r.IntN(2) == 0, r.IntN(2) == 0
		q := NewQueue(d)
		flows := []string{"a", "b", "c"}
		weights := map[string]float64{"a": 0.01 + r.Float64()*10, "b": 1, "c": 0.5}
		var running []*Item
		var queued []*Item
		sinceServed := map[string]int{}
		for step := range 2000 {
			switch op := r.IntN(10); {
			case op < 5:
				f := flows[r.IntN(len(flows))]
				it := &Item{Class: Class(1 + r.IntN(3)), Flow: f, FlowWeight: weights[f],
					Cost: time.Duration(1+r.IntN(20)) * time.Millisecond, Continuation: r.IntN(4) == 0,
					Deadline: t0.Add(time.Duration(r.IntN(1000)) * time.Millisecond)}
				out, ev := q.Push(it)
				if out == Queued {
					queued = append(queued, it)
				} else if !it.bounded() {
					t.Fatalf("seed %d step %d: a continuation was refused", seed, step)
				}
				if ev != nil {
					if !ev.bounded() || ev.Class <= it.Class {
						t.Fatalf("seed %d: evicted %+v for %+v", seed, ev, it)
					}
				}
			case op < 8:
				if it := q.Next(nil); it != nil {
					running = append(running, it)
					for _, f := range flows {
						sinceServed[f]++
					}
					sinceServed[it.Flow] = 0
				}
			case op < 9 && len(running) > 0:
				i := r.IntN(len(running))
				q.Done(running[i].Class)
				running = append(running[:i], running[i+1:]...)
			default:
				if len(queued) > 0 {
					q.Remove(queued[r.IntN(len(queued))])
				}
			}
			if q.Used() > d.Seats {
				t.Fatalf("seed %d step %d: %d seats used of %d", seed, step, q.Used(), d.Seats)
			}
			if q.queued > d.Limit {
				t.Fatalf("seed %d step %d: %d bounded items queued, limit %d", seed, step, q.queued, d.Limit)
			}
			total := 0
			for k := range q.classes {
				c := &q.classes[k]
				if l := d.ClassLimit[k]; l > 0 && c.bounded > l {
					t.Fatalf("seed %d: class %d holds %d, limit %d", seed, k, c.bounded, l)
				}
				n := 0
				for _, f := range c.active {
					n += len(f.items)
					if f.bounded > d.FlowLimit {
						t.Fatalf("seed %d: flow %s holds %d, limit %d", seed, f.name, f.bounded, d.FlowLimit)
					}
				}
				if n != c.queued {
					t.Fatalf("seed %d: class %d counts %d queued, flows hold %d", seed, k, c.queued, n)
				}
				total += n
			}
			if total != q.Total() {
				t.Fatalf("seed %d: total %d vs %d", seed, total, q.Total())
			}
			for _, f := range flows {
				// With weights at most 1000:1 and costs at most 20:1, a
				// backlogged flow is served well within this many
				// dispatches.
				if sinceServed[f] > 5000 {
					t.Fatalf("seed %d: flow %s starved", seed, f)
				}
			}
		}
	}
}

// FuzzQueue checks the invariants on operations chosen by the fuzzer.
func FuzzQueue(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Fuzz(func(t *testing.T, ops []byte) {
		d := disc(2)
		d.Limit, d.FlowLimit = 4, 3
		q := NewQueue(d)
		var running []Class
		var queued []*Item
		for i, op := range ops {
			switch op % 4 {
			case 0, 1:
				it := &Item{Class: Class(op>>2) % numClasses, Flow: string('a' + rune(op>>4)%3), Continuation: op&0x80 != 0,
					Deadline: t0.Add(time.Duration(i%7) * time.Millisecond), Cost: time.Duration(op) * time.Microsecond}
				if out, _ := q.Push(it); out == Queued {
					queued = append(queued, it)
				}
			case 2:
				if it := q.Next(nil); it != nil {
					running = append(running, it.Class)
				}
			case 3:
				if len(running) > 0 {
					q.Done(running[0])
					running = running[1:]
				} else if len(queued) > 0 {
					q.Remove(queued[int(op)%len(queued)])
				}
			}
			if q.Used() > d.Seats {
				t.Fatalf("%d seats used of %d", q.Used(), d.Seats)
			}
			if q.queued > d.Limit {
				t.Fatalf("%d queued, limit %d", q.queued, d.Limit)
			}
		}
		// Everything queued can still be dispatched once seats free.
		for range running {
			q.Done(running[0])
			running = running[1:]
		}
		for q.Total() > 0 {
			it := q.Next(nil)
			if it == nil {
				t.Fatalf("%d items queued but none dispatchable with every seat free", q.Total())
			}
			q.Done(it.Class)
		}
	})
}

// leadDisc is a CPU-bound pool of three seats (two CPUs and critical's
// reserve) in which critical has a lead of ten 10-ms calls.
func leadDisc() Discipline {
	d := disc(3)
	d.Lead = [numClasses]time.Duration{0, 100 * time.Millisecond, 0, 0}
	return d
}

// TestQueueLeadFirst: critical within its share (its pass no further than
// its lead ahead of the other queued classes') goes before the stride
// however the passes stand; beyond it, by stride.
func TestQueueLeadFirst(t *testing.T) {
	for _, tc := range []struct {
		name string
		// ahead is critical's pass minus standard's, in seat-time at
		// critical's weight.
		ahead time.Duration
		want  string
	}{
		{"behind", -time.Second, "h"},
		{"level", 0, "h"},
		{"ahead within the lead", 90 * time.Millisecond, "h"},
		{"ahead by the lead", 100 * time.Millisecond, "h"},
		{"ahead beyond the lead", 110 * time.Millisecond, "s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := NewQueue(leadDisc())
			q.Push(item(Standard, "s", "s"))
			q.Push(item(Critical, "h", "h"))
			q.classes[Standard].pass = 1
			q.classes[Critical].pass = 1 + tc.ahead.Seconds()/DefaultWeights[Critical]
			if it := q.Next(nil); it == nil || it.Value != tc.want {
				t.Fatalf("next %v, want %s", it, tc.want)
			}
		})
	}
}

// TestQueueCanTake: which class may take a free seat of a three-seat pool
// (two shared, one reserved by critical), by the seats in use and whether
// critical is within its share.
func TestQueueCanTake(t *testing.T) {
	for _, tc := range []struct {
		name            string
		critical, batch int
		beyond          bool // critical is beyond its share
		yield           bool // the batch calls yield the CPU
		wantCritical    bool
		wantBatch       bool
	}{
		{"idle", 0, 0, false, false, true, true},
		{"one batch", 0, 1, false, false, true, true},
		{"batch on the shared seats: the reserve is critical's", 0, 2, false, false, true, false},
		{"critical borrows a shared seat", 2, 0, false, false, true, false},
		{"beside one critical call, one other", 1, 0, false, false, true, true},
		{"beside one critical call and one other, none more", 1, 1, false, false, true, false},
		{"beside two critical calls, none", 2, 0, false, false, true, false},
		{"critical beyond its share: its reserve does not count", 2, 0, true, false, true, true},
		{"critical beyond its share, one batch beside", 1, 1, true, false, true, true},
		{"critical beyond its share on two shared seats", 3, 0, true, false, false, false},
		{"full", 1, 2, false, false, false, false},
		// Where the others' calls yield, critical within its share takes
		// seats as if they held none, up to every seat of the pool.
		{"full, the others yielding", 1, 2, false, true, true, false},
		{"two batch calls yielding beside two critical", 2, 2, false, true, true, false},
		{"critical holds every seat itself", 3, 0, false, true, false, false},
		{"full, critical beyond its share", 1, 2, true, true, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A pool whose lower classes may yield; whether these do is
			// the case's.
			d := leadDisc()
			d.OthersYield = true
			q := NewQueue(d)
			for range tc.critical {
				q.take(Critical)
			}
			for range tc.batch {
				q.take(Batch)
				q.MarkYielding(tc.yield, 1)
			}
			// Standard queued sets the floor critical's lead is measured
			// from.
			q.Push(item(Standard, "s", "s"))
			if tc.beyond {
				q.classes[Critical].pass = time.Second.Seconds()
			}
			if got := q.canTake(Critical); got != tc.wantCritical {
				t.Errorf("critical may take a seat: %v, want %v", got, tc.wantCritical)
			}
			if got := q.canTake(Batch); got != tc.wantBatch {
				t.Errorf("batch may take a seat: %v, want %v", got, tc.wantBatch)
			}
		})
	}
}

// TestQueueCharge: a handed-off seat is paid for in the stride: a class
// charged for seats it got without Next yields the next ones to a class
// that got none.
func TestQueueCharge(t *testing.T) {
	q := NewQueue(Discipline{Seats: 1, Weights: [numClasses]float64{0, 50, 50, 50}})
	q.Push(item(Standard, "s", "s"))
	q.Push(item(Batch, "b", "b"))
	for range 3 {
		q.Charge(item(Standard, "s", "handed"))
	}
	if it := q.Next(nil); it == nil || it.Value != "b" {
		t.Fatalf("next after standard's charged seats: %v, want batch", it)
	}
}

// TestQueueCriticalFloodLeavesShares: a flood of critical calls goes first
// for one burst of its lead, then competes by weight: standard keeps its
// share of a three-seat pool, and no more than the unreserved seats run
// beside critical's reserved one.
func TestQueueCriticalFloodLeavesShares(t *testing.T) {
	o := Options{}
	o.defaults()
	for _, tc := range []struct {
		name   string
		d      Discipline
		rounds int
	}{
		{"lead of ten calls", leadDisc(), 400},
		{"default lead of five hundred calls", o.discipline(3, false), 4000},
		{"default lead, standard yielding the CPU", o.discipline(3, true), 4000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := NewQueue(tc.d)
			for i := range tc.rounds + 100 {
				q.Push(item(Critical, "h", fmt.Sprint("h", i)))
				q.Push(item(Standard, "s", fmt.Sprint("s", i)))
			}
			var running []*Item
			got := map[Class]int{}
			for range tc.rounds {
				for it := q.Next(nil); it != nil; it = q.Next(nil) {
					running = append(running, it)
					got[it.Class]++
					q.MarkYielding(tc.d.OthersYield && it.Class == Standard, 1)
				}
				// Where standard yields the CPU, critical's calls within
				// its share take seats beside standard's.
				if (!tc.d.OthersYield && q.Used() > 3) || q.InUse(Critical) > 3 || q.InUse(Standard) > 2 {
					t.Fatalf("%d seats used, %d by critical, %d by standard", q.Used(), q.InUse(Critical), q.InUse(Standard))
				}
				// The oldest call ends.
				q.Done(running[0].Class)
				q.MarkYielding(tc.d.OthersYield && running[0].Class == Standard, -1)
				running = running[1:]
			}
			t.Logf("seats dispatched: %v", got)
			// Stride between critical (50) and standard (35) gives
			// standard about 35/85 of the seats beyond critical's
			// nominal and reserved ones, less critical's one burst of
			// its lead.
			if share := float64(got[Standard]) / float64(got[Standard]+got[Critical]); share < 0.25 {
				t.Errorf("standard got %d of %d seats under a critical flood: %v", got[Standard], got[Standard]+got[Critical], got)
			}
		})
	}
}

// TestQueueCriticalFloodSeatedAtOnce: critical calls that always find a
// seat at once (TryTake, charged while another class waits, as
// Scheduler.Seat does) count against critical's lead too: a flood of
// them loses its precedence and its hold on the other classes' seats, and
// standard keeps its share.
func TestQueueCriticalFloodSeatedAtOnce(t *testing.T) {
	q := NewQueue(leadDisc())
	for i := range 500 {
		q.Push(item(Standard, "s", fmt.Sprint("s", i)))
	}
	var running []Class
	got := map[Class]int{}
	for range 400 {
		// Critical calls arrive faster than calls end: each takes a free
		// seat at once if it may.
		for q.TryTake(Critical) {
			q.Charge(item(Critical, "h", "h"))
			running = append(running, Critical)
			got[Critical]++
		}
		for it := q.Next(nil); it != nil; it = q.Next(nil) {
			running = append(running, it.Class)
			got[it.Class]++
		}
		q.Done(running[0])
		running = running[1:]
	}
	t.Logf("seats dispatched: %v", got)
	if share := float64(got[Standard]) / float64(got[Standard]+got[Critical]); share < 0.3 {
		t.Errorf("standard got %d of %d seats under a flood of critical calls seated at once: %v",
			got[Standard], got[Standard]+got[Critical], got)
	}
}

// TestQueueCriticalComputesAlone: in a pool of three seats (two CPUs and
// critical's reserve), a critical call takes a seat at once; the seats
// freed beside it are not refilled while the other classes' calls and
// critical's fill the two CPUs; a burst of critical calls borrows every
// seat and goes before the others; the others have their two seats back
// when it ends.
func TestQueueCriticalComputesAlone(t *testing.T) {
	q := NewQueue(leadDisc())
	for i := range 5 {
		q.Push(item(Batch, "b", fmt.Sprint("b", i)))
	}
	if got := drain2(q); got != 2 {
		t.Fatalf("batch took %d seats, want the 2 shared ones", got)
	}
	q.Push(item(Critical, "h", "c1"))
	if it := q.Next(nil); it == nil || it.Value != "c1" {
		t.Fatalf("critical's call did not get a seat at once: %v", it)
	}
	q.Done(Batch)
	if it := q.Next(nil); it != nil {
		t.Fatalf("%v refilled a seat beside critical's call: three CPU-bound calls on two CPUs", it.Value)
	}
	q.Push(item(Critical, "h", "c2"))
	q.Push(item(Critical, "h", "c3"))
	if it := q.Next(nil); it == nil || it.Value != "c2" {
		t.Fatalf("critical's second call did not take the free seat: %v", it)
	}
	q.Done(Batch)
	if it := q.Next(nil); it == nil || it.Value != "c3" {
		t.Fatalf("critical's third call did not borrow the seat batch left: %v", it)
	}
	for range 3 {
		q.Done(Critical)
	}
	if got := drain2(q); got != 2 || q.InUse(Batch) != 2 {
		t.Fatalf("batch took %d seats after critical's calls ended, want its 2 back", got)
	}
}

// drain2 dispatches until nothing may go, holding the seats.
func drain2(q *Queue) int {
	n := 0
	for it := q.Next(nil); it != nil; it = q.Next(nil) {
		n++
	}
	return n
}

// TestQueueChargeIdleFree: seats handed off while a class has nothing
// queued cost it nothing, like seats taken at once: it comes back to
// contention without a debt and goes before a class of lower weight.
func TestQueueChargeIdleFree(t *testing.T) {
	q := NewQueue(Discipline{Seats: 1, Weights: DefaultWeights})
	q.Push(item(Standard, "s", "s0"))
	q.Done(q.Next(nil).Class)
	for range 100 {
		q.Charge(item(Critical, "h", "handed"))
	}
	q.Push(item(Standard, "s", "s1"))
	q.Push(item(Critical, "h", "h1"))
	if it := q.Next(nil); it == nil || it.Value != "h1" {
		t.Fatalf("next %v, want critical's call: its idle hand-offs left it a debt", it)
	}
}
