package events

import (
	"bytes"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"github.com/batonflow/baton/expr"
)

// TestFilterExpressionFailureIsNoMatch: a `with` or `correlate.from`
// expression that fails on an arriving event makes that event not match,
// says why at debug level, and the listen goes on to the next event.
func TestFilterExpressionFailureIsNoMatch(t *testing.T) {
	odd := Event{"specversion": "1.0", "id": "odd", "source": "/orders", "type": "order", "data": "not an object"}
	good := order("good", "order", map[string]any{"items": []any{1.0, 2.0}, "orderId": "A"})
	cases := []struct {
		name string
		to   map[string]any
	}{
		{"with.data", map[string]any{"one": map[string]any{"with": map[string]any{"data": "${ (.items | length) > 1 }"}}}},
		{"correlate.from", map[string]any{"one": map[string]any{"correlate": map[string]any{
			"order": map[string]any{"from": ".data | keys | .[0]", "expect": "items"}}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := ParseStrategy(c.to, c.to)
			if err != nil {
				t.Fatal(err)
			}
			var logged bytes.Buffer
			cons := NewConsumption(s, expr.NewEvaluator(), "")
			cons.SetLogger(slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug})))
			for _, ev := range []Event{odd, good} {
				if _, p := cons.Offer(ev); p != nil {
					t.Fatalf("offering event %s faulted: %s", ev["id"], p.Detail)
				}
			}
			if !cons.Done() || !reflect.DeepEqual(cons.Consumed(), []Event{good}) {
				t.Errorf("consumed %v, want only the good event", cons.Consumed())
			}
			if log := logged.String(); !strings.Contains(log, "event=odd") || !strings.Contains(log, "filter expression failed") {
				t.Errorf("debug log %q does not say why event odd did not match", log)
			}
		})
	}
	// until reads what was consumed: its failure is the workflow's fault.
	s, err := ParseStrategy(map[string]any{"any": []any{}, "until": "${ .[-1] | length > 1 }"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cons := NewConsumption(s, expr.NewEvaluator(), "")
	if _, p := cons.Offer(order("1", "x", nil)); p != nil {
		t.Fatalf("until on null data: %v", p)
	}
	if _, p := cons.Offer(Event{"id": "2", "data": true}); p == nil {
		t.Errorf("a failing until expression did not fault")
	}
}
