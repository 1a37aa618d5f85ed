package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
)

// WriteTable prints one line per configuration: the summary a terminal
// shows.
func WriteTable(w io.Writer, res *Results) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "config\tinvocations\tfailed\tinv/s\ttasks/s\tlatency p50\tp99\toverhead/task p50\tp99\tqueue p50\tp99\tfunction p50\tcold starts\t")
	for _, c := range res.Configs {
		s := c.Summary
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t\n",
			c.Config.Label, s.Invocations, s.Failed, s.Throughput, s.TasksPerSecond,
			fmtMs(s.Latency.P50), fmtMs(s.Latency.P99), fmtMs(s.OverheadTask.P50), fmtMs(s.OverheadTask.P99),
			fmtMs(s.Queue.P50), fmtMs(s.Queue.P99), fmtMs(s.Function.P50), s.ColdStarts)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, line := range resourceLines(res) {
		if _, err := fmt.Fprintln(w, line); err != nil {
			return err
		}
	}
	return nil
}

// resourceLines say what the run cost the engine and how a step compares
// with the disk's own commit, measured in the same run.
func resourceLines(res *Results) []string {
	rs := res.Meta.Resources
	var lines []string
	if rs.Tasks > 0 && rs.CPUS > 0 {
		line := fmt.Sprintf("engine CPU: %.1fµs per task (%.2fs over %d tasks, warm-up included)", rs.CPUPerTaskUs, rs.CPUS, rs.Tasks)
		if rs.HarnessCPUS >= 0.005 {
			line += fmt.Sprintf(", the harness's history reads (%.2fs) taken out", rs.HarnessCPUS)
		}
		if rs.Commits > 0 {
			line += fmt.Sprintf("; %.3f commits per task (%d commits)", rs.CommitsPerTask, rs.Commits)
		}
		lines = append(lines, line)
	}
	if rs.EngineRSSMB > 0 {
		// Embedded, the engine's heap is this process's too; the
		// harness's own share is what it keeps of the invocations.
		heap := "harness heap"
		if strings.HasPrefix(rs.EngineRSSSource, "this process") {
			heap = "Go heap (engine and harness)"
		}
		lines = append(lines, fmt.Sprintf("engine RSS: peak %.0f MB, %s; %s at the end %.0f MB, of which the harness's statistics %.0f KB",
			rs.EngineRSSMB, rs.EngineRSSSource, heap, rs.HarnessHeapMB, rs.HarnessStatsKB))
	}
	if rs.DiskCommitMs > 0 {
		var ratios []string
		for _, c := range res.Configs {
			if c.Summary.OverheadTask.Count > 0 {
				ratios = append(ratios, fmt.Sprintf("%s %.2f×", c.Config.Label, c.Summary.OverheadTask.P50/rs.DiskCommitMs))
			}
		}
		line := fmt.Sprintf("disk commit (fsync'd SQLite, median): %s", fmtMs(rs.DiskCommitMs))
		if len(ratios) > 0 {
			line += "; step (overhead/task p50) ÷ commit: " + strings.Join(ratios, ", ")
		}
		lines = append(lines, line)
	}
	for _, c := range res.Configs {
		s := c.Summary
		if !s.HistorySampled {
			continue
		}
		if s.HistoriesRead >= s.Invocations {
			lines = append(lines, fmt.Sprintf("histories: %s read every one of its %d measured invocations' (fewer than the sample's bound, %d)",
				c.Config.Label, s.Invocations, res.Meta.HistorySample))
		} else {
			lines = append(lines, fmt.Sprintf("histories: SAMPLED, %s read %d of %d measured invocations' (a uniform sample of at most %d completed ones): span, overhead, queue, function time and cold starts are the sample's; invocations, latency and tasks/s count every invocation",
				c.Config.Label, s.HistoriesRead, s.Invocations, res.Meta.HistorySample))
		}
	}
	return lines
}

// fmtMs renders milliseconds with a unit that keeps three significant
// digits readable: µs below a millisecond, s above ten seconds.
func fmtMs(v float64) string {
	switch {
	case v != v:
		return "-"
	case v < 1 && v > -1:
		return fmt.Sprintf("%.0fµs", v*1000)
	case v < 10_000:
		return fmt.Sprintf("%.2fms", v)
	default:
		return fmt.Sprintf("%.1fs", v/1000)
	}
}

// WriteReport writes results.json, report.md and the plots into dir.
func WriteReport(dir string, res *Results) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("bench: report directory: %w", err)
	}
	if err := writeFile(filepath.Join(dir, "results.json"), func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", " ")
		return enc.Encode(res)
	}); err != nil {
		return err
	}
	plots, err := WritePlots(dir, res)
	if err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, "report.md"), func(w io.Writer) error { return writeMarkdown(w, res, plots) })
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	bw := bufio.NewWriter(f)
	if err := write(bw); err != nil {
		f.Close()
		return fmt.Errorf("bench: writing %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("bench: writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("bench: writing %s: %w", path, err)
	}
	return nil
}

