package events

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"regexp"
	"sort"

	"github.com/batonflow/baton/expr"
	"github.com/batonflow/baton/problem"
)

// Strategy is a parsed event consumption strategy (listen.to,
// schedule.on, and the events form of until).
type Strategy struct {
	// Mode is "one", "any" or "all".
	Mode    string
	Filters []*Filter
	// Until ends an `any` when its own strategy is satisfied (the events
	// it consumes are not part of the output) ...
	Until *Strategy
	// ... or when this expression, evaluated over the events consumed so
	// far (as read), is true.
	UntilExpr string
}

// Filter is an event filter: attribute conditions (`with`) and
// correlations.
type Filter struct {
	With      map[string]*condition
	Correlate []*Correlation
}

// Correlation extracts a value from an event (From, a jq expression over
// the whole event) and compares it with Expect, or, when Expect is unset,
// with the value the first correlated event had.
type Correlation struct {
	Name      string
	From      string
	Expect    any
	HasExpect bool
}

// condition is one entry of a filter's `with`: an attribute's expected
// value, possibly a runtime expression (a predicate over the attribute's
// value) or a regular expression; objects match as subsets.
type condition struct {
	expr    string // jq source when the value is a ${ } expression
	literal string // the string as written
	isText  bool
	re      *regexp.Regexp // set when the string is also a valid regexp
	fields  map[string]*condition
	value   any // anything else, compared as JSON data
}

// ParseStrategy reads an event consumption strategy as the DSL parser kept
// it (plain data). expects, when not nil, is the same strategy with its
// runtime expressions already evaluated against the workflow's data: the
// correlations' `expect` values are taken from it, while `with` and
// `from`, which are about the event, are taken from raw.
func ParseStrategy(raw, expects map[string]any) (*Strategy, error) {
	s := &Strategy{}
	modes := 0
	for _, mode := range []string{"one", "any", "all"} {
		v, ok := raw[mode]
		if !ok {
			continue
		}
		modes++
		s.Mode = mode
		ev, _ := expects[mode]
		if mode == "one" {
			f, err := parseFilter(v, ev, "one")
			if err != nil {
				return nil, err
			}
			s.Filters = []*Filter{f}
			continue
		}
		list, ok := v.([]any)
		if !ok && v != nil {
			return nil, fmt.Errorf("%s must be a list of event filters", mode)
		}
		evList, _ := ev.([]any)
		for i, item := range list {
			var itemExpects any
			if i < len(evList) {
				itemExpects = evList[i]
			}
			f, err := parseFilter(item, itemExpects, fmt.Sprintf("%s[%d]", mode, i))
			if err != nil {
				return nil, err
			}
			s.Filters = append(s.Filters, f)
		}
		if mode == "all" && len(s.Filters) == 0 {
			return nil, fmt.Errorf("all needs at least one event filter")
		}
	}
	if modes != 1 {
		return nil, fmt.Errorf("an event consumption strategy needs exactly one of one, any and all")
	}
	if u, ok := raw["until"]; ok && s.Mode == "any" {
		switch x := u.(type) {
		case string:
			src, _ := expr.Unwrap(x)
			if err := expr.Check(src); err != nil {
				return nil, fmt.Errorf("until: %w", err)
			}
			s.UntilExpr = src
		case map[string]any:
			uexp, _ := expects["until"].(map[string]any)
			us, err := ParseStrategy(x, uexp)
			if err != nil {
				return nil, fmt.Errorf("until: %w", err)
			}
			s.Until = us
		case bool:
			if x {
				s.UntilExpr = "true"
			} else {
				s.UntilExpr = "false"
			}
		default:
			return nil, fmt.Errorf("until must be a runtime expression or an event consumption strategy")
		}
	}
	return s, nil
}

func parseFilter(v, expects any, at string) (*Filter, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: an event filter must be an object", at)
	}
	f := &Filter{With: map[string]*condition{}}
	if with, ok := m["with"].(map[string]any); ok {
		for name, val := range with {
			c, err := parseCondition(val)
			if err != nil {
				return nil, fmt.Errorf("%s.with.%s: %w", at, name, err)
			}
			f.With[name] = c
		}
	}
	corr, _ := m["correlate"].(map[string]any)
	expMap, _ := expects.(map[string]any)
	expCorr, _ := expMap["correlate"].(map[string]any)
	names := make([]string, 0, len(corr))
	for name := range corr {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		def, ok := corr[name].(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s.correlate.%s must be an object with from and expect", at, name)
		}
		from, _ := def["from"].(string)
		if from == "" {
			return nil, fmt.Errorf("%s.correlate.%s.from is required", at, name)
		}
		src, _ := expr.Unwrap(from)
		if err := expr.Check(src); err != nil {
			return nil, fmt.Errorf("%s.correlate.%s.from: %w", at, name, err)
		}
		c := &Correlation{Name: name, From: src}
		if raw, present := def["expect"]; present {
			c.HasExpect = true
			c.Expect = raw
			if evaluated, ok := expCorr[name].(map[string]any); ok {
				c.Expect = evaluated["expect"]
			} else if s, ok := raw.(string); ok && expr.IsExpr(s) {
				return nil, fmt.Errorf("%s.correlate.%s.expect is an expression that was not evaluated", at, name)
			}
		}
		f.Correlate = append(f.Correlate, c)
	}
	return f, nil
}

