package dsl

import (
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/batonflow/baton/expr"
)

// kindOrder lists the task kinds in the order messages name them.
var kindOrder = []Kind{KindCall, KindDo, KindEmit, KindFor, KindFork, KindListen, KindRaise, KindRun, KindSet, KindSwitch, KindTry, KindWait}

// kindProperties are the properties each kind adds to the common ones.
var kindProperties = map[Kind][]string{
	KindCall:   {"call", "with"},
	KindDo:     {"do"},
	KindEmit:   {"emit"},
	KindFor:    {"for", "while", "do"},
	KindFork:   {"fork"},
	KindListen: {"listen", "foreach"},
	KindRaise:  {"raise"},
	KindRun:    {"run"},
	KindSet:    {"set"},
	KindSwitch: {"switch"},
	KindTry:    {"try", "catch"},
	KindWait:   {"wait"},
}

var commonProperties = []string{"if", "input", "output", "export", "timeout", "then", "metadata"}

var flowDirectives = []string{FlowContinue, FlowExit, FlowEnd}

// flowRef is a `then` naming where to go next; it is checked against the
// task list it belongs to once the whole list has been read.
type flowRef struct {
	node   *yaml.Node
	at     path
	target string
}

// taskList reads a list of single-key maps, name → task. ref is the JSON
// pointer of the list; each task's Ref is ref/index/name.
func (p *parser) taskList(n *yaml.Node, at path, ref string, nonEmpty bool) TaskList {
	r := resolve(n)
	if r == nil || r.Kind != yaml.SequenceNode {
		p.errorf(n, at, "expected a list of tasks, got %s", describe(n))
		return nil
	}
	if nonEmpty && len(r.Content) == 0 {
		p.errorf(r, at, "expected at least one task")
	}
	list := make(TaskList, 0, len(r.Content))
	firstLine := map[string]int{}
	var flows []flowRef
	for i, item := range r.Content {
		iat := at.index(i)
		entries, ok := p.mapping(item, iat)
		if !ok {
			continue
		}
		if len(entries) != 1 {
			p.errorf(item, iat, "expected a map with a single key naming the task, got %d keys", len(entries))
			continue
		}
		name := entries[0].key
		if name == "" {
			p.errorf(entries[0].keyNode, iat, "a task name must not be empty")
		}
		if line, dup := firstLine[name]; dup {
			p.errorf(entries[0].keyNode, iat, "duplicate task name %q (first at line %d)", name, line)
		} else {
			firstLine[name] = entries[0].keyNode.Line
		}
		t, taskFlows := p.task(entries[0].val, iat.key(name), pointer(pointerIndex(ref, i), name))
		list = append(list, &NamedTask{Name: name, Task: t})
		flows = append(flows, taskFlows...)
	}
	for _, f := range flows {
		if !contains(flowDirectives, f.target) && list.Index(f.target) < 0 {
			names := make([]string, len(list))
			for i, t := range list {
				names[i] = t.Name
			}
			p.errorf(f.node, f.at, "%q is neither a flow directive (continue, exit, end) nor a task of this list (%s)", f.target, strings.Join(names, ", "))
		}
	}
	return list
}

