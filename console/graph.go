package console

import (
	"fmt"
	"html"
	"html/template"
	"strings"

	"github.com/batonflow/baton/dsl"
)

// The definition's graph is drawn on the server as SVG. The DSL is block
// structured, so the drawing is nested boxes: a task list is a column, a
// do/for/try is a box holding its lists, a fork holds its branches side by
// side, and a Fission DAG is laid out in layers by the longest path from
// its roots. Every task of the definition is drawn, reached or not, and
// each box carries its JSON pointer (data-ref) and its state.

// Task states as the graph colours them.
const (
	statePending   = "pending"
	stateRunning   = "running"
	stateCompleted = "completed"
	stateFaulted   = "faulted"
	stateCancelled = "cancelled"
	stateSkipped   = "skipped"
)

// Sizes of the drawing, in pixels.
const (
	leafHeight = 30
	headHeight = 22
	pad        = 8
	gap        = 14
	charWidth  = 7
	minWidth   = 140
)

// box is a laid-out task: its place in its parent, its size and what to
// draw inside.
type box struct {
	ref, name, kind string
	x, y, w, h      float64
	children        []*box
	// row lays the children side by side (fork branches) instead of in a
	// column.
	row bool
	// edges join children of a DAG (indices into children).
	edges [][2]int
	// sequence joins children in order (a task list).
	sequence bool
	// caption is a second line of a leaf (a call's function, a switch's
	// cases).
	caption string
}

func textWidth(s string) float64 { return float64(len(s)*charWidth + 2*pad) }

// layoutWorkflow lays out a whole definition.
func layoutWorkflow(def *dsl.Workflow) *box {
	root := &box{kind: "workflow", name: def.Document.Name}
	root.children = layoutList(def.Do)
	root.sequence = true
	stackColumn(root, 0)
	return root
}

func layoutList(tl dsl.TaskList) []*box {
	out := make([]*box, 0, len(tl))
	for _, nt := range tl {
		out = append(out, layoutTask(nt.Name, nt.Task))
	}
	return out
}

// layoutTask lays out one task and what it holds.
func layoutTask(name string, t *dsl.Task) *box {
	b := &box{ref: t.Ref, name: name, kind: string(t.Kind)}
	switch t.Kind {
	case dsl.KindDo:
		b.children, b.sequence = layoutList(t.Do), true
	case dsl.KindFor:
		if t.For != nil {
			b.children, b.sequence = layoutList(t.For.Do), true
			b.caption = "for each " + t.For.Each + " in " + t.For.In
		}
	case dsl.KindTry:
		if t.Try != nil {
			try := &box{kind: "section", name: "try", children: layoutList(t.Try.Try), sequence: true}
			stackColumn(try, headHeight)
			b.children = []*box{try}
			if t.Try.Catch != nil && len(t.Try.Catch.Do) > 0 {
				catch := &box{kind: "section", name: "catch", children: layoutList(t.Try.Catch.Do), sequence: true}
				stackColumn(catch, headHeight)
				b.children = append(b.children, catch)
			}
		}
	case dsl.KindFork:
		if t.Fork != nil {
			b.children, b.row = layoutList(t.Fork.Branches), true
			if t.Fork.Compete {
				b.caption = "compete"
			}
		}
	case dsl.KindGraph:
		if t.Graph != nil {
			layoutDAG(b, t)
			return b
		}
	case dsl.KindCall:
		if t.Call != nil {
			b.caption = t.Call.Function
		}
	case dsl.KindSwitch:
		var cases []string
		for _, c := range t.Switch {
			cases = append(cases, c.Name+"→"+c.Then)
		}
		b.caption = strings.Join(cases, " ")
	case dsl.KindRun:
		if t.Run != nil {
			b.caption = "run " + t.Run.Kind
		}
	}
	if len(b.children) == 0 {
		b.w = max(minWidth, textWidth(b.name+" "+b.kind), min(textWidth(b.caption), 320))
		b.h = leafHeight
		if b.caption != "" {
			b.h += 12
		}
		return b
	}
	if b.row {
		stackRow(b, headHeight)
	} else {
		stackColumn(b, headHeight)
	}
	return b
}

// stackColumn places b's children in a column below a header of top
// pixels and sizes b around them.
func stackColumn(b *box, top float64) {
	y := top + pad
	if b.caption != "" && len(b.children) > 0 {
		y += 12
	}
	w := max(minWidth, textWidth(b.name+" "+b.kind))
	for _, c := range b.children {
		c.x, c.y = pad, y
		y += c.h + gap
		w = max(w, c.w+2*pad)
	}
	b.w, b.h = w, y-gap+pad
	// Children are centred in the column.
	for _, c := range b.children {
		c.x = (b.w - c.w) / 2
	}
}

// stackRow places b's children side by side.
func stackRow(b *box, top float64) {
	x, h := float64(pad), 0.0
	y := top + pad
	if b.caption != "" {
		y += 12
	}
	for _, c := range b.children {
		c.x, c.y = x, y
		x += c.w + gap
		h = max(h, c.h)
	}
	b.w = max(x-gap+pad, textWidth(b.name+" "+b.kind))
	b.h = y + h + pad
}

