package dsl

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Parse reads a workflow document, YAML or JSON, and validates it. On
// failure it returns an ErrorList with every problem found, sorted by
// position, and a nil workflow.
func Parse(filename string, src []byte) (*Workflow, error) {
	root, err := decodeYAML(src)
	if err != nil {
		return nil, ErrorList{syntaxError(filename, err)}
	}
	if err := checkExpansion(root); err != nil {
		return nil, ErrorList{syntaxError(filename, err)}
	}
	p := &parser{file: filename}
	w := p.workflow(root)
	if len(p.errs) > 0 {
		return nil, p.errs.sortAndDedupe()
	}
	return w, nil
}

// parser collects the problems of one document while building its model.
type parser struct {
	file string
	errs ErrorList
	// use holds the reusable components once read, so that references to
	// them (`raise.error: name`, `retry: name`...) resolve as tasks are read.
	use Use
	// dsl is the DSL version the document declares.
	dsl string
}

func (p *parser) errorf(n *yaml.Node, at path, format string, args ...any) {
	p.errs = append(p.errs, &Error{File: p.file, Pos: posOf(n), Path: string(at), Msg: fmt.Sprintf(format, args...)})
}

// topLevel lists the workflow's properties. The schema lets other properties
// stand at the top level, so they are not rejected.
var topLevel = []string{"document", "input", "use", "do", "timeout", "output", "schedule", "evaluate"}

func (p *parser) workflow(root *yaml.Node) *Workflow {
	w := &Workflow{Source: p.file}
	o := p.openObject(root, "")
	if !o.ok {
		return w
	}
	w.Raw, _ = p.data(root, "").(map[string]any)
	o.require("document", "do")

	// The document comes first: it says which DSL version the rest is
	// read against. Then use, whatever its place: tasks refer to it.
	if n, at, ok := o.get("document"); ok {
		w.Document = p.document(n, at)
		p.dsl = w.Document.DSL
	}
	if n, at, ok := o.get("use"); ok {
		w.Use = p.useComponents(n, at)
	}
	if n, at, ok := o.get("input"); ok {
		w.Input = p.input(n, at)
	}
	if n, at, ok := o.get("do"); ok {
		w.Do = p.taskList(n, at, "/do", true)
	}
	if n, at, ok := o.get("timeout"); ok {
		w.Timeout = p.timeout(n, at)
	}
	if n, at, ok := o.get("output"); ok {
		w.Output = p.output(n, at)
	}
	if n, at, ok := o.get("schedule"); ok {
		w.Schedule = p.schedule(n, at)
	}
	if n, at, ok := o.get("evaluate"); ok {
		w.Evaluate = p.evaluate(n, at)
	}
	return w
}

var (
	semver = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)
	// dnsLabel is the schema's pattern for namespaces and names.
	dnsLabel = regexp.MustCompile(`^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$`)
)

func (p *parser) document(n *yaml.Node, at path) Document {
	var d Document
	o := p.object(n, at, "dsl", "namespace", "name", "version", "title", "summary", "tags", "metadata")
	if !o.ok {
		return d
	}
	o.require("dsl", "namespace", "name", "version")
	var vn *yaml.Node
	if d.DSL, vn = o.str("dsl"); isString(vn) {
		switch {
		case !semver.MatchString(d.DSL):
			p.errorf(vn, at.key("dsl"), "%q is not a semantic version such as 1.0.0", d.DSL)
		case !strings.HasPrefix(d.DSL, "1."):
			p.errorf(vn, at.key("dsl"), "unsupported DSL version %q: Baton reads DSL 1.x", d.DSL)
		}
	}
	if d.Namespace, vn = o.str("namespace"); isString(vn) && !dnsLabel.MatchString(d.Namespace) {
		p.errorf(vn, at.key("namespace"), "%q is not a valid namespace: use letters, digits and '-', at most 63 characters, starting and ending with a letter or digit", d.Namespace)
	}
	if d.Name, vn = o.str("name"); isString(vn) && !dnsLabel.MatchString(d.Name) {
		p.errorf(vn, at.key("name"), "%q is not a valid name: use letters, digits and '-', at most 63 characters, starting and ending with a letter or digit", d.Name)
	}
	if d.Version, vn = o.str("version"); isString(vn) && !semver.MatchString(d.Version) {
		p.errorf(vn, at.key("version"), "%q is not a semantic version such as 1.0.0", d.Version)
	}
	d.Title, _ = o.str("title")
	d.Summary, _ = o.str("summary")
	if tn, tat, ok := o.get("tags"); ok {
		d.Tags = p.tags(tn, tat)
	}
	if mn, mat, ok := o.get("metadata"); ok {
		d.Metadata = p.mapData(mn, mat)
	}
	return d
}

// tags reads a map of strings; other scalars (`priority: 1`) are kept as
// written since tags are labels.
func (p *parser) tags(n *yaml.Node, at path) map[string]string {
	entries, ok := p.mapping(n, at)
	if !ok {
		return nil
	}
	tags := make(map[string]string, len(entries))
	for _, e := range entries {
		if e.val == nil || e.val.Kind != yaml.ScalarNode {
			p.errorf(e.val, at.key(e.key), "expected a string, got %s", describe(e.val))
			continue
		}
		tags[e.key] = e.val.Value
	}
	return tags
}

