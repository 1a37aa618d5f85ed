package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
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
			"alone (L0), FIFO (QoS off), QoS on, the ablations no-EDF, no-continuations,\n" +
			"no-admission and no-cpu-priority, and b alone, each on a fresh engine; clients honour\n" +
			"Retry-After. It prints one row per run and tenant and checks the targets of docs/qos.md.",
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
				Runs: runs, Seats: qopts.Seats, CacheDir: cache, WasmSource: wasmSource, Seed: f.seed, CPUProfile: f.cpuProfile,
				Logger:   slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
				Progress: stderr, Command: "baton " + strings.Join(os.Args[1:], " "),
				Isolate: func(ctx context.Context, spec bench.QoSRunSpec) (*bench.QoSRun, error) {
					return runQoSInChild(ctx, spec, f.logLevel, stderr)
				},
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

// runQoSInChild makes one run of the experiment in a child process of
// this binary (`bench qos-run`), so that no run inherits the heap or the
// goroutines of the one before it.
func runQoSInChild(ctx context.Context, spec bench.QoSRunSpec, logLevel string, stderr io.Writer) (*bench.QoSRun, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding this binary for the run's process: %w", err)
	}
	in, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	child := exec.CommandContext(ctx, exe, "bench", "qos-run", "--log-level", logLevel)
	child.Stdin, child.Stdout, child.Stderr = bytes.NewReader(in), &out, stderr
	// Interrupted, the child ends its run as this process would: its
	// engine closed and its temporary store removed.
	child.Cancel = func() error { return child.Process.Signal(os.Interrupt) }
	child.WaitDelay = 30 * time.Second
	if err := child.Run(); err != nil {
		return nil, fmt.Errorf("the run's process: %w", err)
	}
	var run bench.QoSRun
	if err := json.Unmarshal(out.Bytes(), &run); err != nil {
		return nil, fmt.Errorf("the run's process answered %q: %w", out.String(), err)
	}
	return &run, nil
}

// newBenchQoSRunCommand makes one run of `bench qos` in this process: the
// run's spec comes as JSON on stdin, its outcome goes as JSON to stdout.
func newBenchQoSRunCommand(f *benchFlags) *cobra.Command {
	return &cobra.Command{
		Use:    "qos-run",
		Short:  "Make one run of bench qos, specified on stdin (for bench qos)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			level, err := parseLogLevel(f.logLevel)
			if err != nil {
				return err
			}
			var spec bench.QoSRunSpec
			if err := json.NewDecoder(cmd.InOrStdin()).Decode(&spec); err != nil {
				return fmt.Errorf("reading the run's spec: %w", err)
			}
			stderr := cmd.ErrOrStderr()
			run, err := spec.Run(cmd.Context(), slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})), stderr)
			if err != nil {
				return err
			}
			return json.NewEncoder(cmd.OutOrStdout()).Encode(run)
		}),
	}
}
