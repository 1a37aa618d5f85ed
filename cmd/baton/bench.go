package main

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/batonflow/baton/bench"
	"github.com/batonflow/baton/client"
)

// benchFlags are the flags every workload of `baton bench` shares.
type benchFlags struct {
	functions      string
	durability     string
	work           time.Duration
	concurrency    int
	rate           float64
	burst          int
	every          time.Duration
	trace          string
	traceSpeedup   float64
	traceFunctions int
	duration       time.Duration
	invocations    int
	warmup         time.Duration
	compare        string
	out            string
	data           string
	server         string
	seed           uint64
	keepAlive      time.Duration
	maxInstances   int
	maxInFlight    int
	cacheDir       string
	wasmSource     string
	logLevel       string
	cpuProfile     string
	samples        bool
	historySample  int
}

func newBenchCommand() *cobra.Command {
	f := &benchFlags{}
	cmd := &cobra.Command{
		Use:   "bench WORKLOAD",
		Short: "Benchmark workflows: latency, engine overhead, cold starts, throughput",
		Long: "Bench generates a workflow of a standard shape (or takes yours), drives it with a\n" +
			"closed loop, Poisson arrivals, bursts or an Azure Functions trace, and computes from\n" +
			"the invocations' histories their end-to-end latency, queueing delay, function time,\n" +
			"engine overhead and cold starts. It prints a summary table; --out DIR also writes\n" +
			"results.json, report.md and PNG plots. See docs/benchmarking.md.",
		Example: "  baton bench chain --n 10 --functions noop --duration 10s --out /tmp/bench\n" +
			"  baton bench chain --n 10 --concurrency 64 --compare durable,none\n" +
			"  baton bench fanout --width 8 --functions http --work 5ms --rate 200\n" +
			"  baton bench trace-gen --functions 200 --out trace.csv\n" +
			"  baton bench map --items 20 --functions wasm --trace trace.csv --trace-functions 20 --trace-speedup 120",
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.functions, "functions", "noop", "what calls run: noop (the engine's baton.noop, zero time), set (a set task instead of each call), http (loopback endpoint), wasm (Go SDK example), process")
	pf.StringVar(&f.durability, "durability", "durable", "durable (history in the store) or none (document.metadata baton.durability: none); a file workload keeps its own unless this is set")
	pf.DurationVar(&f.work, "work", 0, "simulated function time of the http endpoint")
	pf.IntVar(&f.concurrency, "concurrency", 1, "closed loop: invocations in flight (in total, over the compared configurations)")
	pf.Float64Var(&f.rate, "rate", 0, "open loop: Poisson arrivals per second")
	pf.IntVar(&f.burst, "burst", 0, "open loop: invocations per burst")
	pf.DurationVar(&f.every, "every", time.Second, "open loop: time between bursts")
	pf.StringVar(&f.trace, "trace", "", "replay an Azure Functions 2019 per-minute invocation CSV")
	pf.Float64Var(&f.traceSpeedup, "trace-speedup", 60, "trace minutes played per minute of wall time (60: a trace minute lasts a second)")
	pf.IntVar(&f.traceFunctions, "trace-functions", 0, "replay the K busiest functions of the trace (0: all)")
	pf.DurationVar(&f.duration, "duration", 0, "stop sending after this long (default 10s unless --invocations or --trace bound the run)")
	pf.IntVar(&f.invocations, "invocations", 0, "stop after this many invocations")
	pf.DurationVar(&f.warmup, "warmup", 0, "exclude invocations submitted in this first period from the statistics")
	pf.StringVar(&f.compare, "compare", "", "compare configurations in one interleaved run: durable,none or noop,http,... (or AXIS=V1,V2)")
	pf.StringVar(&f.out, "out", "", "write results.json, report.md and plots into this directory")
	pf.StringVar(&f.data, "data", "", "keep the embedded engine's database here (default: a temporary directory)")
	pf.StringVar(&f.server, "server", "", "benchmark the server at this URL over its API instead of an embedded engine (wasm and process functions are deployed on it); replicas sharing a store: URL,URL,... (starts go round-robin)")
	pf.Uint64Var(&f.seed, "seed", 1, "seed of every random draw (arrivals, inputs)")
	pf.DurationVar(&f.keepAlive, "keep-alive", 0, "evict function instances idle this long (default: the function layer's)")
	pf.IntVar(&f.maxInstances, "max-instances", 256, "instances per benchmarked function")
	pf.IntVar(&f.maxInFlight, "max-inflight", 10000, "open loop: arrivals beyond this many outstanding invocations are dropped")
	pf.StringVar(&f.cacheDir, "cache", "", "where built functions are cached (default: the user cache directory)")
	pf.StringVar(&f.wasmSource, "wasm-source", filepath.Join("examples", "functions", "hello-go"), "Go SDK function built for --functions wasm")
	pf.BoolVar(&f.samples, "samples", false, "keep every invocation's sample (its calls included) for results.json; the harness's memory then grows with the run")
	pf.IntVar(&f.historySample, "history-sample", bench.DefaultHistorySample, "with --server, read the histories of a uniform sample of at most this many completed invocations per configuration (the others count by their workflow's fixed calls); -1 reads every one")
	pf.StringVar(&f.cpuProfile, "cpuprofile", "", "write a pprof CPU profile of the load phase (embedded engine and harness) to this file")
	pf.StringVar(&f.logLevel, "log-level", "error", "log level on stderr: debug, info, warn or error")

	// Each workload command has its own parameters: cobra writes a flag's
	// default into its variable when the flag is defined, so shared
	// variables would take the last command's defaults.
	workload := func(use, short string, kind bench.WorkloadKind, args cobra.PositionalArgs, flags func(*cobra.Command, *bench.Workload)) *cobra.Command {
		c := &cobra.Command{Use: use, Short: short, Args: args}
		w := &bench.Workload{Kind: kind}
		flags(c, w)
		c.RunE = runE(func(c *cobra.Command, a []string) error {
			if kind == bench.File {
				w.File = a[0]
			}
			return runBench(c, f, *w)
		})
		return c
	}
	cmd.AddCommand(
		workload("chain", "N sequential calls", bench.Chain, cobra.NoArgs, func(c *cobra.Command, w *bench.Workload) {
			c.Flags().IntVar(&w.N, "n", 10, "calls in the chain")
		}),
		workload("fanout", "W parallel calls (fork) then a join call", bench.Fanout, cobra.NoArgs, func(c *cobra.Command, w *bench.Workload) {
			c.Flags().IntVar(&w.Width, "width", 8, "parallel branches")
		}),
		workload("map", "a for loop over a list, one call per item", bench.Map, cobra.NoArgs, func(c *cobra.Command, w *bench.Workload) {
			c.Flags().IntVar(&w.Items, "items", 10, "items in the list")
		}),
		workload("branch", "a switch taking a one-call path with the given odds, a three-call path otherwise", bench.Branch, cobra.NoArgs, func(c *cobra.Command, w *bench.Workload) {
			c.Flags().Float64Var(&w.Odds, "odds", 0.9, "probability of the fast path")
		}),
		workload("mapreduce", "a split call, W parallel mappers, a reduce call", bench.MapReduce, cobra.NoArgs, func(c *cobra.Command, w *bench.Workload) {
			c.Flags().IntVar(&w.Width, "width", 4, "mappers")
		}),
		workload("file WORKFLOW.yaml", "your own workflow document", bench.File, cobra.ExactArgs(1), func(c *cobra.Command, w *bench.Workload) {
			c.Flags().StringVar(&w.InputFile, "input", "", "input document (JSON or YAML) of every invocation")
		}),
		newTraceGenCommand(),
		newColdstartCommand(f),
		newBenchQoSCommand(f),
		newBenchQoSRunCommand(f),
		newRecoveryBenchCommand(),
		newCPUHogCommand(),
	)
	return cmd
}

