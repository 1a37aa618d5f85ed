package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// ChainVersusOnDemand compares a policy with on-demand on the chain, in
// the same run: the fraction of on-demand's cold-start latency on the
// critical path that it removes, and the memory its instances held
// without serving a call (idle or starting, MB-seconds) as a multiple of
// on-demand's. On-demand holds memory too: while each of its instances
// starts. The targets for Baton's policy: removed ≥ 0.95 with
// heldRatio ≤ 1.3.
func (r *ColdstartResults) ChainVersusOnDemand(policy string) (removed, heldRatio float64, ok bool) {
	var onDemand, other *ColdstartRow
	for i := range r.Rows {
		row := &r.Rows[i]
		if row.Shape != "chain" {
			continue
		}
		switch row.Policy {
		case "on-demand":
			onDemand = row
		case policy:
			other = row
		}
	}
	if onDemand == nil || other == nil || onDemand.ColdPathMs == 0 {
		return 0, 0, false
	}
	removed = 1 - other.ColdPathMs/onDemand.ColdPathMs
	if onDemand.HeldMBs > 0 {
		heldRatio = other.HeldMBs / onDemand.HeldMBs
	}
	return removed, heldRatio, true
}

// WriteColdstartTable prints the scenario's table.
func WriteColdstartTable(w io.Writer, r *ColdstartResults) error {
	var b strings.Builder
	b.WriteString("| workflow | policy | invocations | p50 (ms) | p99 (ms) | cold starts | late prepares | cold-start latency on critical path, mean (ms) | function path p50 (ms) | idle instance-s | starting instance-s | held memory (MB-s) | instances started |\n")
	b.WriteString("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, row := range r.Rows {
		fmt.Fprintf(&b, "| %s | %s | %d | %.1f | %.1f | %d | %d | %.2f | %.1f | %.2f | %.2f | %.1f | %d |\n",
			row.Shape, row.Policy, row.Invocations-row.Failed, row.P50Ms, row.P99Ms, row.ColdStarts, row.LateStarts,
			row.ColdPathMeanMs, row.FunctionPathP50Ms, row.IdleInstanceS, row.StartingInstanceS, row.HeldMBs, row.InstanceStarts)
	}
	b.WriteString("\n")
	if d := r.StartMs; d.Count > 0 {
		fmt.Fprintf(&b, "instance starts in the measured rounds: %d, p50 %.2f ms, p90 %.2f ms, p99 %.2f ms\n", d.Count, d.P50, d.P90, d.P99)
	}
	for _, policy := range r.Policies {
		if removed, held, ok := r.ChainVersusOnDemand(policy); ok && policy != "on-demand" {
			fmt.Fprintf(&b, "chain: %s removes %.1f%% of on-demand's cold-start latency on the critical path, holding %.2fx on-demand's memory (idle or starting)\n", policy, 100*removed, held)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteColdstartReport writes report.md, results.json and coldstart.png
// into dir.
func WriteColdstartReport(dir string, r *ColdstartResults) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	raw, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), raw, 0o644); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if err := coldstartPlot(r, filepath.Join(dir, "coldstart.png")); err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Cold-start scenario\n\n`%s`\n\n", r.Command)
	fmt.Fprintf(&b, "Each workflow under each policy is invoked once per round, every %s, %d rounds (the first %d are warm-up, left out); the %d (workflow, policy) pairs are staggered evenly within the interval, so every pair sees identical arrivals.\n\n",
		r.Interval, r.Rounds, r.Warmup, len(r.Shapes)*len(r.Policies))
	if err := WriteColdstartTable(&b, r); err != nil {
		return err
	}
	b.WriteString("\n![cold start on the critical path (left) and memory held idle or starting (right) per policy](coldstart.png)\n")
	return os.WriteFile(filepath.Join(dir, "report.md"), []byte(b.String()), 0o644)
}

// coldstartPlot draws two panels per workflow shape and policy: the mean
// cold-start latency on the critical path, and the memory the policy held
// without serving a call for it.
func coldstartPlot(r *ColdstartResults, path string) error {
	cold := coldstartBars(r, "Cold-start latency on the critical path", "ms per invocation (mean)",
		func(row *ColdstartRow) float64 { return row.ColdPathMeanMs })
	idle := coldstartBars(r, "Memory held idle or starting", "MB-seconds (measured rounds)",
		func(row *ColdstartRow) float64 { return row.HeldMBs })
	if cold.err != nil || idle.err != nil {
		return fmt.Errorf("bench: plot: %w", errors.Join(cold.err, idle.err))
	}
	if err := savePanels(path, 11*vg.Inch, 4.5*vg.Inch, cold.p.Legend, cold.p, idle.p); err != nil {
		return fmt.Errorf("bench: plot: %w", err)
	}
	return nil
}

type barPanel struct {
	p   *plot.Plot
	err error
}

func coldstartBars(r *ColdstartResults, title, yLabel string, value func(*ColdstartRow) float64) barPanel {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = yLabel
	p.Y.Tick.Marker = niceTicks{n: 6}
	width := vg.Points(12)
	for i, pol := range r.Policies {
		vals := make(plotter.Values, len(r.Shapes))
		for j, shape := range r.Shapes {
			for k := range r.Rows {
				if row := &r.Rows[k]; row.Shape == shape && row.Policy == pol {
					vals[j] = value(row)
				}
			}
		}
		bars, err := plotter.NewBarChart(vals, width)
		if err != nil {
			return barPanel{err: err}
		}
		bars.Color = plotutil.Color(i)
		bars.LineStyle.Width = 0
		bars.Offset = width * (vg.Length(i) - vg.Length(len(r.Policies)-1)/2)
		p.Add(bars)
		p.Legend.Add(pol, bars)
	}
	p.NominalX(r.Shapes...)
	p.Y.Min = 0
	if p.Y.Max <= 0 {
		p.Y.Max = 1
	}
	p.Y.Max *= 1.05 // headroom above the tallest bar
	return barPanel{p: p}
}
