package bench

import (
	"fmt"
	"image/color"
	"math"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

type plotFile struct {
	name, title string
}

// WritePlots renders the report's PNGs into dir and lists them.
func WritePlots(dir string, res *Results) ([]plotFile, error) {
	type build struct {
		file, title string
		make        func() (*plot.Plot, error)
	}
	builds := []build{
		{"latency-cdf.png", "End-to-end latency CDF", func() (*plot.Plot, error) {
			return cdfPlot(res, "End-to-end latency CDF", "latency (ms, log scale)", func(c *ConfigResult) []CDFPoint { return c.LatencyCDF })
		}},
		{"overhead-cdf.png", "Engine overhead per task CDF", func() (*plot.Plot, error) {
			return cdfPlot(res, "Engine overhead per task CDF", "overhead per task (ms, log scale)", func(c *ConfigResult) []CDFPoint { return c.OverheadTaskCDF })
		}},
		{"throughput.png", "Throughput over time", func() (*plot.Plot, error) {
			return seriesPlot(res, "Throughput over time", "completed invocations/s", false, func(s *Series) ([]float64, []float64) { return s.TimeS, s.Throughput }, nil)
		}},
		{"latency-time.png", "Latency over time (p50 solid, p99 dashed)", func() (*plot.Plot, error) {
			return seriesPlot(res, "Latency over time (p50 solid, p99 dashed)", "latency (ms)", false,
				func(s *Series) ([]float64, []float64) { return s.TimeS, s.P50Ms },
				func(s *Series) ([]float64, []float64) { return s.TimeS, s.P99Ms })
		}},
		{"cold-starts.png", "Cold starts over time", func() (*plot.Plot, error) {
			total := 0
			p, err := seriesPlot(res, "Cold starts over time", "cold starts per bin", true, func(s *Series) ([]float64, []float64) {
				ys := make([]float64, len(s.ColdStarts))
				for i, c := range s.ColdStarts {
					ys[i] = float64(c)
					total += c
				}
				return s.TimeS, ys
			}, nil)
			if err == nil && total == 0 {
				p.Title.Text += ": none in this run"
			}
			return p, err
		}},
	}
	var out []plotFile
	for _, b := range builds {
		p, err := b.make()
		if err != nil {
			return nil, fmt.Errorf("bench: plot %s: %w", b.file, err)
		}
		if err := SavePlot(p, 8*vg.Inch, 4.5*vg.Inch, filepath.Join(dir, b.file)); err != nil {
			return nil, fmt.Errorf("bench: plot %s: %w", b.file, err)
		}
		out = append(out, plotFile{name: b.file, title: b.title})
	}
	return out, nil
}

// logFloor keeps values plottable on a log axis.
const logFloor = 1e-3

func cdfPlot(res *Results, title, xLabel string, cdf func(*ConfigResult) []CDFPoint) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xLabel
	p.Y.Label.Text = "fraction of invocations"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Min, p.Y.Max = 0, 1
	p.Y.Tick.Marker = niceTicks{n: 5}
	any := false
	for i, c := range res.Configs {
		points := cdf(&res.Configs[i])
		if len(points) == 0 {
			continue
		}
		xys := make(plotter.XYs, len(points))
		for k, p := range points {
			xys[k] = plotter.XY{X: math.Max(p.Value, logFloor), Y: p.Fraction}
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return nil, err
		}
		l.Color = plotutil.Color(i)
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(c.Config.Label, l)
		any = true
	}
	if !any {
		// An empty log axis cannot be drawn; show an empty linear one.
		p.X.Scale, p.X.Tick.Marker = plot.LinearScale{}, plot.DefaultTicks{}
		p.X.Min, p.X.Max = 0, 1
	}
	p.Add(plotter.NewGrid())
	return p, nil
}

// seriesPlot draws per-bin series over time; counts keeps the y ticks on
// whole numbers.
func seriesPlot(res *Results, title, yLabel string, counts bool, solid, dashed func(*Series) ([]float64, []float64)) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = fmt.Sprintf("time since start (s; bins of %gs)", res.Meta.BinS)
	p.Y.Label.Text = yLabel
	p.Y.Min = 0
	p.X.Min = 0
	p.X.Tick.Marker = niceTicks{n: 8}
	p.Y.Tick.Marker = niceTicks{n: 6, integer: counts}
	add := func(i int, label string, xs, ys []float64, dash bool) error {
		var xys plotter.XYs
		for k := range xs {
			if k < len(ys) && ys[k] != noData {
				xys = append(xys, plotter.XY{X: xs[k], Y: ys[k]})
			}
		}
		if len(xys) == 0 {
			return nil
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return err
		}
		l.Color = plotutil.Color(i)
		l.Width = vg.Points(1.5)
		if dash {
			l.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
		}
		p.Add(l)
		if label != "" {
			p.Legend.Add(label, l)
		}
		return nil
	}
	for i, c := range res.Configs {
		xs, ys := solid(&c.Series)
		if err := add(i, c.Config.Label, xs, ys, false); err != nil {
			return nil, err
		}
		if dashed != nil {
			xs, ys := dashed(&c.Series)
			if err := add(i, "", xs, ys, true); err != nil {
				return nil, err
			}
		}
	}
	if p.Y.Max <= p.Y.Min {
		// All zeros (or no data): a 0..1 axis, not gonum's -1..1.
		p.Y.Max = p.Y.Min + 1
	}
	if res.Meta.WarmupS > 0 {
		// The warm-up is shaded off by a vertical line at its end.
		l, err := plotter.NewLine(plotter.XYs{{X: res.Meta.WarmupS, Y: 0}, {X: res.Meta.WarmupS, Y: p.Y.Max}})
		if err == nil && p.Y.Max > 0 {
			// Gray: plotutil.Color(7) wraps around to the first curve's red.
			l.Color = color.Gray{Y: 110}
			l.Dashes = []vg.Length{vg.Points(2), vg.Points(2)}
			p.Add(l)
			p.Legend.Add("end of warm-up", l)
		}
	}
	p.Add(plotter.NewGrid())
	return p, nil
}
