package console

import (
	"context"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/batonflow/baton/events"
	"github.com/batonflow/baton/function"
	"github.com/batonflow/baton/store"
)

type workflowRow struct {
	Namespace, Name, Latest, Format string
	Versions                        []string
	Updated                         time.Time
}

func (c *Console) workflowsPage(w http.ResponseWriter, r *http.Request) {
	all, err := c.engine.ListWorkflows(r.Context())
	if err != nil {
		c.fail(w, r, err, "workflows")
		return
	}
	rows := map[string]*workflowRow{}
	var order []string
	for _, wf := range all {
		if !canSee(r, wf.Namespace) {
			continue
		}
		key := wf.Namespace + "/" + wf.Name
		row := rows[key]
		if row == nil {
			row = &workflowRow{Namespace: wf.Namespace, Name: wf.Name}
			rows[key] = row
			order = append(order, key)
		}
		row.Versions = append(row.Versions, wf.Version)
		if !wf.CreatedAt.Before(row.Updated) {
			row.Updated, row.Latest, row.Format = wf.CreatedAt, wf.Version, wf.Format
		}
	}
	sort.Strings(order)
	list := make([]*workflowRow, 0, len(order))
	for _, k := range order {
		list = append(list, rows[k])
	}
	c.render(w, r, http.StatusOK, "workflows", "Workflows", "workflows", list)
}

type workflowView struct {
	Namespace, Name, Version, Format string
	Versions                         []string
	Source                           string
	Graph                            template.HTML
	Schema                           string
	CanStart                         bool
	Recent                           []runRow
	RunsLink                         string
}

// workflowPage shows a workflow version: its source, its graph before any
// run, its input schema and a form to start it.
func (c *Console) workflowPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	if !canSee(r, ns) {
		c.errorPage(w, r, http.StatusNotFound, "workflow "+ns+"/"+name+" not found.")
		return
	}
	all, err := c.engine.ListWorkflows(ctx)
	if err != nil {
		c.fail(w, r, err, "workflows")
		return
	}
	v := workflowView{Namespace: ns, Name: name, Version: r.URL.Query().Get("version"), CanStart: canOperate(r, ns)}
	var newest *store.Workflow
	for _, wf := range all {
		if wf.Namespace == ns && wf.Name == name {
			v.Versions = append(v.Versions, wf.Version)
			if newest == nil || !wf.CreatedAt.Before(newest.CreatedAt) {
				newest = wf
			}
		}
	}
	if newest == nil {
		c.errorPage(w, r, http.StatusNotFound, "workflow "+ns+"/"+name+" not found.")
		return
	}
	if v.Version == "" {
		v.Version = newest.Version
	}
	wf, err := c.engine.GetWorkflow(ctx, ns, name, v.Version)
	if err != nil {
		c.fail(w, r, err, "workflow "+ns+"/"+name+"@"+v.Version)
		return
	}
	v.Source, v.Format = string(wf.Source), wf.Format
	if pd, err := c.definition(ctx, ns, name, v.Version); err == nil {
		v.Graph = renderGraph(pd.layout, map[string]string{"": statePending}, "")
		if in := pd.def.Input; in != nil && in.Schema != nil {
			v.Schema = prettyJSON(in.Schema.Raw)
		}
	}
	f := runFilter{Namespace: ns, Workflow: name, Version: v.Version}
	v.RunsLink = f.With("", "")
	if invs, _, err := c.engine.ListInvocations(ctx, store.InvocationFilter{Namespace: ns, Workflow: name, Version: v.Version, Limit: 10}); err == nil {
		now := time.Now()
		for _, inv := range invs {
			v.Recent = append(v.Recent, runRow{ID: inv.ID, Status: string(inv.Status), Started: inv.StartedAt, Duration: runDuration(inv, now)})
		}
	}
	c.render(w, r, http.StatusOK, "workflow", ns+"/"+name, "workflows", v)
}

type functionRow struct {
	Namespace, Name, Runtime, Latest string
	Versions                         []string
	Busy, Idle                       int
	Instances                        []function.InstanceInfo
	ColdStarts                       int
	LastCold                         string
	ExpectedCold                     string
	Next                             string
	NextProb                         string
	Prepared                         bool
}

