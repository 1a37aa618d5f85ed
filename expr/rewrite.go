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
		guardAssignment(body)
		*q = gojq.Query{
			Left:     q.Right,
			Patterns: []*gojq.Pattern{{Name: v}},
			Op:       gojq.OpPipe,
			Right:    body,
		}
	case gojq.OpAssign, gojq.OpModify, gojq.OpUpdateSub, gojq.OpUpdateDiv, gojq.OpUpdateMod, gojq.OpUpdateAlt:
		guardAssignment(q)
	case gojq.OpEq, gojq.OpNe, gojq.OpLt, gojq.OpLe, gojq.OpGt, gojq.OpGe:
		// Comparing walks both sides whole.
		q.Left, q.Right = measured(q.Left), measured(q.Right)
	}
}

// guardAssignment makes an assignment check the paths it writes first: an
// index far past an array's end (`.[1e8] = 1`) would otherwise allocate
// the whole array in one step. l = r becomes
//
//	(reduce try path(l) as $p (null; $p | _baton_path)) as $ok | l = r
//
// which fails like the assignment would, or runs it unchanged.
func guardAssignment(q *gojq.Query) {
	target, err := gojq.Parse(q.Left.String())
	if err != nil {
		// Printing a parsed program parses again; if it ever does not,
		// the assignment runs unchecked rather than not at all.
		return
	}
	guardQuery(target)
	const p, ok = "$__baton_path", "$__baton_ok"
	check := &gojq.Query{Term: &gojq.Term{Type: gojq.TermTypeReduce, Reduce: &gojq.Reduce{
		// A path that cannot be computed is left for the assignment to
		// report, with its own message.
		Query: &gojq.Query{Term: &gojq.Term{Type: gojq.TermTypeTry, Try: &gojq.Try{Body: &gojq.Query{
			Term: &gojq.Term{Type: gojq.TermTypeFunc, Func: &gojq.Func{Name: "path", Args: []*gojq.Query{target}}}}}}},
		Patterns: []*gojq.Pattern{{Name: p}},
		Start:    &gojq.Query{Term: &gojq.Term{Type: gojq.TermTypeNull}},
		Update:   pipe(&gojq.Query{Term: &gojq.Term{Type: gojq.TermTypeFunc, Func: &gojq.Func{Name: p}}}, pathFunc),
	}}}
	assign := *q
	*q = gojq.Query{Left: check, Patterns: []*gojq.Pattern{{Name: ok}}, Op: gojq.OpPipe, Right: &assign}
}

func pipe(l *gojq.Query, name string) *gojq.Query {
	return &gojq.Query{Left: l, Op: gojq.OpPipe, Right: &gojq.Query{Term: &gojq.Term{Type: gojq.TermTypeFunc, Func: &gojq.Func{Name: name}}}}
}

// bounded lists the built-ins (by name, with their arities) that do, in
// one step, work or allocation that grows with the whole of their input
// and arguments, a part shared many times counted each time it appears:
// those are measured first. `[., .] | add` doubles a value in one step;
// `tojson`, `==` or `sort` on a value built by sharing
// (`reduce range(40) as $i (0; [., .])`) would walk every copy.
var bounded = map[string][]int{
	"tojson": {0}, "tostring": {0}, "flatten": {0, 1}, "add": {0}, "join": {1},
	"sort": {0}, "unique": {0}, "contains": {1}, "inside": {1}, "indices": {1},
}

func boundedCall(t *gojq.Term) bool {
	switch t.Type {
	case gojq.TermTypeFormat:
		return t.Str == nil
	case gojq.TermTypeFunc:
		for _, arity := range bounded[t.Func.Name] {
			if arity == len(t.Func.Args) {
				return true
			}
		}
	}
	return false
}

// measured pipes a query's outputs through the size check.
func measured(q *gojq.Query) *gojq.Query { return pipe(q, sizeFunc) }

func callTerm(name string, l, r *gojq.Query) *gojq.Term {
	return &gojq.Term{Type: gojq.TermTypeFunc, Func: &gojq.Func{Name: name, Args: []*gojq.Query{l, r}}}
}

func guardTerm(t *gojq.Term) {
	if t == nil {
		return
	}
	if t.Type == gojq.TermTypeFunc && t.Func.Name == "add" && len(t.Func.Args) == 1 {
		// add(f) is [f] | add: the collected array is what gets measured.
		f := t.Func.Args[0]
		*t = gojq.Term{Type: gojq.TermTypeQuery, SuffixList: t.SuffixList, Query: &gojq.Query{
			Left:  &gojq.Query{Term: &gojq.Term{Type: gojq.TermTypeArray, Array: &gojq.Array{Query: f}}},
			Op:    gojq.OpPipe,
			Right: &gojq.Query{Term: &gojq.Term{Type: gojq.TermTypeFunc, Func: &gojq.Func{Name: "add"}}},
		}}
	}
	if boundedCall(t) {
		inner := *t
		inner.SuffixList = nil
		if inner.Func != nil {
			args := make([]*gojq.Query, len(inner.Func.Args))
			for i, a := range inner.Func.Args {
				guardQuery(a)
				args[i] = measured(a)
			}
			inner.Func = &gojq.Func{Name: inner.Func.Name, Args: args}
		}
		q := &gojq.Query{
			Left:  &gojq.Query{Term: &gojq.Term{Type: gojq.TermTypeFunc, Func: &gojq.Func{Name: sizeFunc}}},
			Op:    gojq.OpPipe,
			Right: &gojq.Query{Term: &inner},
		}
		suffixes := t.SuffixList
		*t = gojq.Term{Type: gojq.TermTypeQuery, Query: q, SuffixList: suffixes}
		for _, s := range suffixes {
			guardIndex(s.Index)
		}
		return
	}
	if t.Type == gojq.TermTypeFunc && t.Func.Name == "setpath" && len(t.Func.Args) == 2 {
		t.Func.Args[0] = pipe(t.Func.Args[0], pathFunc)
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
