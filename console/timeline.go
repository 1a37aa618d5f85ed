package console

import (
	"fmt"
	"html"
	"html/template"
	"strings"
	"time"
)

// The timeline draws, on one time axis from the run's start, a row per
// task activation (loop iterations and retries each get theirs) coloured
// by its state; below it, each call attempt its task made, with the part
// spent waiting for a function instance (queue wait) and its cold start
// marked at the start of the bar.

const (
	timelineLabel = 240
	timelineWidth = 720
	timelineRow   = 18
	maxTimeline   = 2000
)

func renderTimeline(start, end time.Time, f *runFacts) template.HTML {
	type row struct {
		label, ref, class string
		from, to          time.Time
		wait, cold        time.Duration
		title             string
	}
	callsByKey := map[string][]*callAttempt{}
	for _, c := range f.calls {
		callsByKey[c.Key] = append(callsByKey[c.Key], c)
	}
	var rows []row
	seen := map[string]bool{}
	addCalls := func(key string) {
		for _, c := range callsByKey[key] {
			to := c.End
			if !c.Ended {
				to = end
			}
			class := "st-completed"
			switch {
			case !c.Ended:
				class = "st-running"
			case c.Error != nil:
				class = "st-faulted"
			}
			label := "  call"
			if c.Attempt > 1 {
				label = fmt.Sprintf("  retry #%d", c.Attempt)
			}
			title := fmt.Sprintf("%s attempt %d: %s", c.Key, c.Attempt, formatDuration(to.Sub(c.Start)))
			if c.QueueWait > 0 {
				title += ", queue wait " + formatDuration(c.QueueWait)
			}
			if c.Cold {
				title += ", cold start " + formatDuration(c.ColdStart)
			}
			rows = append(rows, row{label: label, ref: c.Ref, class: "call " + class, from: c.Start, to: to, wait: c.QueueWait, cold: c.ColdStart, title: title})
		}
		seen[key] = true
	}
	for _, a := range f.activations {
		if len(rows) >= maxTimeline {
			break
		}
		to := a.End
		if to.IsZero() {
			to = end
		}
		rows = append(rows, row{label: a.Key, ref: a.Ref, class: "st-" + a.State, from: a.Start, to: to,
			title: fmt.Sprintf("%s: %s, %s", a.Key, a.State, formatDuration(to.Sub(a.Start)))})
		addCalls(a.Key)
	}
	// Calls whose task has no lifecycle record (a run whose definition is
	// gone) still show.
	for _, c := range f.calls {
		if !seen[c.Key] && len(rows) < maxTimeline {
			rows = append(rows, row{label: c.Key, ref: c.Ref, class: "st-running", from: c.Start, to: c.Start})
			addCalls(c.Key)
		}
	}
	span := end.Sub(start)
	if span <= 0 {
		span = time.Millisecond
	}
	x := func(t time.Time) float64 {
		d := t.Sub(start)
		if d < 0 {
			d = 0
		}
		return timelineLabel + float64(d)/float64(span)*timelineWidth
	}
	width := float64(timelineLabel + timelineWidth + 10)
	height := float64(len(rows)*timelineRow + 24)
	var sb strings.Builder
	sb.Grow(256 + 300*len(rows))
	fmt.Fprintf(&sb, `<svg class="timeline" data-testid="timeline" xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f">`, width, height, width, height)
	// The axis: the run's start, middle and end.
	for i := 0; i <= 4; i++ {
		ax := timelineLabel + float64(i)*timelineWidth/4
		anchor, tx := "start", ax+2
		if i == 4 {
			anchor, tx = "end", ax-2 // the last label ends at its tick, inside the drawing
		}
		fmt.Fprintf(&sb, `<line class="tick" x1="%.0f" y1="0" x2="%.0f" y2="%.0f"/><text class="axis" x="%.0f" y="12" text-anchor="%s">+%s</text>`,
			ax, ax, height, tx, anchor, formatDuration(span*time.Duration(i)/4))
	}
	for i, r := range rows {
		y := float64(20 + i*timelineRow)
		x0, x1 := x(r.from), x(r.to)
		w := max(x1-x0, 2)
		label := r.label
		if rs := []rune(label); len(rs) > 34 {
			label = "…" + string(rs[len(rs)-33:])
		}
		fmt.Fprintf(&sb, `<g class="bar %s" data-ref="%s"><title>%s</title><text class="rowlabel" x="4" y="%.0f">%s</text><rect x="%.1f" y="%.0f" width="%.1f" height="%d" rx="2"/>`,
			r.class, html.EscapeString(r.ref), html.EscapeString(r.title), y+11, html.EscapeString(label), x0, y+2, w, timelineRow-5)
		if r.wait > 0 {
			fmt.Fprintf(&sb, `<rect class="wait" x="%.1f" y="%.0f" width="%.1f" height="%d"/>`, x0, y+2, max(float64(r.wait)/float64(span)*timelineWidth, 1), timelineRow-5)
		}
		if r.cold > 0 {
			cx := x0 + float64(r.wait)/float64(span)*timelineWidth
			fmt.Fprintf(&sb, `<rect class="cold" x="%.1f" y="%.0f" width="%.1f" height="%d"/>`, cx, y+2, max(float64(r.cold)/float64(span)*timelineWidth, 1), timelineRow-5)
		}
		sb.WriteString(`</g>`)
	}
	sb.WriteString(`</svg>`)
	return template.HTML(sb.String()) // labels and titles are escaped
}
