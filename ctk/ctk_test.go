package ctk

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cucumber/godog"
	"go.yaml.in/yaml/v3"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/store"
	"github.com/batonflow/baton/store/sqlite"
)

// scenarioTimeout bounds one workflow execution.
const scenarioTimeout = 30 * time.Second

// repoRoot walks up from the working directory to the module's go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the working directory")
		}
		dir = parent
	}
}

func featuresDir(t *testing.T) string {
	dir := filepath.Join(repoRoot(t), "..", "shared", "spec", "serverless-workflow", "ctk", "features")
	if _, err := os.Stat(dir); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the conformance kit's features are required under CI: %v", err)
		}
		t.Skipf("the conformance kit's features are not beside the repository: %v", err)
	}
	return dir
}

// countScenarios counts the scenarios the feature files declare, so that
// the run can prove it executed every one of them.
func countScenarios(t *testing.T, dir string) int {
	files, err := filepath.Glob(filepath.Join(dir, "*.feature"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no feature files in %s (%v)", dir, err)
	}
	n := 0
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if strings.HasPrefix(line, "Scenario:") || strings.HasPrefix(line, "Example:") {
				n++
			}
		}
		fh.Close()
	}
	return n
}

func TestConformanceKit(t *testing.T) {
	dir := featuresDir(t)
	want := countScenarios(t, dir)
	net := newNetwork()
	defer net.Close()
	var ran atomic.Int64
	suite := godog.TestSuite{
		Name: "serverless-workflow-ctk",
		ScenarioInitializer: func(sc *godog.ScenarioContext) {
			s := &scenario{network: net}
			s.register(sc)
			sc.After(func(ctx context.Context, _ *godog.Scenario, err error) (context.Context, error) {
				ran.Add(1)
				s.close()
				// The failed step has failed the scenario already.
				return ctx, nil
			})
		},
		Options: &godog.Options{
			Format:      "progress",
			Paths:       []string{dir},
			Strict:      true, // undefined and pending steps fail the run
			Concurrency: 1,
			TestingT:    t,
		},
	}
	if status := suite.Run(); status != 0 {
		t.Fatalf("the conformance kit failed (status %d)", status)
	}
	got := ran.Load()
	if scenarioFilter() {
		// -run 'TestConformanceKit/NAME' runs the scenarios it names: at
		// least one, or the name was mistyped.
		if got == 0 {
			t.Fatalf("no scenario matches -run %q", flag.Lookup("test.run").Value.String())
		}
		return
	}
	if got != int64(want) {
		t.Fatalf("ran %d scenarios, the features declare %d", got, want)
	}
}

// scenarioFilter tells whether -run selects scenarios (subtests) of the
// kit rather than the whole test.
func scenarioFilter() bool {
	f := flag.Lookup("test.run")
	return f != nil && strings.Contains(f.Value.String(), "/")
}

// scenario is the state of one CTK scenario: its own engine and store, so
// that scenarios reusing a workflow name with other content do not clash.
type scenario struct {
	network *network

	definition []byte
	input      any
	engine     *engine.Engine
	store      store.Store
	dir        string
	tasks      *taskLog
	result     *store.Invocation
	history    []core.Event
}

