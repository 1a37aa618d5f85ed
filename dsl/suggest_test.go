package dsl

import (
	"errors"
	"strings"
	"testing"
)

func TestMisspelledTaskKindGetsASuggestion(t *testing.T) {
	tests := []struct {
		task, want string
	}{
		{"cal: http", "; did you mean call (not cal)?"},
		{"sett:\n          a: 1", "; did you mean set (not sett)?"},
		{"lsiten:\n          to: {}", "; did you mean listen (not lsiten)?"},
		{"if: ${ true }\n        rasie: {}", "; did you mean raise (not rasie)?"},
		{"frobnicate: true", "wait"}, // no kind is near: the message ends with the list
	}
	for _, tt := range tests {
		src := "document:\n  dsl: '1.0.0'\n  namespace: default\n  name: typo\n  version: '0.1.0'\ndo:\n  - first:\n        " + tt.task + "\n"
		_, err := Parse("t.yaml", []byte(src))
		var list ErrorList
		if !errors.As(err, &list) || len(list) != 1 {
			t.Fatalf("%q: got %v, want one error", tt.task, err)
		}
		msg := list[0].Msg
		if !strings.HasPrefix(msg, "expected a task: a map with one of ") || !strings.HasSuffix(msg, tt.want) {
			t.Errorf("%q: message %q, want it to end with %q", tt.task, msg, tt.want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"cal", "call", 1}, {"call", "call", 0}, {"sett", "set", 1}, {"lsiten", "listen", 2}, {"abc", "", 3}} {
		if got := editDistance(tt.a, tt.b); got != tt.d {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.d)
		}
	}
}
