package sqlite

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/store"
)

// crashChildEnv carries the database path to the child process of
// TestKillKeepsAcknowledgedAppends.
const crashChildEnv = "BATON_SQLITE_CRASH_CHILD_DB"

const crashWriters = 8

func crashInvocationID(g int) string { return fmt.Sprintf("crash-%d", g) }

// TestCrashChild is not a test of its own: it is the process that
// TestKillKeepsAcknowledgedAppends kills. It appends events from several
// goroutines, waiting for each, and prints every acknowledged seq.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashChildEnv)
	if path == "" {
		t.Skip("helper process for TestKillKeepsAcknowledgedAppends")
	}
	ctx := context.Background()
	s, err := Open(ctx, path)
	if err != nil {
		fmt.Printf("error %v\n", err)
		os.Exit(2)
	}
	var out sync.Mutex
	for g := range crashWriters {
		go func() {
			id := crashInvocationID(g)
			for seq := int64(2); ; seq++ {
				ev := core.Event{Seq: seq, Type: core.TaskCompleted, Time: time.Now(), Task: fmt.Sprintf("/do/%d", seq), Output: float64(seq)}
				if err := s.Append(ctx, id, []core.Event{ev}, true); err != nil {
					fmt.Printf("error %v\n", err)
					os.Exit(2)
				}
				// os.Stdout is unbuffered: once printed, the parent can
				// count on the ack.
				out.Lock()
				fmt.Printf("ack %d %d\n", g, seq)
				out.Unlock()
			}
		}()
	}
	select {} // until killed
}

func TestKillKeepsAcknowledgedAppends(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills a process")
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "baton.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	for g := range crashWriters {
		inv := &store.Invocation{ID: crashInvocationID(g), Namespace: "ns", Workflow: "wf", Version: "1", StartedAt: time.Now(), Durable: true}
		if err := s.CreateInvocation(ctx, inv, []core.Event{{Seq: 1, Type: core.InvocationStarted, Time: time.Now()}}, true); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()

	// Kill at a moment the child does not expect: after a number of acks
	// that is not a multiple of the writers, mid-stream.
	const killAfter = 1237
	acked := make([]int64, crashWriters)
	deadline := time.AfterFunc(2*time.Minute, func() { _ = cmd.Process.Kill() })
	defer deadline.Stop()
	lines := bufio.NewScanner(stdout)
	total := 0
	for total < killAfter && lines.Scan() {
		line := lines.Text()
		if strings.HasPrefix(line, "error ") {
			t.Fatalf("child: %s", line)
		}
		var g int
		var seq int64
		if n, _ := fmt.Sscanf(line, "ack %d %d", &g, &seq); n != 2 {
			continue // the test framework's own output
		}
		if seq <= acked[g] {
			t.Fatalf("child acknowledged seq %d of writer %d after %d", seq, g, acked[g])
		}
		acked[g] = seq
		total++
	}
	if total < killAfter {
		t.Fatalf("child stopped after %d acks: %v", total, lines.Err())
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed = true
	_ = cmd.Wait()
	// Acks the child printed between our last read and the kill count too.
	for lines.Scan() {
		var g int
		var seq int64
		if n, _ := fmt.Sscanf(lines.Text(), "ack %d %d", &g, &seq); n == 2 && seq > acked[g] {
			acked[g] = seq
		}
	}

	s, err = Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer s.Close()
	for g := range crashWriters {
		h, err := s.History(ctx, crashInvocationID(g))
		if err != nil {
			t.Fatal(err)
		}
		for i, ev := range h {
			if ev.Seq != int64(i+1) {
				t.Fatalf("writer %d: event %d has seq %d: the history has a gap", g, i, ev.Seq)
			}
			if i > 0 && (ev.Task != fmt.Sprintf("/do/%d", ev.Seq) || ev.Output != float64(ev.Seq)) {
				t.Fatalf("writer %d: event %d holds %q %v", g, ev.Seq, ev.Task, ev.Output)
			}
		}
		if int64(len(h)) < acked[g] {
			t.Fatalf("writer %d: %d events survived, but seq %d was acknowledged", g, len(h), acked[g])
		}
		t.Logf("writer %d: acknowledged %d, found %d", g, acked[g], len(h))
	}
	// The reopened store goes on appending where the history ends.
	h, _ := s.History(ctx, crashInvocationID(0))
	next := core.Event{Seq: int64(len(h) + 1), Type: core.TaskStarted, Time: time.Now()}
	if err := s.Append(ctx, crashInvocationID(0), []core.Event{next}, true); err != nil {
		t.Fatalf("append after recovery: %v", err)
	}
}
