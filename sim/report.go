package sim

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/batonflow/baton/bench"
)

// WriteTable prints the per-policy summary.
func WriteTable(w io.Writer, res *Results) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%d workflows, %d functions, %d minutes of virtual time, simulated in %s\n\n",
		res.Workflows, res.Functions, res.Minutes, res.Elapsed.Round(1e7))
	fmt.Fprintf(&b, "| policy | invocations | cold starts | cold-start rate | late prepares | cold wait (s) | idle instance-s | wasted GB-s |\n")
	fmt.Fprintf(&b, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, p := range res.Policies {
		fmt.Fprintf(&b, "| %s | %d | %d | %.3f%% | %d | %.0f | %.0f | %.0f |\n",
			p.Policy, p.Invocations, p.ColdStarts, 100*p.ColdRate, p.LateStarts, p.ColdWaitS, p.IdleInstanceS, p.WastedGBs)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteReport writes report.md, results.json and the plots into dir.
func WriteReport(dir, command string, res *Results) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	raw, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), raw, 0o644); err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	if err := tradeoffPlot(res, filepath.Join(dir, "tradeoff.png")); err != nil {
		return err
	}
	if err := cdfPlot(res, filepath.Join(dir, "cold-start-cdf.png")); err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Keep-alive and prewarming simulation\n\n`%s`\n\n%s\n\n", command, res.Description)
	if err := WriteTable(&b, res); err != nil {
		return err
	}
	b.WriteString("\n![cold-start rate against wasted memory](tradeoff.png)\n\n![per-workflow cold-start rate CDF](cold-start-cdf.png)\n")
	return os.WriteFile(filepath.Join(dir, "report.md"), []byte(b.String()), 0o644)
}

// tradeoffPlot draws each policy as a point of cold-start rate against
// wasted memory; the settings of one kind of policy (fixed:5m, fixed,
// fixed:20m...) are joined into its trade-off curve. The rate is on a log
// scale, so that 0.05% and 13% both show.
func tradeoffPlot(res *Results, path string) error {
	p, err := tradeoffChart(res)
	if err != nil {
		return err
	}
	if err := bench.SavePlot(p, 9*vg.Inch, 5*vg.Inch, path); err != nil {
		return fmt.Errorf("sim: plot: %w", err)
	}
	return nil
}

func tradeoffChart(res *Results) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Cold-start rate against wasted memory"
	p.X.Label.Text = "wasted memory (GB-s)"
	p.Y.Label.Text = "cold-start rate (%, log scale)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	type point struct {
		xy    plotter.XY
		label string
	}
	var kinds []Policy
	curves := map[Policy][]point{}
	for _, pr := range res.Policies {
		set, err := pr.Policy.settings()
		if err != nil || pr.ColdRate <= 0 {
			continue // a rate of zero has no place on a log scale
		}
		if _, seen := curves[set.kind]; !seen {
			kinds = append(kinds, set.kind)
		}
		curves[set.kind] = append(curves[set.kind], point{plotter.XY{X: pr.WastedGBs, Y: 100 * pr.ColdRate}, string(pr.Policy)})
	}
	for i, kind := range kinds {
		pts := curves[kind]
		slices.SortFunc(pts, func(a, b point) int { return cmp.Compare(a.xy.X, b.xy.X) })
		xys := make(plotter.XYs, len(pts))
		for j, pt := range pts {
			xys[j] = pt.xy
		}
		line, dots, err := plotter.NewLinePoints(xys)
		if err != nil {
			return nil, fmt.Errorf("sim: plot: %w", err)
		}
		line.Color = plotutil.Color(i)
		dots.Color, dots.Shape, dots.Radius = plotutil.Color(i), plotutil.Shape(i), vg.Points(4)
		p.Add(line, dots)
		p.Legend.Add(string(kind), line, dots)
		if len(pts) > 1 {
			labels := plotter.XYLabels{XYs: xys, Labels: make([]string, len(pts))}
			for j, pt := range pts {
				labels.Labels[j] = pt.label
			}
			l, err := plotter.NewLabels(labels)
			if err != nil {
				return nil, fmt.Errorf("sim: plot: %w", err)
			}
			p.Add(l)
		}
	}
	// Room around the outermost points, so that their markers and labels
	// are not cut at the plot's edge.
	if p.X.Max > p.X.Min {
		pad := 0.06 * (p.X.Max - p.X.Min)
		p.X.Min, p.X.Max = p.X.Min-pad, p.X.Max+pad
	}
	if p.Y.Min > 0 && p.Y.Max >= p.Y.Min {
		p.Y.Min, p.Y.Max = p.Y.Min/1.6, p.Y.Max*1.6
	}
	return p, nil
}

func cdfPlot(res *Results, path string) error {
	p := plot.New()
	p.Title.Text = "Per-workflow cold-start rate"
	p.X.Label.Text = "cold-start rate of a workflow's calls (%)"
	p.Y.Label.Text = "fraction of workflows"
	for i, pr := range res.Policies {
		v := slices.Clone(pr.WorkflowColdRates)
		slices.Sort(v)
		if len(v) == 0 {
			continue
		}
		step := max(1, len(v)/1000)
		var pts plotter.XYs
		for k := 0; k < len(v); k += step {
			pts = append(pts, plotter.XY{X: 100 * v[k], Y: float64(k+1) / float64(len(v))})
		}
		pts = append(pts, plotter.XY{X: 100 * v[len(v)-1], Y: 1})
		l, err := plotter.NewLine(pts)
		if err != nil {
			return fmt.Errorf("sim: plot: %w", err)
		}
		l.Color = plotutil.Color(i)
		l.Dashes = plotutil.Dashes(i)
		p.Add(l)
		p.Legend.Add(string(pr.Policy), l)
	}
	if err := bench.SavePlot(p, 8*vg.Inch, 4.5*vg.Inch, path); err != nil {
		return fmt.Errorf("sim: plot: %w", err)
	}
	return nil
}
