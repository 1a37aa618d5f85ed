package dsl

import (
	"regexp"

	"go.yaml.in/yaml/v3"

	"github.com/batonflow/baton/expr"
)

// useComponents reads `use`. Each component is entered under its name even
// when its definition has problems, so that references to it do not add
// "not defined" errors on top of the real one.
func (p *parser) useComponents(n *yaml.Node, at path) *Use {
	o := p.object(n, at, "authentications", "errors", "extensions", "functions", "retries", "secrets", "timeouts", "catalogs")
	if !o.ok {
		return nil
	}
	u := &p.use
	if sn, sat, ok := o.get("secrets"); ok {
		u.Secrets = p.stringList(sn, sat)
	}
	if an, aat, ok := o.get("authentications"); ok {
		for _, e := range p.namedEntries(an, aat) {
			p.authenticationPolicy(e.val, aat.key(e.key))
		}
		u.Authentications = p.mapData(an, aat)
	}
	if en, eat, ok := o.get("errors"); ok {
		u.Errors = map[string]*ErrorDef{}
		for _, e := range p.namedEntries(en, eat) {
			u.Errors[e.key] = p.errorDef(e.val, eat.key(e.key))
		}
	}
	if rn, rat, ok := o.get("retries"); ok {
		u.Retries = map[string]*RetryPolicy{}
		for _, e := range p.namedEntries(rn, rat) {
			u.Retries[e.key] = p.retryPolicy(e.val, rat.key(e.key))
		}
	}
	if tn, tat, ok := o.get("timeouts"); ok {
		u.Timeouts = map[string]*Timeout{}
		for _, e := range p.namedEntries(tn, tat) {
			u.Timeouts[e.key] = p.timeoutDef(e.val, tat.key(e.key))
		}
	}
	if cn, cat, ok := o.get("catalogs"); ok {
		for _, e := range p.namedEntries(cn, cat) {
			co := p.object(e.val, cat.key(e.key), "endpoint")
			if co.require("endpoint") {
				en, eat, _ := co.get("endpoint")
				p.endpoint(en, eat)
			}
		}
		u.Catalogs = p.mapData(cn, cat)
	}
	// Functions are read after the other components since their
	// definitions may refer to them, and before extensions, whose tasks may
	// call them.
	if fn, fat, ok := o.get("functions"); ok {
		entries := p.namedEntries(fn, fat)
		u.Functions = make(map[string]*Task, len(entries))
		for _, e := range entries {
			u.Functions[e.key] = nil
		}
		for _, e := range entries {
			t, _ := p.task(e.val, fat.key(e.key), pointer("/use/functions", e.key))
			u.Functions[e.key] = t
		}
	}
	if xn, xat, ok := o.get("extensions"); ok {
		u.Extensions = p.extensions(xn, xat)
	}
	return u
}

// namedEntries reads a map of named components.
func (p *parser) namedEntries(n *yaml.Node, at path) []entry {
	entries, _ := p.mapping(n, at)
	return entries
}

var authenticationSchemes = []string{"basic", "bearer", "certificate", "digest", "oauth2", "oidc"}

// authenticationPolicy checks the shape of a policy, kept as data: exactly
// one scheme, whose settings are a map.
func (p *parser) authenticationPolicy(n *yaml.Node, at path) {
	o := p.object(n, at, authenticationSchemes...)
	if scheme := o.requireOne(authenticationSchemes...); scheme != "" {
		sn, sat, _ := o.get(scheme)
		so := p.openObject(sn, sat)
		if !so.ok {
			return
		}
		p.dataExprs(sn, sat)
		// `{use: name}` takes the scheme's settings from a secret.
		if un, uat, ok := so.get("use"); ok {
			if name, ok := p.str(un, uat); ok && !contains(p.use.Secrets, name) {
				p.errorf(un, uat, "secret %q is not declared in use.secrets", name)
			}
		}
	}
}

// referenceableAuthentication reads an `authentication` property: a policy
// or `{use: name}` naming one of use.authentications.
func (p *parser) referenceableAuthentication(n *yaml.Node, at path) {
	o := p.openObject(n, at)
	if !o.ok {
		return
	}
	if un, uat, ok := o.get("use"); ok {
		if len(o.fields) > 1 {
			p.errorf(o.node, at, `an authentication reference has only the property "use"`)
		}
		if name, ok := p.str(un, uat); ok {
			if _, known := p.use.Authentications[name]; !known {
				p.errorf(un, uat, "authentication %q is not defined in use.authentications%s", name, defined(p.use.Authentications))
			}
		}
		return
	}
	p.authenticationPolicy(n, at)
}

var absoluteURI = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+\-.]*://.*`)

