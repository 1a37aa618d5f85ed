package dsl

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxExpandedNodes bounds the size of a document once its aliases are
// expanded, so that a small "billion laughs" document cannot make the
// conversion to plain data exhaust memory.
const maxExpandedNodes = 1 << 18

// path is a readable location in a document: keys joined by dots, list
// indexes in brackets, e.g. `do[1].getPet.with`.
type path string

var plainKey = regexp.MustCompile(`^[A-Za-z_$][A-Za-z0-9_$-]*$`)

func (p path) key(k string) path {
	if !plainKey.MatchString(k) {
		return p + path("["+strconv.Quote(k)+"]")
	}
	if p == "" {
		return path(k)
	}
	return p + "." + path(k)
}

func (p path) index(i int) path {
	return p + path("["+strconv.Itoa(i)+"]")
}

// pointer appends a reference token to a JSON pointer (RFC 6901).
func pointer(base string, token string) string {
	token = strings.ReplaceAll(token, "~", "~0")
	token = strings.ReplaceAll(token, "/", "~1")
	return base + "/" + token
}

func pointerIndex(base string, i int) string {
	return base + "/" + strconv.Itoa(i)
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// decodeYAML reads a single YAML (or JSON) document. Syntax errors carry the
// line the YAML library reports; it does not report a column.
func decodeYAML(src []byte) (root *yaml.Node, err error) {
	defer func() {
		// The YAML library has panicked on malformed input in the past;
		// a bad document must not take the server down with it.
		if r := recover(); r != nil {
			root, err = nil, fmt.Errorf("yaml: %v", r)
		}
	}()
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, errors.New("the document is empty")
	}
	return doc.Content[0], nil
}

// syntaxError converts an error of the YAML library into an Error.
func syntaxError(file string, err error) *Error {
	msg := err.Error()
	line := 1
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		if n, convErr := strconv.Atoi(m[1]); convErr == nil && n > 0 {
			line = n
		}
		msg = msg[len(m[0]):]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	return &Error{File: file, Pos: Pos{Line: line, Col: 1}, Msg: "invalid YAML: " + msg}
}

// checkExpansion measures the document with its aliases expanded and
// rejects one that grows beyond maxExpandedNodes or whose aliases refer to
// themselves.
func checkExpansion(root *yaml.Node) error {
	sizes := make(map[*yaml.Node]int)
	active := make(map[*yaml.Node]bool)
	var size func(n *yaml.Node) (int, error)
	size = func(n *yaml.Node) (int, error) {
		if n == nil {
			return 0, nil
		}
		if s, ok := sizes[n]; ok {
			return s, nil
		}
		if active[n] {
			return 0, fmt.Errorf("line %d: an alias refers to a node that contains it", n.Line)
		}
		active[n] = true
		defer delete(active, n)
		total := 1
		children := n.Content
		if n.Kind == yaml.AliasNode {
			children = []*yaml.Node{n.Alias}
		}
		for _, c := range children {
			s, err := size(c)
			if err != nil {
				return 0, err
			}
			total += s
			if total > maxExpandedNodes {
				return 0, fmt.Errorf("the document expands to more than %d nodes through its aliases", maxExpandedNodes)
			}
		}
		sizes[n] = total
		return total, nil
	}
	_, err := size(root)
	return err
}

// resolve follows aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func posOf(n *yaml.Node) Pos {
	if n == nil || n.Line <= 0 {
		return Pos{Line: 1, Col: 1}
	}
	return Pos{Line: n.Line, Col: max(n.Column, 1)}
}

// describe names the kind of a node for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	n = resolve(n)
	if n == nil {
		return "nothing"
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a map"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!str":
			return "a string"
		case "!!int", "!!float":
			return "a number"
		case "!!bool":
			return "a boolean"
		case "!!null":
			return "null"
		default:
			return "a " + strings.TrimPrefix(n.ShortTag(), "!!")
		}
	}
	return "an unexpected YAML node"
}

func isMap(n *yaml.Node) bool { n = resolve(n); return n != nil && n.Kind == yaml.MappingNode }
func isList(n *yaml.Node) bool {
	n = resolve(n)
	return n != nil && n.Kind == yaml.SequenceNode
}
func isString(n *yaml.Node) bool {
	n = resolve(n)
	return n != nil && n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str"
}

// entry is one key/value pair of a map, with the value's aliases resolved.
type entry struct {
	key     string
	keyNode *yaml.Node
	val     *yaml.Node
}

// mapping returns the entries of a map node in document order, with merge
// keys (`<<: *base`) expanded; keys written out take precedence over merged
// ones. It reports a type error when n is not a map.
func (p *parser) mapping(n *yaml.Node, at path) ([]entry, bool) {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		p.errorf(n, at, "expected a map, got %s", describe(n))
		return nil, false
	}
	var own, merged []entry
	seen := make(map[string]*yaml.Node)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		rk := resolve(k)
		if rk.Kind == yaml.ScalarNode && rk.ShortTag() == "!!merge" {
			merged = append(merged, p.mergeEntries(v, at)...)
			continue
		}
		if rk.Kind != yaml.ScalarNode {
			p.errorf(k, at, "map keys must be strings, got %s", describe(rk))
			continue
		}
		if first, dup := seen[rk.Value]; dup {
			p.errorf(k, at, "duplicate key %q (first at line %d)", rk.Value, first.Line)
			continue
		}
		seen[rk.Value] = k
		own = append(own, entry{key: rk.Value, keyNode: k, val: v})
	}
	for _, e := range merged {
		if _, dup := seen[e.key]; !dup {
			seen[e.key] = e.keyNode
			own = append(own, e)
		}
	}
	return own, true
}