func runBench(cmd *cobra.Command, f *benchFlags, w bench.Workload) error {
	level, err := parseLogLevel(f.logLevel)
	if err != nil {
		return err
	}
	stderr := cmd.ErrOrStderr()
	opts := bench.Options{
		Workload: w, Duration: f.duration, Invocations: f.invocations, Warmup: f.warmup, Seed: f.seed,
		Work: f.work, KeepAlive: f.keepAlive, MaxInstances: f.maxInstances, MaxInFlight: f.maxInFlight,
		DataDir: f.data, Server: f.server, Connect: func(url string, hc *http.Client) (*client.Client, error) {
			return (&remote{url: url, token: os.Getenv(tokenEnv)}).clientOver(hc)
		},
		WasmSource: f.wasmSource, CacheDir: f.cacheDir,
		Progress: stderr, Interactive: isTerminal(stderr),
		Logger:  slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
		Command: "baton " + strings.Join(os.Args[1:], " "),
	}
	if opts.CacheDir == "" {
		opts.CacheDir = defaultBenchCacheDir()
	}
	opts.KeepSamples = f.samples
	opts.HistorySample = f.historySample
	if f.cpuProfile != "" {
		file, err := os.Create(f.cpuProfile)
		if err != nil {
			return err
		}
		defer file.Close()
		opts.CPUProfile = file
	}
	if opts.Configs, err = benchConfigs(f, w.Kind == bench.File, cmd.Flags().Changed("durability")); err != nil {
		return err
	}
	if opts.Arrivals, err = benchArrivals(f); err != nil {
		return err
	}
	if opts.Duration == 0 && opts.Invocations == 0 && opts.Arrivals.Kind != bench.Replay {
		opts.Duration = 10 * time.Second
	}
	res, err := bench.Run(cmd.Context(), opts)
	if err != nil {
		return err
	}
	if err := bench.WriteTable(cmd.OutOrStdout(), res); err != nil {
		return err
	}
	for _, c := range res.Configs {
		if c.Summary.FirstError != "" {
			fmt.Fprintf(stderr, "baton: %s: %d of %d invocations failed; the first: %s\n",
				c.Config.Label, c.Summary.Failed, c.Summary.Invocations, c.Summary.FirstError)
		}
	}
	return writeReport(stderr, f.out, func(dir string) error { return bench.WriteReport(dir, res) })
}

