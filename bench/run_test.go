package bench

import (
	"context"
	"encoding/json"
	"image"
	_ "image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batonflow/baton/engine"
)

var compared = []Config{
	{Label: "durable", Durability: "durable", Functions: Noop},
	{Label: "none", Durability: "none", Functions: Noop},
}

func TestWorkloadsRunToCompletion(t *testing.T) {
	dir := t.TempDir()
	doc := filepath.Join(dir, "mine.yaml")
	if err := os.WriteFile(doc, []byte(`document: {dsl: '1.0.0', namespace: x, name: mine, version: '0.1.0'}
do:
  - first: {call: baton.noop, with: {n: '${ .n }'}}
  - second: {call: baton.noop}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	input := filepath.Join(dir, "input.json")
	if err := os.WriteFile(input, []byte(`{"n": 3}`), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		workload Workload
		// calls and criticalCalls per invocation; zero means "varies".
		calls, critical int
	}{
		{Workload{Kind: Chain, N: 4}, 4, 4},
		{Workload{Kind: Fanout, Width: 3}, 4, 2},
		{Workload{Kind: Map, Items: 5}, 5, 5},
		{Workload{Kind: Branch, Odds: 0.5}, 0, 0},
		{Workload{Kind: MapReduce, Width: 3}, 5, 3},
		{Workload{Kind: File, File: doc, InputFile: input}, 2, 2},
	}
	for _, tt := range tests {
		t.Run(string(tt.workload.Kind), func(t *testing.T) {
			wf, err := tt.workload.Build("probe", Call{Function: noopExecutorName}, "none", rand.New(rand.NewPCG(1, 1)))
			if err != nil {
				t.Fatalf("the workflow does not parse: %v", err)
			}
			if engine.Durable(wf.Def) {
				t.Error("durability none was not written into the document")
			}
			res, err := Run(context.Background(), Options{
				Workload: tt.workload, Configs: compared,
				Arrivals:    Arrivals{Kind: Closed, Concurrency: 2},
				Invocations: 12, Seed: 5, KeepSamples: true,
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Configs) != 2 {
				t.Fatalf("%d configurations, want 2", len(res.Configs))
			}
			fast, slow := 0, 0
			for _, c := range res.Configs {
				if c.Summary.Invocations != 6 || c.Summary.Failed != 0 {
					t.Errorf("%s: %d invocations, %d failed; want 6 and 0: %+v", c.Config.Label, c.Summary.Invocations, c.Summary.Failed, c.Samples)
				}
				for _, s := range c.Samples {
					if !s.Traced {
						t.Errorf("%s: invocation %s has no calls in its history", c.Config.Label, s.ID)
					}
					if tt.calls > 0 && (len(s.Tasks) != tt.calls || s.CriticalCalls != tt.critical) {
						t.Errorf("%s: %d calls, %d on the critical path; want %d and %d", c.Config.Label, len(s.Tasks), s.CriticalCalls, tt.calls, tt.critical)
					}
					if tt.workload.Kind == Branch {
						switch len(s.Tasks) {
						case 1:
							fast++
						case slowPathCalls:
							slow++
						default:
							t.Errorf("branch invocation made %d calls", len(s.Tasks))
						}
					}
					if s.LatencyMs <= 0 || s.OverheadMs < 0 {
						t.Errorf("%s: latency %v, overhead %v", c.Config.Label, s.LatencyMs, s.OverheadMs)
					}
					if c.Config.Durability == "durable" {
						for _, task := range s.Tasks {
							if task.QueueMs < 0 {
								t.Errorf("durable task %s has no TaskStarted record", task.Key)
							}
						}
					}
				}
			}
			if tt.workload.Kind == Branch && (fast == 0 || slow == 0) {
				t.Errorf("branch took the fast path %d times and the slow one %d times; want both", fast, slow)
			}
		})
	}
}

func TestReportFromATimedCompareRun(t *testing.T) {
	var progress strings.Builder
	res, err := Run(context.Background(), Options{
		Workload: Workload{Kind: Chain, N: 3}, Configs: compared,
		Arrivals: Arrivals{Kind: Closed, Concurrency: 4},
		Duration: 2 * time.Second, Warmup: 200 * time.Millisecond, Seed: 1,
		Progress: &progress, ProgressEvery: 500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Configs) != 2 {
		t.Fatalf("%d summaries, want one per configuration", len(res.Configs))
	}
	for _, c := range res.Configs {
		s := c.Summary
		if s.Invocations == 0 || s.Throughput <= 0 || s.OverheadTask.Count == 0 || len(c.Series.TimeS) == 0 {
			t.Errorf("%s: empty summary %+v", c.Config.Label, s)
		}
	}
	if lines := strings.Count(progress.String(), "\n"); lines < 3 {
		t.Errorf("%d progress lines in a 2s run at one per 500ms: %q", lines, progress.String())
	}

	dir := t.TempDir()
	if err := WriteReport(dir, res); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back Results
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	// Without --samples the distributions are the histograms', not the
	// invocations' records.
	if len(back.Configs) != 2 || len(back.Configs[0].LatencyCDF) == 0 || len(back.Configs[0].Samples) != 0 {
		t.Errorf("results.json has %d configurations: %+v", len(back.Configs), back.Configs)
	}
	md, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| durable |", "| none |", "Engine overhead per task", "latency-cdf.png"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	for _, name := range []string{"latency-cdf.png", "overhead-cdf.png", "throughput.png", "latency-time.png", "cold-starts.png"} {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		img, format, err := image.Decode(f)
		f.Close()
		if err != nil || format != "png" || img.Bounds().Dx() < 100 {
			t.Errorf("%s: %v (format %q)", name, err, format)
		}
	}
	var table strings.Builder
	if err := WriteTable(&table, res); err != nil {
		t.Fatal(err)
	}
	// A header and a line per configuration, then what the run cost
	// and the disk's commit time.
	lines := strings.Split(strings.TrimSpace(table.String()), "\n")
	if len(lines) != 6 || !strings.HasPrefix(lines[3], "engine CPU: ") || !strings.Contains(lines[3], "commits per task") ||
		!strings.HasPrefix(lines[4], "engine RSS: peak ") || !strings.HasPrefix(lines[5], "disk commit (fsync'd SQLite, median): ") {
		t.Errorf("table:\n%s", table.String())
	}
	if rs := res.Meta.Resources; rs.DiskCommitMs <= 0 || rs.Commits <= 0 || rs.CPUPerTaskUs <= 0 || rs.Tasks == 0 {
		t.Errorf("resources %+v", rs)
	}
}

func TestOpenLoopRunsTheSchedule(t *testing.T) {
	res, err := Run(context.Background(), Options{
		Workload: Workload{Kind: Chain, N: 2},
		Configs:  compared[:1],
		Arrivals: Arrivals{Kind: Burst, Burst: 5, Every: 100 * time.Millisecond},
		Duration: 350 * time.Millisecond, Seed: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := res.Configs[0].Summary.Invocations; n != 20 {
		t.Errorf("%d invocations, want 4 bursts of 5", n)
	}
	if res.Meta.LagMs.Count != 20 {
		t.Errorf("lag measured for %d arrivals", res.Meta.LagMs.Count)
	}
}