func (p *parser) mergeEntries(v *yaml.Node, at path) []entry {
	switch {
	case v != nil && v.Kind == yaml.MappingNode:
		es, _ := p.mapping(v, at)
		return es
	case v != nil && v.Kind == yaml.SequenceNode:
		var all []entry
		for _, item := range v.Content {
			item = resolve(item)
			if item == nil || item.Kind != yaml.MappingNode {
				p.errorf(item, at, "a merge key (<<) takes a map or a list of maps, got %s", describe(item))
				continue
			}
			es, _ := p.mapping(item, at)
			all = append(all, es...)
		}
		return all
	default:
		p.errorf(v, at, "a merge key (<<) takes a map or a list of maps, got %s", describe(v))
		return nil
	}
}

// data converts a node to plain JSON data: map[string]any, []any, string,
// float64, bool or nil.
func (p *parser) data(n *yaml.Node, at path) any {
	n = resolve(n)
	if n == nil {
		return nil
	}
	switch n.Kind {
	case yaml.MappingNode:
		entries, _ := p.mapping(n, at)
		m := make(map[string]any, len(entries))
		for _, e := range entries {
			m[e.key] = p.data(e.val, at.key(e.key))
		}
		return m
	case yaml.SequenceNode:
		l := make([]any, len(n.Content))
		for i, c := range n.Content {
			l[i] = p.data(c, at.index(i))
		}
		return l
	case yaml.ScalarNode:
		return p.scalar(n, at)
	}
	p.errorf(n, at, "unexpected YAML node")
	return nil
}

func (p *parser) scalar(n *yaml.Node, at path) any {
	switch n.ShortTag() {
	case "!!null":
		return nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			p.errorf(n, at, "invalid boolean %q", n.Value)
			return nil
		}
		return b
	case "!!int", "!!float":
		var f float64
		if err := n.Decode(&f); err != nil {
			p.errorf(n, at, "invalid number %q", n.Value)
			return nil
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			p.errorf(n, at, "%s is not a JSON number", n.Value)
			return nil
		}
		return f
	case "!!binary":
		var s string
		if err := n.Decode(&s); err != nil {
			p.errorf(n, at, "invalid base64 in !!binary value")
			return nil
		}
		return s
	default:
		// Strings, timestamps (kept as written, as JSON has no time type)
		// and values with custom tags.
		return n.Value
	}
}

// mapData converts a node that must be a map.
func (p *parser) mapData(n *yaml.Node, at path) map[string]any {
	if !isMap(n) {
		p.errorf(n, at, "expected a map, got %s", describe(n))
		return nil
	}
	m, _ := p.data(n, at).(map[string]any)
	return m
}

// str reads a string scalar.
func (p *parser) str(n *yaml.Node, at path) (string, bool) {
	if !isString(n) {
		p.errorf(n, at, "expected a string, got %s", describe(n))
		return "", false
	}
	return resolve(n).Value, true
}

func (p *parser) boolean(n *yaml.Node, at path) (bool, bool) {
	r := resolve(n)
	if r == nil || r.Kind != yaml.ScalarNode || r.ShortTag() != "!!bool" {
		p.errorf(n, at, "expected a boolean, got %s", describe(n))
		return false, false
	}
	b, ok := p.scalar(r, at).(bool)
	return b, ok
}

// integer reads a whole number; JSON producers sometimes write 404 as
// 404.0, which is accepted.
func (p *parser) integer(n *yaml.Node, at path) (int64, bool) {
	r := resolve(n)
	if r == nil || r.Kind != yaml.ScalarNode || (r.ShortTag() != "!!int" && r.ShortTag() != "!!float") {
		p.errorf(n, at, "expected an integer, got %s", describe(n))
		return 0, false
	}
	var i int64
	if err := r.Decode(&i); err == nil {
		return i, true
	}
	f, ok := p.scalar(r, at).(float64)
	if !ok {
		return 0, false
	}
	if f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
		p.errorf(n, at, "expected an integer, got %s", r.Value)
		return 0, false
	}
	return int64(f), true
}

// stringList reads a list of strings.
func (p *parser) stringList(n *yaml.Node, at path) []string {
	r := resolve(n)
	if r == nil || r.Kind != yaml.SequenceNode {
		p.errorf(n, at, "expected a list, got %s", describe(n))
		return nil
	}
	out := make([]string, 0, len(r.Content))
	for i, c := range r.Content {
		if s, ok := p.str(c, at.index(i)); ok {
			out = append(out, s)
		}
	}
	return out
}
