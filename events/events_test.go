package events

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/batonflow/baton/expr"
)

func TestValidate(t *testing.T) {
	valid := func() Event {
		return Event{"specversion": "1.0", "id": "1", "source": "/s", "type": "t"}
	}
	tests := []struct {
		name   string
		change func(Event)
		want   string // part of the detail; "" for valid
	}{
		{"valid", func(Event) {}, ""},
		{"missing id", func(e Event) { delete(e, "id") }, "id"},
		{"missing source and type", func(e Event) { delete(e, "source"); delete(e, "type") }, "source, type"},
		{"missing specversion", func(e Event) { delete(e, "specversion") }, "specversion"},
		{"empty type", func(e Event) { e["type"] = "" }, "type"},
		{"other specversion", func(e Event) { e["specversion"] = "0.3" }, `specversion "0.3"`},
		{"bad time", func(e Event) { e["time"] = "yesterday" }, `time "yesterday" is not an RFC 3339`},
		{"good time", func(e Event) { e["time"] = "2025-01-02T03:04:05.123Z" }, ""},
		{"numeric subject", func(e Event) { e["subject"] = 3.0 }, "subject must be a string"},
		{"upper-case extension", func(e Event) { e["traceParent"] = "x" }, "not a valid attribute name"},
		{"extension", func(e Event) { e["traceparent"] = "x" }, ""},
		{"data and data_base64", func(e Event) { e["data"] = 1.0; e["data_base64"] = "AA==" }, "mutually exclusive"},
		{"bad base64", func(e Event) { e["data_base64"] = "***" }, "not valid base64"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := valid()
			tc.change(ev)
			p := Validate(ev)
			switch {
			case tc.want == "" && p != nil:
				t.Fatalf("valid event refused: %s", p.Detail)
			case tc.want != "" && p == nil:
				t.Fatalf("invalid event accepted, want %q", tc.want)
			case tc.want != "" && (!strings.Contains(p.Detail, tc.want) || p.Status != http.StatusBadRequest):
				t.Fatalf("problem %d %q, want 400 mentioning %q", p.Status, p.Detail, tc.want)
			}
		})
	}
}

func TestFromHTTPContentModes(t *testing.T) {
	tests := []struct {
		name    string
		headers map[string]string
		body    string
		want    []Event
		status  int
	}{
		{
			name:    "structured",
			headers: map[string]string{"Content-Type": "application/cloudevents+json; charset=utf-8"},
			body:    `{"specversion":"1.0","id":"a","source":"/s","type":"t","data":{"n":1}}`,
			want:    []Event{{"specversion": "1.0", "id": "a", "source": "/s", "type": "t", "data": map[string]any{"n": 1.0}}},
		},
		{
			name:    "batch",
			headers: map[string]string{"Content-Type": "application/cloudevents-batch+json"},
			body:    `[{"specversion":"1.0","id":"a","source":"/s","type":"t"},{"specversion":"1.0","id":"b","source":"/s","type":"t"}]`,
			want:    []Event{{"specversion": "1.0", "id": "a", "source": "/s", "type": "t"}, {"specversion": "1.0", "id": "b", "source": "/s", "type": "t"}},
		},
		{
			name:    "batch with an invalid entry",
			headers: map[string]string{"Content-Type": "application/cloudevents-batch+json"},
			body:    `[{"specversion":"1.0","id":"a","source":"/s","type":"t"},{"specversion":"1.0","id":"b","source":"/s"}]`,
			status:  400,
		},
		{
			name:    "binary json",
			headers: map[string]string{"Content-Type": "application/json", "Ce-Specversion": "1.0", "Ce-Id": "a", "Ce-Source": "/s", "Ce-Type": "t", "Ce-Traceparent": "00-1"},
			body:    `{"n":1}`,
			want:    []Event{{"specversion": "1.0", "id": "a", "source": "/s", "type": "t", "traceparent": "00-1", "datacontenttype": "application/json", "data": map[string]any{"n": 1.0}}},
		},
		{
			name:    "binary bytes",
			headers: map[string]string{"Content-Type": "application/octet-stream", "Ce-Specversion": "1.0", "Ce-Id": "a", "Ce-Source": "/s", "Ce-Type": "t"},
			body:    "\x00\x01",
			want:    []Event{{"specversion": "1.0", "id": "a", "source": "/s", "type": "t", "datacontenttype": "application/octet-stream", "data_base64": "AAE="}},
		},
		{
			name:    "binary without type",
			headers: map[string]string{"Content-Type": "application/json", "Ce-Specversion": "1.0", "Ce-Id": "a", "Ce-Source": "/s"},
			body:    `{}`,
			status:  400,
		},
		{
			name:    "plain json is not an event",
			headers: map[string]string{"Content-Type": "application/json"},
			body:    `{"specversion":"1.0","id":"a","source":"/s","type":"t"}`,
			status:  415,
		},
		{
			name:    "structured not json",
			headers: map[string]string{"Content-Type": "application/cloudevents+json"},
			body:    `{"id":`,
			status:  400,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/v1/events", strings.NewReader(tc.body))
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			got, p := FromHTTP(r, []byte(tc.body))
			if tc.status != 0 {
				if p == nil || p.Status != tc.status {
					t.Fatalf("got %v, problem %v; want status %d", got, p, tc.status)
				}
				return
			}
			if p != nil {
				t.Fatalf("refused: %s", p.Detail)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("events %#v\nwant %#v", got, tc.want)
			}
		})
	}
}

