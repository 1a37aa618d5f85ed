package console

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/dsl"
	"github.com/batonflow/baton/lang"
	"github.com/batonflow/baton/problem"
	"github.com/batonflow/baton/store"
)

// activation is one run of a task (a loop iteration, a retry) as the
// lifecycle events tell it.
type activation struct {
	Key, Ref, Name string
	State          string
	Start, End     time.Time
	Error          *problem.Problem
}

// callAttempt is one call a task made, as the history tells it.
type callAttempt struct {
	Key       string
	Ref       string
	Attempt   int
	Start     time.Time
	End       time.Time
	Input     any
	Output    any
	Error     *problem.Problem
	Info      map[string]any
	Ended     bool
	QueueWait time.Duration
	ColdStart time.Duration
	Cold      bool
}

// runFacts is what a run's history and lifecycle events say, task by task.
type runFacts struct {
	activations []*activation
	byKey       map[string]*activation
	calls       []*callAttempt
	// states is each task's state by its pointer, "" holding the state
	// of tasks the run has not reached.
	states map[string]string
}

// stateRank orders the states of a task's activations: a task shows the
// most telling one (a loop with one faulted iteration is faulted).
var stateRank = map[string]int{stateSkipped: 0, statePending: 1, stateCompleted: 2, stateCancelled: 3, stateRunning: 4, stateFaulted: 5}

func gatherFacts(inv *store.Invocation, history []core.Event, lifecycle []map[string]any) *runFacts {
	f := &runFacts{byKey: map[string]*activation{}, states: map[string]string{}}
	for _, ev := range lifecycle {
		typ, _ := ev["type"].(string)
		data, _ := ev["data"].(map[string]any)
		ref, _ := data["task"].(string)
		if ref == "" || !strings.Contains(typ, ".task.") {
			continue
		}
		key, _ := ev["subject"].(string)
		if key == "" {
			key = ref
		}
		at := eventTime(ev["time"])
		a := f.byKey[key]
		if a == nil || strings.HasSuffix(typ, "task.started.v1") && !a.End.IsZero() {
			a = &activation{Key: key, Ref: ref, Name: lastToken(ref), State: stateRunning, Start: at}
			f.byKey[key] = a
			f.activations = append(f.activations, a)
		}
		switch {
		case strings.HasSuffix(typ, "task.completed.v1"):
			a.State, a.End = stateCompleted, at
		case strings.HasSuffix(typ, "task.faulted.v1"):
			a.State, a.End = stateFaulted, at
			a.Error = problemFrom(data["error"])
		case strings.HasSuffix(typ, "task.cancelled.v1"):
			a.State, a.End = stateCancelled, at
		}
	}
	open := map[string]*callAttempt{}
	for i := range history {
		ev := &history[i]
		switch ev.Type {
		case core.TaskStarted:
			c := &callAttempt{Key: ev.Task, Ref: ev.Ref, Attempt: ev.Attempt, Start: ev.Time, Input: ev.Input}
			open[ev.Task] = c
			f.calls = append(f.calls, c)
		case core.TaskCompleted, core.TaskFailed:
			c := open[ev.Task]
			if c == nil {
				// A call recorded without its start (an old history).
				c = &callAttempt{Key: ev.Task, Ref: ev.Ref, Attempt: ev.Attempt, Start: ev.Time}
				f.calls = append(f.calls, c)
			}
			delete(open, ev.Task)
			c.End, c.Ended, c.Output, c.Error, c.Info = ev.Time, true, ev.Output, ev.Error, ev.Info
			if ms, ok := ev.Info["startWaitMs"].(float64); ok {
				c.QueueWait = time.Duration(ms * float64(time.Millisecond))
			}
			if ms, ok := ev.Info["coldStartMs"].(float64); ok {
				c.ColdStart = time.Duration(ms * float64(time.Millisecond))
			}
			c.Cold, _ = ev.Info["cold"].(bool)
		}
	}
	for _, a := range f.activations {
		if cur, ok := f.states[a.Ref]; !ok || stateRank[a.State] > stateRank[cur] {
			f.states[a.Ref] = a.State
		}
	}
	// A task with a running call is running even when no lifecycle event
	// says so yet.
	for _, c := range f.calls {
		if !c.Ended && c.Ref != "" {
			f.states[c.Ref] = stateRunning
		}
	}
	switch inv.Status {
	case core.StatusRunning:
		f.states[""] = statePending
	default:
		f.states[""] = stateSkipped
		// Whatever was still running when the run ended was cut short.
		for ref, st := range f.states {
			if st == stateRunning && ref != "" {
				f.states[ref] = stateCancelled
			}
		}
	}
	return f
}

