package httpcall

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// scalarString renders a JSON scalar the way it reads in JSON text (numbers
// without a trailing ".0", booleans as true/false). It reports false for
// anything that is not a string, number or boolean.
func scalarString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case bool:
		return strconv.FormatBool(x), true
	case float64:
		return formatFloat(x), true
	case float32:
		return formatFloat(float64(x)), true
	case int:
		return strconv.Itoa(x), true
	case int8:
		return strconv.FormatInt(int64(x), 10), true
	case int16:
		return strconv.FormatInt(int64(x), 10), true
	case int32:
		return strconv.FormatInt(int64(x), 10), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case uint:
		return strconv.FormatUint(uint64(x), 10), true
	case uint8:
		return strconv.FormatUint(uint64(x), 10), true
	case uint16:
		return strconv.FormatUint(uint64(x), 10), true
	case uint32:
		return strconv.FormatUint(uint64(x), 10), true
	case uint64:
		return strconv.FormatUint(x, 10), true
	case json.Number:
		return x.String(), true
	}
	return "", false
}

// formatFloat matches encoding/json's rendering of float64, so that an
// integral number taken from JSON data prints as "42", not "42.000000" or
// "4.2e+01".
func formatFloat(f float64) string {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	s := strconv.FormatFloat(f, format, -1, 64)
	if format == 'e' {
		// "1e-07" → "1e-7", as encoding/json writes it.
		n := len(s)
		if n >= 4 && s[n-4] == 'e' && s[n-3] == '-' && s[n-2] == '0' {
			s = s[:n-2] + s[n-1:]
		}
	}
	return s
}

// fieldValues renders a header or query parameter value: scalars as text,
// arrays as one entry per item, objects as JSON text, null as nothing.
func fieldValues(field, name string, v any) ([]string, error) {
	if v == nil {
		return nil, nil
	}
	if s, ok := scalarString(v); ok {
		return []string{s}, nil
	}
	switch x := v.(type) {
	case []any:
		out := make([]string, 0, len(x))
		for i, item := range x {
			if item == nil {
				continue
			}
			s, ok := scalarString(item)
			if !ok {
				text, err := marshalJSON(item)
				if err != nil {
					return nil, fmt.Errorf("%s %q item %d: %w", field, name, i, err)
				}
				s = string(text)
			}
			out = append(out, s)
		}
		return out, nil
	case []string:
		return x, nil
	}
	text, err := marshalJSON(v)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", field, name, err)
	}
	return []string{string(text)}, nil
}

// marshalJSON encodes without escaping <, > and &: request bodies are not
// embedded in HTML, and services comparing payloads byte for byte should see
// what the workflow wrote.
func marshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}