// endpoint reads an endpoint: a URI (template), a runtime expression, or
// {uri, authentication}.
func (p *parser) endpoint(n *yaml.Node, at path) {
	if isString(n) {
		p.uriOrExpr(n, at)
		return
	}
	if !isMap(n) {
		p.errorf(n, at, "expected a URI, a runtime expression or a map with uri, got %s", describe(n))
		return
	}
	o := p.object(n, at, "uri", "authentication")
	if o.require("uri") {
		un, uat, _ := o.get("uri")
		if _, ok := p.str(un, uat); ok {
			p.uriOrExpr(un, uat)
		}
	}
	if an, aat, ok := o.get("authentication"); ok {
		p.referenceableAuthentication(an, aat)
	}
}

func (p *parser) uriOrExpr(n *yaml.Node, at path) {
	s := resolve(n).Value
	if expr.IsExpr(s) {
		p.exprIfWrapped(n, at, s)
		return
	}
	if !absoluteURI.MatchString(s) {
		p.errorf(n, at, "%q is not an absolute URI (scheme://...) or a runtime expression", s)
	}
}

// externalResource reads {name, endpoint}.
func (p *parser) externalResource(n *yaml.Node, at path) {
	o := p.object(n, at, "name", "endpoint")
	o.str("name")
	if o.require("endpoint") {
		en, eat, _ := o.get("endpoint")
		p.endpoint(en, eat)
	}
}

var extensionTargets = []string{"call", "composite", "emit", "extension", "for", "listen", "raise", "run", "set", "switch", "try", "wait", "all"}

// extensions reads use.extensions, kept as data; their task lists are
// validated like any other.
func (p *parser) extensions(n *yaml.Node, at path) []map[string]any {
	r := resolve(n)
	if r == nil || r.Kind != yaml.SequenceNode {
		p.errorf(n, at, "expected a list, got %s", describe(n))
		return nil
	}
	out := make([]map[string]any, 0, len(r.Content))
	for i, item := range r.Content {
		iat := at.index(i)
		entries, ok := p.mapping(item, iat)
		if !ok {
			continue
		}
		if len(entries) != 1 {
			p.errorf(item, iat, "expected a map with a single key naming the extension, got %d keys", len(entries))
			continue
		}
		name, def := entries[0].key, entries[0].val
		eat := iat.key(name)
		ref := pointer(pointerIndex("/use/extensions", i), name)
		o := p.object(def, eat, "extend", "when", "before", "after")
		if o.require("extend") {
			o.enum("extend", extensionTargets...)
		}
		if wn, wat, ok := o.get("when"); ok {
			p.exprField(wn, wat)
		}
		for _, k := range []string{"before", "after"} {
			if tn, tat, ok := o.get(k); ok {
				p.taskList(tn, tat, ref+"/"+k, false)
			}
		}
		if m, ok := p.data(item, iat).(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// eventConsumption checks an event consumption strategy (listen.to,
// schedule.on), kept as data: one of all, any or one, and `until` only
// with any.
func (p *parser) eventConsumption(n *yaml.Node, at path) {
	o := p.object(n, at, "all", "any", "one", "until")
	if !o.ok {
		return
	}
	switch o.requireOne("all", "any", "one") {
	case "all", "any":
		key := "all"
		if o.has("any") {
			key = "any"
		}
		ln, lat, _ := o.get(key)
		if r := resolve(ln); r == nil || r.Kind != yaml.SequenceNode {
			p.errorf(ln, lat, "expected a list of event filters, got %s", describe(ln))
		} else {
			for i, f := range r.Content {
				p.eventFilter(f, lat.index(i))
			}
		}
	case "one":
		fn, fat, _ := o.get("one")
		p.eventFilter(fn, fat)
	}
	if un, uat, ok := o.get("until"); ok {
		if !o.has("any") {
			p.errorf(o.fields["until"].keyNode, at, `"until" applies only with "any"`)
		}
		switch {
		case isString(un):
			p.exprField(un, uat)
		case isMap(un):
			p.eventConsumption(un, uat)
		default:
			p.errorf(un, uat, "expected a runtime expression or an event consumption strategy, got %s", describe(un))
		}
	}
}

func (p *parser) eventFilter(n *yaml.Node, at path) {
	o := p.object(n, at, "with", "correlate")
	if !o.ok {
		return
	}
	if o.require("with") {
		wn, wat, _ := o.get("with")
		if wo := p.openObject(wn, wat); wo.ok {
			if len(wo.fields) == 0 {
				p.errorf(wo.node, wat, "an event filter needs at least one event property")
			}
			p.dataExprs(wn, wat)
		}
	}
	if cn, cat, ok := o.get("correlate"); ok {
		for _, e := range p.namedEntries(cn, cat) {
			eat := cat.key(e.key)
			co := p.object(e.val, eat, "from", "expect")
			if co.require("from") {
				fn, fat, _ := co.get("from")
				p.exprField(fn, fat)
			}
			if s, sn := co.str("expect"); isString(sn) {
				p.exprIfWrapped(sn, eat.key("expect"), s)
			}
		}
	}
}
