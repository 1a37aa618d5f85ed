package dsl

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// object is a map node read as a DSL object: a set of named properties.
type object struct {
	p      *parser
	node   *yaml.Node
	at     path
	fields map[string]entry
	ok     bool
}

// object reads a map whose properties must be among allowed (the schema's
// `unevaluatedProperties: false`). An unknown property is reported with the
// list of valid ones, as a typo is the usual cause.
func (p *parser) object(n *yaml.Node, at path, allowed ...string) object {
	return p.objectOf(n, at, "", allowed)
}

// objectOf is object with a description of what the map is ("a call task"),
// added to unknown-property messages.
func (p *parser) objectOf(n *yaml.Node, at path, what string, allowed []string) object {
	o := p.openObject(n, at)
	if !o.ok {
		return o
	}
	for k, e := range o.fields {
		if !contains(allowed, k) {
			suffix := ""
			if what != "" {
				suffix = " for " + what
			}
			p.errorf(e.keyNode, at, "unknown property %q%s (valid: %s)", k, suffix, strings.Join(allowed, ", "))
		}
	}
	return o
}

// openObject reads a map that may hold any property.
func (p *parser) openObject(n *yaml.Node, at path) object {
	o := object{p: p, node: resolve(n), at: at, fields: map[string]entry{}}
	entries, ok := p.mapping(n, at)
	if !ok {
		return o
	}
	o.ok = true
	for _, e := range entries {
		o.fields[e.key] = e
	}
	return o
}

// get returns a property's value node and its path.
func (o object) get(key string) (*yaml.Node, path, bool) {
	e, ok := o.fields[key]
	if !ok {
		return nil, o.at.key(key), false
	}
	return e.val, o.at.key(key), true
}

func (o object) has(key string) bool {
	_, ok := o.fields[key]
	return ok
}

// require reports each missing property.
func (o object) require(keys ...string) bool {
	if !o.ok {
		return false
	}
	all := true
	for _, k := range keys {
		if !o.has(k) {
			o.p.errorf(o.node, o.at, "missing required property %q", k)
			all = false
		}
	}
	return all
}

// requireOne reports unless exactly one of keys is present, and returns it.
func (o object) requireOne(keys ...string) string {
	if !o.ok {
		return ""
	}
	var present []string
	for _, k := range keys {
		if o.has(k) {
			present = append(present, k)
		}
	}
	switch len(present) {
	case 1:
		return present[0]
	case 0:
		o.p.errorf(o.node, o.at, "expected one of %s", quoteList(keys))
	default:
		o.p.errorf(o.fields[present[1]].keyNode, o.at, "expected only one of %s, got %s", quoteList(keys), quoteList(present))
	}
	return ""
}

// str reads an optional string property.
func (o object) str(key string) (string, *yaml.Node) {
	n, at, ok := o.get(key)
	if !ok {
		return "", nil
	}
	s, _ := o.p.str(n, at)
	return s, n
}

// enum reads an optional string property that must be one of values.
func (o object) enum(key string, values ...string) string {
	s, n := o.str(key)
	if n == nil || !isString(n) {
		return ""
	}
	if !contains(values, s) {
		o.p.errorf(n, o.at.key(key), "invalid value %q (valid: %s)", s, strings.Join(values, ", "))
		return ""
	}
	return s
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func quoteList(keys []string) string {
	q := make([]string, len(keys))
	for i, k := range keys {
		q[i] = fmt.Sprintf("%q", k)
	}
	switch len(q) {
	case 0:
		return ""
	case 1:
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}
