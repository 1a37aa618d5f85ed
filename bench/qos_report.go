package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// WriteQoSTable prints one row per run and tenant, then the targets.
func WriteQoSTable(w io.Writer, res *QoSResults) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "μ = %.1f workflows/s (a call %.1fms alone, %d CPUs, GOMAXPROCS %d, load %s)\n\n", res.Mu, res.CallMs, res.CPUs, res.Procs, res.Load)
	fmt.Fprintln(tw, "RUN\tTENANT\tOFFERED\tDONE\tREJECTED\tFAILED\tUNFINISHED\tP50 MS\tP99 MS\tP99 SEEN EARLY/LATE\tDEADLINE MET\tDONE/S\tRETRIES")
	for _, r := range res.Runs {
		for _, t := range r.Tenants {
			met := "-"
			if t.DeadlineMet > 0 || t.Tenant == "h" {
				met = fmt.Sprintf("%.1f%%", 100*t.DeadlineMet)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%d\t%d\t%.0f\t%.0f\t%.0f/%.0f\t%s\t%.1f\t%d\n", r.Name, t.Tenant, t.Offered, t.Completed,
				rejectedText(t.Rejected), t.FailedMidway, t.Unfinished, t.P50Ms, t.P99Ms, t.P99EarlyMs, t.P99LateMs, met, t.Throughput, t.Retries)
		}
		muAfter := ""
		if r.MuAfter > 0 {
			muAfter = fmt.Sprintf(", μ after %.1f/s (%.2f of it)", r.MuAfter, r.Goodput/r.MuAfter)
		}
		fmt.Fprintf(tw, "%s\tgoodput %.1f calls/s (%.2fμ), %.1f workflows/s%s\tRSS max %.0f MB, heap %.0f MB\treject p99 %.1f ms (server %.2f ms)\tRetry-After on every rejection: %v\tCPU %.2f of %d, %.1f ms per completion\ta call alone %.1f ms\t\t\t\t\t\t\n",
			r.Name, r.Goodput, r.Goodput/res.Mu, r.GoodputWorkflows, muAfter, r.RSSMaxMB, r.HeapMaxMB, r.RejectP99Ms, r.RejectServerP99Ms, r.RetryAfterOK, r.CPUs, res.CPUs, r.CPUPerStartMs, r.CallMs)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := writePhases(w, res); err != nil {
		return err
	}
	fmt.Fprintln(w)
	for _, line := range qosTargets(res) {
		fmt.Fprintln(w, line)
	}
	return nil
}

// writePhases prints where tenant h's time went in each run: each phase's
// median, then its mean over the slowest 5% of h's starts.
func writePhases(w io.Writer, res *QoSResults) error {
	fmt.Fprint(w, "\nwhere h's time goes, ms (median / mean over the slowest 5%; gate waits: histogram bucket bounds; see docs/qos.md):\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tSTARTS\tCLIENT\tADMIT\tFIRST CALL\tRUN\tCPU\tBETWEEN\tFINISH\tREPLY\tTOTAL\tG1 WAIT P50/P99\tG2 WAIT P50/P99")
	for _, r := range res.Runs {
		h := r.tenant("h")
		if h == nil || h.Phases == nil {
			continue
		}
		m, s := h.Phases.Median, h.Phases.Slow
		pair := func(a, b float64) string { return fmt.Sprintf("%.1f / %.1f", a, b) }
		g1, g2 := "-", "-"
		if w := h.Phases.Waits; w != nil {
			g1, g2 = fmt.Sprintf("≤%g / ≤%g", w.G1P50Ms, w.G1P99Ms), fmt.Sprintf("≤%g / ≤%g", w.G2P50Ms, w.G2P99Ms)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, h.Phases.Count,
			pair(m.Client, s.Client), pair(m.Admit, s.Admit), pair(m.First, s.First), pair(m.Run, s.Run), pair(m.CPU, s.CPU),
			pair(m.Between, s.Between), pair(m.Finish, s.Finish), pair(m.Reply, s.Reply), pair(m.Total, s.Total), g1, g2)
	}
	return tw.Flush()
}

func rejectedText(m map[string]int) string {
	if len(m) == 0 {
		return "0"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s:%d", k, m[k])
	}
	return strings.Join(parts, ",")
}

func (res *QoSResults) run(name string) *QoSRun {
	for i := range res.Runs {
		if res.Runs[i].Name == name {
			return &res.Runs[i]
		}
	}
	return nil
}

func (r *QoSRun) tenant(name string) *TenantStats {
	for i := range r.Tenants {
		if r.Tenants[i].Tenant == name {
			return &r.Tenants[i]
		}
	}
	return nil
}

