package console

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/batonflow/baton/auth"
	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/store"
)

// runFilter is the runs list's filter as it appears in the URL, so that a
// link is a saved view: ?namespace=&workflow=&version=&status=&from=&to=&id=.
type runFilter struct {
	Namespace, Workflow, Version, Status, From, To, ID string
	Cursor                                             string
}

func runFilterFrom(q url.Values) runFilter {
	get := func(k string) string { return strings.TrimSpace(q.Get(k)) }
	return runFilter{
		Namespace: get("namespace"), Workflow: get("workflow"), Version: get("version"), Status: get("status"),
		From: get("from"), To: get("to"), ID: get("id"), Cursor: get("cursor"),
	}
}

// query is the filter's URL query; without the cursor when page is false.
func (f runFilter) query(page bool) url.Values {
	q := url.Values{}
	for k, v := range map[string]string{
		"namespace": f.Namespace, "workflow": f.Workflow, "version": f.Version, "status": f.Status,
		"from": f.From, "to": f.To, "id": f.ID,
	} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if page && f.Cursor != "" {
		q.Set("cursor", f.Cursor)
	}
	return q
}

// With returns the URL of the runs list with one filter changed (the
// chips' links), back on the first page.
func (f runFilter) With(key, value string) string {
	q := f.query(false)
	if value == "" {
		q.Del(key)
	} else {
		q.Set(key, value)
	}
	if len(q) == 0 {
		return "/runs"
	}
	return "/runs?" + q.Encode()
}

// timeLayouts are what the from/to fields accept: the browser's
// datetime-local value (read as UTC) and RFC 3339.
var timeLayouts = []string{"2006-01-02T15:04", "2006-01-02T15:04:05", time.RFC3339, "2006-01-02"}

func parseTime(s string) (time.Time, bool) {
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// storeFilter turns the URL's filter into the store's, naming what it
// could not read.
func (f runFilter) storeFilter(limit int) (store.InvocationFilter, []string) {
	sf := store.InvocationFilter{
		Namespace: f.Namespace, Workflow: f.Workflow, Version: f.Version, IDPrefix: f.ID,
		Status: core.Status(f.Status), Limit: limit, Cursor: f.Cursor,
	}
	var bad []string
	if f.From != "" {
		if t, ok := parseTime(f.From); ok {
			sf.StartedAfter = t
		} else {
			bad = append(bad, "from: want a time such as 2026-01-31T09:30")
		}
	}
	if f.To != "" {
		if t, ok := parseTime(f.To); ok {
			sf.StartedBefore = t
		} else {
			bad = append(bad, "to: want a time such as 2026-01-31T18:00")
		}
	}
	if f.Status != "" && !slices.Contains(statuses, core.Status(f.Status)) {
		bad = append(bad, "status: want running, completed, faulted or cancelled")
		sf.Status = ""
	}
	return sf, bad
}

// statuses are the chips, in the order shown.
var statuses = []core.Status{core.StatusRunning, core.StatusCompleted, core.StatusFaulted, core.StatusCancelled}

type chip struct {
	Status string
	Count  int
	Link   string
	Active bool
}

type runRow struct {
	ID, Namespace, Workflow, Version, Status string
	Started                                  time.Time
	Duration                                 string
	ErrorTitle                               string
}

type runsView struct {
	Filter     runFilter
	Problems   []string
	Chips      []chip
	Total      int
	Counted    bool
	Rows       []runRow
	Next       string
	First      string
	Namespaces []string
	// Live is the URL of the list's live updates.
	Live string
}

// runsPageSize is how many runs a page of the list shows.
const runsPageSize = 50

func (c *Console) runsPage(w http.ResponseWriter, r *http.Request) {
	v, status := c.runsView(r)
	c.render(w, r, status, "runs", "Runs", "runs", v)
}

func (c *Console) runsView(r *http.Request) (*runsView, int) {
	f := runFilterFrom(r.URL.Query())
	v := &runsView{Filter: f, First: f.With("", "")}
	p := auth.PrincipalFrom(r.Context())
	nss, all := p.Namespaces(auth.Viewer)
	if !all {
		v.Namespaces = nss
		if f.Namespace == "" && len(nss) == 1 {
			f.Namespace = nss[0]
		}
	}
	sf, bad := f.storeFilter(runsPageSize)
	v.Problems = bad
	if f.Namespace != "" && !p.Can(auth.Viewer, f.Namespace) {
		v.Problems = append(v.Problems, "you may not see namespace "+f.Namespace)
		return v, http.StatusForbidden
	}
	if f.Namespace == "" && !all {
		v.Problems = append(v.Problems, "choose a namespace: "+strings.Join(nss, ", "))
		return v, http.StatusOK
	}
	ctx := r.Context()
	if counter, ok := c.engine.(invocationCounter); ok {
		if counts, err := counter.CountInvocations(ctx, sf); err == nil {
			v.Counted = true
			for _, st := range statuses {
				v.Chips = append(v.Chips, chip{Status: string(st), Count: counts[st], Link: f.With("status", string(st)), Active: f.Status == string(st)})
				v.Total += counts[st]
			}
		}
	}
	invs, next, err := c.engine.ListInvocations(ctx, sf)
	if err != nil {
		v.Problems = append(v.Problems, "listing failed: "+err.Error())
		return v, http.StatusBadRequest
	}
	now := time.Now()
	for _, inv := range invs {
		row := runRow{ID: inv.ID, Namespace: inv.Namespace, Workflow: inv.Workflow, Version: inv.Version,
			Status: string(inv.Status), Started: inv.StartedAt, Duration: runDuration(inv, now)}
		if inv.Error != nil {
			row.ErrorTitle = inv.Error.Title
		}
		v.Rows = append(v.Rows, row)
	}
	if next != "" {
		nf := f
		nf.Cursor = next
		v.Next = "/runs?" + nf.query(true).Encode()
	}
	live := f.query(false)
	v.Live = "/live/runs"
	if len(live) > 0 {
		v.Live += "?" + live.Encode()
	}
	return v, http.StatusOK
}

// runDuration is how long a run took, or has been running.
func runDuration(inv *store.Invocation, now time.Time) string {
	end := inv.EndedAt
	if end.IsZero() {
		end = now
	}
	return formatDuration(end.Sub(inv.StartedAt))
}

// formatDuration writes a duration as people read it: 840ms, 3.2s, 4m05s.
func formatDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "0ms"
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
