package bench

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// ArrivalKind names how invocations arrive.
type ArrivalKind string

const (
	// Closed: C clients each start an invocation, wait for its end and
	// start the next one.
	Closed ArrivalKind = "closed"
	// Poisson: an open loop with exponentially distributed gaps.
	Poisson ArrivalKind = "poisson"
	// Burst: N invocations at once, every D.
	Burst ArrivalKind = "burst"
	// Replay: per-minute counts of a trace, spread at random within
	// each minute.
	Replay ArrivalKind = "trace"
)

// Arrivals configure the load.
type Arrivals struct {
	Kind        ArrivalKind
	Concurrency int
	Rate        float64 // invocations per second
	Burst       int
	Every       time.Duration
	Trace       *Trace
	// TraceSpeedup compresses the trace's minutes: 60 plays a minute in a
	// second.
	TraceSpeedup float64
	// TraceFunctions picks the busiest rows of the trace; 0 takes all.
	TraceFunctions int
}

// Label describes the arrivals for reports.
func (a Arrivals) Label() string {
	switch a.Kind {
	case Poisson:
		return fmt.Sprintf("poisson %g/s", a.Rate)
	case Burst:
		return fmt.Sprintf("bursts of %d every %s", a.Burst, a.Every)
	case Replay:
		return fmt.Sprintf("trace replay of %d functions at %gx", len(a.Trace.Busiest(a.TraceFunctions)), a.TraceSpeedup)
	default:
		return fmt.Sprintf("closed loop, concurrency %d", a.Concurrency)
	}
}

// Validate reports arrivals that cannot run.
func (a Arrivals) Validate() error {
	switch a.Kind {
	case Closed:
		if a.Concurrency < 1 {
			return fmt.Errorf("--concurrency must be at least 1, got %d", a.Concurrency)
		}
	case Poisson:
		if a.Rate <= 0 {
			return fmt.Errorf("--rate must be positive, got %g", a.Rate)
		}
	case Burst:
		if a.Burst < 1 || a.Every <= 0 {
			return fmt.Errorf("bursts need --burst N >= 1 and a positive --every, got %d every %s", a.Burst, a.Every)
		}
	case Replay:
		if a.Trace == nil || len(a.Trace.Rows) == 0 {
			return fmt.Errorf("trace replay needs a trace")
		}
		if a.TraceSpeedup <= 0 {
			return fmt.Errorf("--trace-speedup must be positive, got %g", a.TraceSpeedup)
		}
	default:
		return fmt.Errorf("unknown arrival kind %q", a.Kind)
	}
	return nil
}

// Streams is how many distinct workflows the arrivals address: one per
// replayed trace function, otherwise one.
func (a Arrivals) Streams() int {
	if a.Kind == Replay {
		return len(a.Trace.Busiest(a.TraceFunctions))
	}
	return 1
}

// Arrival is one scheduled invocation of an open-loop run: its offset
// from the start, and which stream (trace function) it belongs to.
type Arrival struct {
	At     time.Duration
	Stream int
}

// Schedule generates the open-loop arrivals within horizon (0: no time
// bound) and at most limit of them (0: no count bound). Closed loops have
// no schedule. Generating the whole schedule before the run keeps random
// draws and allocation out of the load generator's hot path.
func (a Arrivals) Schedule(rng *rand.Rand, horizon time.Duration, limit int) ([]Arrival, error) {
	if horizon <= 0 && limit <= 0 && a.Kind != Replay {
		return nil, fmt.Errorf("an open-loop run needs a --duration or --invocations bound")
	}
	switch a.Kind {
	case Poisson:
		return PoissonSchedule(rng, a.Rate, horizon, limit), nil
	case Burst:
		return BurstSchedule(a.Burst, a.Every, horizon, limit), nil
	case Replay:
		return TraceSchedule(rng, a.Trace.Busiest(a.TraceFunctions), a.TraceSpeedup, horizon, limit), nil
	}
	return nil, fmt.Errorf("%s arrivals have no schedule", a.Kind)
}

func within(at time.Duration, n int, horizon time.Duration, limit int) bool {
	return (horizon <= 0 || at < horizon) && (limit <= 0 || n < limit)
}

// PoissonSchedule draws arrivals of a Poisson process of the given rate
// (per second): exponentially distributed gaps of mean 1/rate.
func PoissonSchedule(rng *rand.Rand, rate float64, horizon time.Duration, limit int) []Arrival {
	var out []Arrival
	if rate <= 0 {
		return out
	}
	at := time.Duration(0)
	for {
		at += time.Duration(rng.ExpFloat64() / rate * float64(time.Second))
		if !within(at, len(out), horizon, limit) {
			return out
		}
		out = append(out, Arrival{At: at})
	}
}

// BurstSchedule puts n arrivals at time zero, n more at every, and so on.
func BurstSchedule(n int, every, horizon time.Duration, limit int) []Arrival {
	var out []Arrival
	if n <= 0 || every <= 0 {
		return out
	}
	for at := time.Duration(0); ; at += every {
		for range n {
			if !within(at, len(out), horizon, limit) {
				return out
			}
			out = append(out, Arrival{At: at})
		}
	}
}

// TraceSchedule replays per-minute counts: minute m of the trace lasts
// 1/speedup of a minute from m/speedup minutes on, and its invocations
// fall uniformly at random within it. Row i of rows is stream i.
func TraceSchedule(rng *rand.Rand, rows []TraceRow, speedup float64, horizon time.Duration, limit int) []Arrival {
	var out []Arrival
	if speedup <= 0 {
		return out
	}
	minute := time.Duration(float64(time.Minute) / speedup)
	minutes := 0
	for _, r := range rows {
		minutes = max(minutes, len(r.Counts))
	}
	for m := range minutes {
		begin := time.Duration(m) * minute
		if horizon > 0 && begin >= horizon {
			break
		}
		first := len(out)
		for s, r := range rows {
			if m >= len(r.Counts) {
				continue
			}
			for range r.Counts[m] {
				out = append(out, Arrival{At: begin + time.Duration(rng.Int64N(int64(minute))), Stream: s})
			}
		}
		slices.SortFunc(out[first:], func(a, b Arrival) int { return int(a.At - b.At) })
		if horizon > 0 || limit > 0 {
			end := first
			for end < len(out) && within(out[end].At, end, horizon, limit) {
				end++
			}
			if end < len(out) {
				return out[:end]
			}
		}
	}
	return out
}