func lastToken(ptr string) string {
	if i := strings.LastIndexByte(ptr, '/'); i >= 0 {
		return strings.ReplaceAll(strings.ReplaceAll(ptr[i+1:], "~1", "/"), "~0", "~")
	}
	return ptr
}

func eventTime(v any) time.Time {
	switch t := v.(type) {
	case time.Time:
		return t
	case string:
		parsed, _ := time.Parse(time.RFC3339Nano, t)
		return parsed
	}
	return time.Time{}
}

func problemFrom(v any) *problem.Problem {
	switch p := v.(type) {
	case *problem.Problem:
		return p
	case nil:
		return nil
	default:
		raw, err := json.Marshal(p)
		if err != nil {
			return nil
		}
		var out problem.Problem
		if json.Unmarshal(raw, &out) != nil {
			return nil
		}
		return &out
	}
}

// failingTask is the pointer of the task the run's error names: its
// instance, or the closest task above it in the definition.
func failingTask(inv *store.Invocation, refs map[string]bool) string {
	if inv.Error == nil || inv.Error.Instance == "" {
		return ""
	}
	for ptr := inv.Error.Instance; ptr != ""; {
		if refs[ptr] {
			return ptr
		}
		i := strings.LastIndexByte(ptr, '/')
		if i <= 0 {
			break
		}
		ptr = ptr[:i]
	}
	return ""
}

func collectRefs(b *box, into map[string]bool) {
	if b.ref != "" {
		into[b.ref] = true
	}
	for _, c := range b.children {
		collectRefs(c, into)
	}
}

// definitions caches parsed definitions and their layouts: both depend
// only on the stored version, which never changes once applied.
type definitions struct {
	mu      sync.Mutex
	entries map[string]*parsedDefinition
}

type parsedDefinition struct {
	def    *dsl.Workflow
	layout *box
	refs   map[string]bool
}

const definitionCacheSize = 256

func (c *Console) definition(ctx context.Context, ns, name, version string) (*parsedDefinition, error) {
	key := ns + "/" + name + "@" + version
	c.defs.mu.Lock()
	pd := c.defs.entries[key]
	c.defs.mu.Unlock()
	if pd != nil {
		return pd, nil
	}
	wf, err := c.engine.GetWorkflow(ctx, ns, name, version)
	if err != nil {
		return nil, err
	}
	def, err := lang.ParseStored(wf)
	if err != nil {
		return nil, err
	}
	pd = &parsedDefinition{def: def, layout: layoutWorkflow(def), refs: map[string]bool{}}
	collectRefs(pd.layout, pd.refs)
	c.defs.mu.Lock()
	if c.defs.entries == nil || len(c.defs.entries) >= definitionCacheSize {
		c.defs.entries = map[string]*parsedDefinition{}
	}
	c.defs.entries[key] = pd
	c.defs.mu.Unlock()
	return pd, nil
}

// lifecycles caches the lifecycle events of runs by their history's
// length: rebuilding them replays the whole history through a machine,
// and a page of a long run is asked for again and again (live updates,
// task panels) while most of it no longer changes.
type lifecycles struct {
	mu      sync.Mutex
	entries map[string]lifecycleEntry
}

type lifecycleEntry struct {
	events  int
	last    int64
	records []map[string]any
}

const lifecycleCacheSize = 64

