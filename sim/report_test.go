package sim

import "testing"

// TestTradeoffChartLeavesRoomAroundThePoints checks that the outermost
// policies' markers are not drawn on the plot's edge, where they were cut.
func TestTradeoffChartLeavesRoomAroundThePoints(t *testing.T) {
	res := &Results{Policies: []PolicyResult{
		{Policy: "on-demand", ColdRate: 0.12, WastedGBs: 0},
		{Policy: "fixed", ColdRate: 0.002, WastedGBs: 1400},
		{Policy: "baton", ColdRate: 0.04, WastedGBs: 2},
	}}
	p, err := tradeoffChart(res)
	if err != nil {
		t.Fatal(err)
	}
	if !(p.X.Min < 0 && p.X.Max > 1400) {
		t.Errorf("x axis %g..%g ends on the points 0..1400", p.X.Min, p.X.Max)
	}
	if !(p.Y.Min < 0.2 && p.Y.Max > 12) {
		t.Errorf("y axis %g..%g ends on the points 0.2..12 (%%)", p.Y.Min, p.Y.Max)
	}
}