// functionsPage shows each function: its versions, warm instances, cold
// starts and what the prewarm planner expects next.
func (c *Console) functionsPage(w http.ResponseWriter, r *http.Request) {
	var rows []*functionRow
	if c.functions != nil {
		specs, err := c.functions.List(r.Context(), "")
		if err != nil {
			c.fail(w, r, err, "functions")
			return
		}
		byRef := map[string]*functionRow{}
		now := time.Now()
		for _, s := range specs {
			ns := s.Namespace
			if ns == "" {
				ns = function.DefaultNamespace
			}
			if !canSee(r, ns) {
				continue
			}
			ref := function.Qualify(ns, s.Name)
			row := byRef[ref]
			if row == nil {
				row = &functionRow{Namespace: ns, Name: s.Name}
				byRef[ref] = row
				rows = append(rows, row)
				for _, in := range c.functions.Instances(ref) {
					row.Instances = append(row.Instances, in)
					if in.State == "busy" {
						row.Busy++
					} else {
						row.Idle++
					}
				}
				for _, ev := range c.functions.Events(ref) {
					if ev.Kind == function.EventCreated {
						row.ColdStarts++
						row.LastCold = formatDuration(ev.Phases.Total()) + " at " + formatTime(ev.Time)
					}
				}
				if c.predictor != nil {
					if next, ok := c.predictor.NextCall(ref, now); ok {
						row.Next = formatTime(next.At)
						row.NextProb = formatPercent(next.Prob)
						row.Prepared = next.Prepared
					}
					if d := c.predictor.ColdStart(ref); d > 0 {
						row.ExpectedCold = formatDuration(d)
					}
				}
			}
			row.Versions = append(row.Versions, s.Version)
			row.Latest, row.Runtime = s.Version, string(s.Runtime)
		}
		sort.Slice(rows, func(i, j int) bool {
			if rows[i].Namespace != rows[j].Namespace {
				return rows[i].Namespace < rows[j].Namespace
			}
			return rows[i].Name < rows[j].Name
		})
	}
	c.render(w, r, http.StatusOK, "functions", "Functions", "functions", struct {
		Enabled   bool
		Prewarm   bool
		Functions []*functionRow
	}{c.functions != nil, c.predictor != nil, rows})
}

func formatPercent(p float64) string { return strconv.FormatFloat(p*100, 'f', 0, 64) + "%" }

type eventRow struct {
	Seq              int64
	ID, Source, Type string
	Time             string
	Data             string
}

// eventsPage shows the newest events of the log, the triggers, and a form
// to send an event.
func (c *Console) eventsPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	v := struct {
		Events       []eventRow
		Triggers     []*store.Trigger
		CanSend      bool
		Type, Source string
	}{CanSend: canOperate(r, "default"), Type: r.URL.Query().Get("type"), Source: r.URL.Query().Get("source")}
	if v.Source == "" {
		v.Source = "/console"
	}
	if canSee(r, "default") {
		v.Events = c.recentEvents(ctx)
	}
	if tl, ok := c.engine.(triggerLister); ok {
		if all, err := tl.ListTriggers(ctx); err == nil {
			for _, t := range all {
				if canSee(r, t.Namespace) {
					v.Triggers = append(v.Triggers, t)
				}
			}
		}
	}
	c.render(w, r, http.StatusOK, "events", "Events", "events", v)
}

// eventsShown is how many of the newest events the events page lists.
const eventsShown = 50

func (c *Console) recentEvents(ctx context.Context) []eventRow {
	el, ok := c.engine.(eventLister)
	if !ok {
		return nil
	}
	// The log is read forwards; the newest page is found by reading on.
	var all []events.Logged
	var after int64
	for range 100 {
		page, err := el.ListEvents(ctx, store.EventFilter{After: after, Limit: 1000})
		if err != nil || len(page) == 0 {
			break
		}
		all = append(all, page...)
		if len(all) > eventsShown {
			all = all[len(all)-eventsShown:]
		}
		after = page[len(page)-1].Seq
		if len(page) < 1000 {
			break
		}
	}
	rows := make([]eventRow, 0, len(all))
	for i := len(all) - 1; i >= 0; i-- {
		ev := all[i]
		str := func(k string) string { s, _ := ev.Event[k].(string); return s }
		rows = append(rows, eventRow{Seq: ev.Seq, ID: str("id"), Source: str("source"), Type: str("type"),
			Time: formatTime(ev.ReceivedAt), Data: prettyJSON(ev.Event["data"])})
	}
	return rows
}

// maxInputBytes caps an input the start form asks to check.
const maxInputBytes = 4 << 20

// inputCheck is the answer of POST /workflows/{namespace}/{name}/input-check.
type inputCheck struct {
	Valid   bool   `json:"valid"`
	Problem string `json:"problem,omitempty"`
}

// checkInput checks an input against a workflow version's input schema,
// so that the start form says what is wrong before a run starts (a run
// with such an input would fault at once). The answer is 200 either way:
// a refused input is the form's business, not a failed request.
func (c *Console) checkInput(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ns, name, version := r.PathValue("namespace"), r.PathValue("name"), r.URL.Query().Get("version")
	if !canSee(r, ns) {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	answer := func(v inputCheck) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(v)
	}
	var input any
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxInputBytes))
	if err := dec.Decode(&input); err != nil {
		answer(inputCheck{Problem: "the input is not JSON: " + err.Error()})
		return
	}
	if version == "" {
		all, err := c.engine.ListWorkflows(ctx)
		if err != nil {
			c.fail(w, r, err, "workflows")
			return
		}
		var newest *store.Workflow
		for _, wf := range all {
			if wf.Namespace == ns && wf.Name == name && (newest == nil || !wf.CreatedAt.Before(newest.CreatedAt)) {
				newest = wf
			}
		}
		if newest == nil {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		version = newest.Version
	}
	pd, err := c.definition(ctx, ns, name, version)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		c.fail(w, r, err, "workflow "+ns+"/"+name)
		return
	}
	if in := pd.def.Input; in != nil && in.Schema != nil {
		if err := in.Schema.Validate(input); err != nil {
			answer(inputCheck{Problem: "the input does not match the workflow's input schema: " + err.Error()})
			return
		}
	}
	answer(inputCheck{Valid: true})
}