func (c *Console) lifecycleOf(ctx context.Context, id string, history []core.Event) []map[string]any {
	var last int64
	if n := len(history); n > 0 {
		last = history[n-1].Seq
	}
	c.lifecycles.mu.Lock()
	e, ok := c.lifecycles.entries[id]
	c.lifecycles.mu.Unlock()
	if ok && e.events == len(history) && e.last == last {
		return e.records
	}
	records, err := c.engine.LifecycleEvents(ctx, id)
	if err != nil {
		// A run whose definition is gone still shows its history.
		c.logger.Warn("console: no lifecycle events", "invocation", id, "error", err)
		return nil
	}
	c.lifecycles.mu.Lock()
	if c.lifecycles.entries == nil || len(c.lifecycles.entries) >= lifecycleCacheSize {
		c.lifecycles.entries = map[string]lifecycleEntry{}
	}
	// The records were rebuilt from a history read after this one; they
	// are filed under the older length, so a newer read rebuilds again.
	c.lifecycles.entries[id] = lifecycleEntry{events: len(history), last: last, records: records}
	c.lifecycles.mu.Unlock()
	return records
}

type historyRow struct {
	Seq     int64
	Type    string
	At      string
	Task    string
	Attempt int
	Summary string
	JSON    string
}

type compactRow struct {
	Key, Ref, Name, State string
	At, Duration          string
}

type runView struct {
	Inv        *store.Invocation
	Status     string
	Duration   string
	Started    string
	Ended      string
	Input      string
	Output     string
	Error      *problem.Problem
	ErrorTask  string
	Graph      template.HTML
	GraphError string
	Timeline   template.HTML
	Compact    []compactRow
	Running    bool
	CanOperate bool
	CanRetry   bool
	// RerunURL starts the run again: the API's rerun (which records
	// what the new run reruns) when the server offers redrive, else a
	// plain start of the same version.
	RerunURL string
	Live     string
	Counts   map[string]int
}

func (c *Console) runPage(w http.ResponseWriter, r *http.Request) {
	v, err := c.runView(r.Context(), r, r.PathValue("id"))
	if err != nil {
		c.fail(w, r, err, "run "+r.PathValue("id"))
		return
	}
	if v == nil {
		c.errorPage(w, r, http.StatusNotFound, "run "+r.PathValue("id")+" not found.")
		return
	}
	c.render(w, r, http.StatusOK, "run", "Run "+v.Inv.ID, "runs", v)
}

// invocation returns the run id names when the caller may see it, nil
// (and no error) when not: whoever may not look into a namespace learns
// nothing of what it holds.
func (c *Console) invocation(ctx context.Context, r *http.Request, id string) (*store.Invocation, error) {
	inv, err := c.engine.GetInvocation(ctx, id)
	if err != nil {
		return nil, err
	}
	if !canSee(r, inv.Namespace) {
		return nil, nil
	}
	return inv, nil
}

// maxShownHistory caps the full history's rows in the page; the export
// holds all of them.
const maxShownHistory = 5000

// maxInlineJSON is the largest payload the page shows inline.
const maxInlineJSON = 4 << 10

