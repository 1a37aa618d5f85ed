package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// histError is the relative error the histogram promises at a bucket's
// middle: half a bucket of the binade's floor.
const histError = 1.0 / (2 * histSub)

func TestHistogramQuantilesWithinErrorOfExactSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dists := map[string]func() float64{
		"lognormal": func() float64 { return math.Exp(rng.NormFloat64()*2 + 1) },
		"uniform":   func() float64 { return rng.Float64() * 1000 },
		"heavy tail": func() float64 {
			return 0.05 / math.Pow(rng.Float64()+1e-12, 1.5)
		},
		"with negatives and zeros": func() float64 {
			switch rng.IntN(10) {
			case 0:
				return 0
			case 1, 2:
				return -rng.ExpFloat64() * 3
			}
			return rng.ExpFloat64() * 3
		},
	}
	for name, draw := range dists {
		t.Run(name, func(t *testing.T) {
			var h Histogram
			values := make([]float64, 20011)
			for i := range values {
				values[i] = draw()
				h.Add(values[i])
			}
			exact := Summarize(values) // sorts values
			got := h.Dist()
			if got.Count != exact.Count || got.Max != exact.Max || math.Abs(got.Mean-exact.Mean) > 1e-9*math.Abs(exact.Mean)+1e-12 {
				t.Errorf("count/max/mean = %d/%v/%v, want exact %d/%v/%v", got.Count, got.Max, got.Mean, exact.Count, exact.Max, exact.Mean)
			}
			for _, p := range []float64{1, 10, 50, 90, 99, 99.9, 100} {
				want := Percentile(values, p)
				if q := h.Quantile(p); math.Abs(q-want) > histError*math.Abs(want) {
					t.Errorf("p%v = %v, want %v within %.2f%%", p, q, want, histError*100)
				}
			}
		})
	}
}

func TestHistogramMergeEqualsOneHistogramOfAll(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var a, b, all Histogram
	for i := range 5000 {
		v := rng.ExpFloat64() * 10
		if i%3 == 0 {
			b.Add(v)
		} else {
			a.Add(v)
		}
		all.Add(v)
	}
	a.Merge(&b)
	a.Merge(&Histogram{}) // an empty one changes nothing
	if a.Dist().Count != all.Dist().Count || a.Dist().P50 != all.Dist().P50 || a.Dist().P999 != all.Dist().P999 ||
		math.Abs(a.Dist().Mean-all.Dist().Mean) > 1e-9 || !slices.Equal(a.CDF(), all.CDF()) {
		t.Errorf("merged %+v, want %+v", a.Dist(), all.Dist())
	}
	var empty Histogram
	empty.Merge(&all)
	if empty.Dist() != all.Dist() {
		t.Errorf("merge into empty = %+v, want %+v", empty.Dist(), all.Dist())
	}
}

func TestHistogramEmptyAndExtremes(t *testing.T) {
	var h Histogram
	if h.Dist() != (Dist{}) || !math.IsNaN(h.Quantile(50)) || h.CDF() != nil {
		t.Errorf("empty histogram: %+v %v %v", h.Dist(), h.Quantile(50), h.CDF())
	}
	h.Add(math.NaN())
	if h.Count() != 0 {
		t.Errorf("NaN was counted")
	}
	// Values beyond the binades still count, and the exact min and max
	// bound what the quantiles say of them.
	for _, v := range []float64{1e-300, 1e300, 5, 5, 5} {
		h.Add(v)
	}
	d := h.Dist()
	if d.Count != 5 || d.Max != 1e300 || h.Quantile(0.1) != 1e-300 {
		t.Errorf("extremes: %+v, min quantile %v", d, h.Quantile(0.1))
	}
	if math.Abs(d.P50-5) > 5*histError {
		t.Errorf("p50 = %v, want 5", d.P50)
	}
	var one Histogram
	one.Add(7)
	if d := one.Dist(); d.P50 != 7 || d.P99 != 7 || d.Max != 7 || d.Mean != 7 {
		t.Errorf("one value: %+v", d)
	}
	cdf := h.CDF()
	if cdf[len(cdf)-1] != (CDFPoint{Value: 1e300, Fraction: 1}) || len(cdf) != 3 || cdf[0].Fraction != 0.2 {
		t.Errorf("CDF = %v", cdf)
	}
}

// The histogram's memory depends on the values' range, not their number.
func TestHistogramMemoryIsBoundedByRange(t *testing.T) {
	var h Histogram
	for i := range 1_000_000 {
		h.Add(1 + float64(i%1000)/1000) // one binade
	}
	used := 0
	for _, b := range h.pos {
		if b != nil {
			used++
		}
	}
	if used != 1 || h.Count() != 1_000_000 {
		t.Errorf("%d binades allocated for values in [1, 2)", used)
	}
}
