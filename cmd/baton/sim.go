package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/batonflow/baton/bench"
	"github.com/batonflow/baton/prewarm"
	"github.com/batonflow/baton/sim"
)

func newSimCommand() *cobra.Command {
	var (
		trace      string
		functions  int
		days       float64
		medianRate float64
		sigma      float64
		maxChain   int
		perMinute  int
		execMedian time.Duration
		coldMedian time.Duration
		memoryMB   float64
		fixed      time.Duration
		policies   string
		seed       uint64
		workers    int
		idleCost   float64
		waitShare  float64
		out        string
	)
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Simulate keep-alive and prewarming policies over a trace in virtual time",
		Long: "Sim replays an Azure Functions per-minute trace (or a synthetic one) through the keep-alive\n" +
			"and prewarming policies of package prewarm with a virtual clock: each trace row is a workflow,\n" +
			"a chain of 1..--max-chain functions, invoked at the row's times. It reports per policy the\n" +
			"cold-start rate and the wasted memory (idle instance-seconds times memory); --out DIR also\n" +
			"writes report.md, results.json and plots. See docs/prewarming.md.",
		Example: "  baton sim --functions 10000 --days 2 --out /tmp/sim\n" +
			"  baton sim --trace invocations_per_function_md.anon.d01.csv --out /tmp/sim-azure",
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			ps, err := sim.ParsePolicies(policies)
			if err != nil {
				return err
			}
			opts := sim.Options{
				Functions: functions, MaxChain: maxChain, MaxPerMinute: perMinute,
				ExecMedian: execMedian, ColdMedian: coldMedian, MemoryMB: memoryMB,
				FixedKeepAlive: fixed, Policies: ps, Seed: seed, Workers: workers,
				Rule: prewarm.Rule{IdleCost: idleCost, WaitShare: waitShare},
				Synthetic: bench.SyntheticTraceOptions{
					Minutes: int(days * 1440), MedianPerMinute: medianRate, Sigma: sigma,
				},
			}
			source := fmt.Sprintf("synthetic trace (seed %d, median %g calls/min, sigma %g) over %g days", seed, medianRate, sigma, days)
			if trace != "" {
				f, err := os.Open(trace)
				if err != nil {
					return err
				}
				t, err := bench.ReadTrace(f, trace)
				f.Close()
				if err != nil {
					return err
				}
				opts.Trace = t
				if !cmd.Flags().Changed("functions") {
					opts.Functions = 0
				}
				source = fmt.Sprintf("trace %s (%d rows, %d minutes)", filepath.Base(trace), len(t.Rows), t.Minutes)
			}
			// The simulation allocates many short-lived timers; collecting
			// less often buys a good part of its run time.
			defer debug.SetGCPercent(debug.SetGCPercent(400))
			res, err := sim.Run(cmd.Context(), opts)
			if err != nil {
				return err
			}
			res.Description = fmt.Sprintf("Source: %s. Each row is a workflow: a chain of 1..%d functions (execution median %s, cold start median %s, lognormal across functions), %g MB per instance, fixed keep-alive %s, at most %d calls per row and minute simulated one by one.",
				source, opts.MaxChain, execMedian, coldMedian, memoryMB, fixed, perMinute)
			if err := sim.WriteTable(cmd.OutOrStdout(), res); err != nil {
				return err
			}
			if err := writeReport(cmd.ErrOrStderr(), out, func(dir string) error {
				return sim.WriteReport(dir, "baton "+strings.Join(os.Args[1:], " "), res)
			}); err != nil {
				return err
			}
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&trace, "trace", "", "Azure Functions 2019 per-minute CSV to replay (default: a synthetic trace)")
	f.IntVar(&functions, "functions", 10000, "functions to simulate in all (trace rows become workflows of 1..--max-chain functions)")
	f.Float64Var(&days, "days", 2, "synthetic trace length in days")
	f.Float64Var(&medianRate, "median-rate", 0.5, "synthetic trace: median over functions of the mean calls per minute")
	f.Float64Var(&sigma, "sigma", 2, "synthetic trace: lognormal spread of the rates")
	f.IntVar(&maxChain, "max-chain", 4, "longest workflow chain")
	f.IntVar(&perMinute, "per-minute", 1, "calls per row and minute simulated one by one; the rest count as warm")
	f.DurationVar(&execMedian, "exec", 200*time.Millisecond, "median function execution time")
	f.DurationVar(&coldMedian, "cold", 500*time.Millisecond, "median cold start")
	f.Float64Var(&memoryMB, "memory", 128, "memory of an instance in MB")
	f.DurationVar(&fixed, "fixed-keep-alive", 10*time.Minute, "keep-alive of the fixed policy and of the hybrid policy's fallback")
	f.StringVar(&policies, "policies", "on-demand,fixed,hybrid,baton,baton+hybrid", "policies to compare; fixed:DURATION and hybrid:PERCENTILE set a keep-alive or a tail percentile (trade-off curves)")
	f.Uint64Var(&seed, "seed", 1, "seed of the synthetic trace and of arrival times within minutes")
	f.IntVar(&workers, "workers", 0, "simulation goroutines (default: GOMAXPROCS)")
	f.Float64Var(&idleCost, "idle-cost", 0, "prepare rule: price of an idle instance-second in seconds of latency (default 0.2)")
	f.Float64Var(&waitShare, "wait-share", 0, "prepare rule: share of prepared calls that may wait for the end of their instance's start (default 0.05)")
	f.StringVar(&out, "out", "", "write report.md, results.json and plots into this directory")
	return cmd
}