func (c *Console) runView(ctx context.Context, r *http.Request, id string) (*runView, error) {
	inv, err := c.invocation(ctx, r, id)
	if err != nil || inv == nil {
		return nil, err
	}
	history, err := c.engine.History(ctx, id)
	if err != nil {
		return nil, err
	}
	lifecycle := c.lifecycleOf(ctx, id, history)
	now := time.Now()
	facts := gatherFacts(inv, history, lifecycle)
	v := &runView{
		Inv: inv, Status: string(inv.Status), Duration: runDuration(inv, now), Started: formatTime(inv.StartedAt),
		Input: prettyJSON(inv.Input), Error: inv.Error, Running: inv.Status == core.StatusRunning,
		CanOperate: canOperate(r, inv.Namespace), Live: "/live/runs/" + url.PathEscape(inv.ID), Counts: map[string]int{},
	}
	if n := len(history); n > 0 {
		v.Live += "?after=" + strconv.FormatInt(history[n-1].Seq, 10)
	}
	v.RerunURL = "/v1/workflows/" + url.PathEscape(inv.Namespace) + "/" + url.PathEscape(inv.Workflow) + "/invocations?version=" + url.QueryEscape(inv.Version)
	if c.redrive {
		v.RerunURL = "/v1/invocations/" + url.PathEscape(inv.ID) + "/rerun"
	}
	v.CanRetry = c.redrive && v.CanOperate && (inv.Status == core.StatusFaulted || inv.Status == core.StatusCancelled)
	if !inv.EndedAt.IsZero() {
		v.Ended = formatTime(inv.EndedAt)
	}
	if inv.Status == core.StatusCompleted {
		v.Output = prettyJSON(inv.Output)
	}
	if pd, err := c.definition(ctx, inv.Namespace, inv.Workflow, inv.Version); err == nil {
		v.ErrorTask = failingTask(inv, pd.refs)
		v.Graph = renderGraph(pd.layout, facts.states, v.ErrorTask)
		for ref := range pd.refs {
			st, ok := facts.states[ref]
			if !ok {
				st = facts.states[""]
			}
			v.Counts[st]++
		}
	} else {
		v.GraphError = err.Error()
	}
	end := inv.EndedAt
	if end.IsZero() {
		end = now
	}
	v.Timeline = renderTimeline(inv.StartedAt, end, facts)
	for _, a := range facts.activations {
		row := compactRow{Key: a.Key, Ref: a.Ref, Name: a.Name, State: a.State, At: "+" + formatDuration(a.Start.Sub(inv.StartedAt))}
		if !a.End.IsZero() {
			row.Duration = formatDuration(a.End.Sub(a.Start))
		}
		v.Compact = append(v.Compact, row)
	}
	return v, nil
}