// task reads one task definition.
func (p *parser) task(n *yaml.Node, at path, ref string) (*Task, []flowRef) {
	t := &Task{Ref: ref, Pos: posOf(resolve(n))}
	o := p.openObject(n, at)
	if !o.ok {
		return t, nil
	}
	t.Raw, _ = p.data(n, at).(map[string]any)

	var kinds []Kind
	for _, k := range kindOrder {
		if o.has(string(k)) && (k != KindDo || !o.has(string(KindFor))) {
			kinds = append(kinds, k)
		}
	}
	switch len(kinds) {
	case 0:
		p.errorf(o.node, at, "%s", noKindMessage(o))
		return t, nil
	case 1:
		t.Kind = kinds[0]
	default:
		names := make([]string, len(kinds))
		for i, k := range kinds {
			names[i] = string(k)
		}
		p.errorf(o.fields[names[1]].keyNode, at, "a task has exactly one kind, got %s", quoteList(names))
		return t, nil
	}
	allowed := append(slices.Clone(kindProperties[t.Kind]), commonProperties...)
	for k, e := range o.fields {
		if !contains(allowed, k) {
			p.errorf(e.keyNode, at, "unknown property %q for a %s task (valid: %s)", k, t.Kind, strings.Join(allowed, ", "))
		}
	}

	var flows []flowRef
	if in, iat, ok := o.get("if"); ok {
		t.If, _ = p.exprField(in, iat)
	}
	if in, iat, ok := o.get("input"); ok {
		t.Input = p.input(in, iat)
	}
	if on, oat, ok := o.get("output"); ok {
		t.Output = p.output(on, oat)
	}
	if en, eat, ok := o.get("export"); ok {
		t.Export = p.export(en, eat)
	}
	if tn, tat, ok := o.get("timeout"); ok {
		t.Timeout = p.timeout(tn, tat)
	}
	if tn, tat, ok := o.get("then"); ok {
		if s, ok := p.str(tn, tat); ok {
			t.Then = s
			flows = append(flows, flowRef{node: tn, at: tat, target: s})
		}
	}
	if mn, mat, ok := o.get("metadata"); ok {
		t.Metadata = p.mapData(mn, mat)
	}

	kn, kat, _ := o.get(string(t.Kind))
	switch t.Kind {
	case KindCall:
		t.Call = p.call(o, at)
	case KindDo:
		t.Do = p.taskList(kn, kat, ref+"/do", true)
	case KindEmit:
		t.Emit = p.emit(kn, kat)
	case KindFor:
		t.For = p.forTask(o, at, ref)
	case KindFork:
		t.Fork = p.fork(kn, kat, ref)
	case KindListen:
		t.Listen = p.listen(o, at, ref)
	case KindRaise:
		t.Raise = p.raise(kn, kat)
	case KindRun:
		t.Run = p.run(kn, kat)
	case KindSet:
		t.Set = p.set(kn, kat)
	case KindSwitch:
		var caseFlows []flowRef
		t.Switch, caseFlows = p.switchCases(kn, kat)
		flows = append(flows, caseFlows...)
	case KindTry:
		t.Try = p.try(o, at, ref)
	case KindWait:
		t.Wait = p.duration(kn, kat)
	}
	return t, flows
}

func kindList() string {
	names := make([]string, len(kindOrder))
	for i, k := range kindOrder {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}

func (p *parser) emit(n *yaml.Node, at path) *EmitTask {
	o := p.object(n, at, "event")
	if !o.require("event") {
		return &EmitTask{}
	}
	en, eat, _ := o.get("event")
	// An event may carry properties besides `with` (schema:
	// additionalProperties true); only `with` defines what is emitted.
	eo := p.openObject(en, eat)
	if !eo.require("with") {
		return &EmitTask{}
	}
	wn, wat, _ := eo.get("with")
	wo := p.openObject(wn, wat)
	if !wo.ok {
		return &EmitTask{}
	}
	wo.require("source", "type")
	for _, k := range []string{"id", "source", "type", "subject", "datacontenttype", "dataschema", "time"} {
		wo.str(k)
	}
	p.dataExprs(wn, wat)
	return &EmitTask{Event: p.mapData(wn, wat)}
}

// forTask reads `for`, `while` and `do`. The loop body's pointer is the
// true JSON pointer ref/do (`do` stands beside `for`); the engine tells
// iterations apart in activation keys, not in pointers.
func (p *parser) forTask(o object, at path, ref string) *ForTask {
	f := &ForTask{Each: "item", At: "index"}
	fn, fat, _ := o.get("for")
	fo := p.object(fn, fat, "each", "in", "at")
	if fo.require("in") {
		in, iat, _ := fo.get("in")
		f.In, _ = p.exprField(in, iat)
	}
	for key, dst := range map[string]*string{"each": &f.Each, "at": &f.At} {
		if s, sn := fo.str(key); isString(sn) {
			if !isVariableName(s) {
				p.errorf(sn, fat.key(key), "%q is not a valid variable name (letters, digits and _, not starting with a digit)", s)
			}
			*dst = s
		}
	}
	if wn, wat, ok := o.get("while"); ok {
		f.While, _ = p.exprField(wn, wat)
	}
	if o.require("do") {
		dn, dat, _ := o.get("do")
		f.Do = p.taskList(dn, dat, ref+"/do", true)
	}
	return f
}

// isVariableName reports whether s can be used as a jq variable ($s).
func isVariableName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		letter := r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')
		if !letter && (i == 0 || r < '0' || r > '9') {
			return false
		}
	}
	return true
}

