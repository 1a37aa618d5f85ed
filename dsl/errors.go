package dsl

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Error is one problem found in a workflow document.
type Error struct {
	File string
	Pos  Pos
	// Path locates the problem in the document's structure, e.g.
	// "do[1].getPet.call".
	Path string
	Msg  string
}

// Error formats the problem as `file:line:col: path: msg`, leaving out the
// parts that are empty.
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteByte(':')
	}
	fmt.Fprintf(&b, "%d:%d: ", e.Pos.Line, e.Pos.Col)
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ErrorList is every problem found in a document, sorted by position. Parse
// returns it as its error so that a user sees all problems at once.
type ErrorList []*Error

// Error lists the problems one per line.
func (l ErrorList) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes the individual problems to errors.Is and errors.As.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// sortAndDedupe orders the problems by position and drops exact repeats,
// which arise when the same node is read by more than one pass (for example
// when a task's definition is converted to data for both the workflow's and
// the task's Raw).
func (l ErrorList) sortAndDedupe() ErrorList {
	slices.SortStableFunc(l, func(a, b *Error) int {
		return cmp.Or(
			cmp.Compare(a.Pos.Line, b.Pos.Line),
			cmp.Compare(a.Pos.Col, b.Pos.Col),
			cmp.Compare(a.Path, b.Path),
			cmp.Compare(a.Msg, b.Msg),
		)
	})
	return slices.CompactFunc(l, func(a, b *Error) bool { return *a == *b })
}
