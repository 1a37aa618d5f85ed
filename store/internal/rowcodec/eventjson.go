package rowcodec

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/batonflow/baton/core"
)

// encodeEvent writes an event as encoding/json does, byte for byte, without
// reflecting over its struct: every step of every invocation encodes its
// events, and reflection was a measurable share of a durable task's CPU.
// Only the free-form values (input, output, info, error) go through
// encoding/json.
func encodeEvent(ev *core.Event) ([]byte, error) {
	b := make([]byte, 0, 160)
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, ev.Seq, 10)
	b = append(b, `,"type":`...)
	b = appendString(b, string(ev.Type))
	var err error
	if b, err = appendTime(append(b, `,"time":`...), ev.Time); err != nil {
		return nil, err
	}
	if ev.Task != "" {
		b = appendString(append(b, `,"task":`...), ev.Task)
	}
	if ev.Ref != "" {
		b = appendString(append(b, `,"ref":`...), ev.Ref)
	}
	if ev.Attempt != 0 {
		b = strconv.AppendInt(append(b, `,"attempt":`...), int64(ev.Attempt), 10)
	}
	if !emptyValue(ev.Input) {
		if b, err = appendJSON(append(b, `,"input":`...), ev.Input); err != nil {
			return nil, err
		}
	}
	if !emptyValue(ev.Output) {
		if b, err = appendJSON(append(b, `,"output":`...), ev.Output); err != nil {
			return nil, err
		}
	}
	if ev.Error != nil {
		if b, err = appendJSON(append(b, `,"error":`...), ev.Error); err != nil {
			return nil, err
		}
	}
	if ev.Timer != "" {
		b = appendString(append(b, `,"timer":`...), ev.Timer)
	}
	if !ev.FireAt.IsZero() {
		if b, err = appendTime(append(b, `,"fireAt":`...), ev.FireAt); err != nil {
			return nil, err
		}
	}
	if len(ev.Info) > 0 {
		if b, err = appendJSON(append(b, `,"info":`...), ev.Info); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

// emptyValue is encoding/json's omitempty for an interface field: nil
// only (an empty map or slice inside an interface is not omitted).
func emptyValue(v any) bool { return v == nil }

func appendJSON(b []byte, v any) ([]byte, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(b, data...), nil
}

func appendTime(b []byte, t time.Time) ([]byte, error) {
	if y := t.Year(); y < 0 || y >= 10000 {
		// encoding/json's error for the same time.
		_, err := t.MarshalJSON()
		return nil, err
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), nil
}

// appendString quotes s as encoding/json does. Strings of plain printable
// ASCII (task keys, event types) are copied; anything else is left to
// encoding/json, which escapes HTML characters, control characters,
// U+2028/U+2029 and invalid UTF-8 in its own way.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			data, _ := json.Marshal(s) // a string always encodes
			return append(b, data...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