func writeMarkdown(w io.Writer, res *Results, plots []plotFile) error {
	m := res.Meta
	fmt.Fprintf(w, "# Baton benchmark: %s\n\n", m.Workload)
	if m.Command != "" {
		fmt.Fprintf(w, "```\n%s\n```\n\n", m.Command)
	}
	fmt.Fprintf(w, "| | |\n| --- | --- |\n")
	fmt.Fprintf(w, "| workload | %s |\n| arrivals | %s |\n| target | %s |\n", m.Workload, m.Arrivals, m.Target)
	fmt.Fprintf(w, "| started | %s |\n| elapsed | %.1fs (warm-up %.1fs excluded) |\n", m.Started.Format("2006-01-02 15:04:05 MST"), m.ElapsedS, m.WarmupS)
	fmt.Fprintf(w, "| machine | %s, %d CPUs, %s |\n| seed | %d |\n", m.OS, m.CPUs, m.GoVersion, m.Seed)
	if m.Dropped > 0 {
		fmt.Fprintf(w, "| dropped arrivals | %d (too many in flight) |\n", m.Dropped)
	}
	for _, line := range resourceLines(res) {
		label, value, _ := strings.Cut(line, ": ")
		fmt.Fprintf(w, "| %s | %s |\n", label, value)
	}
	if m.LagMs.Count > 0 {
		fmt.Fprintf(w, "| generator lag | p50 %s, p99 %s, max %s |\n", fmtMs(m.LagMs.P50), fmtMs(m.LagMs.P99), fmtMs(m.LagMs.Max))
	}
	fmt.Fprintln(w)

	fmt.Fprintf(w, "## Summary\n\n")
	fmt.Fprintf(w, "| config | invocations | failed | inv/s | tasks/s | cold starts | idle instance-s |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, c := range res.Configs {
		s := c.Summary
		fmt.Fprintf(w, "| %s | %d | %d | %.1f | %.1f | %d | %.1f |\n", c.Config.Label, s.Invocations, s.Failed, s.Throughput, s.TasksPerSecond, s.ColdStarts, s.IdleInstanceS)
	}
	fmt.Fprintln(w)

	metrics := []struct {
		title string
		get   func(*Summary) Dist
		note  string
	}{
		{"End-to-end latency", func(s *Summary) Dist { return s.Latency }, "client's submit to the invocation's end"},
		{"Engine overhead per task", func(s *Summary) Dist { return s.OverheadTask }, "(latency − critical path of function time) ÷ calls on the critical path"},
		{"Engine overhead per invocation", func(s *Summary) Dist { return s.Overhead }, "latency − critical path of function time"},
		{"Queueing delay", func(s *Summary) Dist { return s.Queue }, "per call: TaskStarted − the event that made the task ready"},
		{"Function time", func(s *Summary) Dist { return s.Function }, "per call: Info.durationMs"},
		{"Critical path of function time", func(s *Summary) Dist { return s.CriticalPath }, "per invocation"},
		{"Cold start", func(s *Summary) Dist { return s.ColdStart }, "per cold call: Info.coldStartMs"},
		{"History span", func(s *Summary) Dist { return s.Span }, "InvocationStarted to the terminal event"},
	}
	for _, mt := range metrics {
		fmt.Fprintf(w, "## %s\n\n%s.\n\n| config | count | mean | p50 | p90 | p99 | p99.9 | max |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n", mt.title, mt.note)
		for _, c := range res.Configs {
			d := mt.get(&c.Summary)
			fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s | %s | %s |\n", c.Config.Label, d.Count, fmtMs(d.Mean), fmtMs(d.P50), fmtMs(d.P90), fmtMs(d.P99), fmtMs(d.P999), fmtMs(d.Max))
		}
		fmt.Fprintln(w)
	}
	var penalties []string
	for _, c := range res.Configs {
		if c.Summary.ColdPenaltyMs != 0 {
			penalties = append(penalties, fmt.Sprintf("%s: %s", c.Config.Label, fmtMs(c.Summary.ColdPenaltyMs)))
		}
	}
	if len(penalties) > 0 {
		fmt.Fprintf(w, "Median latency added by cold starts (invocations with one against those without): %s.\n\n", strings.Join(penalties, "; "))
	}
	if len(res.Function) > 0 {
		fmt.Fprintf(w, "## Function instances\n\n| function | instances started | idle instance-seconds |\n| --- | ---: | ---: |\n")
		for _, f := range res.Function {
			fmt.Fprintf(w, "| %s | %d | %.1f |\n", f.Function, f.Instances, f.IdleS)
		}
		fmt.Fprintln(w)
	}
	for _, c := range res.Configs {
		if c.Summary.Untraced > 0 {
			fmt.Fprintf(w, "%s: %d invocations had no calls in their history (a server keeps none for non-durable invocations); they count in latency only.\n\n", c.Config.Label, c.Summary.Untraced)
		}
	}
	if len(plots) > 0 {
		fmt.Fprintf(w, "## Plots\n\n")
		for _, p := range plots {
			fmt.Fprintf(w, "### %s\n\n![%s](%s)\n\n", p.title, p.title, p.name)
		}
	}
	fmt.Fprintf(w, "Definitions of every metric: docs/benchmarking.md. Distributions and series: results.json (every invocation's sample too with --samples).\n")
	return nil
}
