package main

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/batonflow/baton/bench"
	"github.com/batonflow/baton/prewarm"
)

func newColdstartCommand(f *benchFlags) *cobra.Command {
	var (
		interval time.Duration
		work     time.Duration
		rounds   int
		warmup   int
		odds     float64
		fixed    time.Duration
		idleCost float64
		wait     float64
		margin   time.Duration
		factor   float64
		shapes   []string
		policies []string
		hog      int
	)
	c := &cobra.Command{
		Use:   "coldstart",
		Short: "Compare on-demand, fixed keep-alive, hybrid histogram and predictive prewarming on cascading cold starts",
		Long: "Coldstart runs a chain of 10 wasm functions, a fan-out of 5 and a branching workflow, each\n" +
			"under four keep-alive policies (every call task has its own function, so its own pool), in\n" +
			"interleaved rounds with identical arrivals, and reports per pair the end-to-end p50/p99, the\n" +
			"cold-start time left on the critical path and the idle instance-seconds. The workflows are\n" +
			"durable unless --durability none. See docs/prewarming.md.",
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			level, err := parseLogLevel(f.logLevel)
			if err != nil {
				return err
			}
			stderr := cmd.ErrOrStderr()
			cache := f.cacheDir
			if cache == "" {
				cache = defaultBenchCacheDir()
			}
			res, err := bench.RunColdstart(cmd.Context(), bench.ColdstartOptions{
				Shapes: shapes, Policies: policies,
				Interval: interval, Work: work, Rounds: rounds, Warmup: warmup, BranchOdds: odds, FixedKeepAlive: fixed,
				Durability: f.durability,
				Rule:       prewarm.Rule{IdleCost: idleCost, WaitShare: wait, Margin: margin, KeepFactor: factor},
				CacheDir:   cache, WasmSource: f.wasmSource, DataDir: f.data, Seed: f.seed,
				Logger:   slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
				Progress: stderr, Command: "baton " + strings.Join(os.Args[1:], " "),
				CPUHog: hog, HogCommand: hogCommand(),
			})
			if err != nil {
				return err
			}
			if err := bench.WriteColdstartTable(cmd.OutOrStdout(), res); err != nil {
				return err
			}
			return writeReport(stderr, f.out, func(dir string) error { return bench.WriteColdstartReport(dir, res) })
		}),
	}
	fl := c.Flags()
	fl.StringSliceVar(&shapes, "workflows", nil, "workflows to run: chain, fanout, branch (default all)")
	fl.StringSliceVar(&policies, "policies", nil, "policies to compare: on-demand, fixed, hybrid, baton, baton+hybrid (default all)")
	fl.DurationVar(&work, "work", 0, "how long each function call takes (the function waits, as one doing I/O would)")
	fl.DurationVar(&interval, "interval", 2*time.Second, "time between invocations of each workflow")
	fl.IntVar(&rounds, "rounds", 40, "invocations of each workflow under each policy")
	fl.IntVar(&warmup, "warmup-rounds", 12, "first rounds left out of the statistics (the policies learn during them)")
	fl.Float64Var(&odds, "odds", 0.7, "probability of the branching workflow's short path")
	fl.DurationVar(&fixed, "fixed-keep-alive", 10*time.Minute, "keep-alive of the fixed policy and of the hybrid policy's fallback")
	fl.Float64Var(&idleCost, "idle-cost", 0, "prepare rule: price of an idle instance-second in seconds of latency (default 0.2)")
	fl.Float64Var(&wait, "wait-share", 0, "prepare rule: share of prepared calls that may wait for the end of their instance's start, which sets the learned margin (default 0.05)")
	fl.DurationVar(&margin, "margin", 0, "prepare rule: how early a prepared instance should be ready (default 2ms)")
	fl.IntVar(&hog, "cpu-hog", 0, "run this many processes alongside, each spinning a core (a busy machine)")
	fl.Float64Var(&factor, "keep-factor", 0, "keep an idle instance for a predicted call within this many times its cold start (default 1)")
	return c
}

// hogCommand is how the coldstart bench starts a CPU hog: this binary's
// hidden `bench cpu-hog`.
func hogCommand() []string {
	exe, err := os.Executable()
	if err != nil {
		return nil
	}
	return []string{exe, "bench", "cpu-hog"}
}

// newCPUHogCommand spins one core until killed, for --cpu-hog.
func newCPUHogCommand() *cobra.Command {
	return &cobra.Command{
		Use:    "cpu-hog",
		Short:  "Spin one core until killed (for bench coldstart --cpu-hog)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			spin(cmd.Context())
			return nil
		}),
	}
}

// spin burns CPU until ctx ends; the counter keeps the loop from being
// optimised away.
func spin(ctx context.Context) uint64 {
	var n uint64
	for ctx.Err() == nil {
		for range 1 << 20 {
			n = n*6364136223846793005 + 1442695040888963407
		}
	}
	return n
}
