package bench

import (
	"math"
	"unsafe"
)

// Histogram is a streaming log-linear histogram of float64 values (the
// harness's milliseconds): each power of two is split into histSub equal
// buckets, so a value is known within 1/histSub of its binade's floor,
// under 0.4% relative error at the bucket's middle. Its memory is bounded
// by the range of values, not their number: a binade's buckets are
// allocated when a value first falls in it, and there are histExps
// binades of each sign. Count, sum, min and max are exact. The zero value
// is an empty histogram; it is not safe for concurrent use.
type Histogram struct {
	pos, neg [histExps]*[histSub]uint64
	zero     uint64
	count    uint64
	sum      float64
	min, max float64
}

const (
	histSub = 128
	// Binades from 2^histMinExp (about 1e-9: a picosecond in ms) to
	// 2^(histMinExp+histExps) (about 1.8e10: five hours in ms); values
	// beyond are counted in the first or last binade, and the exact
	// min and max still bound the quantiles.
	histMinExp = -30
	histExps   = 64
)

// histIndex places |v| > 0 in a binade and a bucket within it.
func histIndex(a float64) (exp, sub int) {
	frac, e := math.Frexp(a) // a = frac × 2^e, frac in [0.5, 1)
	exp = e - histMinExp
	switch {
	case exp < 0:
		return 0, 0
	case exp >= histExps:
		return histExps - 1, histSub - 1
	}
	return exp, int((frac - 0.5) * 2 * histSub)
}

// histMid is the middle of a bucket, in absolute value.
func histMid(exp, sub int) float64 {
	lo := 0.5 + float64(sub)/(2*histSub)
	return math.Ldexp(lo+1.0/(4*histSub), exp+histMinExp)
}

// Add records one value; NaN is ignored.
func (h *Histogram) Add(v float64) {
	if math.IsNaN(v) {
		return
	}
	if h.count == 0 || v < h.min {
		h.min = v
	}
	if h.count == 0 || v > h.max {
		h.max = v
	}
	h.count++
	h.sum += v
	if v == 0 {
		h.zero++
		return
	}
	side := &h.pos
	if v < 0 {
		side = &h.neg
	}
	e, s := histIndex(math.Abs(v))
	if side[e] == nil {
		side[e] = new([histSub]uint64)
	}
	side[e][s]++
}

// Merge adds o's values to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.count == 0 {
		return
	}
	if h.count == 0 || o.min < h.min {
		h.min = o.min
	}
	if h.count == 0 || o.max > h.max {
		h.max = o.max
	}
	h.count += o.count
	h.sum += o.sum
	h.zero += o.zero
	for _, p := range [2]struct{ dst, src *[histExps]*[histSub]uint64 }{{&h.pos, &o.pos}, {&h.neg, &o.neg}} {
		for e, b := range p.src {
			if b == nil {
				continue
			}
			if p.dst[e] == nil {
				p.dst[e] = new([histSub]uint64)
			}
			for s, n := range b {
				p.dst[e][s] += n
			}
		}
	}
}

// Count is the number of values recorded.
func (h *Histogram) Count() int { return int(h.count) }

// buckets calls f with each non-empty bucket's middle and count in
// ascending order of value, until f returns false.
func (h *Histogram) buckets(f func(mid float64, n uint64) bool) {
	for e := histExps - 1; e >= 0; e-- {
		if b := h.neg[e]; b != nil {
			for s := histSub - 1; s >= 0; s-- {
				if b[s] > 0 && !f(-histMid(e, s), b[s]) {
					return
				}
			}
		}
	}
	if h.zero > 0 && !f(0, h.zero) {
		return
	}
	for e := range histExps {
		if b := h.pos[e]; b != nil {
			for s := range histSub {
				if b[s] > 0 && !f(histMid(e, s), b[s]) {
					return
				}
			}
		}
	}
}

// Quantile is the nearest-rank p-th percentile (0 < p ≤ 100): the middle
// of the bucket holding the value of that rank, kept within the exact min
// and max. It is NaN when the histogram is empty.
func (h *Histogram) Quantile(p float64) float64 {
	if h.count == 0 {
		return math.NaN()
	}
	rank := uint64(math.Ceil(p / 100 * float64(h.count)))
	rank = min(max(rank, 1), h.count)
	if rank == h.count {
		return h.max
	}
	if rank == 1 {
		return h.min
	}
	var seen uint64
	out := h.max
	h.buckets(func(mid float64, n uint64) bool {
		seen += n
		if seen >= rank {
			out = mid
			return false
		}
		return true
	})
	return math.Min(math.Max(out, h.min), h.max)
}

// Dist summarises the histogram as the reports show it.
func (h *Histogram) Dist() Dist {
	if h.count == 0 {
		return Dist{}
	}
	return Dist{
		Count: int(h.count), Mean: h.sum / float64(h.count),
		P50: h.Quantile(50), P90: h.Quantile(90), P99: h.Quantile(99), P999: h.Quantile(99.9), Max: h.max,
	}
}

// CDFPoint is one step of a cumulative distribution: the fraction of the
// values at or below Value.
type CDFPoint struct {
	Value    float64 `json:"v"`
	Fraction float64 `json:"f"`
}

// CDF is the histogram's cumulative distribution, one point per non-empty
// bucket (at most histSub per binade in use), ending at the exact max.
func (h *Histogram) CDF() []CDFPoint {
	if h.count == 0 {
		return nil
	}
	var (
		out  []CDFPoint
		seen uint64
	)
	h.buckets(func(mid float64, n uint64) bool {
		seen += n
		out = append(out, CDFPoint{Value: math.Min(math.Max(mid, h.min), h.max), Fraction: float64(seen) / float64(h.count)})
		return true
	})
	out[len(out)-1].Value = h.max
	return out
}

// bytes is the memory the histogram holds.
func (h *Histogram) bytes() int {
	n := int(unsafe.Sizeof(*h))
	for e := range histExps {
		if h.pos[e] != nil {
			n += int(unsafe.Sizeof(*h.pos[e]))
		}
		if h.neg[e] != nil {
			n += int(unsafe.Sizeof(*h.neg[e]))
		}
	}
	return n
}