func (p *parser) fork(n *yaml.Node, at path, ref string) *ForkTask {
	f := &ForkTask{}
	o := p.object(n, at, "branches", "compete")
	if o.require("branches") {
		bn, bat, _ := o.get("branches")
		f.Branches = p.taskList(bn, bat, ref+"/fork/branches", true)
	}
	if cn, cat, ok := o.get("compete"); ok {
		f.Compete, _ = p.boolean(cn, cat)
	}
	return f
}

func (p *parser) listen(o object, at path, ref string) *ListenTask {
	l := &ListenTask{Read: "data"}
	ln, lat, _ := o.get("listen")
	lo := p.object(ln, lat, "to", "read")
	if lo.require("to") {
		tn, tat, _ := lo.get("to")
		p.eventConsumption(tn, tat)
		l.To = p.mapData(tn, tat)
	}
	if lo.has("read") {
		l.Read = lo.enum("read", "data", "envelope", "raw")
	}
	if fn, fat, ok := o.get("foreach"); ok {
		l.Foreach = p.subscriptionIterator(fn, fat, ref+"/foreach")
	}
	return l
}

// subscriptionIterator reads a listen task's foreach (and checks an
// AsyncAPI subscription's).
func (p *parser) subscriptionIterator(n *yaml.Node, at path, ref string) *SubscriptionIterator {
	it := &SubscriptionIterator{Item: "item", At: "index"}
	o := p.object(n, at, "item", "at", "do", "output", "export")
	for _, key := range []string{"item", "at"} {
		s, sn := o.str(key)
		if !isString(sn) {
			continue
		}
		if !isVariableName(s) {
			p.errorf(sn, at.key(key), "%q is not a valid variable name (letters, digits and _, not starting with a digit)", s)
		} else if key == "item" {
			it.Item = s
		} else {
			it.At = s
		}
	}
	if dn, dat, ok := o.get("do"); ok {
		it.Do = p.taskList(dn, dat, ref+"/do", false)
	}
	if on, oat, ok := o.get("output"); ok {
		it.Output = p.output(on, oat)
	}
	if en, eat, ok := o.get("export"); ok {
		it.Export = p.export(en, eat)
	}
	return it
}

func (p *parser) raise(n *yaml.Node, at path) *RaiseTask {
	r := &RaiseTask{}
	o := p.object(n, at, "error")
	if !o.require("error") {
		return r
	}
	en, eat, _ := o.get("error")
	switch {
	case isString(en):
		name := resolve(en).Value
		def, ok := p.use.Errors[name]
		if !ok {
			p.errorf(en, eat, "error %q is not defined in use.errors%s", name, defined(p.use.Errors))
			return r
		}
		c := *def
		r.Error = &c
	case isMap(en):
		r.Error = p.errorDef(en, eat)
	default:
		p.errorf(en, eat, "expected an error (a map) or the name of one in use.errors, got %s", describe(en))
	}
	return r
}

func (p *parser) set(n *yaml.Node, at path) any {
	switch {
	case isMap(n):
		if len(resolve(n).Content) == 0 {
			p.errorf(n, at, "expected at least one property to set")
		}
		p.dataExprs(n, at)
		return p.data(n, at)
	case isString(n) && expr.IsExpr(resolve(n).Value):
		p.exprIfWrapped(n, at, resolve(n).Value)
		return resolve(n).Value
	default:
		p.errorf(n, at, "expected a map or a runtime expression, got %s", describe(n))
		return nil
	}
}

