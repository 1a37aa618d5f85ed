package expr

import (
	"testing"

	"github.com/itchyny/gojq"
)

var benchSrc = `{greeting: ("Hello, " + .name + "!"), total: (.items | map(.price * .qty) | add), big: (.items | length > 1)}`
var benchIn = map[string]any{"name": "Ada", "items": []any{map[string]any{"price": 2.0, "qty": 3.0}, map[string]any{"price": 5.0, "qty": 1.0}}}

// BenchmarkGuarded is a typical data-shaping expression with the limits
// on; BenchmarkPlain the same with gojq alone, without any bound.
func BenchmarkGuarded(b *testing.B) {
	e := NewEvaluator()
	for b.Loop() {
		if _, err := e.Eval(benchSrc, benchIn, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPlain(b *testing.B) {
	q, _ := gojq.Parse(benchSrc)
	c, _ := gojq.Compile(q)
	for b.Loop() {
		c.Run(benchIn).Next()
	}
}