func parseCondition(v any) (*condition, error) {
	switch x := v.(type) {
	case string:
		if src, ok := expr.Unwrap(x); ok {
			if err := expr.Check(src); err != nil {
				return nil, err
			}
			return &condition{expr: src}, nil
		}
		c := &condition{literal: x, isText: true}
		// Every string is also tried as an anchored regular expression
		// (the DSL allows both); an exact match always counts, so a type
		// with dots in it matches itself whatever the regexp reading.
		if re, err := regexp.Compile("^(?:" + x + ")$"); err == nil {
			c.re = re
		}
		return c, nil
	case map[string]any:
		c := &condition{fields: map[string]*condition{}}
		for k, fv := range x {
			fc, err := parseCondition(fv)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			c.fields[k] = fc
		}
		return c, nil
	default:
		return &condition{value: v}, nil
	}
}

func (c *condition) matches(ev *expr.Evaluator, v any, present bool) (bool, error) {
	switch {
	case c.expr != "":
		out, err := ev.Eval(c.expr, v, nil)
		if err != nil {
			return false, err
		}
		return expr.Truthy(out), nil
	case c.isText:
		s, ok := v.(string)
		if !ok {
			return false, nil
		}
		return s == c.literal || (c.re != nil && c.re.MatchString(s)), nil
	case c.fields != nil:
		m, ok := v.(map[string]any)
		if !ok {
			return false, nil
		}
		for k, fc := range c.fields {
			fv, fpresent := m[k]
			ok, err := fc.matches(ev, fv, fpresent)
			if err != nil || !ok {
				return false, err
			}
		}
		return true, nil
	default:
		return present && jsonEqual(c.value, v), nil
	}
}

// jsonEqual compares two values as JSON data, so that 1 (int, from YAML)
// equals 1.0 (float64, from JSON).
func jsonEqual(a, b any) bool {
	if reflect.DeepEqual(a, b) {
		return true
	}
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	if errA != nil || errB != nil {
		return false
	}
	var na, nb any
	_ = json.Unmarshal(ja, &na)
	_ = json.Unmarshal(jb, &nb)
	return reflect.DeepEqual(na, nb)
}

// Read shapes a consumed event as listen.read says: its data (the
// default), the whole envelope, or its raw data (the data as it travels:
// the decoded bytes of data_base64 as a string, a string as is, anything
// else as its JSON text).
func Read(ev Event, mode string) any {
	switch mode {
	case "envelope":
		return ev
	case "raw":
		if b, ok := ev["data_base64"].(string); ok {
			if raw, err := base64.StdEncoding.DecodeString(b); err == nil {
				return string(raw)
			}
			return b
		}
		data, present := ev["data"]
		if !present {
			return nil
		}
		if s, ok := data.(string); ok {
			return s
		}
		text, err := json.Marshal(data)
		if err != nil {
			return nil
		}
		return string(text)
	default:
		if b, ok := ev["data_base64"].(string); ok {
			return b
		}
		return ev["data"]
	}
}

// Consumption follows one strategy over a stream of events offered in log
// order. It is deterministic: the same events in the same order always
// consume the same ones, which is what lets a listen that is re-issued
// after a restart produce exactly the result the first issue would have.
type Consumption struct {
	s        *Strategy
	eval     *expr.Evaluator
	read     string
	consumed []Event
	matched  []bool // for all: which filters have their event
	// correlated holds the values of correlations without an expect,
	// fixed by the first event that carries them.
	correlated map[string]any
	until      *Consumption
	done       bool
	log        *slog.Logger
}

// SetLogger makes the consumption say at debug level why an event did not
// match when a filter's expression failed on it.
func (c *Consumption) SetLogger(l *slog.Logger) {
	c.log = l
	if c.until != nil {
		c.until.SetLogger(l)
	}
}

