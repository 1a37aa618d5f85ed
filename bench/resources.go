package bench

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the probe opens its own database file
)

// Resources is what a run cost the engine: CPU, commits and memory, and
// the disk's own commit time measured in the same run, so that a step's
// time can be read as a multiple of what the disk allows.
type Resources struct {
	// DiskCommitMs is the median time of one forced (fsync'd) SQLite
	// commit of a one-row insert in WAL mode, in the benchmark's data
	// directory, measured before the load.
	DiskCommitMs float64 `json:"diskCommitMs,omitempty"`
	// DiskCommitDir is where the probe committed.
	DiskCommitDir string `json:"diskCommitDir,omitempty"`
	// CPUS is the engine's CPU time (user and system) over the load
	// phase: this process's for an embedded engine (harness included,
	// whose share is small with noop functions), the server's
	// process_cpu_seconds_total otherwise.
	CPUS float64 `json:"cpuS,omitempty"`
	// Tasks are the calls completed in the load phase, warm-up included:
	// what CPUS and Commits are divided by.
	Tasks int64 `json:"tasks,omitempty"`
	// CPUPerTaskUs is CPUS ÷ Tasks, in microseconds.
	CPUPerTaskUs float64 `json:"cpuPerTaskUs,omitempty"`
	// HarnessCPUS is, embedded, the CPU time the harness spent reading
	// the invocations' histories as they ended, taken out of CPUS.
	HarnessCPUS float64 `json:"harnessCpuS,omitempty"`
	// Commits are the store's transactions over the load phase (embedded
	// SQLite only), each one fsync.
	Commits        int64   `json:"commits,omitempty"`
	CommitsPerTask float64 `json:"commitsPerTask,omitempty"`
	// EngineRSSMB is the highest resident memory of the engine's process
	// sampled during the load: the server's process_resident_memory_bytes
	// with --server; this process's otherwise, harness included.
	EngineRSSMB float64 `json:"engineRssMB,omitempty"`
	// EngineRSSSource says which of the two EngineRSSMB is.
	EngineRSSSource string `json:"engineRssSource,omitempty"`
	// HarnessHeapMB is the harness process's Go heap in use at the end of
	// the load (embedded runs: the engine's heap is in it too).
	HarnessHeapMB float64 `json:"harnessHeapMB,omitempty"`
	// HarnessStatsKB is what the harness keeps of the invocations at the
	// end: its histograms and time series, whose size does not grow with
	// the run's length (and the samples, with --samples).
	HarnessStatsKB float64 `json:"harnessStatsKB,omitempty"`
}

// probeCommits is how many commits the disk probe times; it stops early
// after probeBudget.
const (
	probeCommits = 200
	probeBudget  = 2 * time.Second
)

// measureDiskCommit times forced SQLite commits in a scratch database in
// dir, with the settings the embedded store commits with (WAL, synchronous
// FULL), and returns the median.
func measureDiskCommit(ctx context.Context, dir string) (time.Duration, error) {
	probeDir, err := os.MkdirTemp(dir, "commit-probe-")
	if err != nil {
		return 0, fmt.Errorf("bench: commit probe: %w", err)
	}
	defer os.RemoveAll(probeDir)
	db, err := sql.Open("sqlite", filepath.Join(probeDir, "probe.db")+
		"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)")
	if err != nil {
		return 0, fmt.Errorf("bench: commit probe: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, `CREATE TABLE probe (k INTEGER PRIMARY KEY, v BLOB NOT NULL)`); err != nil {
		return 0, fmt.Errorf("bench: commit probe: %w", err)
	}
	row := make([]byte, 200) // about one history event
	times := make([]time.Duration, 0, probeCommits)
	began := time.Now()
	for i := range probeCommits {
		t0 := time.Now()
		// An autocommit insert is one transaction: one WAL append, one fsync.
		if _, err := db.ExecContext(ctx, `INSERT INTO probe (k, v) VALUES (?, ?)`, i, row); err != nil {
			return 0, fmt.Errorf("bench: commit probe: %w", err)
		}
		times = append(times, time.Since(t0))
		if time.Since(began) > probeBudget && len(times) >= 20 {
			break
		}
	}
	slices.Sort(times)
	return times[len(times)/2], nil
}

// processMetrics reads process_cpu_seconds_total and
// process_resident_memory_bytes from a Prometheus text exposition.
func processMetrics(exposition []byte) (cpuS, rssBytes float64, err error) {
	found := 0
	sc := bufio.NewScanner(bytes.NewReader(exposition))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		var dst *float64
		switch name {
		case "process_cpu_seconds_total":
			dst = &cpuS
		case "process_resident_memory_bytes":
			dst = &rssBytes
		default:
			continue
		}
		if *dst, err = strconv.ParseFloat(strings.TrimSpace(value), 64); err != nil {
			return 0, 0, fmt.Errorf("metrics: %s: %w", name, err)
		}
		found++
	}
	if err := sc.Err(); err != nil {
		return 0, 0, fmt.Errorf("metrics: %w", err)
	}
	if found < 2 {
		return 0, 0, fmt.Errorf("metrics: no process_cpu_seconds_total and process_resident_memory_bytes")
	}
	return cpuS, rssBytes, nil
}