func (p *parser) evaluate(n *yaml.Node, at path) *Evaluate {
	o := p.object(n, at, "language", "mode")
	if !o.ok {
		return nil
	}
	e := &Evaluate{Language: "jq", Mode: "strict"}
	if o.has("language") {
		e.Language = o.enum("language", "jq")
	}
	if o.has("mode") {
		e.Mode = o.enum("mode", "strict", "loose")
	}
	return e
}

func (p *parser) schedule(n *yaml.Node, at path) *Schedule {
	o := p.object(n, at, "every", "cron", "after", "on")
	if !o.ok {
		return nil
	}
	s := &Schedule{}
	if len(o.fields) == 0 {
		p.errorf(o.node, at, "a schedule needs one of %s", quoteList([]string{"every", "cron", "after", "on"}))
	}
	if dn, dat, ok := o.get("every"); ok {
		s.Every = p.literalDuration(dn, dat, "schedule.every")
	}
	if dn, dat, ok := o.get("after"); ok {
		s.After = p.literalDuration(dn, dat, "schedule.after")
	}
	var cn *yaml.Node
	if s.Cron, cn = o.str("cron"); isString(cn) && strings.TrimSpace(s.Cron) == "" {
		p.errorf(cn, at.key("cron"), "empty cron expression")
	}
	if en, eat, ok := o.get("on"); ok {
		p.eventConsumption(en, eat)
		s.On = p.mapData(en, eat)
	}
	return s
}

func (p *parser) input(n *yaml.Node, at path) *Input {
	schema, from, ok := p.dataStage(n, at, "from")
	if !ok {
		return nil
	}
	return &Input{Schema: schema, From: from}
}

func (p *parser) output(n *yaml.Node, at path) *Output {
	schema, as, ok := p.dataStage(n, at, "as")
	if !ok {
		return nil
	}
	return &Output{Schema: schema, As: as}
}

func (p *parser) export(n *yaml.Node, at path) *Export {
	schema, as, ok := p.dataStage(n, at, "as")
	if !ok {
		return nil
	}
	return &Export{Schema: schema, As: as}
}

// dataStage reads the shape input, output and export share: a schema and
// one transformation, named by key (from or as).
func (p *parser) dataStage(n *yaml.Node, at path, key string) (*Schema, any, bool) {
	o := p.object(n, at, "schema", key)
	if !o.ok {
		return nil, nil, false
	}
	var schema *Schema
	var transform any
	if sn, sat, ok := o.get("schema"); ok {
		schema = p.schema(sn, sat)
	}
	if tn, tat, ok := o.get(key); ok {
		transform = p.transform(tn, tat)
	}
	return schema, transform, true
}

// transform reads input.from, output.as or export.as: a runtime expression
// by definition when a string, or data with `${ }` expressions inside.
func (p *parser) transform(n *yaml.Node, at path) any {
	switch {
	case isString(n):
		s, _ := p.exprField(n, at)
		return s
	case isMap(n):
		p.dataExprs(n, at)
		return p.data(n, at)
	default:
		p.errorf(n, at, "expected a runtime expression or a map, got %s", describe(n))
		return nil
	}
}

// schema reads a schema definition, kept as data: {format, document} or
// {format, resource}.
func (p *parser) schema(n *yaml.Node, at path) *Schema {
	o := p.object(n, at, "format", "document", "resource")
	if !o.ok {
		return nil
	}
	format, _ := o.str("format")
	s := &Schema{}
	switch o.requireOne("document", "resource") {
	case "document":
		dn, dat, _ := o.get("document")
		if r := resolve(dn); r == nil || (r.Kind != yaml.MappingNode && r.ShortTag() != "!!bool") {
			p.errorf(dn, dat, "expected a schema (a map), got %s", describe(dn))
			break
		}
		if format != "" && !strings.HasPrefix(format, "json") {
			// Only JSON Schema is enforced; other formats are kept as data.
			break
		}
		compiled, err := compileSchema(p.data(dn, dat))
		if err != nil {
			p.errorf(dn, dat, "invalid JSON Schema: %v", err)
			break
		}
		s.compiled = compiled
	case "resource":
		rn, rat, _ := o.get("resource")
		p.externalResource(rn, rat)
	}
	s.Raw = p.mapData(n, at)
	return s
}

// timeout reads an inline timeout or the name of one in use.timeouts.
func (p *parser) timeout(n *yaml.Node, at path) *Timeout {
	if isString(n) {
		name := resolve(n).Value
		t, ok := p.use.Timeouts[name]
		if !ok {
			p.errorf(n, at, "timeout %q is not defined in use.timeouts%s", name, defined(p.use.Timeouts))
			return nil
		}
		c := *t
		return &c
	}
	if !isMap(n) {
		p.errorf(n, at, "expected a timeout (a map with after) or the name of one in use.timeouts, got %s", describe(n))
		return nil
	}
	return p.timeoutDef(n, at)
}

