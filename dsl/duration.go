package dsl

import (
	"fmt"
	"math/big"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/batonflow/baton/expr"
)

// durationUnits are the properties of a duration's object form.
var durationUnits = []struct {
	name string
	unit time.Duration
}{
	{"days", 24 * time.Hour},
	{"hours", time.Hour},
	{"minutes", time.Minute},
	{"seconds", time.Second},
	{"milliseconds", time.Millisecond},
}

// duration reads a DSL duration: an object of days, hours, minutes, seconds
// and milliseconds, an ISO 8601 duration string, or a `${ }` runtime
// expression that computes one of those when the task runs.
func (p *parser) duration(n *yaml.Node, at path) *Duration {
	n = resolve(n)
	if isString(n) && expr.IsExpr(n.Value) {
		if !p.exprIfWrapped(n, at, n.Value) {
			return nil
		}
		return &Duration{Expr: n.Value}
	}
	return p.literalDuration(n, at, "")
}

// literalDuration reads a duration that must be known when the document
// loads; what names the place that needs it (schedules have no task input
// to evaluate an expression against), or is empty where expressions were
// already handled.
func (p *parser) literalDuration(n *yaml.Node, at path, what string) *Duration {
	n = resolve(n)
	if isString(n) {
		if expr.IsExpr(n.Value) {
			p.errorf(n, at, "%s must be a fixed duration: it is needed before any task runs, so it cannot be a runtime expression", what)
			return nil
		}
		d, err := ParseISODuration(n.Value)
		if err != nil {
			p.errorf(n, at, "%v", err)
			return nil
		}
		return &Duration{D: d}
	}
	if !isMap(n) {
		p.errorf(n, at, "expected a duration (an ISO 8601 string such as PT30S, or a map of days, hours, minutes, seconds, milliseconds), got %s", describe(n))
		return nil
	}
	names := make([]string, len(durationUnits))
	for i, u := range durationUnits {
		names[i] = u.name
	}
	o := p.object(n, at, names...)
	if !o.ok {
		return nil
	}
	if len(o.fields) == 0 {
		p.errorf(n, at, "a duration needs at least one of %s", quoteList(names))
		return nil
	}
	total := new(big.Int)
	valid := true
	for _, u := range durationUnits {
		vn, vat, ok := o.get(u.name)
		if !ok {
			continue
		}
		v, ok := p.integer(vn, vat)
		if !ok {
			valid = false
			continue
		}
		if v < 0 {
			p.errorf(vn, vat, "a duration cannot be negative")
			valid = false
			continue
		}
		total.Add(total, new(big.Int).Mul(big.NewInt(v), big.NewInt(int64(u.unit))))
	}
	if !valid {
		return nil
	}
	if !total.IsInt64() {
		p.errorf(n, at, "the duration is too long (the most is about 292 years)")
		return nil
	}
	return &Duration{D: time.Duration(total.Int64())}
}

