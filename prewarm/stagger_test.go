package prewarm

import (
	"math"
	"testing"
	"time"
)

// stagger places a prepare on its slot: alone, just in time for its
// call; behind a prepare that takes the slot before it would be ready,
// back to back, with only the growth of the run's margin between them.
func TestStaggerPlacesPreparesOnTheirSlot(t *testing.T) {
	ms := func(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }
	call := t0.Add(100 * time.Millisecond)
	for _, tc := range []struct {
		name         string
		margin, cold time.Duration
		spread       float64
		next         slotUse
		wantAt       time.Time
		wantRun      int
	}{
		{"free slot", ms(2), ms(5), 1, slotUse{}, t0.Add(ms(93)), 0},
		{"slot taken only after the call's margin", ms(2), ms(5), 1, slotUse{from: t0.Add(ms(98))}, t0.Add(ms(93)), 0},
		{"slot taken before: back to back, the run's margin grows 2ms×(√2−1)", ms(2), ms(5), 1, slotUse{from: t0.Add(ms(90))},
			t0.Add(ms(90) - ms(2*(math.Sqrt2-1)) - ms(5)), 1},
		{"fourth of a run: 2ms×(√4−√3)", ms(2), ms(5), 1, slotUse{from: t0.Add(ms(90)), run: 2},
			t0.Add(ms(90) - time.Duration(float64(ms(2))*(2-math.Sqrt(3))) - ms(5)), 3},
		// Starts slow together: the run's margin grows 1.2 times as fast,
		// 2ms × 1.2 × (√4−√3) for the fourth...
		{"correlated starts", ms(2), ms(5), 1.2, slotUse{from: t0.Add(ms(90)), run: 2},
			t0.Add(ms(90) - time.Duration(float64(ms(2))*1.2*(2-math.Sqrt(3))) - ms(5)), 3},
		// ...but never by more than a margin per prepare.
		{"strongly correlated starts", ms(2), ms(5), 3, slotUse{from: t0.Add(ms(90)), run: 2}, t0.Add(ms(88) - ms(5)), 3},
		// A margin that aims late adds nothing between prepares back to
		// back: each would otherwise be sent after its successor.
		{"negative margin", ms(-3), ms(5), 1, slotUse{from: t0.Add(ms(90)), run: 4}, t0.Add(ms(85)), 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			at, run := stagger(call, tc.margin, tc.cold, tc.spread, tc.next)
			if !at.Equal(tc.wantAt) || run != tc.wantRun {
				t.Fatalf("stagger = %v, run %d; want %v, run %d", at.Sub(t0), run, tc.wantAt.Sub(t0), tc.wantRun)
			}
		})
	}
}

// A chain of ten instant calls on one prepare slot: the prepares run back
// to back and the whole run is aimed by its margin times √10, not ten
// margins, so the head is ready about 3 margins early rather than 10.
func TestPlannerStaggersAChainByTheSquareRootOfItsLength(t *testing.T) {
	const n = 10
	margin, cold := 2*time.Millisecond, 5*time.Millisecond
	var next slotUse
	starts := make([]time.Time, n)
	for i := n - 1; i >= 0; i-- {
		call := t0.Add(time.Duration(i) * time.Millisecond) // calls 1ms apart
		next.from, next.run = stagger(call, margin, cold, 1, next)
		starts[i] = next.from
	}
	last := t0.Add((n - 1) * time.Millisecond)
	want := last.Add(-time.Duration(float64(margin)*math.Sqrt(n)) - n*cold)
	if d := starts[0].Sub(want); d < -time.Microsecond || d > time.Microsecond {
		t.Fatalf("head of the run sent at %v, want %v (margin × √10 and ten starts before the last call)", starts[0].Sub(t0), want.Sub(t0))
	}
	for i := 1; i < n; i++ {
		if gap := starts[i].Sub(starts[i-1]); gap < cold || gap > cold+margin {
			t.Fatalf("prepare %d sent %v after the one before, want one start and less than a margin", i, gap)
		}
	}
}

// The correlation of consecutive starts' deviations: none for a machine
// whose slow starts come alone, high for one whose slow starts come in
// spells, nothing trusted before twenty starts.
func TestStartCorrelation(t *testing.T) {
	for _, tc := range []struct {
		name     string
		pattern  []float64 // deviations, repeated
		n        int
		min, max float64
	}{
		{"too few", []float64{1, 1, -1, -1}, minCorrelatedStarts - 1, 0, 0},
		{"slow and fast alternate", []float64{0.5, -0.5}, 200, 0, 0},
		{"steady", []float64{0}, 200, 0, 0},
		{"slow in spells of five", []float64{0.5, 0.5, 0.5, 0.5, 0.5, -0.5, -0.5, -0.5, -0.5, -0.5}, 400, 0.5, 0.8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c startCorrelation
			for i := range tc.n {
				c.add(tc.pattern[i%len(tc.pattern)])
			}
			if r := c.rho(); r < tc.min || r > tc.max {
				t.Fatalf("rho %v, want within [%v, %v]", r, tc.min, tc.max)
			}
		})
	}
	// Through the statistics: deviations are of each start from its own
	// function's median, so two functions of different speeds, each
	// steady, show no correlation.
	s := NewStats()
	for range 50 {
		s.ObserveCold("fast", 2*time.Millisecond)
		s.ObserveCold("slow", 50*time.Millisecond)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := (view{s: s}).runSpread(); f != 1 {
		t.Fatalf("run spread %v for steady starts, want 1", f)
	}
}