func (p *parser) switchCases(n *yaml.Node, at path) ([]*SwitchCase, []flowRef) {
	r := resolve(n)
	if r == nil || r.Kind != yaml.SequenceNode {
		p.errorf(n, at, "expected a list of cases, got %s", describe(n))
		return nil, nil
	}
	if len(r.Content) == 0 {
		p.errorf(r, at, "expected at least one case")
	}
	var (
		cases       []*SwitchCase
		flows       []flowRef
		defaultCase string
	)
	firstLine := map[string]int{}
	for i, item := range r.Content {
		iat := at.index(i)
		entries, ok := p.mapping(item, iat)
		if !ok {
			continue
		}
		if len(entries) != 1 {
			p.errorf(item, iat, "expected a map with a single key naming the case, got %d keys", len(entries))
			continue
		}
		name := entries[0].key
		if line, dup := firstLine[name]; dup {
			p.errorf(entries[0].keyNode, iat, "duplicate case name %q (first at line %d)", name, line)
		} else {
			firstLine[name] = entries[0].keyNode.Line
		}
		cat := iat.key(name)
		c := &SwitchCase{Name: name}
		o := p.object(entries[0].val, cat, "when", "then")
		if !o.ok {
			continue
		}
		if wn, wat, ok := o.get("when"); ok {
			c.When, _ = p.exprField(wn, wat)
		} else if defaultCase != "" {
			p.errorf(o.node, cat, "a switch has at most one default case (a case without when); %q is one already", defaultCase)
		} else {
			defaultCase = name
		}
		if o.require("then") {
			tn, tat, _ := o.get("then")
			if s, ok := p.str(tn, tat); ok {
				c.Then = s
				flows = append(flows, flowRef{node: tn, at: tat, target: s})
			}
		}
		cases = append(cases, c)
	}
	return cases, flows
}

func (p *parser) try(o object, at path, ref string) *TryTask {
	t := &TryTask{}
	tn, tat, _ := o.get("try")
	t.Try = p.taskList(tn, tat, ref+"/try", true)
	if !o.require("catch") {
		return t
	}
	cn, cat, _ := o.get("catch")
	co := p.object(cn, cat, "errors", "as", "when", "exceptWhen", "retry", "do")
	if !co.ok {
		return t
	}
	c := &Catch{As: "error"}
	t.Catch = c
	if en, eat, ok := co.get("errors"); ok {
		eo := p.object(en, eat, "with")
		if wn, wat, ok := eo.get("with"); ok {
			c.Errors = p.errorFilter(wn, wat)
		}
	}
	if s, sn := co.str("as"); isString(sn) {
		if !isVariableName(s) {
			p.errorf(sn, cat.key("as"), "%q is not a valid variable name (letters, digits and _, not starting with a digit)", s)
		}
		c.As = s
	}
	if wn, wat, ok := co.get("when"); ok {
		c.When, _ = p.exprField(wn, wat)
	}
	if wn, wat, ok := co.get("exceptWhen"); ok {
		c.ExceptWhen, _ = p.exprField(wn, wat)
	}
	if rn, rat, ok := co.get("retry"); ok {
		switch {
		case isString(rn):
			name := resolve(rn).Value
			if policy, ok := p.use.Retries[name]; ok {
				copied := *policy
				c.Retry = &copied
			} else {
				p.errorf(rn, rat, "retry policy %q is not defined in use.retries%s", name, defined(p.use.Retries))
			}
		case isMap(rn):
			c.Retry = p.retryPolicy(rn, rat)
		default:
			p.errorf(rn, rat, "expected a retry policy (a map) or the name of one in use.retries, got %s", describe(rn))
		}
	}
	if dn, dat, ok := co.get("do"); ok {
		c.Do = p.taskList(dn, dat, ref+"/catch/do", false)
	}
	return t
}
