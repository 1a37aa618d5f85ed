// Package events is Baton's CloudEvents layer: validating events and reading
// them from HTTP requests in the three content modes, matching them against
// the DSL's event consumption strategies (listen.to, schedule.on), and the
// durable log through which every accepted event passes.
package events

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/textproto"
	"strings"
	"time"

	"github.com/batonflow/baton/problem"
)

// Content types of the CloudEvents HTTP binding.
const (
	ContentTypeStructured = "application/cloudevents+json"
	ContentTypeBatch      = "application/cloudevents-batch+json"
)

// Event is a CloudEvent 1.0 in structured form as plain JSON data: the
// context attributes and extensions at the top level, the payload under
// "data" (JSON) or "data_base64" (anything else).
type Event = map[string]any

// invalid returns the problem every validation failure is reported with,
// so that a client sees which event of a batch was wrong and why.
func invalid(format string, args ...any) *problem.Problem {
	return problem.Newf(problem.TypeBadRequest, http.StatusBadRequest, "Invalid CloudEvent", format, args...)
}

// stringAttributes are the attributes the specification types as strings
// (URI-references and timestamps included, which travel as strings).
var stringAttributes = []string{"id", "source", "specversion", "type", "datacontenttype", "dataschema", "subject", "time"}

// Validate checks an event against CloudEvents 1.0: the required
// attributes id, source, specversion ("1.0") and type are non-empty
// strings, time is an RFC 3339 timestamp, attribute names are lower-case
// letters and digits, and data and data_base64 are not both present.
func Validate(ev Event) *problem.Problem {
	var missing []string
	for _, name := range []string{"id", "source", "specversion", "type"} {
		if s, ok := ev[name].(string); !ok || s == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		p := invalid("the event lacks the required attribute(s) %s (non-empty strings)", strings.Join(missing, ", "))
		if id, ok := ev["id"].(string); ok && id != "" {
			p.Detail += fmt.Sprintf(" (event id %q)", id)
		}
		return p
	}
	if v := ev["specversion"].(string); v != "1.0" {
		return invalid("event %s: specversion %q is not supported; Baton accepts CloudEvents 1.0", ev["id"], v)
	}
	for _, name := range stringAttributes {
		if v, present := ev[name]; present {
			if _, ok := v.(string); !ok {
				return invalid("event %s: attribute %s must be a string, got %s", ev["id"], name, jsonType(v))
			}
		}
	}
	if t, ok := ev["time"].(string); ok {
		if _, err := time.Parse(time.RFC3339Nano, t); err != nil {
			return invalid("event %s: time %q is not an RFC 3339 timestamp", ev["id"], t)
		}
	}
	_, hasData := ev["data"]
	if b, present := ev["data_base64"]; present {
		s, ok := b.(string)
		if !ok {
			return invalid("event %s: data_base64 must be a string", ev["id"])
		}
		if _, err := base64.StdEncoding.DecodeString(s); err != nil {
			return invalid("event %s: data_base64 is not valid base64: %v", ev["id"], err)
		}
		if hasData {
			return invalid("event %s: data and data_base64 are mutually exclusive", ev["id"])
		}
	}
	for name := range ev {
		if name == "data" || name == "data_base64" {
			continue
		}
		if !validAttributeName(name) {
			return invalid("event %s: %q is not a valid attribute name (lower-case letters and digits only)", ev["id"], name)
		}
	}
	return nil
}