// meter measures a run's Resources around its load phase.
type meter struct {
	r        *runner
	res      Resources
	cpu0     time.Duration
	cpuS0    float64
	commits0 int64
	stop     chan struct{}
	done     chan struct{}
	// noMetrics is set when the server answers no /metrics.
	noMetrics bool
}

// startMeter probes the disk, then takes the starting counts and samples
// the engine's memory until finish.
func (r *runner) startMeter(ctx context.Context) (*meter, error) {
	m := &meter{r: r, stop: make(chan struct{}), done: make(chan struct{})}
	dir := os.TempDir()
	if r.em != nil {
		dir = r.em.dataDir
	}
	commit, err := measureDiskCommit(ctx, dir)
	if err != nil {
		return nil, err
	}
	m.res.DiskCommitMs, m.res.DiskCommitDir = ms(commit), dir
	if rem, ok := r.tgt.(*remote); ok {
		cpu, rss, err := rem.processMetrics(ctx)
		if err != nil {
			// A server may export no metrics: the run goes on without
			// its CPU and memory.
			m.noMetrics = true
			r.log.Warn("bench: the server's CPU and memory are not measured", "err", err)
		} else {
			m.res.EngineRSSSource = "server process_resident_memory_bytes (" + rem.clients[0].BaseURL() + ")"
			m.cpuS0, m.res.EngineRSSMB = cpu, rss/(1<<20)
		}
	} else {
		m.res.EngineRSSSource = "this process (embedded engine and harness)"
		m.cpu0 = processCPU()
		m.commits0 = r.em.st.Stats().Commits
	}
	go m.sample(ctx)
	return m, nil
}

// rssEvery is how often the engine's memory is sampled during the load.
const rssEvery = 250 * time.Millisecond

func (m *meter) sample(ctx context.Context) {
	defer close(m.done)
	tick := time.NewTicker(rssEvery)
	defer tick.Stop()
	for {
		var rss float64
		if rem, ok := m.r.tgt.(*remote); ok && !m.noMetrics {
			if _, b, err := rem.processMetrics(ctx); err == nil {
				rss = b
			}
		} else {
			rss = processRSS()
		}
		m.res.EngineRSSMB = max(m.res.EngineRSSMB, rss/(1<<20))
		select {
		case <-tick.C:
		case <-m.stop:
			return
		case <-ctx.Done():
			return
		}
	}
}

// finish ends the sampling and takes the final counts. harnessCPU is the
// CPU time the analyzer spent reading histories in this process, taken
// out of an embedded engine's (negative: not measured).
func (m *meter) finish(ctx context.Context, harnessCPU int64) {
	close(m.stop)
	<-m.done
	if rem, ok := m.r.tgt.(*remote); ok {
		if cpu, rss, err := rem.processMetrics(ctx); err == nil && !m.noMetrics {
			m.res.CPUS = cpu - m.cpuS0
			m.res.EngineRSSMB = max(m.res.EngineRSSMB, rss/(1<<20))
		}
	} else {
		m.res.CPUS = (processCPU() - m.cpu0).Seconds()
		if harnessCPU >= 0 {
			m.res.HarnessCPUS = time.Duration(harnessCPU).Seconds()
			m.res.CPUS -= m.res.HarnessCPUS
		}
		m.res.Commits = m.r.em.st.Stats().Commits - m.commits0
		m.res.EngineRSSMB = max(m.res.EngineRSSMB, processRSS()/(1<<20))
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m.res.HarnessHeapMB = float64(ms.HeapInuse) / (1 << 20)
}

// perTask divides the run's costs by the tasks it completed.
func (res *Resources) perTask(tasks int64) {
	res.Tasks = tasks
	if tasks == 0 {
		return
	}
	res.CPUPerTaskUs = res.CPUS * 1e6 / float64(tasks)
	if res.Commits > 0 {
		res.CommitsPerTask = float64(res.Commits) / float64(tasks)
	}
}