func (s *scenario) register(sc *godog.ScenarioContext) {
	sc.Step(`^a workflow with definition:$`, s.workflowWithDefinition)
	sc.Step(`^(?:[Gg]iven )?the workflow input is:$`, s.workflowInputIs)
	sc.Step(`^the workflow is executed$`, s.workflowIsExecuted)
	sc.Step(`^the workflow should complete$`, s.workflowShouldComplete)
	sc.Step(`^the workflow should complete with output:$`, s.workflowShouldCompleteWithOutput)
	sc.Step(`^the workflow should fault$`, s.workflowShouldFault)
	sc.Step(`^the workflow should fault with error:$`, s.workflowShouldFaultWithError)
	sc.Step(`^the workflow should cancel$`, s.workflowShouldCancel)
	sc.Step(`^the workflow output should have properties (.+)$`, s.outputShouldHaveProperties)
	sc.Step(`^the workflow output should have a '([^']+)' property with value:$`, s.outputPropertyWithValue)
	sc.Step(`^the workflow output should have a '([^']+)' property containing (\d+) items?$`, s.outputPropertyWithItems)
	sc.Step(`^(\S+) should run first$`, s.taskRanFirst)
	sc.Step(`^(\S+) should run last$`, s.taskRanLast)
	sc.Step(`^(\S+) should run before (\S+)$`, s.taskRanBefore)
	sc.Step(`^(\S+) should run after (\S+)$`, func(later, earlier string) error { return s.taskRanBefore(earlier, later) })
	sc.Step(`^(\S+) should cancel$`, s.taskShouldCancel)
	sc.Step(`^(\S+) should complete$`, s.taskShouldComplete)
	sc.Step(`^(\S+) should complete with output:$`, s.taskShouldCompleteWithOutput)
	sc.Step(`^(\S+) should fault$`, s.taskShouldFault)
	sc.Step(`^(\S+) should fault with error:$`, s.taskShouldFaultWithError)
}

