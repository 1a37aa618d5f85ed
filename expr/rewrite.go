package expr

import "github.com/itchyny/gojq"

// guardQuery rewrites a parsed program in place so that every `+` and `*`
// (with `+=`, `*=` and string interpolation) goes through the size-checked
// operators. Each rewrite keeps gojq's own evaluation order: a custom
// function's arguments are evaluated exactly like an operator's operands.
func guardQuery(q *gojq.Query) {
	if q == nil {
		return
	}
	for _, fd := range q.FuncDefs {
		guardQuery(fd.Body)
	}
	guardQuery(q.Left)
	guardQuery(q.Right)
	guardTerm(q.Term)
	for _, p := range q.Patterns {
		guardPattern(p)
	}
	switch q.Op {
	case gojq.OpAdd, gojq.OpMul:
		name := addFunc
		if q.Op == gojq.OpMul {
			name = mulFunc
		}
		call := callTerm(name, q.Left, q.Right)
		*q = gojq.Query{Term: call}
	case gojq.OpUpdateAdd, gojq.OpUpdateMul:
		// l += r is `r as $x | l |= . + $x`, which is how gojq runs it.
		name := addFunc
		if q.Op == gojq.OpUpdateMul {
			name = mulFunc
		}
		const v = "$__baton_rhs"
		update := &gojq.Query{Term: callTerm(name,
			&gojq.Query{Term: &gojq.Term{Type: gojq.TermTypeIdentity}},
			&gojq.Query{Term: &gojq.Term{Type: gojq.TermTypeFunc, Func: &gojq.Func{Name: v}}})}
		body := &gojq.Query{Left: q.Left, Op: gojq.OpModify, Right: update}
		*q = gojq.Query{
			Left:     q.Right,
			Patterns: []*gojq.Pattern{{Name: v}},
			Op:       gojq.OpPipe,
			Right:    body,
		}
	}
}

func callTerm(name string, l, r *gojq.Query) *gojq.Term {
	return &gojq.Term{Type: gojq.TermTypeFunc, Func: &gojq.Func{Name: name, Args: []*gojq.Query{l, r}}}
}

func guardTerm(t *gojq.Term) {
	if t == nil {
		return
	}
	guardIndex(t.Index)
	if t.Func != nil {
		for _, a := range t.Func.Args {
			guardQuery(a)
		}
	}
	if t.Object != nil {
		for _, kv := range t.Object.KeyVals {
			guardString(kv.KeyString)
			guardQuery(kv.KeyQuery)
			guardQuery(kv.Val)
		}
	}
	if t.Array != nil {
		guardQuery(t.Array.Query)
	}
	if t.Unary != nil {
		guardTerm(t.Unary.Term)
	}
	if t.Str != nil {
		guardString(t.Str)
		if len(t.Str.Queries) > 0 {
			// An interpolated string is the sum of its parts.
			f := &gojq.Term{Type: gojq.TermTypeFunc, Func: &gojq.Func{Name: "tostring"}}
			if t.Type == gojq.TermTypeFormat {
				f = &gojq.Term{Type: gojq.TermTypeFormat, Format: t.Format}
			}
			*t = gojq.Term{Type: gojq.TermTypeQuery, Query: interpolation(t.Str, f), SuffixList: t.SuffixList}
		}
	}
	if t.If != nil {
		guardQuery(t.If.Cond)
		guardQuery(t.If.Then)
		for _, e := range t.If.Elif {
			guardQuery(e.Cond)
			guardQuery(e.Then)
		}
		guardQuery(t.If.Else)
	}
	if t.Try != nil {
		guardQuery(t.Try.Body)
		guardQuery(t.Try.Catch)
	}
	if t.Reduce != nil {
		guardQuery(t.Reduce.Query)
		guardQuery(t.Reduce.Start)
		guardQuery(t.Reduce.Update)
		for _, p := range t.Reduce.Patterns {
			guardPattern(p)
		}
	}
	if t.Foreach != nil {
		guardQuery(t.Foreach.Query)
		guardQuery(t.Foreach.Start)
		guardQuery(t.Foreach.Update)
		guardQuery(t.Foreach.Extract)
		for _, p := range t.Foreach.Patterns {
			guardPattern(p)
		}
	}
	if t.Label != nil {
		guardQuery(t.Label.Body)
	}
	guardQuery(t.Query)
	for _, s := range t.SuffixList {
		guardIndex(s.Index)
	}
}

func guardIndex(i *gojq.Index) {
	if i == nil {
		return
	}
	guardString(i.Str)
	guardQuery(i.Start)
	guardQuery(i.End)
}

func guardString(s *gojq.String) {
	if s == nil {
		return
	}
	for _, q := range s.Queries {
		guardQuery(q)
	}
}

func guardPattern(p *gojq.Pattern) {
	if p == nil {
		return
	}
	for _, e := range p.Array {
		guardPattern(e)
	}
	for _, o := range p.Object {
		guardString(o.KeyString)
		guardQuery(o.KeyQuery)
		guardPattern(o.Val)
	}
}

// interpolation builds the sum of an interpolated string's parts, each
// embedded value formatted by f (tostring, or the string's @format), as
// gojq compiles it.
func interpolation(s *gojq.String, f *gojq.Term) *gojq.Query {
	var sum *gojq.Query
	for _, e := range s.Queries {
		if e.Term == nil || e.Term.Str == nil {
			e = &gojq.Query{Left: e, Op: gojq.OpPipe, Right: &gojq.Query{Term: f}}
		}
		if sum == nil {
			sum = e
		} else {
			sum = &gojq.Query{Term: callTerm(addFunc, sum, e)}
		}
	}
	return sum
}