// ParseISODuration converts an ISO 8601 duration such as "PT1S", "P1DT2H" or
// "PT0.5S" to a time.Duration. Weeks count as 7 days; years and months are
// rejected because their length depends on the calendar.
func ParseISODuration(s string) (time.Duration, error) {
	bad := func(why string) error {
		return fmt.Errorf("invalid ISO 8601 duration %q: %s", s, why)
	}
	if len(s) < 2 || s[0] != 'P' {
		return 0, bad("expected the form P[nW][nD][T[nH][nM][nS]], e.g. PT30S")
	}
	type designator struct {
		unit time.Duration
		// rank orders the designators: each may appear once, in order.
		rank int
	}
	dateDesignators := map[byte]designator{'Y': {0, 0}, 'M': {0, 1}, 'W': {7 * 24 * time.Hour, 2}, 'D': {24 * time.Hour, 3}}
	timeDesignators := map[byte]designator{'H': {time.Hour, 4}, 'M': {time.Minute, 5}, 'S': {time.Second, 6}}

	total := new(big.Rat)
	rank := -1
	inTime := false
	components := 0
	timeComponents := 0
	rest := s[1:]
	for len(rest) > 0 {
		if rest[0] == 'T' {
			if inTime {
				return 0, bad("T appears twice")
			}
			inTime = true
			rest = rest[1:]
			continue
		}
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.') {
			i++
		}
		if i == 0 || i == len(rest) {
			return 0, bad("expected a number followed by a designator")
		}
		number := rest[:i]
		if number[0] == '.' || number[len(number)-1] == '.' {
			return 0, bad(fmt.Sprintf("malformed number %q", number))
		}
		value, ok := new(big.Rat).SetString(number)
		if !ok {
			return 0, bad(fmt.Sprintf("malformed number %q", number))
		}
		designators := dateDesignators
		if inTime {
			designators = timeDesignators
		}
		d, ok := designators[rest[i]]
		if !ok {
			return 0, bad(fmt.Sprintf("unexpected %q", string(rest[i])))
		}
		if d.rank <= rank {
			return 0, bad("designators must appear at most once and in the order W, D, T, H, M, S")
		}
		if d.unit == 0 {
			return 0, bad("years and months have no fixed length; use weeks or days")
		}
		rank = d.rank
		total.Add(total, value.Mul(value, new(big.Rat).SetInt64(int64(d.unit))))
		components++
		if inTime {
			timeComponents++
		}
		rest = rest[i+1:]
	}
	if components == 0 {
		return 0, bad("no duration given")
	}
	if inTime && timeComponents == 0 {
		return 0, bad("T must be followed by hours, minutes or seconds")
	}
	// Truncate to whole nanoseconds, the resolution of time.Duration.
	nanos := new(big.Int).Quo(total.Num(), total.Denom())
	if !nanos.IsInt64() {
		return 0, bad("the duration is too long (the most is about 292 years)")
	}
	return time.Duration(nanos.Int64()), nil
}

// DurationValue converts the value of a duration expression to a
// time.Duration. It accepts what a duration literal may be: an ISO 8601
// string (PT1S) or an object of days, hours, minutes, seconds and
// milliseconds. A bare number is refused because nothing says its unit
// (other runtimes read it as seconds or as milliseconds).
func DurationValue(v any) (time.Duration, error) {
	switch x := v.(type) {
	case string:
		return ParseISODuration(x)
	case map[string]any:
		if len(x) == 0 {
			return 0, fmt.Errorf("an empty object is not a duration; give days, hours, minutes, seconds or milliseconds")
		}
		total := new(big.Int)
		for name, val := range x {
			var unit time.Duration
			for _, u := range durationUnits {
				if u.name == name {
					unit = u.unit
				}
			}
			if unit == 0 {
				return 0, fmt.Errorf("%q is not a duration property (days, hours, minutes, seconds, milliseconds)", name)
			}
			f, ok := val.(float64)
			if i, isInt := val.(int); isInt {
				f, ok = float64(i), true
			}
			if !ok || f != float64(int64(f)) {
				return 0, fmt.Errorf("%s must be an integer, got %v", name, val)
			}
			if f < 0 {
				return 0, fmt.Errorf("a duration cannot be negative (%s: %v)", name, val)
			}
			total.Add(total, new(big.Int).Mul(big.NewInt(int64(f)), big.NewInt(int64(unit))))
		}
		if !total.IsInt64() {
			return 0, fmt.Errorf("the duration is too long (the most is about 292 years)")
		}
		return time.Duration(total.Int64()), nil
	case float64, int:
		return 0, fmt.Errorf("a bare number (%v) is not a duration: its unit is ambiguous; give an ISO 8601 string such as PT5S or an object such as {seconds: 5}", x)
	case nil:
		return 0, fmt.Errorf("the expression produced null, not a duration")
	}
	return 0, fmt.Errorf("expected an ISO 8601 string such as PT5S or an object such as {seconds: 5}, got %T", v)
}