func (s *scenario) close() {
	if s.engine != nil {
		s.engine.Close()
	}
	if s.store != nil {
		s.store.Close()
	}
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

// yamlData parses a step's YAML document into plain JSON data, the form
// workflow data takes in Baton.
func yamlData(src string) (any, error) {
	var v any
	if err := yaml.Unmarshal([]byte(src), &v); err != nil {
		return nil, fmt.Errorf("the step's YAML does not parse: %w", err)
	}
	return jsonData(v)
}

func jsonData(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return out, nil
}

func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func (s *scenario) workflowWithDefinition(doc *godog.DocString) error {
	s.definition = []byte(doc.Content)
	return nil
}

func (s *scenario) workflowInputIs(doc *godog.DocString) error {
	v, err := yamlData(doc.Content)
	if err != nil {
		return err
	}
	s.input = v
	return nil
}

func (s *scenario) workflowIsExecuted(ctx context.Context) error {
	if s.definition == nil {
		return errors.New("no workflow definition was given")
	}
	dir, err := os.MkdirTemp("", "baton-ctk-")
	if err != nil {
		return err
	}
	s.dir = dir
	st, err := sqlite.Open(ctx, filepath.Join(dir, "baton.db"))
	if err != nil {
		return err
	}
	s.store = st
	s.tasks = &taskLog{}
	e, err := engine.New(engine.Options{
		Store:      st,
		HTTPClient: s.network.client(),
		Logger:     slog.New(slog.DiscardHandler),
		Observer:   s.tasks,
	})
	if err != nil {
		return err
	}
	s.engine = e
	if err := e.Start(ctx); err != nil {
		return err
	}
	runCtx, cancel := context.WithTimeout(ctx, scenarioTimeout)
	defer cancel()
	wf, err := e.ApplyWorkflow(runCtx, "scenario.yaml", s.definition)
	if err != nil {
		return fmt.Errorf("the workflow is rejected: %w", err)
	}
	inv, err := e.Invoke(runCtx, wf.Namespace, wf.Name, wf.Version, s.input)
	if err != nil {
		return fmt.Errorf("the workflow cannot start: %w", err)
	}
	s.tasks.only(inv.ID)
	done, err := e.Wait(runCtx, inv.ID)
	if err != nil {
		return fmt.Errorf("the workflow did not end within %v: %w", scenarioTimeout, err)
	}
	s.result = done
	if s.history, err = e.History(runCtx, inv.ID); err != nil {
		return fmt.Errorf("reading the history: %w", err)
	}
	return nil
}

func (s *scenario) ended() error {
	if s.result == nil {
		return errors.New("the workflow has not been executed")
	}
	return nil
}

func (s *scenario) workflowShouldComplete() error {
	if err := s.ended(); err != nil {
		return err
	}
	if s.result.Status != core.StatusCompleted {
		return fmt.Errorf("the workflow %s (error: %v), want completed", s.result.Status, s.result.Error)
	}
	return nil
}

func (s *scenario) workflowShouldCompleteWithOutput(doc *godog.DocString) error {
	if err := s.workflowShouldComplete(); err != nil {
		return err
	}
	want, err := yamlData(doc.Content)
	if err != nil {
		return err
	}
	if !reflect.DeepEqual(s.result.Output, want) {
		return fmt.Errorf("the workflow output is %s, want %s", show(s.result.Output), show(want))
	}
	return nil
}

func (s *scenario) workflowShouldFault() error {
	if err := s.ended(); err != nil {
		return err
	}
	if s.result.Status != core.StatusFaulted {
		return fmt.Errorf("the workflow %s (output %s), want faulted", s.result.Status, show(s.result.Output))
	}
	return nil
}

func (s *scenario) workflowShouldFaultWithError(doc *godog.DocString) error {
	if err := s.workflowShouldFault(); err != nil {
		return err
	}
	return matchError("the workflow", s.result.Error, doc.Content)
}

func (s *scenario) workflowShouldCancel() error {
	if err := s.ended(); err != nil {
		return err
	}
	if s.result.Status != core.StatusCancelled {
		return fmt.Errorf("the workflow %s, want cancelled", s.result.Status)
	}
	return nil
}

// matchError checks that an error has every property the expected YAML
// document gives; properties it leaves out (a detail, say) may be
// anything. Types compare as the DSL's standard types do, whatever prefix
// spells them.
func matchError(who string, got *problem.Problem, expected string) error {
	if got == nil {
		return fmt.Errorf("%s has no error", who)
	}
	wantData, err := yamlData(expected)
	if err != nil {
		return err
	}
	want, ok := wantData.(map[string]any)
	if !ok {
		return fmt.Errorf("the expected error is %s, not an object", show(wantData))
	}
	actual := map[string]any{
		"type": got.Type, "status": float64(got.Status), "title": got.Title,
		"detail": got.Detail, "instance": got.Instance,
	}
	for key, value := range want {
		have, known := actual[key]
		if !known {
			return fmt.Errorf("%s: the expected error has an unknown property %q", who, key)
		}
		if key == "type" {
			if typ, ok := value.(string); ok && problem.SameType(typ, got.Type) {
				continue
			}
		}
		if !reflect.DeepEqual(have, value) {
			return fmt.Errorf("%s faulted with %s %s, want %s (error: %v)", who, key, show(have), show(value), got)
		}
	}
	return nil
}

// quotedList reads the README's `'a', 'b', 'c'` property lists.
var quotedItem = regexp.MustCompile(`'([^']*)'`)

func (s *scenario) outputShouldHaveProperties(list string) error {
	if err := s.workflowShouldComplete(); err != nil {
		return err
	}
	paths := quotedItem.FindAllStringSubmatch(list, -1)
	if len(paths) == 0 {
		return fmt.Errorf("no quoted property names in %q", list)
	}
	for _, p := range paths {
		if _, err := property(s.result.Output, p[1]); err != nil {
			return err
		}
	}
	return nil
}

func (s *scenario) outputPropertyWithValue(path string, doc *godog.DocString) error {
	if err := s.workflowShouldComplete(); err != nil {
		return err
	}
	got, err := property(s.result.Output, path)
	if err != nil {
		return err
	}
	want, err := yamlData(doc.Content)
	if err != nil {
		return err
	}
	if !reflect.DeepEqual(got, want) {
		return fmt.Errorf("output property %s is %s, want %s", path, show(got), show(want))
	}
	return nil
}

func (s *scenario) outputPropertyWithItems(path string, count int) error {
	if err := s.workflowShouldComplete(); err != nil {
		return err
	}
	got, err := property(s.result.Output, path)
	if err != nil {
		return err
	}
	items, ok := got.([]any)
	if !ok {
		return fmt.Errorf("output property %s is %s, not a list", path, show(got))
	}
	if len(items) != count {
		return fmt.Errorf("output property %s has %d items (%s), want %d", path, len(items), show(items), count)
	}
	return nil
}

// property follows a dotted path (`request.headers`, `items.0.id`)
// through data.
func property(data any, path string) (any, error) {
	cur := data
	for _, seg := range strings.Split(path, ".") {
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[seg]
			if !ok {
				return nil, fmt.Errorf("the output has no property %s (at %q in %s)", path, seg, show(c))
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(c) {
				return nil, fmt.Errorf("the output has no property %s (%q is not an index of a list of %d)", path, seg, len(c))
			}
			cur = c[i]
		default:
			return nil, fmt.Errorf("the output has no property %s (%q applied to %s)", path, seg, show(cur))
		}
	}
	return cur, nil
}

// taskLog records the task transitions of one invocation in the order the
// engine's observer reports them.
type taskLog struct {
	mu         sync.Mutex
	invocation string
	entries    []taskEntry
}

type taskEntry struct {
	start bool
	key   string
	ref   string
	name  string
	err   *problem.Problem
}

func (l *taskLog) only(invocation string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.invocation = invocation
	kept := l.entries[:0]
	for _, e := range l.entries {
		if e.key != "" {
			kept = append(kept, e)
		}
	}
	l.entries = kept
}

func (l *taskLog) TaskStarted(invocation, key, ref, name string, _ time.Time) {
	l.add(invocation, taskEntry{start: true, key: key, ref: ref, name: name})
}

func (l *taskLog) TaskEnded(invocation, key, ref, name string, _ time.Time, err *problem.Problem) {
	l.add(invocation, taskEntry{key: key, ref: ref, name: name, err: err})
}

func (l *taskLog) add(invocation string, e taskEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.invocation != "" && invocation != l.invocation {
		return
	}
	l.entries = append(l.entries, e)
}

func (l *taskLog) snapshot() []taskEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]taskEntry(nil), l.entries...)
}