// historyRows is the full history as the page's table shows it.
func historyRows(inv *store.Invocation, history []core.Event) []historyRow {
	var rows []historyRow
	for i := range history {
		if i >= maxShownHistory {
			break
		}
		ev := &history[i]
		row := historyRow{Seq: ev.Seq, Type: string(ev.Type), At: "+" + formatDuration(ev.Time.Sub(inv.StartedAt)), Task: ev.Task, Attempt: ev.Attempt}
		switch {
		case ev.Error != nil:
			row.Summary = ev.Error.Title + ": " + ev.Error.Detail
		case ev.Timer != "":
			row.Summary = "timer " + ev.Timer
		case ev.Info["reason"] != nil:
			// Who cancelled or retried the run said why.
			row.Summary = fmt.Sprint("reason: ", ev.Info["reason"])
		}
		if raw, err := json.MarshalIndent(ev, "", "  "); err == nil {
			if len(raw) <= maxInlineJSON {
				row.JSON = string(raw)
			} else {
				row.JSON = fmt.Sprintf("(%d bytes: see the JSON export)", len(raw))
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// runRecord reads a run the request may see and its history; when it
// cannot, it answers the request (not found, or the failure) and reports
// false.
func (c *Console) runRecord(w http.ResponseWriter, r *http.Request, id string) (*store.Invocation, []core.Event, bool) {
	ctx := r.Context()
	inv, err := c.invocation(ctx, r, id)
	if err == nil && inv == nil {
		err = store.ErrNotFound
	}
	if err != nil {
		c.fail(w, r, err, "run "+id)
		return nil, nil, false
	}
	history, err := c.engine.History(ctx, id)
	if err != nil {
		c.fail(w, r, err, "run "+id)
		return nil, nil, false
	}
	return inv, history, true
}

// historyPanel is the full history of a run, which the page fetches when
// its Full tab is opened: a long run's page stays light.
func (c *Console) historyPanel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	inv, history, ok := c.runRecord(w, r, id)
	if !ok {
		return
	}
	c.renderFragment(w, r, "history", struct {
		ID      string
		Rows    []historyRow
		Total   int
		Clipped bool
	}{inv.ID, historyRows(inv, history), len(history), len(history) > maxShownHistory})
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05.000 UTC")
}

// prettyJSON writes data indented for reading.
func prettyJSON(v any) string {
	if v == nil {
		return "null"
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprintf("%v", v)
	}
	return strings.TrimRight(buf.String(), "\n")
}

// taskView is the panel of one task: its activations and its calls.
type taskView struct {
	Ref         string
	Name        string
	State       string
	Activations []activationRow
	Calls       []callRow
}

type activationRow struct {
	Key, State, Start, Duration string
	Error                       *problem.Problem
}

type callRow struct {
	Key                     string
	Attempt                 int
	Start, Duration         string
	QueueWait, ColdStart    string
	Input, Output, Info     string
	Error                   *problem.Problem
	Running                 bool
	InputLarge, OutputLarge bool
	InputBytes, OutputBytes int
}

// taskPanel renders what a click on a task of the graph shows.
func (c *Console) taskPanel(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id, ref := r.PathValue("id"), r.URL.Query().Get("ref")
	inv, history, ok := c.runRecord(w, r, id)
	if !ok {
		return
	}
	facts := gatherFacts(inv, history, c.lifecycleOf(ctx, id, history))
	v := taskView{Ref: ref, Name: lastToken(ref), State: facts.states[ref]}
	if v.State == "" {
		v.State = facts.states[""]
	}
	for _, a := range facts.activations {
		if a.Ref != ref {
			continue
		}
		row := activationRow{Key: a.Key, State: a.State, Start: "+" + formatDuration(a.Start.Sub(inv.StartedAt)), Error: a.Error}
		if !a.End.IsZero() {
			row.Duration = formatDuration(a.End.Sub(a.Start))
		}
		v.Activations = append(v.Activations, row)
	}
	for _, call := range facts.calls {
		if call.Ref != ref {
			continue
		}
		row := callRow{Key: call.Key, Attempt: call.Attempt, Start: "+" + formatDuration(call.Start.Sub(inv.StartedAt)),
			Error: call.Error, Running: !call.Ended}
		if call.Ended {
			row.Duration = formatDuration(call.End.Sub(call.Start))
		}
		if call.QueueWait > 0 {
			row.QueueWait = formatDuration(call.QueueWait)
		}
		if call.Cold {
			row.ColdStart = formatDuration(call.ColdStart)
		}
		row.Input, row.Output = prettyJSON(call.Input), prettyJSON(call.Output)
		if len(call.Info) > 0 {
			row.Info = prettyJSON(call.Info)
		}
		v.Calls = append(v.Calls, row)
	}
	c.renderFragment(w, r, "task", v)
}

// renderFragment writes a template of a page without the layout.
func (c *Console) renderFragment(w http.ResponseWriter, r *http.Request, page string, data any) {
	var buf strings.Builder
	if err := c.pages[page].ExecuteTemplate(&buf, page, data); err != nil {
		c.logger.Error("rendering a console fragment failed", "fragment", page, "error", err)
		http.Error(w, "the fragment could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(buf.String()))
}

// historyExport is the run's whole record as one JSON document: the
// invocation, its history and its lifecycle events.
func (c *Console) historyExport(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := r.PathValue("id")
	inv, history, ok := c.runRecord(w, r, id)
	if !ok {
		return
	}
	lifecycle, _ := c.engine.LifecycleEvents(ctx, id)
	if history == nil {
		history = []core.Event{}
	}
	doc := map[string]any{
		"invocation": map[string]any{
			"id": inv.ID, "namespace": inv.Namespace, "workflow": inv.Workflow, "version": inv.Version,
			"status": inv.Status, "input": inv.Input, "output": inv.Output, "error": inv.Error,
			"startedAt": inv.StartedAt, "endedAt": inv.EndedAt,
		},
		"history":         history,
		"lifecycleEvents": lifecycle,
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Disposition", `attachment; filename="`+sanitizeFilename(id)+`-history.json"`)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(doc)
}

func sanitizeFilename(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