func (p *parser) timeoutDef(n *yaml.Node, at path) *Timeout {
	o := p.object(n, at, "after")
	t := &Timeout{}
	if !o.require("after") {
		return t
	}
	an, aat, _ := o.get("after")
	if d := p.duration(an, aat); d != nil {
		t.After = *d
	}
	return t
}

// defined lists the names of a use.* section for "not defined" messages.
func defined[V any](m map[string]V) string {
	if len(m) == 0 {
		return " (none are)"
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	return " (defined: " + strings.Join(names, ", ") + ")"
}

// errorDef reads an error definition: type and status are required.
func (p *parser) errorDef(n *yaml.Node, at path) *ErrorDef {
	o := p.object(n, at, "type", "status", "instance", "title", "detail")
	e := &ErrorDef{}
	if !o.ok {
		return e
	}
	o.require("type", "status")
	for key, dst := range map[string]*string{"type": &e.Type, "instance": &e.Instance, "title": &e.Title, "detail": &e.Detail} {
		if s, sn := o.str(key); isString(sn) {
			*dst = s
			p.exprIfWrapped(sn, at.key(key), s)
		}
	}
	if sn, sat, ok := o.get("status"); ok {
		if v, ok := p.integer(sn, sat); ok {
			if v < 0 || v > 999 {
				p.errorf(sn, sat, "status %d is out of range (0-999)", v)
			}
			e.Status = int(v)
		}
	}
	return e
}

// errorFilter reads catch.errors.with. The schema spells the detail
// property "details" while errors spell it "detail"; both are accepted.
func (p *parser) errorFilter(n *yaml.Node, at path) *ErrorFilter {
	o := p.object(n, at, "type", "status", "instance", "title", "detail", "details")
	f := &ErrorFilter{}
	if !o.ok {
		return f
	}
	if len(o.fields) == 0 {
		p.errorf(o.node, at, "an error filter needs at least one of type, status, instance, title, detail")
	}
	f.Type, _ = o.str("type")
	f.Instance, _ = o.str("instance")
	f.Title, _ = o.str("title")
	f.Detail, _ = o.str("detail")
	if o.has("details") {
		if o.has("detail") {
			p.errorf(o.fields["details"].keyNode, at, `set only one of "detail" and "details"`)
		}
		f.Detail, _ = o.str("details")
	}
	if sn, sat, ok := o.get("status"); ok {
		if v, ok := p.integer(sn, sat); ok {
			f.Status = int(v)
		}
	}
	return f
}

// retryPolicy reads a retry policy. An absent backoff means a constant one.
func (p *parser) retryPolicy(n *yaml.Node, at path) *RetryPolicy {
	o := p.object(n, at, "when", "exceptWhen", "delay", "backoff", "limit", "jitter")
	r := &RetryPolicy{Backoff: BackoffConstant}
	if !o.ok {
		return r
	}
	if wn, wat, ok := o.get("when"); ok {
		r.When, _ = p.exprField(wn, wat)
	}
	if wn, wat, ok := o.get("exceptWhen"); ok {
		r.ExceptWhen, _ = p.exprField(wn, wat)
	}
	if dn, dat, ok := o.get("delay"); ok {
		r.Delay = p.duration(dn, dat)
	}
	if bn, bat, ok := o.get("backoff"); ok {
		bo := p.object(bn, bat, "constant", "exponential", "linear")
		if kind := bo.requireOne("constant", "exponential", "linear"); kind != "" {
			r.Backoff = Backoff(kind)
			kn, kat, _ := bo.get(kind)
			// The strategies' parameters are not specified yet; only their
			// shape is checked.
			p.mapData(kn, kat)
		}
	}
	if ln, lat, ok := o.get("limit"); ok {
		lo := p.object(ln, lat, "attempt", "duration")
		if an, aat, ok := lo.get("attempt"); ok {
			ao := p.object(an, aat, "count", "duration")
			if cn, cat, ok := ao.get("count"); ok {
				if v, ok := p.integer(cn, cat); ok {
					if v < 0 || v > 1<<31-1 {
						p.errorf(cn, cat, "the attempt count must be between 0 and %d", 1<<31-1)
					} else {
						count := int(v)
						r.Limit.AttemptCount = &count
					}
				}
			}
			if dn, dat, ok := ao.get("duration"); ok {
				r.Limit.AttemptDuration = p.duration(dn, dat)
			}
		}
		if dn, dat, ok := lo.get("duration"); ok {
			r.Limit.Duration = p.duration(dn, dat)
		}
	}
	if jn, jat, ok := o.get("jitter"); ok {
		jo := p.object(jn, jat, "from", "to")
		if jo.require("from", "to") {
			fn, fat, _ := jo.get("from")
			tn, tat, _ := jo.get("to")
			from, to := p.duration(fn, fat), p.duration(tn, tat)
			if from != nil && to != nil {
				if !from.IsExpr() && !to.IsExpr() && from.D > to.D {
					p.errorf(jo.node, jat, "jitter.from (%v) is greater than jitter.to (%v)", from.D, to.D)
				}
				r.Jitter = &Jitter{From: *from, To: *to}
			}
		}
	}
	return r
}