// span is where a task's transitions stand in the log: the position of
// its first start and of its last end (-1 when it never ended).
type span struct {
	ref        string
	firstStart int
	firstEnd   int
	lastEnd    int
	lastErr    *problem.Problem
	ended      bool
}

func (s *scenario) spans() (map[string]*span, []taskEntry, error) {
	if err := s.ended(); err != nil {
		return nil, nil, err
	}
	entries := s.tasks.snapshot()
	spans := map[string]*span{}
	for i, e := range entries {
		sp := spans[e.name]
		if sp == nil {
			sp = &span{ref: e.ref, firstStart: -1, firstEnd: -1, lastEnd: -1}
			spans[e.name] = sp
		}
		if e.start {
			if sp.firstStart < 0 {
				sp.firstStart = i
			}
			continue
		}
		if sp.firstEnd < 0 {
			sp.firstEnd = i
		}
		sp.lastEnd, sp.lastErr, sp.ended = i, e.err, true
	}
	return spans, entries, nil
}

func (s *scenario) taskSpan(name string) (*span, []taskEntry, error) {
	spans, entries, err := s.spans()
	if err != nil {
		return nil, nil, err
	}
	sp := spans[name]
	if sp == nil || sp.firstStart < 0 {
		return nil, nil, fmt.Errorf("task %s never ran (tasks that ran: %s)", name, ranNames(entries))
	}
	return sp, entries, nil
}

func ranNames(entries []taskEntry) string {
	var names []string
	seen := map[string]bool{}
	for _, e := range entries {
		if e.start && !seen[e.name] {
			seen[e.name] = true
			names = append(names, e.name)
		}
	}
	return strings.Join(names, ", ")
}