// layoutDAG lays out a Fission graph task: nodes in layers by the longest
// path of requirements leading to them, in declaration order in a layer.
func layoutDAG(b *box, t *dsl.Task) {
	g := t.Graph
	layer := make(map[string]int, len(g.Nodes))
	var depth func(n *dsl.GraphNode, seen map[string]bool) int
	depth = func(n *dsl.GraphNode, seen map[string]bool) int {
		if d, ok := layer[n.ID]; ok {
			return d
		}
		if seen[n.ID] {
			return 0 // a cycle: the validator refuses them; draw it anyway
		}
		seen[n.ID] = true
		d := 0
		for _, req := range n.Requires {
			if i := g.Index(req); i >= 0 {
				d = max(d, depth(g.Nodes[i], seen)+1)
			}
		}
		layer[n.ID] = d
		return d
	}
	var layers [][]int
	index := map[string]int{}
	for i, n := range g.Nodes {
		d := depth(n, map[string]bool{})
		for len(layers) <= d {
			layers = append(layers, nil)
		}
		layers[d] = append(layers[d], i)
		c := &box{ref: t.Ref + "/" + escapePointerToken(n.ID), name: n.ID, kind: "node", caption: n.Run}
		c.w = max(minWidth, textWidth(c.name), min(textWidth(c.caption), 260))
		c.h = leafHeight + 12
		b.children = append(b.children, c)
		index[n.ID] = i
	}
	for i, n := range g.Nodes {
		for _, req := range n.Requires {
			if j, ok := index[req]; ok {
				b.edges = append(b.edges, [2]int{j, i})
			}
		}
	}
	y := float64(headHeight + pad)
	width := 0.0
	for _, l := range layers {
		x, h := float64(pad), 0.0
		for _, i := range l {
			c := b.children[i]
			c.x, c.y = x, y
			x += c.w + 2*gap
			h = max(h, c.h)
		}
		width = max(width, x-2*gap+pad)
		y += h + 3*gap
	}
	b.w = max(width, textWidth(b.name+" "+b.kind))
	b.h = y - 3*gap + pad
}

// escapePointerToken escapes a JSON pointer reference token.
func escapePointerToken(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// renderGraph draws a laid-out definition with each task's state; failing
// names the task the run's error points at (its instance).
func renderGraph(root *box, states map[string]string, failing string) template.HTML {
	var sb strings.Builder
	sb.Grow(512 + 400*countBoxes(root))
	fmt.Fprintf(&sb, `<svg class="graph" data-testid="graph" xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" role="img" aria-label="workflow graph">`,
		root.w, root.h, root.w, root.h)
	sb.WriteString(`<defs><marker id="arrow" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L8,4 L0,8 z" class="arrowhead"/></marker></defs>`)
	drawChildren(&sb, root, 0, 0, states, failing)
	sb.WriteString(`</svg>`)
	return template.HTML(sb.String()) // every name and ref in it is escaped
}

func countBoxes(b *box) int {
	n := 1
	for _, c := range b.children {
		n += countBoxes(c)
	}
	return n
}

func drawChildren(sb *strings.Builder, b *box, ox, oy float64, states map[string]string, failing string) {
	if b.sequence {
		for i := 1; i < len(b.children); i++ {
			p, c := b.children[i-1], b.children[i]
			fmt.Fprintf(sb, `<line class="edge" x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" marker-end="url(#arrow)"/>`,
				ox+p.x+p.w/2, oy+p.y+p.h, ox+c.x+c.w/2, oy+c.y-1)
		}
	}
	for _, e := range b.edges {
		p, c := b.children[e[0]], b.children[e[1]]
		fmt.Fprintf(sb, `<line class="edge" x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" marker-end="url(#arrow)"/>`,
			ox+p.x+p.w/2, oy+p.y+p.h, ox+c.x+c.w/2, oy+c.y-1)
	}
	for _, c := range b.children {
		drawBox(sb, c, ox+c.x, oy+c.y, states, failing)
	}
}

func drawBox(sb *strings.Builder, b *box, x, y float64, states map[string]string, failing string) {
	state := statePending
	if b.ref != "" {
		if s, ok := states[b.ref]; ok {
			state = s
		} else if st, ok := states[""]; ok {
			state = st // the run's default for tasks it did not reach
		}
	}
	class := "task st-" + state
	if len(b.children) > 0 {
		class += " container"
	}
	if b.kind == "section" {
		class = "section"
	}
	if b.ref != "" && b.ref == failing {
		class += " failing"
	}
	sb.WriteString(`<g class="`)
	sb.WriteString(class)
	sb.WriteString(`"`)
	if b.ref != "" {
		sb.WriteString(` data-ref="`)
		sb.WriteString(html.EscapeString(b.ref))
		sb.WriteString(`" data-state="`)
		sb.WriteString(state)
		sb.WriteString(`" tabindex="0"`)
	}
	sb.WriteString(`>`)
	if b.ref != "" {
		fmt.Fprintf(sb, `<title>%s (%s): %s</title>`, html.EscapeString(b.name), html.EscapeString(b.kind), state)
	}
	fmt.Fprintf(sb, `<rect x="%.0f" y="%.0f" width="%.0f" height="%.0f" rx="5"/>`, x, y, b.w, b.h)
	label := b.name
	if b.kind != "section" && b.kind != "node" {
		label += " · " + b.kind
	}
	fmt.Fprintf(sb, `<text x="%.0f" y="%.0f" class="label">%s</text>`, x+pad, y+18, html.EscapeString(label))
	if b.caption != "" {
		caption := b.caption
		if limit, rs := int((b.w-2*pad)/(charWidth-1)), []rune(caption); len(rs) > limit && limit > 3 {
			caption = string(rs[:limit-1]) + "…"
		}
		fmt.Fprintf(sb, `<text x="%.0f" y="%.0f" class="caption">%s</text>`, x+pad, y+32, html.EscapeString(caption))
	}
	sb.WriteString(`</g>`)
	if len(b.children) > 0 {
		drawChildren(sb, b, x, y, states, failing)
	}
}