// Time returns the event's time attribute, zero when absent.
func Time(ev Event) time.Time {
	if s, ok := ev["time"].(string); ok {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}

func validAttributeName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for _, r := range name {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case float64, json.Number, int, int64:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// ParseStructured reads one event in structured mode (JSON).
func ParseStructured(body []byte) (Event, *problem.Problem) {
	var ev Event
	if err := decodeJSON(body, &ev); err != nil {
		return nil, invalid("the body is not a CloudEvent JSON object: %v", err)
	}
	if ev == nil {
		return nil, invalid("the body is not a CloudEvent JSON object")
	}
	if p := Validate(ev); p != nil {
		return nil, p
	}
	return ev, nil
}

// ParseBatch reads a JSON array of structured events. One invalid event
// rejects the batch, so that a client never has to work out which part of
// it was accepted.
func ParseBatch(body []byte) ([]Event, *problem.Problem) {
	var raw []json.RawMessage
	if err := decodeJSON(body, &raw); err != nil {
		return nil, invalid("the body is not a JSON array of CloudEvents: %v", err)
	}
	out := make([]Event, 0, len(raw))
	for i, r := range raw {
		ev, p := ParseStructured(r)
		if p != nil {
			p.Detail = fmt.Sprintf("batch entry %d: %s", i, p.Detail)
			return nil, p
		}
		out = append(out, ev)
	}
	return out, nil
}

// ParseBinary reads an event in binary mode: attributes in ce-* headers,
// the body as data. A JSON body (by its content type) becomes JSON data,
// text becomes a string, anything else data_base64.
func ParseBinary(header func(string) string, names []string, contentType string, body []byte) (Event, *problem.Problem) {
	ev := Event{}
	for _, name := range names {
		lower := strings.ToLower(name)
		if !strings.HasPrefix(lower, "ce-") {
			continue
		}
		attr := lower[len("ce-"):]
		ev[attr] = header(name)
	}
	if contentType != "" {
		ev["datacontenttype"] = contentType
	}
	if len(body) > 0 {
		switch {
		case isJSONType(contentType):
			var data any
			if err := decodeJSON(body, &data); err != nil {
				return nil, invalid("the body is declared as %s but is not JSON: %v", contentType, err)
			}
			ev["data"] = data
		case strings.HasPrefix(contentType, "text/"):
			ev["data"] = string(body)
		default:
			ev["data_base64"] = base64.StdEncoding.EncodeToString(body)
		}
	}
	if p := Validate(ev); p != nil {
		return nil, p
	}
	return ev, nil
}

// FromHTTP reads the events of a request in whichever content mode it
// uses: batch, structured, or binary (ce-specversion header present).
func FromHTTP(r *http.Request, body []byte) ([]Event, *problem.Problem) {
	mediaType := ""
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil {
			return nil, invalid("Content-Type %q cannot be parsed: %v", ct, err)
		}
		mediaType = mt
	}
	switch {
	case mediaType == ContentTypeBatch:
		return ParseBatch(body)
	case mediaType == ContentTypeStructured:
		ev, p := ParseStructured(body)
		if p != nil {
			return nil, p
		}
		return []Event{ev}, nil
	case r.Header.Get("ce-specversion") != "":
		names := make([]string, 0, len(r.Header))
		for name := range r.Header {
			names = append(names, name)
		}
		ev, p := ParseBinary(r.Header.Get, names, r.Header.Get("Content-Type"), body)
		if p != nil {
			return nil, p
		}
		return []Event{ev}, nil
	default:
		return nil, problem.Newf(problem.TypeBadRequest, http.StatusUnsupportedMediaType, "Unsupported Media Type",
			"send a CloudEvent as %s (structured), %s (batch), or in binary mode with ce-specversion, ce-id, ce-source and ce-type headers",
			ContentTypeStructured, ContentTypeBatch)
	}
}

// FromMessage reads an event from a message of a bus that has headers
// (NATS): binary mode when a ce-specversion header is present, structured
// JSON otherwise.
func FromMessage(headers map[string][]string, body []byte) (Event, *problem.Problem) {
	h := textproto.MIMEHeader{}
	names := make([]string, 0, len(headers))
	for k, v := range headers {
		h[textproto.CanonicalMIMEHeaderKey(k)] = v
		names = append(names, k)
	}
	if h.Get("ce-specversion") != "" {
		return ParseBinary(h.Get, names, h.Get("Content-Type"), body)
	}
	return ParseStructured(body)
}

func isJSONType(ct string) bool {
	if ct == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || strings.HasSuffix(mt, "+json") || mt == "text/json"
}

// decodeJSON decodes one JSON value with numbers as float64 (the form
// expressions work with), refusing trailing data.
func decodeJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("unexpected data after the JSON value")
	}
	return nil
}
