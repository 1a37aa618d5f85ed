package dsl

import (
	"go.yaml.in/yaml/v3"

	"github.com/batonflow/baton/expr"
)

// exprField checks a field that is a runtime expression by definition (`if`,
// `when`, `for.in`, `while`, `exceptWhen`, and input.from, output.as and
// export.as when they are strings): the `${ }` around it is optional.
func (p *parser) exprField(n *yaml.Node, at path) (string, bool) {
	s, ok := p.str(n, at)
	if !ok {
		return "", false
	}
	src, _ := expr.Unwrap(s)
	return s, p.checkJQ(n, at, src)
}

// exprIfWrapped checks a string that is a runtime expression only when it is
// wrapped in `${ }`; any other string is a literal.
func (p *parser) exprIfWrapped(n *yaml.Node, at path, s string) bool {
	src, ok := expr.Unwrap(s)
	if !ok {
		return true
	}
	return p.checkJQ(n, at, src)
}

func (p *parser) checkJQ(n *yaml.Node, at path, src string) bool {
	if isBlank(src) {
		p.errorf(n, at, "empty runtime expression")
		return false
	}
	if err := expr.Check(src); err != nil {
		p.errorf(n, at, "invalid runtime expression: %v", err)
		return false
	}
	return true
}

// dataExprs checks every `${ }` string inside data that is kept as it is and
// evaluated at run time (call arguments, `set`, event properties...).
func (p *parser) dataExprs(n *yaml.Node, at path) {
	n = resolve(n)
	if n == nil {
		return
	}
	switch n.Kind {
	case yaml.MappingNode:
		entries, _ := p.mapping(n, at)
		for _, e := range entries {
			p.dataExprs(e.val, at.key(e.key))
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p.dataExprs(c, at.index(i))
		}
	case yaml.ScalarNode:
		if n.ShortTag() == "!!str" {
			p.exprIfWrapped(n, at, n.Value)
		}
	}
}

func isBlank(s string) bool {
	for _, r := range s {
		if r != ' ' && r != '\t' && r != '\n' && r != '\r' {
			return false
		}
	}
	return true
}
