package process

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batonflow/baton/function"
	"github.com/batonflow/baton/problem"
)

type specMap map[string]*function.Spec

func (m specMap) Get(_ context.Context, _, name, version string) (*function.Spec, error) {
	s, ok := m[name]
	if !ok {
		return nil, function.NotFound(name, version)
	}
	return s, nil
}

func script(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", "fn.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("sh"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("sh is required under CI")
		}
		t.Skip("no sh on this machine")
	}
	return p
}

func newManager(t *testing.T, specs ...*function.Spec) *function.Manager {
	t.Helper()
	byName := specMap{}
	for _, s := range specs {
		s.Runtime, s.Version = function.KindProcess, "1"
		byName[s.Name] = s
	}
	rt := New(Options{StopGrace: 500 * time.Millisecond})
	m, err := function.NewManager(byName, map[function.Kind]function.Runtime{function.KindProcess: rt}, function.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return m
}

func wantProblem(t *testing.T, err error, typ string, detail ...string) {
	t.Helper()
	var p *problem.Problem
	if !errors.As(err, &p) || p.Type != typ {
		t.Fatalf("err = %v, want a %s problem", err, typ)
	}
	for _, d := range detail {
		if !strings.Contains(p.Detail, d) {
			t.Errorf("detail %q does not mention %q", p.Detail, d)
		}
	}
}

func pid(t *testing.T, res function.Result) float64 {
	t.Helper()
	out, ok := res.Output.(map[string]any)
	if !ok {
		t.Fatalf("output %v", res.Output)
	}
	return out["pid"].(float64)
}

func TestProcessIsKeptBetweenCalls(t *testing.T) {
	m := newManager(t, &function.Spec{Name: "sh", Command: script(t), Env: map[string]string{"GREETING": "hi"}})
	ctx := context.Background()
	first, err := m.Invoke(ctx, "sh", map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	if !first.Cold || first.ColdStart.Instantiate <= 0 || first.ColdStart.Init <= 0 {
		t.Errorf("first call: %+v, want cold with instantiate and init phases", first)
	}
	if env := first.Output.(map[string]any)["env"]; env != "hi" {
		t.Errorf("env = %v", env)
	}
	second, err := m.Invoke(ctx, "sh", map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	if second.Cold || pid(t, second) != pid(t, first) {
		t.Errorf("second call cold=%v pid %v, want warm on pid %v", second.Cold, pid(t, second), pid(t, first))
	}
}

func TestProcessRestartedAfterItDies(t *testing.T) {
	m := newManager(t, &function.Spec{Name: "sh", Command: script(t)})
	ctx := context.Background()
	first, err := m.Invoke(ctx, "sh", 1)
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Invoke(ctx, "sh", "die")
	wantProblem(t, err, problem.TypeRuntime, "exit status 7", "dying on request")
	next, err := m.Invoke(ctx, "sh", 1)
	if err != nil {
		t.Fatal(err)
	}
	if !next.Cold || pid(t, next) == pid(t, first) {
		t.Errorf("after the process died: cold=%v pid %v (old %v), want a new process", next.Cold, pid(t, next), pid(t, first))
	}

	// A process killed from outside between calls is replaced too.
	if err := syscallKill(int(pid(t, next))); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		res, err := m.Invoke(ctx, "sh", 1)
		if err == nil && pid(t, res) != pid(t, next) {
			if !res.Cold {
				t.Error("call on the replacement process was not cold")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the killed process was not replaced: %+v, %v", res, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func syscallKill(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Kill()
}

func TestProcessFailures(t *testing.T) {
	sh := script(t)
	tests := []struct {
		name     string
		args     []string
		input    any
		timeout  time.Duration
		wantType string
		detail   []string
	}{
		{"exits at once", []string{"exit-at-once"}, 1, 0, problem.TypeRuntime, []string{"before it was ready", "exit status 4", "cannot find my configuration"}},
		{"writes before ready", []string{"chatty"}, 1, 0, problem.TypeRuntime, []string{"hello, I am starting", "stderr"}},
		{"never ready", []string{"never-ready"}, 1, 300 * time.Millisecond, problem.TypeTimeout, nil},
		{"error response", nil, "fail", 0, problem.TypeRuntime, []string{"no can do"}},
		{"invalid response", nil, "garbage", 0, problem.TypeRuntime, []string{"invalid JSON", "garbage"}},
		{"hangs", nil, "hang", 300 * time.Millisecond, problem.TypeTimeout, []string{"300ms"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := &function.Spec{Name: "sh", Command: sh, Args: tc.args, Limits: function.Limits{Timeout: function.Duration(tc.timeout)}}
			healthy := &function.Spec{Name: "ok", Command: sh}
			m := newManager(t, spec, healthy)
			ctx := context.Background()
			if tc.name == "never ready" {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			begin := time.Now()
			_, err := m.Invoke(ctx, "sh", tc.input)
			wantProblem(t, err, tc.wantType, tc.detail...)
			if took := time.Since(begin); took > 5*time.Second {
				t.Errorf("the failure took %s", took)
			}
			if _, err := m.Invoke(context.Background(), "ok", 1); err != nil {
				t.Fatalf("another function after the failure: %v", err)
			}
		})
	}
}

func TestCommandNotFound(t *testing.T) {
	m := newManager(t, &function.Spec{Name: "nope", Command: "/no/such/binary"})
	_, err := m.Invoke(context.Background(), "nope", 1)
	wantProblem(t, err, problem.TypeConfiguration, "cannot start")
}

func TestCloseStopsTheProcess(t *testing.T) {
	rt := New(Options{StopGrace: 200 * time.Millisecond})
	spec := &function.Spec{Name: "sh", Version: "1", Runtime: function.KindProcess, Command: script(t)}
	inst, _, err := rt.Start(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if !inst.Healthy() {
		t.Fatal("a fresh process is not healthy")
	}
	if err := inst.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if inst.Healthy() {
		t.Error("a closed process is still healthy")
	}
}

func TestPythonFunction(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("python3 is required in CI")
		}
		t.Skip("python3 is not installed")
	}
	handler, err := filepath.Abs(filepath.Join("..", "..", "examples", "functions", "python", "handler.py"))
	if err != nil {
		t.Fatal(err)
	}
	m := newManager(t, &function.Spec{Name: "py", Command: python, Args: []string{handler}})
	ctx := context.Background()
	first, err := m.Invoke(ctx, "py", map[string]string{"name": "Guido"})
	if err != nil {
		t.Fatal(err)
	}
	out := first.Output.(map[string]any)
	if out["greeting"] != "Hello, Guido!" || out["runtime"] != "python" || !first.Cold {
		t.Errorf("first call: %+v", first)
	}
	second, err := m.Invoke(ctx, "py", map[string]string{})
	if err != nil || second.Cold || second.Output.(map[string]any)["greeting"] != "Hello, world!" {
		t.Errorf("second call: %+v, %v", second, err)
	}
	_, err = m.Invoke(ctx, "py", []int{1})
	wantProblem(t, err, problem.TypeRuntime, "ValueError", "input must be an object")
	if res, err := m.Invoke(ctx, "py", map[string]string{"name": "again"}); err != nil || res.Cold {
		t.Errorf("after a handler error the process should serve warm: %+v, %v", res, err)
	}
}
