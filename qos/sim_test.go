package qos

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// simConfig is a simulated `baton bench qos` at G2 alone: Poisson
// arrivals of 1- and 3-step workflows whose calls each need a fixed CPU
// time, on a pool of seats in front of CPUs shared equally by the calls
// running (processor sharing), in virtual time. It leaves out what the
// machine adds (the HTTP and engine work, other processes), so that a
// change of the discipline is measured apart from the machine's noise.
type simConfig struct {
	cpus     int
	seats    int
	call     time.Duration // CPU time of one call
	gap      time.Duration // engine time between a workflow's calls (seat kept)
	mu       float64       // saturation rate: cpus / call
	duration time.Duration
	deadline time.Duration // h's
	// backlog is G1's continuation priority: a start of another tenant is
	// refused while this many calls of the other classes queue at G2.
	backlog int
	alone   bool // tenant h only: its L0
	seed    uint64
}

type simTenant struct {
	name   string
	class  Class
	share  float64 // of mu
	threes float64 // fraction of 3-step workflows
}

var simTenants = []simTenant{
	{"h", Critical, 0.2, 0.5},
	{"s1", Standard, 0.4, 0},
	{"s2", Standard, 0.4, 0},
	{"b", Batch, 1.0, 0},
}

type simResult struct {
	hP99, hP50 time.Duration
	hMet       float64 // share of h's workflows within the deadline
	goodput    float64 // completions per second, h's only within its deadline
	done       map[string]int
}

type simWorkflow struct {
	tenant  int
	arrival time.Duration
	steps   int
}

type simCall struct {
	wf   *simWorkflow
	it   *Item
	left time.Duration // CPU time still needed
	at   time.Duration // when a handed-off call takes its kept seat
}

// simulate runs one simulated experiment with the scheduler's default
// discipline for the pool.
func simulate(cfg simConfig) simResult {
	o := Options{}
	o.defaults()
	q := NewQueue(o.discipline(cfg.seats, true))
	r := rand.New(rand.NewPCG(cfg.seed, 14))
	const dt = 50 * time.Microsecond
	next := make([]time.Duration, len(simTenants))
	for i, t := range simTenants {
		next[i] = simExp(r, t.share*cfg.mu)
	}
	var running, handing []*simCall
	res := simResult{done: map[string]int{}}
	var hLat []time.Duration
	hMet, hAll := 0, 0
	push := func(c *simCall, now time.Duration) {
		t := simTenants[c.wf.tenant]
		// A workflow's first call: its later ones take the seat it keeps.
		c.it = &Item{Class: t.class, Flow: t.name, Cost: cfg.call, Value: c}
		if t.class == Critical {
			c.it.Deadline = t0.Add(c.wf.arrival + cfg.deadline)
		}
		if q.TryTake(t.class) {
			q.Charge(c.it) // as Scheduler.Seat does
			running = append(running, c)
			return
		}
		q.Push(c.it)
	}
	pump := func() {
		for it := q.Next(nil); it != nil; it = q.Next(nil) {
			running = append(running, it.Value.(*simCall))
		}
	}
	for now := time.Duration(0); now < cfg.duration || len(running)+len(handing)+q.Total() > 0; now += dt {
		for i, t := range simTenants {
			for now < cfg.duration && next[i] <= now {
				next[i] += simExp(r, t.share*cfg.mu)
				if cfg.alone && t.class != Critical {
					continue
				}
				wf := &simWorkflow{tenant: i, arrival: now, steps: 1}
				if r.Float64() < t.threes {
					wf.steps = 3
				}
				if t.class != Critical {
					if n, _ := q.Ahead(Batch); n-q.Len(Critical) >= cfg.backlog {
						continue // refused at G1
					}
				}
				push(&simCall{wf: wf, left: cfg.call}, now)
			}
		}
		pump()
		// Processor sharing: the running calls split the CPUs.
		rate := min(1, float64(cfg.cpus)/float64(max(1, len(running))))
		kept := running[:0]
		var ended []*simCall
		for _, c := range running {
			c.left -= time.Duration(float64(dt) * rate)
			if c.left > 0 {
				kept = append(kept, c)
			} else {
				ended = append(ended, c)
			}
		}
		running = kept
		for _, c := range ended {
			c.wf.steps--
			if c.wf.steps > 0 {
				// The seat is kept for the workflow's next call.
				handing = append(handing, &simCall{wf: c.wf, left: cfg.call, at: now + cfg.gap, it: c.it})
				continue
			}
			t := simTenants[c.wf.tenant]
			q.Done(t.class)
			lat := now + dt - c.wf.arrival
			res.done[t.name]++
			if t.class == Critical {
				hAll++
				hLat = append(hLat, lat)
				if lat <= cfg.deadline {
					hMet++
					res.goodput++
				}
			} else {
				res.goodput++
			}
		}
		waiting := handing[:0]
		for _, c := range handing {
			if c.at > now {
				waiting = append(waiting, c)
				continue
			}
			q.Charge(c.it)
			running = append(running, c)
		}
		handing = waiting
		pump()
	}
	slices.Sort(hLat)
	if len(hLat) > 0 {
		res.hP99 = hLat[int(math.Ceil(0.99*float64(len(hLat))))-1]
		res.hP50 = hLat[len(hLat)/2]
		res.hMet = float64(hMet) / float64(hAll)
	}
	res.goodput /= cfg.duration.Seconds()
	return res
}

func simExp(r *rand.Rand, rate float64) time.Duration {
	return time.Duration(r.ExpFloat64() / rate * float64(time.Second))
}

// BenchmarkSimulatedTenants is the experiment in virtual time at
// G2 (see simulate): h's p99 under 2μ against its p99 alone (L0), the
// deadlines it met and the goodput, with the default discipline on two
// CPUs and three wasm seats, over several seeds.
//
//	go test -run xxx -bench SimulatedTenants -benchtime 1x ./qos/
func BenchmarkSimulatedTenants(b *testing.B) {
	for _, seed := range []uint64{1, 2, 3, 4, 5} {
		b.Run(fmt.Sprint("seed", seed), func(b *testing.B) {
			cfg := simConfig{cpus: 2, seats: 3, call: 10 * time.Millisecond, gap: 200 * time.Microsecond,
				mu: 200, duration: 60 * time.Second, deadline: 200 * time.Millisecond, backlog: 4, seed: seed}
			var alone, loaded simResult
			for range b.N {
				cfg.alone = true
				alone = simulate(cfg)
				cfg.alone = false
				loaded = simulate(cfg)
			}
			b.ReportMetric(float64(alone.hP99)/1e6, "L0-p99-ms")
			b.ReportMetric(float64(loaded.hP99)/1e6, "h-p99-ms")
			b.ReportMetric(float64(loaded.hP99)/float64(alone.hP99), "ratio")
			b.ReportMetric(100*loaded.hMet, "met-%")
			b.ReportMetric(loaded.goodput/cfg.mu, "goodput-μ")
			b.ReportMetric(float64(loaded.done["s1"]-loaded.done["s2"])/float64(loaded.done["s1"]), "s1-s2")
		})
	}
}
