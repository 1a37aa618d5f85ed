package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/policy"
	"github.com/batonflow/baton/store/sqlite"
)

// recoveryBench is what `baton bench recovery` measures.
type recoveryBench struct {
	dataDir     string
	invocations int
	wait        time.Duration
	concurrency int
	timeout     time.Duration
	seedOnly    bool
	out         io.Writer
	progress    io.Writer
}

func newRecoveryBenchCommand() *cobra.Command {
	var r recoveryBench
	c := &cobra.Command{
		Use:   "recovery",
		Short: "Seed a store with running invocations, start a real server on it, and time its listening and resumption",
		Long: "Recovery starts --invocations invocations of a workflow that sleeps for --wait in an\n" +
			"embedded engine over the database of --data (a temporary directory by default), stops it\n" +
			"with all of them running, then starts `baton server` on that database as a child process\n" +
			"and reports how long it took to listen and to answer /healthz, how fast it resumed the\n" +
			"invocations (from its baton_recovery_* metrics), and its peak resident memory. With\n" +
			"--invocations 0 it seeds nothing and times the server over what --data holds. See\n" +
			"docs/benchmarking.md.",
		Example: "  baton bench recovery --invocations 100000\n" +
			"  baton bench recovery --data /tmp/rec --invocations 0",
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			r.out, r.progress = cmd.OutOrStdout(), cmd.ErrOrStderr()
			if r.dataDir == "" && r.seedOnly {
				return errors.New("--seed-only needs --data: the seeded store would be removed")
			}
			if r.dataDir == "" {
				dir, err := os.MkdirTemp("", "baton-bench-recovery-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(dir)
				r.dataDir = dir
			}
			return r.run(cmd.Context())
		}),
	}
	fl := c.Flags()
	fl.StringVar(&r.dataDir, "data", "", "data directory of the seeded store and the server (default: a temporary directory, removed after)")
	fl.IntVar(&r.invocations, "invocations", 100000, "running invocations to seed (0: seed nothing)")
	fl.DurationVar(&r.wait, "wait", 2*time.Minute, "how long each seeded invocation sleeps (its timer is pending while the server resumes it)")
	fl.IntVar(&r.concurrency, "concurrency", 64, "invocations started at once while seeding")
	fl.BoolVar(&r.seedOnly, "seed-only", false, "seed --data and exit, leaving the invocations for a server (or a later run with --invocations 0)")
	fl.DurationVar(&r.timeout, "timeout", 10*time.Minute, "give up when the server has not resumed everything by then")
	return c
}

const recoveryBenchDoc = `
document: {dsl: '1.0.0', namespace: bench, name: recovery, version: '1.0.0'}
do:
  - sleep:
      wait: {milliseconds: %d}
  - done:
      set: {slept: true}
`

func (r *recoveryBench) run(ctx context.Context) error {
	if r.invocations > 0 {
		if err := r.seed(ctx); err != nil {
			return err
		}
	}
	if r.seedOnly {
		return nil
	}
	return r.serve(ctx)
}

// seed starts the invocations in an embedded engine and closes it with
// all of them running.
func (r *recoveryBench) seed(ctx context.Context) error {
	began := time.Now()
	if err := os.MkdirAll(r.dataDir, 0o700); err != nil {
		return err
	}
	st, err := sqlite.Open(ctx, filepath.Join(r.dataDir, databaseFile))
	if err != nil {
		return err
	}
	defer st.Close()
	// The namespace's default limit on running invocations would stop
	// the seeding long before the backlog is built.
	eng, err := engine.New(engine.Options{Store: st, Logger: slog.New(slog.DiscardHandler), Policies: unlimitedRunning{}})
	if err != nil {
		return err
	}
	defer eng.Close()
	if err := eng.Start(ctx); err != nil {
		return err
	}
	if _, err := eng.ApplyWorkflow(ctx, "recovery.yaml", []byte(fmt.Sprintf(recoveryBenchDoc, r.wait.Milliseconds()))); err != nil {
		return err
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, r.concurrency)
	for range max(1, r.concurrency) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(r.invocations) && ctx.Err() == nil {
				if _, err := eng.Invoke(ctx, "bench", "recovery", "", nil); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return fmt.Errorf("seeding: %w", err)
	}
	fmt.Fprintf(r.progress, "seeded %d running invocations in %v\n", r.invocations, time.Since(began).Round(time.Millisecond))
	return nil
}

// unlimitedRunning is the unrestricted policy without a bound on running
// invocations.
type unlimitedRunning struct{}

func (unlimitedRunning) Effective(context.Context, string) (*policy.Effective, error) {
	eff := policy.Unrestricted()
	eff.Limits.RunningInvocations = math.MaxInt
	return eff, nil
}