// NewConsumption starts consuming by s; read is listen.read ("data" when
// empty), which until expressions see the consumed events through.
func NewConsumption(s *Strategy, eval *expr.Evaluator, read string) *Consumption {
	c := &Consumption{s: s, eval: eval, read: read, matched: make([]bool, len(s.Filters)), correlated: map[string]any{}}
	if s.Until != nil {
		c.until = NewConsumption(s.Until, eval, read)
	}
	return c
}

// Done reports whether the strategy is satisfied.
func (c *Consumption) Done() bool { return c.done }

// Consumed returns the events consumed so far, in order.
func (c *Consumption) Consumed() []Event { return c.consumed }

// Offer presents the next event. It reports whether the event was
// consumed (by the strategy or by its until), and fails when an until
// expression fails (it reads the consumed events, so the fault is the
// workflow's); a filter expression that fails on the event only makes it
// not match.
func (c *Consumption) Offer(ev Event) (bool, *problem.Problem) {
	if c.done {
		return false, nil
	}
	if c.until != nil {
		took, p := c.until.Offer(ev)
		if p != nil {
			return false, p
		}
		if c.until.done {
			c.done = true
			return true, nil
		}
		if took {
			return true, nil
		}
	}
	switch c.s.Mode {
	case "one":
		ok, p := c.match(c.s.Filters[0], ev)
		if p != nil || !ok {
			return false, p
		}
		c.consumed = append(c.consumed, ev)
		c.done = true
		return true, nil
	case "all":
		for i, f := range c.s.Filters {
			if c.matched[i] {
				continue
			}
			ok, p := c.match(f, ev)
			if p != nil {
				return false, p
			}
			if ok {
				c.matched[i] = true
				c.consumed = append(c.consumed, ev)
				c.done = allTrue(c.matched)
				return true, nil
			}
		}
		return false, nil
	default: // any
		took := len(c.s.Filters) == 0
		for _, f := range c.s.Filters {
			ok, p := c.match(f, ev)
			if p != nil {
				return false, p
			}
			if ok {
				took = true
				break
			}
		}
		if !took {
			return false, nil
		}
		c.consumed = append(c.consumed, ev)
		switch {
		case c.s.UntilExpr != "":
			out, err := c.eval.Eval(c.s.UntilExpr, c.readAll(), nil)
			if err != nil {
				return true, problem.Expression("listen.to.until: %v", err)
			}
			c.done = expr.Truthy(out)
		case c.s.Until == nil:
			c.done = true
		}
		return true, nil
	}
}

func (c *Consumption) readAll() []any {
	out := make([]any, len(c.consumed))
	for i, ev := range c.consumed {
		out[i] = Read(ev, c.read)
	}
	return out
}

// Output is the listen task's result: as the DSL says, the array of the
// events it consumed (as read), in consumption order, whatever the
// strategy; events consumed only by `until` are left out.
func (c *Consumption) Output() any {
	return c.readAll()
}

// match reports whether ev satisfies a filter. A filter's expressions are
// questions about the arriving event: one that fails on it (`.total > 10`
// on an event whose data is a string, say) answers no for that event, as
// any other mismatch would, instead of faulting the workflow that waits.
func (c *Consumption) match(f *Filter, ev Event) (bool, *problem.Problem) {
	for name, cond := range f.With {
		v, present := ev[name]
		ok, err := cond.matches(c.eval, v, present)
		if err != nil {
			c.mismatch(ev, "with."+name, err)
			return false, nil
		}
		if !ok {
			return false, nil
		}
	}
	fixed := map[string]any{}
	for _, corr := range f.Correlate {
		v, err := c.eval.Eval(corr.From, ev, nil)
		if err != nil {
			c.mismatch(ev, "correlate."+corr.Name+".from", err)
			return false, nil
		}
		switch {
		case corr.HasExpect:
			if !jsonEqual(v, corr.Expect) {
				return false, nil
			}
		default:
			if want, ok := c.correlated[corr.Name]; ok {
				if !jsonEqual(v, want) {
					return false, nil
				}
			} else {
				fixed[corr.Name] = v
			}
		}
	}
	// Values are fixed only once the whole filter matched: an event that
	// fails a later condition must not bind the correlation.
	for k, v := range fixed {
		c.correlated[k] = v
	}
	return true, nil
}

func (c *Consumption) mismatch(ev Event, where string, err error) {
	if c.log != nil {
		c.log.Debug("event does not match: a filter expression failed on it",
			"event", ev["id"], "source", ev["source"], "type", ev["type"], "filter", where, "err", err)
	}
}

func allTrue(bs []bool) bool {
	for _, b := range bs {
		if !b {
			return false
		}
	}
	return true
}
