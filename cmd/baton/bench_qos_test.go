package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestBenchQoSRunsEachRunInItsOwnProcess: every run of the experiment is
// made by a child process of its own, so that none inherits the heap and
// the goroutines of the run before it, and the results (and each run's
// CPU profile, when asked for) still come back whole.
func TestBenchQoSRunsEachRunInItsOwnProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the spin function and runs the experiment")
	}
	out := t.TempDir()
	res := baton(t, goEnv(), "bench", "qos", "--wasm-source", filepath.Join(examplesDir, "loop"),
		"--cache", filepath.Dir(batonBinary), "--mu", "20", "--mu-duration", "3s", "--duration", "1s", "--drain", "2s",
		"--runs", "L0,B-alone", "--out", out, "--cpuprofile", filepath.Join(out, "qos.prof"))
	if res.code != 0 {
		t.Fatalf("bench qos: exit %d\n%s", res.code, res.stderr)
	}
	for _, run := range []string{"L0", "B-alone"} {
		prof, err := os.ReadFile(filepath.Join(out, "qos-"+run+".prof"))
		if err != nil || !bytes.HasPrefix(prof, []byte{0x1f, 0x8b}) {
			t.Errorf("run %s's CPU profile: %v, %d bytes", run, err, len(prof))
		}
	}
	b, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var results struct {
		Runs []struct {
			Name     string  `json:"name"`
			PID      int     `json:"pid"`
			CallMs   float64 `json:"callMs"`
			MuAfter  float64 `json:"muAfter"`
			Timeline struct {
				CPUs  []float64 `json:"cpus"`
				Calls []int     `json:"calls"`
			} `json:"timeline"`
			Tenants []struct {
				Tenant  string `json:"tenant"`
				Offered int    `json:"offered"`
			} `json:"tenants"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(b, &results); err != nil {
		t.Fatal(err)
	}
	if len(results.Runs) != 2 {
		t.Fatalf("%d runs, want L0 and B-alone: %s", len(results.Runs), b)
	}
	l0, alone := results.Runs[0], results.Runs[1]
	if l0.PID == 0 || alone.PID == 0 || l0.PID == alone.PID {
		t.Errorf("runs made by processes %d and %d, want two distinct ones", l0.PID, alone.PID)
	}
	if l0.CallMs <= 0 || alone.CallMs <= 0 {
		t.Errorf("a call alone timed at %v and %v ms in the runs' processes", l0.CallMs, alone.CallMs)
	}
	// The saturation is measured again after a run whose backlog is
	// bounded, not after L0 (h alone).
	if l0.MuAfter != 0 || alone.MuAfter <= 0 {
		t.Errorf("μ after the runs: L0 %v, B-alone %v; want none and some", l0.MuAfter, alone.MuAfter)
	}
	if n := len(alone.Timeline.CPUs); n == 0 || n != len(alone.Timeline.Calls) || slices.Max(alone.Timeline.Calls) == 0 {
		t.Errorf("B-alone's timeline %+v: want CPU and calls for each second of the run", alone.Timeline)
	}
	if l0.Name != "L0" || len(l0.Tenants) != 1 || l0.Tenants[0].Tenant != "h" ||
		alone.Name != "B-alone" || len(alone.Tenants) != 1 || alone.Tenants[0].Tenant != "b" || alone.Tenants[0].Offered == 0 {
		t.Errorf("runs came back as %+v", results.Runs)
	}
	if !regexp.MustCompile(`(?m)^L0 +h `).MatchString(res.stdout) || !regexp.MustCompile(`(?m)^B-alone +b `).MatchString(res.stdout) {
		t.Errorf("the table lacks a run:\n%s", res.stdout)
	}
}

// TestBenchQoSRunRefusesAMissingSpec: the hidden child command, run
// without its spec on stdin, says so in one line.
func TestBenchQoSRunRefusesAMissingSpec(t *testing.T) {
	res := baton(t, nil, "bench", "qos-run")
	if res.code == 0 || !strings.Contains(res.stderr, "reading the run's spec") || strings.Count(strings.TrimSpace(res.stderr), "\n") != 0 {
		t.Errorf("exit %d, stderr %q", res.code, res.stderr)
	}
}
