package httpcall

import (
	"fmt"
	"strings"

	"github.com/batonflow/baton/problem"
)

// ExpandTemplate expands an RFC 6570 URI template with variables taken from
// vars by their verbatim names, as the DSL's URI templates want: `{pet.id}`
// names the key "pet.id", not a path into "pet".
//
// Levels 1 to 3 are supported in full, and the level 4 prefix modifier
// (`{var:3}`). The DSL only allows scalar variables, so a list or object value
// is an expression error (status 400) rather than a level 4 composite
// expansion; the explode modifier is accepted and changes nothing for
// scalars. Missing and null variables are undefined: they expand to nothing.
// A malformed template is a configuration error.
func ExpandTemplate(template string, vars map[string]any) (string, error) {
	if strings.IndexByte(template, '{') < 0 && strings.IndexByte(template, '}') < 0 {
		return encodeLiteral(template), nil
	}
	var b strings.Builder
	b.Grow(len(template) + 16)
	rest := template
	for rest != "" {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			if strings.IndexByte(rest, '}') >= 0 {
				return "", problem.Configuration("URI template %q has a '}' without a matching '{'", template)
			}
			b.WriteString(encodeLiteral(rest))
			break
		}
		literal := rest[:open]
		if strings.IndexByte(literal, '}') >= 0 {
			return "", problem.Configuration("URI template %q has a '}' without a matching '{'", template)
		}
		b.WriteString(encodeLiteral(literal))
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return "", problem.Configuration("URI template %q has an unclosed expression", template)
		}
		expression := rest[open+1 : open+end]
		if err := expandExpression(&b, expression, vars); err != nil {
			if p, ok := err.(*problem.Problem); ok {
				p.Detail = fmt.Sprintf("URI template %q: %s", template, p.Detail)
				return "", p
			}
			return "", err
		}
		rest = rest[open+end+1:]
	}
	return b.String(), nil
}

// operator holds the expansion rules of one RFC 6570 operator (appendix A).
type operator struct {
	first         string
	separator     byte
	named         bool
	ifEmpty       string
	allowReserved bool
}

var (
	opSimple   = operator{separator: ','}
	opReserved = operator{separator: ',', allowReserved: true}
	opFragment = operator{first: "#", separator: ',', allowReserved: true}
	opLabel    = operator{first: ".", separator: '.'}
	opPath     = operator{first: "/", separator: '/'}
	opParam    = operator{first: ";", separator: ';', named: true}
	opQuery    = operator{first: "?", separator: '&', named: true, ifEmpty: "="}
	opQueryCnt = operator{first: "&", separator: '&', named: true, ifEmpty: "="}
)

func operatorOf(expression string) (operator, string, error) {
	if expression == "" {
		return operator{}, "", problem.Configuration("empty expression {}")
	}
	switch expression[0] {
	case '+':
		return opReserved, expression[1:], nil
	case '#':
		return opFragment, expression[1:], nil
	case '.':
		return opLabel, expression[1:], nil
	case '/':
		return opPath, expression[1:], nil
	case ';':
		return opParam, expression[1:], nil
	case '?':
		return opQuery, expression[1:], nil
	case '&':
		return opQueryCnt, expression[1:], nil
	case '=', ',', '!', '@', '|':
		return operator{}, "", problem.Configuration("operator %q in {%s} is reserved by RFC 6570", expression[0], expression)
	}
	return opSimple, expression, nil
}

func expandExpression(b *strings.Builder, expression string, vars map[string]any) error {
	op, list, err := operatorOf(expression)
	if err != nil {
		return err
	}
	if list == "" {
		return problem.Configuration("expression {%s} names no variable", expression)
	}
	wroteAny := false
	for spec := range strings.SplitSeq(list, ",") {
		name, maxLen, err := parseVarSpec(spec, expression)
		if err != nil {
			return err
		}
		raw, found := vars[name]
		if !found || raw == nil {
			continue
		}
		value, ok := scalarString(raw)
		if !ok {
			return problem.Expression("variable %q is %s; URI template variables must be strings, numbers, booleans or null", name, describe(raw))
		}
		if maxLen > 0 {
			value = truncateRunes(value, maxLen)
		}
		if wroteAny {
			b.WriteByte(op.separator)
		} else {
			b.WriteString(op.first)
			wroteAny = true
		}
		if op.named {
			b.WriteString(encodeValue(name, false))
			if value == "" {
				b.WriteString(op.ifEmpty)
				continue
			}
			b.WriteByte('=')
		}
		b.WriteString(encodeValue(value, op.allowReserved))
	}
	return nil
}

// parseVarSpec splits "name", "name:len" or "name*". Names are taken
// verbatim apart from the modifiers, because the DSL looks them up as map
// keys; only the characters that delimit the template grammar are refused.
func parseVarSpec(spec, expression string) (name string, maxLen int, err error) {
	name = spec
	if strings.HasSuffix(name, "*") {
		name = name[:len(name)-1]
	} else if i := strings.LastIndexByte(name, ':'); i >= 0 {
		digits := name[i+1:]
		name = name[:i]
		if digits == "" || len(digits) > 4 || digits[0] == '0' {
			return "", 0, problem.Configuration("prefix modifier %q in {%s} must be a number from 1 to 9999", spec[i:], expression)
		}
		for _, d := range digits {
			if d < '0' || d > '9' {
				return "", 0, problem.Configuration("prefix modifier %q in {%s} must be a number from 1 to 9999", spec[i:], expression)
			}
			maxLen = maxLen*10 + int(d-'0')
		}
	}
	if name == "" {
		return "", 0, problem.Configuration("expression {%s} has an empty variable name", expression)
	}
	if strings.ContainsAny(name, "{}:* \t\r\n") {
		return "", 0, problem.Configuration("variable name %q in {%s} is not valid", name, expression)
	}
	return name, maxLen, nil
}

func truncateRunes(s string, n int) string {
	count := 0
	for i := range s {
		if count == n {
			return s[:i]
		}
		count++
	}
	return s
}

const upperHex = "0123456789ABCDEF"

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

func isReserved(c byte) bool {
	return strings.IndexByte(":/?#[]@!$&'()*+,;=", c) >= 0
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// encodeValue percent-encodes a variable's value: everything but unreserved
// characters, or, when reserved expansion is allowed, everything but
// unreserved and reserved characters and existing pct-encoded triplets.
func encodeValue(s string, allowReserved bool) string {
	clean := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isUnreserved(c) && !(allowReserved && (isReserved(c) || c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]))) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) * 3)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isUnreserved(c):
			b.WriteByte(c)
		case allowReserved && isReserved(c):
			b.WriteByte(c)
		case allowReserved && c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b.WriteString(s[i : i+3])
			i += 2
		default:
			b.WriteByte('%')
			b.WriteByte(upperHex[c>>4])
			b.WriteByte(upperHex[c&15])
		}
	}
	return b.String()
}

// encodeLiteral copies the literal parts of a template, percent-encoding
// only the characters a URI cannot hold (spaces, non-ASCII...), so that a
// URI that is already valid passes through unchanged.
func encodeLiteral(s string) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isUnreserved(c) && !isReserved(c) && c != '%' {
			return encodeValue(s, true)
		}
	}
	return s
}