// encloses reports whether the task at ref contains the task at other
// (they are the same task or one is inside the other's definition).
func encloses(ref, other string) bool {
	return ref == other || strings.HasPrefix(other, ref+"/")
}

func related(a, b string) bool { return encloses(a, b) || encloses(b, a) }

func (s *scenario) taskRanFirst(name string) error {
	sp, entries, err := s.taskSpan(name)
	if err != nil {
		return err
	}
	for i := 0; i < sp.firstStart; i++ {
		if e := entries[i]; e.start && !related(e.ref, sp.ref) {
			return fmt.Errorf("task %s ran before %s", e.name, name)
		}
	}
	return nil
}

func (s *scenario) taskRanLast(name string) error {
	sp, entries, err := s.taskSpan(name)
	if err != nil {
		return err
	}
	if !sp.ended {
		return fmt.Errorf("task %s never ended", name)
	}
	for i := sp.lastEnd + 1; i < len(entries); i++ {
		if e := entries[i]; !related(e.ref, sp.ref) {
			return fmt.Errorf("task %s ran after %s", e.name, name)
		}
	}
	return nil
}

func (s *scenario) taskRanBefore(earlier, later string) error {
	a, _, err := s.taskSpan(earlier)
	if err != nil {
		return err
	}
	b, _, err := s.taskSpan(later)
	if err != nil {
		return err
	}
	if !a.ended || a.firstEnd > b.firstStart {
		return fmt.Errorf("task %s did not end before %s started", earlier, later)
	}
	return nil
}

func (s *scenario) taskShouldCancel(name string) error {
	sp, _, err := s.taskSpan(name)
	if err != nil {
		return err
	}
	if sp.ended {
		if sp.lastErr != nil {
			return fmt.Errorf("task %s faulted (%v), want cancelled", name, sp.lastErr)
		}
		return fmt.Errorf("task %s completed, want cancelled", name)
	}
	return nil
}

func (s *scenario) taskShouldComplete(name string) error {
	sp, _, err := s.taskSpan(name)
	if err != nil {
		return err
	}
	switch {
	case !sp.ended:
		return fmt.Errorf("task %s never ended (cancelled)", name)
	case sp.lastErr != nil:
		return fmt.Errorf("task %s faulted: %v", name, sp.lastErr)
	}
	return nil
}

// taskShouldCompleteWithOutput compares the output the history recorded
// for the task: Baton records the result of every task that calls out
// (call, run, emit), which is the task's output before its output.as.
func (s *scenario) taskShouldCompleteWithOutput(name string, doc *godog.DocString) error {
	if err := s.taskShouldComplete(name); err != nil {
		return err
	}
	sp, _, _ := s.taskSpan(name)
	want, err := yamlData(doc.Content)
	if err != nil {
		return err
	}
	var got any
	found := false
	for _, ev := range s.history {
		if ev.Type == core.TaskCompleted && ev.Ref == sp.ref {
			got, found = ev.Output, true
		}
	}
	if !found {
		return fmt.Errorf("task %s completed but its history records no output: only tasks that call out have one", name)
	}
	if !reflect.DeepEqual(got, want) {
		return fmt.Errorf("task %s output %s, want %s", name, show(got), show(want))
	}
	return nil
}

func (s *scenario) taskShouldFault(name string) error {
	sp, _, err := s.taskSpan(name)
	if err != nil {
		return err
	}
	if !sp.ended || sp.lastErr == nil {
		return fmt.Errorf("task %s did not fault", name)
	}
	return nil
}

func (s *scenario) taskShouldFaultWithError(name string, doc *godog.DocString) error {
	if err := s.taskShouldFault(name); err != nil {
		return err
	}
	sp, _, _ := s.taskSpan(name)
	return matchError("task "+name, sp.lastErr, doc.Content)
}