// recoveryMetrics are the server's baton_recovery_* values.
type recoveryMetrics struct {
	queued, active, resumed, skipped, failed, rate float64
}

func (r *recoveryBench) serve(ctx context.Context) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	cmd := exec.Command(exe, "server", "--data", r.dataDir, "--addr", "127.0.0.1:0", "--log-level", "warn")
	var logs bytes.Buffer
	cmd.Stderr = &logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	listening := make(chan string, 1)
	go func() {
		lines := bufio.NewScanner(stdout)
		for lines.Scan() {
			if url, ok := strings.CutPrefix(lines.Text(), "listening on "); ok {
				listening <- strings.TrimSpace(url)
			}
		}
	}()
	var url string
	select {
	case url = <-listening:
	case <-ctx.Done():
		return fmt.Errorf("the server did not listen within %v: %s", r.timeout, logs.String())
	}
	listened := time.Since(began)
	client := &http.Client{Timeout: 5 * time.Second}
	var healthy time.Duration
	for healthy == 0 {
		if resp, err := client.Get(url + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				healthy = time.Since(began)
				break
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the server never answered /healthz: %s", logs.String())
		case <-time.After(time.Millisecond):
		}
	}
	token, err := os.ReadFile(filepath.Join(r.dataDir, adminTokenFile))
	if err != nil {
		return fmt.Errorf("the server left no admin token: %w", err)
	}
	fmt.Fprintf(r.progress, "listening after %v, /healthz answered after %v\n", listened.Round(time.Millisecond), healthy.Round(time.Millisecond))
	var m recoveryMetrics
	lastReport := time.Now()
	for {
		m, err = scrapeRecovery(ctx, client, url, strings.TrimSpace(string(token)))
		if err != nil {
			return err
		}
		if m.resumed+m.skipped+m.failed > 0 && m.queued == 0 && m.active == 0 {
			break
		}
		if time.Since(lastReport) >= time.Second {
			fmt.Fprintf(r.progress, "  %v: %.0f resumed, %.0f queued\n", time.Since(began).Round(time.Second), m.resumed, m.queued)
			lastReport = time.Now()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the server had not resumed everything after %v: %.0f resumed, %.0f queued", r.timeout, m.resumed, m.queued)
		case <-time.After(50 * time.Millisecond):
		}
	}
	resumedAfter := time.Since(began)
	fmt.Fprintf(r.out, "invocations resumed   %.0f (skipped %.0f, failed %.0f)\n", m.resumed, m.skipped, m.failed)
	fmt.Fprintf(r.out, "listening after       %v\n", listened.Round(time.Millisecond))
	fmt.Fprintf(r.out, "/healthz answered     %v\n", healthy.Round(time.Millisecond))
	fmt.Fprintf(r.out, "all resumed after     %v (±50ms)\n", resumedAfter.Round(time.Millisecond))
	fmt.Fprintf(r.out, "resume rate           %.0f invocations/s\n", m.rate)
	if peak, ok := peakRSS(cmd.Process.Pid); ok {
		fmt.Fprintf(r.out, "server peak RSS       %.0f MB\n", float64(peak)/(1<<20))
	}
	return nil
}

func scrapeRecovery(ctx context.Context, client *http.Client, url, token string) (recoveryMetrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/metrics", nil)
	if err != nil {
		return recoveryMetrics{}, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return recoveryMetrics{}, fmt.Errorf("reading the server's metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return recoveryMetrics{}, fmt.Errorf("reading the server's metrics: %s", resp.Status)
	}
	var m recoveryMetrics
	fields := map[string]*float64{
		"baton_recovery_queued": &m.queued, "baton_recovery_active": &m.active,
		"baton_recovery_resumed_total": &m.resumed, "baton_recovery_skipped_total": &m.skipped,
		"baton_recovery_failed_total": &m.failed, "baton_recovery_rate": &m.rate,
	}
	found := 0
	lines := bufio.NewScanner(resp.Body)
	for lines.Scan() {
		name, value, ok := strings.Cut(lines.Text(), " ")
		if p := fields[name]; ok && p != nil {
			if *p, err = strconv.ParseFloat(value, 64); err != nil {
				return m, fmt.Errorf("metric %s: %w", name, err)
			}
			found++
		}
	}
	if found < len(fields) {
		return m, errors.New("the server exports no baton_recovery_* metrics")
	}
	return m, lines.Err()
}

// peakRSS reads a process's peak resident set size (Linux only).
func peakRSS(pid int) (int64, bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err == nil
		}
	}
	return 0, false
}
