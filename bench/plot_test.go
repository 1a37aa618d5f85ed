package bench

import (
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

func decodePNG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestSavePlotPutsTheLegendBesideTheData draws a thick red curve along the
// top of the data area, where an inside legend sits, and checks that no
// dark legend pixel lies among the curve's columns.
func TestSavePlotPutsTheLegendBesideTheData(t *testing.T) {
	p := plot.New()
	l, err := plotter.NewLine(plotter.XYs{{X: 0, Y: 1}, {X: 10, Y: 1}})
	if err != nil {
		t.Fatal(err)
	}
	l.Color = color.RGBA{R: 255, A: 255}
	l.Width = vg.Points(6)
	p.Add(l)
	p.Legend.Add("a rather long legend label", l)
	p.Legend.Top = true
	p.Y.Min, p.Y.Max = 0, 1
	path := filepath.Join(t.TempDir(), "p.png")
	if err := SavePlot(p, 6*vg.Inch, 3*vg.Inch, path); err != nil {
		t.Fatal(err)
	}
	img := decodePNG(t, path)
	b := img.Bounds()
	isRed := func(c color.Color) bool { r, g, bl, _ := c.RGBA(); return r > 0xe000 && g < 0x3000 && bl < 0x3000 }
	isDark := func(c color.Color) bool { r, g, bl, _ := c.RGBA(); return r < 0x4000 && g < 0x4000 && bl < 0x4000 }
	minX, maxX, minY, maxY := b.Max.X, -1, b.Max.Y, -1
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if isRed(img.At(x, y)) {
				minX, maxX, minY, maxY = min(minX, x), max(maxX, x), min(minY, y), max(maxY, y)
			}
		}
	}
	if maxX < 0 {
		t.Fatal("no curve drawn")
	}
	// Rows near the curve, between its first and last column (the
	// legend's own red thumbnail is beyond the curve, to the right).
	legendRed := false
	for y := max(b.Min.Y, minY-20); y < min(b.Max.Y, maxY+20); y++ {
		for x := minX + 30; x < maxX-30; x++ {
			if isDark(img.At(x, y)) {
				t.Fatalf("a dark (legend text) pixel at %d,%d lies over the curve's span %d..%d", x, y, minX, maxX)
			}
		}
	}
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := maxX + 1; x < b.Max.X; x++ {
			if isDark(img.At(x, y)) {
				legendRed = true
			}
		}
	}
	if !legendRed {
		t.Fatal("no legend text right of the plot")
	}
}

func TestNiceTicks(t *testing.T) {
	labelled := func(ts []plot.Tick) (n int, labels []string) {
		for _, tk := range ts {
			if tk.Label != "" {
				n++
				labels = append(labels, tk.Label)
			}
		}
		return n, labels
	}
	for _, tt := range []struct {
		lo, hi  float64
		integer bool
		want    string
	}{
		{0, 12.3, false, "0 2 4 6 8 10 12"},
		{0, 0.27, false, "0.00 0.05 0.10 0.15 0.20 0.25"},
		{0, 1, true, "0 1"},
		{0, 3, true, "0 1 2 3"},
		{0, 250, false, "0 50 100 150 200 250"},
	} {
		_, labels := labelled(niceTicks{n: 6, integer: tt.integer}.Ticks(tt.lo, tt.hi))
		if got := strings.Join(labels, " "); got != tt.want {
			t.Errorf("ticks over %g..%g: %q, want %q", tt.lo, tt.hi, got, tt.want)
		}
	}
}

// TestPlotsOfARunWithoutColdStarts checks the series plots' axes: a run
// without cold starts says so on a 0..1 axis, and latency over time has
// more than two labelled ticks.
func TestPlotsOfARunWithoutColdStarts(t *testing.T) {
	res := &Results{
		Meta: Meta{BinS: 1},
		Configs: []ConfigResult{{
			Config: Config{Label: "durable"},
			Series: Series{TimeS: []float64{0, 1, 2, 3}, P50Ms: []float64{1, 2, 1.5, 2}, P99Ms: []float64{5, 9, 12, 7},
				Throughput: []float64{10, 11, 12, 10}, ColdStarts: []int{0, 0, 0, 0}},
		}},
	}
	dir := t.TempDir()
	files, err := WritePlots(dir, res)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 5 {
		t.Fatalf("%d plots", len(files))
	}
	p, err := seriesPlot(res, "Cold starts over time", "cold starts per bin", true, func(s *Series) ([]float64, []float64) {
		return s.TimeS, []float64{0, 0, 0, 0}
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Y.Min != 0 || p.Y.Max != 1 {
		t.Errorf("all-zero series on a %g..%g axis, want 0..1", p.Y.Min, p.Y.Max)
	}
	p, err = seriesPlot(res, "Latency", "ms", false, func(s *Series) ([]float64, []float64) { return s.TimeS, s.P99Ms }, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, tk := range p.Y.Tick.Marker.Ticks(p.Y.Min, p.Y.Max) {
		if tk.Label != "" {
			n++
		}
	}
	if n < 4 {
		t.Errorf("latency over time has %d labelled y ticks", n)
	}
}

// TestColdstartPlotShowsWhatItsCaptionSays checks that coldstart.png has the
// two panels report.md's caption names.
func TestColdstartPlotShowsWhatItsCaptionSays(t *testing.T) {
	r := &ColdstartResults{
		Command: "baton bench coldstart", Started: time.Unix(0, 0), Interval: 2 * time.Second, Rounds: 3, Warmup: 1,
		Shapes: []string{"chain"}, Policies: []string{"on-demand", "baton"},
		Rows: []ColdstartRow{
			{Shape: "chain", Policy: "on-demand", Invocations: 2, ColdPathMeanMs: 40, HeldMBs: 0.5},
			{Shape: "chain", Policy: "baton", Invocations: 2, ColdPathMeanMs: 2, HeldMBs: 1},
		},
	}
	dir := t.TempDir()
	if err := WriteColdstartReport(dir, r); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "cold start on the critical path (left) and memory held idle or starting (right)") {
		t.Errorf("report.md caption:\n%s", md)
	}
	cold := coldstartBars(r, "a", "b", func(row *ColdstartRow) float64 { return row.ColdPathMeanMs })
	idle := coldstartBars(r, "a", "b", func(row *ColdstartRow) float64 { return row.HeldMBs })
	if cold.err != nil || idle.err != nil || cold.p.Y.Max < 40 || cold.p.Y.Max > 45 || idle.p.Y.Max < 1 || idle.p.Y.Max > 1.2 {
		t.Fatalf("panels: cold %v (max %g), idle %v (max %g)", cold.err, cold.p.Y.Max, idle.err, idle.p.Y.Max)
	}
	if img := decodePNG(t, filepath.Join(dir, "coldstart.png")); img.Bounds().Dx() < 700 {
		t.Errorf("coldstart.png is %d pixels wide", img.Bounds().Dx())
	}
}
