package bench

import (
	"math"
	"strconv"

	"gonum.org/v1/plot"
)

// niceTicks places about n labelled ticks at round steps (1, 2 or 5 times a
// power of ten) over an axis, where gonum's default often gives two or
// three. Integer keeps the step at least 1, for counts.
type niceTicks struct {
	n       int
	integer bool
}

func (t niceTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(hi > lo) {
		return []plot.Tick{{Value: lo, Label: strconv.FormatFloat(lo, 'g', -1, 64)}}
	}
	step := niceStep((hi - lo) / float64(max(t.n, 2)))
	if t.integer && step < 1 {
		step = 1
	}
	var ticks []plot.Tick
	first := math.Ceil(lo/step) * step
	for i := 0; ; i++ {
		v := first + float64(i)*step
		if v > hi+step*1e-9 {
			break
		}
		// Round away the float noise of repeated additions.
		v = math.Round(v/step) * step
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', decimals(step), 64)})
		// A minor tick halfway, unlabelled (not between whole counts).
		if mid := v + step/2; mid <= hi && !(t.integer && step == 1) {
			ticks = append(ticks, plot.Tick{Value: mid})
		}
	}
	return ticks
}

// niceStep rounds raw to 1, 2 or 5 times a power of ten: the largest such
// step not much above raw, so that the axis gets about the ticks asked for.
func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	pow := math.Pow(10, math.Floor(math.Log10(raw)))
	step := pow
	for _, m := range []float64{2, 5, 10} {
		if m*pow <= raw*1.25 {
			step = m * pow
		}
	}
	return step
}

// decimals is how many decimals a label of a multiple of step needs.
func decimals(step float64) int {
	if step >= 1 {
		return 0
	}
	return int(math.Ceil(-math.Log10(step) - 1e-9))
}