func order(id string, typ string, data map[string]any) Event {
	return Event{"specversion": "1.0", "id": id, "source": "/orders", "type": typ, "data": data}
}

func consume(t *testing.T, to, expects map[string]any, read string, stream []Event) (*Consumption, []bool) {
	t.Helper()
	s, err := ParseStrategy(to, expects)
	if err != nil {
		t.Fatalf("ParseStrategy: %v", err)
	}
	c := NewConsumption(s, expr.NewEvaluator(), read)
	var took []bool
	for _, ev := range stream {
		ok, p := c.Offer(ev)
		if p != nil {
			t.Fatalf("Offer: %s", p.Detail)
		}
		took = append(took, ok)
	}
	return c, took
}

func TestConsumptionStrategies(t *testing.T) {
	placed := func(id, orderID string, total float64) Event {
		return order(id, "com.shop.order.placed", map[string]any{"orderId": orderID, "total": total})
	}
	paid := func(id, orderID string) Event {
		return order(id, "com.shop.order.paid", map[string]any{"orderId": orderID})
	}
	tests := []struct {
		name    string
		to      map[string]any
		expects map[string]any
		read    string
		stream  []Event
		done    bool
		output  any
	}{
		{
			name:   "one by exact type, data read",
			to:     map[string]any{"one": map[string]any{"with": map[string]any{"type": "com.shop.order.placed"}}},
			stream: []Event{paid("1", "A"), placed("2", "A", 5)},
			done:   true,
			output: []any{map[string]any{"orderId": "A", "total": 5.0}},
		},
		{
			name:   "regular expression on type",
			to:     map[string]any{"one": map[string]any{"with": map[string]any{"type": `com\.shop\.order\.(paid|refunded)`}}},
			stream: []Event{placed("1", "A", 5), paid("2", "A")},
			done:   true,
			read:   "envelope",
			output: []any{paid("2", "A")},
		},
		{
			name:   "data predicate expression",
			to:     map[string]any{"one": map[string]any{"with": map[string]any{"type": "com.shop.order.placed", "data": "${ .total > 10 }"}}},
			stream: []Event{placed("1", "A", 5), placed("2", "B", 50)},
			done:   true,
			output: []any{map[string]any{"orderId": "B", "total": 50.0}},
		},
		{
			name:   "data subset",
			to:     map[string]any{"one": map[string]any{"with": map[string]any{"data": map[string]any{"orderId": "B"}}}},
			stream: []Event{placed("1", "A", 5), placed("2", "B", 50)},
			done:   true,
			output: []any{map[string]any{"orderId": "B", "total": 50.0}},
		},
		{
			name: "correlate with an evaluated expect",
			to: map[string]any{"one": map[string]any{
				"with":      map[string]any{"type": "com.shop.order.placed"},
				"correlate": map[string]any{"order": map[string]any{"from": ".data.orderId", "expect": "${ .orderId }"}},
			}},
			expects: map[string]any{"one": map[string]any{"correlate": map[string]any{"order": map[string]any{"expect": "B"}}}},
			stream:  []Event{placed("1", "A", 5), placed("2", "B", 50)},
			done:    true,
			output:  []any{map[string]any{"orderId": "B", "total": 50.0}},
		},
		{
			name: "all correlated by the first value",
			to: map[string]any{"all": []any{
				map[string]any{"with": map[string]any{"type": "com.shop.order.placed"}, "correlate": map[string]any{"order": map[string]any{"from": ".data.orderId"}}},
				map[string]any{"with": map[string]any{"type": "com.shop.order.paid"}, "correlate": map[string]any{"order": map[string]any{"from": ".data.orderId"}}},
			}},
			stream: []Event{placed("1", "A", 5), paid("2", "B"), placed("3", "B", 7), paid("4", "A")},
			done:   true,
			output: []any{map[string]any{"orderId": "A", "total": 5.0}, map[string]any{"orderId": "A"}},
		},
		{
			name:   "all not complete",
			to:     map[string]any{"all": []any{map[string]any{"with": map[string]any{"type": "com.shop.order.placed"}}, map[string]any{"with": map[string]any{"type": "com.shop.order.paid"}}}},
			stream: []Event{placed("1", "A", 5), placed("2", "B", 5)},
			done:   false,
			output: []any{map[string]any{"orderId": "A", "total": 5.0}},
		},
		{
			name:   "any without until stops at the first",
			to:     map[string]any{"any": []any{map[string]any{"with": map[string]any{"type": "com.shop.order.paid"}}}},
			stream: []Event{placed("1", "A", 5), paid("2", "A"), paid("3", "B")},
			done:   true,
			output: []any{map[string]any{"orderId": "A"}},
		},
		{
			name:   "empty any with an until condition",
			to:     map[string]any{"any": []any{}, "until": "( . | length ) > 2"},
			stream: []Event{placed("1", "A", 5), paid("2", "A"), paid("3", "B"), paid("4", "C")},
			done:   true,
			output: []any{map[string]any{"orderId": "A", "total": 5.0}, map[string]any{"orderId": "A"}, map[string]any{"orderId": "B"}},
		},
		{
			name: "any until an event, which is not output",
			to: map[string]any{
				"any":   []any{map[string]any{"with": map[string]any{"type": "com.shop.order.placed"}}},
				"until": map[string]any{"one": map[string]any{"with": map[string]any{"type": "com.shop.closed"}}},
			},
			stream: []Event{placed("1", "A", 5), placed("2", "B", 5), order("3", "com.shop.closed", nil), placed("4", "C", 5)},
			done:   true,
			output: []any{map[string]any{"orderId": "A", "total": 5.0}, map[string]any{"orderId": "B", "total": 5.0}},
		},
		{
			name:   "raw reads the data as text",
			to:     map[string]any{"one": map[string]any{"with": map[string]any{"id": "1"}}},
			read:   "raw",
			stream: []Event{paid("1", "A")},
			done:   true,
			output: []any{`{"orderId":"A"}`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := consume(t, tc.to, tc.expects, tc.read, tc.stream)
			if c.Done() != tc.done {
				t.Fatalf("done = %v, want %v", c.Done(), tc.done)
			}
			if got := c.Output(); !reflect.DeepEqual(got, tc.output) {
				t.Fatalf("output %#v\nwant %#v", got, tc.output)
			}
		})
	}
}

func TestParseStrategyErrors(t *testing.T) {
	tests := []struct {
		name string
		to   map[string]any
		want string
	}{
		{"no mode", map[string]any{}, "exactly one of"},
		{"two modes", map[string]any{"one": map[string]any{}, "any": []any{}}, "exactly one of"},
		{"empty all", map[string]any{"all": []any{}}, "at least one"},
		{"correlate without from", map[string]any{"one": map[string]any{"correlate": map[string]any{"k": map[string]any{}}}}, "from is required"},
		{"bad until", map[string]any{"any": []any{}, "until": "(("}, "until"},
		{"unevaluated expect", map[string]any{"one": map[string]any{"correlate": map[string]any{"k": map[string]any{"from": ".id", "expect": "${ .x }"}}}}, "not evaluated"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseStrategy(tc.to, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}