// benchConfigs turns --functions and --compare into configurations. A
// bare --compare list names its axis by its values.
func benchConfigs(f *benchFlags, userDocument, durabilitySet bool) ([]bench.Config, error) {
	fns, err := bench.ParseFunctions(f.functions)
	if err != nil {
		return nil, err
	}
	durability := f.durability
	if durability != "durable" && durability != "none" {
		return nil, fmt.Errorf("--durability must be durable or none, got %q", durability)
	}
	if userDocument && !durabilitySet {
		durability = "" // the document's own, unless set or compared
	}
	base := bench.Config{Durability: durability, Functions: fns}
	label := func(c bench.Config) string {
		d := c.Durability
		if d == "" {
			d = "doc"
		}
		return d + "/" + string(c.Functions)
	}
	if f.compare == "" {
		base.Label = label(base)
		return []bench.Config{base}, nil
	}
	axis, list, explicit := strings.Cut(f.compare, "=")
	if !explicit {
		list, axis = axis, ""
	}
	var configs []bench.Config
	for _, v := range strings.Split(list, ",") {
		v = strings.TrimSpace(v)
		c := base
		switch {
		case (axis == "" || axis == "durability") && (v == "durable" || v == "none"):
			c.Durability = v
		case axis == "" || axis == "functions":
			if c.Functions, err = bench.ParseFunctions(v); err != nil {
				return nil, fmt.Errorf("--compare: %w", err)
			}
		default:
			return nil, fmt.Errorf("--compare: unknown axis %q (want durability or functions)", axis)
		}
		c.Label = label(c)
		configs = append(configs, c)
	}
	if len(configs) < 2 {
		return nil, fmt.Errorf("--compare needs at least two values, got %q", f.compare)
	}
	return configs, nil
}

func benchArrivals(f *benchFlags) (bench.Arrivals, error) {
	a := bench.Arrivals{Kind: bench.Closed, Concurrency: f.concurrency}
	switch {
	case f.trace != "":
		file, err := os.Open(f.trace)
		if err != nil {
			return a, err
		}
		defer file.Close()
		t, err := bench.ReadTrace(file, f.trace)
		if err != nil {
			return a, err
		}
		a = bench.Arrivals{Kind: bench.Replay, Trace: t, TraceSpeedup: f.traceSpeedup, TraceFunctions: f.traceFunctions}
	case f.burst > 0:
		a = bench.Arrivals{Kind: bench.Burst, Burst: f.burst, Every: f.every}
	case f.rate > 0:
		a = bench.Arrivals{Kind: bench.Poisson, Rate: f.rate}
	}
	return a, a.Validate()
}

func newTraceGenCommand() *cobra.Command {
	var (
		out  string
		opts bench.SyntheticTraceOptions
	)
	cmd := &cobra.Command{
		Use:   "trace-gen",
		Short: "Write a synthetic trace in the Azure Functions 2019 layout, with heavy-tailed rates",
		Args:  cobra.NoArgs,
	}
	cmd.Flags().StringVar(&out, "out", "-", "file to write (- for stdout)")
	cmd.Flags().IntVar(&opts.Functions, "functions", 100, "functions (rows)")
	cmd.Flags().IntVar(&opts.Minutes, "minutes", 1440, "minutes (columns)")
	cmd.Flags().Float64Var(&opts.MedianPerMinute, "median-rate", 0.5, "median over functions of the mean invocations per minute")
	cmd.Flags().Float64Var(&opts.Sigma, "sigma", 2, "lognormal shape of the per-function rates (larger: heavier tail)")
	cmd.Flags().Uint64Var(&opts.Seed, "seed", 1, "random seed")
	cmd.RunE = runE(func(cmd *cobra.Command, _ []string) error {
		if opts.Functions < 1 {
			return fmt.Errorf("--functions must be at least 1")
		}
		t := bench.SyntheticTrace(opts)
		if out == "-" {
			return t.Write(cmd.OutOrStdout())
		}
		file, err := os.Create(out)
		if err != nil {
			return err
		}
		if err := t.Write(file); err != nil {
			file.Close()
			return err
		}
		return file.Close()
	})
	return cmd
}

// isTerminal reports whether w is a terminal, where progress redraws one
// line instead of printing a line every few seconds.
func isTerminal(w io.Writer) bool {
	file, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := file.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

// defaultBenchCacheDir is where benchmarks keep compiled wasm between runs
// when --cache-dir is not given.
func defaultBenchCacheDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "baton", "bench")
}

// writeReport has write fill the report directory dir (--out) and names
// its report.md on stderr; no directory, no report.
func writeReport(stderr io.Writer, dir string, write func(dir string) error) error {
	if dir == "" {
		return nil
	}
	if err := write(dir); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "report: %s\n", filepath.Join(dir, "report.md"))
	return nil
}
