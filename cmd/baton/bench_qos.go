package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/batonflow/baton/bench"
)

func newBenchQoSCommand(f *benchFlags) *cobra.Command {
	var (
		duration, drain, muDuration, work, deadline time.Duration
		mu, load                                    float64
		runs                                        []string
		seats                                       string
	)
	c := &cobra.Command{
		Use:   "qos",
		Short: "Measure QoS scheduling: priority, fairness, deadlines and admission under 2× overload",
		Long: "Qos measures the saturation rate μ of a CPU-bound ~10ms wasm workload, then offers\n" +
			"open-loop Poisson load totalling 2μ through the REST API: tenant h critical 0.2μ (1- and\n" +
			"3-step workflows, 200ms deadline), s1 and s2 standard 0.4μ each, b batch 1.0μ. It runs h\n" +
			"alone (L0), FIFO (QoS off), QoS on, the ablations no-EDF, no-continuations and\n" +
			"no-admission, and b alone, each on a fresh engine; clients honour Retry-After. It prints\n" +
			"one row per run and tenant and checks the targets of docs/qos.md.",
		Example: "  baton bench qos --duration 60s --out qos-report\n  baton bench qos --duration 10s --mu-duration 5s --runs L0,QoS,FIFO",
		Args:    cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			level, err := parseLogLevel(f.logLevel)
			if err != nil {
				return err
			}
			for _, r := range runs {
				known := false
				for _, n := range bench.QoSRunNames {
					known = known || n == r
				}
				if !known {
					return fmt.Errorf("--runs %q: want some of %s", r, strings.Join(bench.QoSRunNames, ", "))
				}
			}
			qcfg := qosConfig{mode: "on", seats: seats, maxWait: 2 * time.Second}
			qopts, _, err := qcfg.options()
			if err != nil {
				return err
			}
			// The spin function, unless --wasm-source names another that
			// takes {"iterations": N}.
			wasmSource := filepath.Join("examples", "functions", "loop")
			if fl := cmd.Flag("wasm-source"); fl != nil && fl.Changed {
				wasmSource = f.wasmSource
			}
			stderr := cmd.ErrOrStderr()
			cache := f.cacheDir
			if cache == "" {
				cache = defaultBenchCacheDir()
			}
			res, err := bench.RunQoS(cmd.Context(), bench.QoSOptions{
				Duration: duration, Drain: drain, MuDuration: muDuration, Mu: mu, Load: load, Work: work, Deadline: deadline,
				Runs: runs, Seats: qopts.Seats, CacheDir: cache, WasmSource: wasmSource, Seed: f.seed,
				Logger:   slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
				Progress: stderr, Command: "baton " + strings.Join(os.Args[1:], " "),
			})
			if err != nil {
				return err
			}
			if err := bench.WriteQoSTable(cmd.OutOrStdout(), res); err != nil {
				return err
			}
			return writeReport(stderr, f.out, func(dir string) error { return bench.WriteQoSReport(dir, res) })
		}),
	}
	fl := c.Flags()
	fl.DurationVar(&duration, "duration", 60*time.Second, "arrivals of each run")
	fl.DurationVar(&drain, "drain", 30*time.Second, "how long each run waits for its last requests")
	fl.DurationVar(&muDuration, "mu-duration", 15*time.Second, "length of the saturation measurement")
	fl.Float64Var(&mu, "mu", 0, "saturation rate to use instead of measuring it (workflows/s)")
	fl.Float64Var(&load, "load", 2, "total offered load in units of μ")
	fl.DurationVar(&work, "call", 10*time.Millisecond, "CPU time of one function call (the spin function is calibrated to it)")
	fl.DurationVar(&deadline, "deadline", 200*time.Millisecond, "tenant h's deadline (Baton-Timeout)")
	fl.StringSliceVar(&runs, "runs", nil, "runs to make: "+strings.Join(bench.QoSRunNames, ", ")+" (default all)")
	fl.StringVar(&seats, "qos-seats", "", "G2 seats per pool, as baton server --qos-seats")
	return c
}