// qosTargets checks the targets on the runs there are.
func qosTargets(res *QoSResults) []string {
	var out []string
	check := func(ok bool, format string, args ...any) {
		mark := "PASS"
		if !ok {
			mark = "MISS"
		}
		out = append(out, mark+"  "+fmt.Sprintf(format, args...))
	}
	l0, on, fifo := res.run("L0"), res.run("QoS"), res.run("FIFO")
	if on != nil {
		if h := on.tenant("h"); h != nil && l0 != nil {
			base := l0.tenant("h")
			check(h.P99Ms <= 1.25*base.P99Ms, "H p99 %.0f ms ≤ 1.25 × L0 %.0f ms = %.0f ms", h.P99Ms, base.P99Ms, 1.25*base.P99Ms)
		}
		if h := on.tenant("h"); h != nil {
			check(h.DeadlineMet >= 0.99, "H deadlines met %.1f%% ≥ 99%%", 100*h.DeadlineMet)
		}
		after := ""
		if on.MuAfter > 0 {
			after = fmt.Sprintf("; %.2f of the %.1f/s measured in the run's process after its drain", on.Goodput/on.MuAfter, on.MuAfter)
		}
		check(on.Goodput >= 0.95*res.Mu, "goodput %.1f calls/s ≥ 0.95μ = %.1f/s (the load's last four fifths; %.1f workflows/s%s)", on.Goodput, 0.95*res.Mu, on.GoodputWorkflows, after)
		failed := 0
		for _, t := range on.Tenants {
			failed += t.FailedMidway
		}
		check(failed == 0, "admitted workflows failed midway: %d", failed)
		if s1, s2 := on.tenant("s1"), on.tenant("s2"); s1 != nil && s2 != nil && max(s1.Completed, s2.Completed) > 0 {
			d := float64(s1.Completed-s2.Completed) / float64(max(s1.Completed, s2.Completed))
			check(d <= 0.1 && d >= -0.1, "S1 %d vs S2 %d completed: within 10%% (%.1f%%)", s1.Completed, s2.Completed, 100*d)
		}
		check(on.RejectP99Ms < 5, "rejections answered in %.1f ms at p99 end to end (< 5 ms; the server's part %.2f ms)", on.RejectP99Ms, on.RejectServerP99Ms)
		check(on.RetryAfterOK, "every rejection carried Retry-After")
		if fifo != nil {
			check(on.HeapMaxMB <= fifo.HeapMaxMB, "memory bounded: heap with QoS %.0f MB (RSS %.0f MB) vs FIFO %.0f MB (RSS %.0f MB)", on.HeapMaxMB, on.RSSMaxMB, fifo.HeapMaxMB, fifo.RSSMaxMB)
		}
	}
	if fifo != nil {
		if h := fifo.tenant("h"); h != nil {
			// Seen over the run's time: a backlog that keeps growing
			// shows as a p99 in the last quarter of the arrivals well
			// above the first quarter's.
			check(h.P99LateMs >= 2*h.P99EarlyMs, "under FIFO, H p99 grows with the run: %.0f ms seen in the first quarter → %.0f ms in the last (at least twice)", h.P99EarlyMs, h.P99LateMs)
		}
	}
	if b := res.run("B-alone"); b != nil {
		check(b.Goodput >= 0.9*res.Mu, "B alone reaches %.1f calls/s (≈ μ = %.1f)", b.Goodput, res.Mu)
	}
	return out
}

// WriteQoSReport writes results.json, report.md and per-run plots of p99
// latency and completions over time, one line per tenant.
func WriteQoSReport(dir string, res *QoSResults) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(data, '\n'), 0o644); err != nil {
		return err
	}
	var md strings.Builder
	fmt.Fprintf(&md, "# QoS experiment\n\n`%s`, started %s\n\n```\n", res.Command, res.Started.Format("2006-01-02 15:04:05Z"))
	if err := WriteQoSTable(&md, res); err != nil {
		return err
	}
	md.WriteString("```\n\n")
	for _, r := range res.Runs {
		for _, kind := range []string{"p99", "done"} {
			name := fmt.Sprintf("%s-%s.png", strings.ToLower(r.Name), kind)
			if err := qosPlot(r, kind, filepath.Join(dir, name)); err != nil {
				return err
			}
			fmt.Fprintf(&md, "![%s %s](%s)\n", r.Name, kind, name)
		}
	}
	return os.WriteFile(filepath.Join(dir, "report.md"), []byte(md.String()), 0o644)
}

func qosPlot(r QoSRun, kind, path string) error {
	p := plot.New()
	p.X.Label.Text = fmt.Sprintf("arrival time (s; bins of %gs)", r.BinS)
	p.X.Min, p.Y.Min = 0, 0
	p.X.Tick.Marker = niceTicks{n: 8}
	if kind == "p99" {
		p.Title.Text = r.Name + ": p99 latency seen over time (answered, or open by their age)"
		p.Y.Label.Text = "p99 latency (ms)"
		p.X.Label.Text = fmt.Sprintf("time in the run (s; bins of %gs)", r.BinS)
	} else {
		p.Title.Text = r.Name + ": completions over time"
		p.Y.Label.Text = "completed per bin"
	}
	for i, t := range r.Tenants {
		var xys plotter.XYs
		for b := range t.Completions {
			y := float64(t.Completions[b])
			if kind == "p99" {
				if b >= len(t.SeenP99Series) || t.SeenP99Series[b] == 0 {
					continue
				}
				y = t.SeenP99Series[b]
			}
			xys = append(xys, plotter.XY{X: float64(b) * r.BinS, Y: y})
		}
		if len(xys) == 0 {
			continue
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return err
		}
		l.Color = plotutil.Color(i)
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(t.Tenant, l)
	}
	return SavePlot(p, 8*vg.Inch, 4*vg.Inch, path)
}
