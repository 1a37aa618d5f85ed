package baton

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

type greeting struct {
	Greeting string `json:"greeting"`
}

func TestCallRunsTheRegisteredHandler(t *testing.T) {
	t.Cleanup(func() { handler = nil })
	Handle(func(in struct{ Name string }) (greeting, error) {
		switch in.Name {
		case "":
			return greeting{}, &Error{Type: "validation", Status: 400, Detail: "name is required"}
		case "boom":
			panic("exploded")
		case "plain":
			return greeting{}, errors.New("plain failure")
		}
		return greeting{Greeting: "Hello, " + in.Name}, nil
	})
	tests := []struct {
		name       string
		input      string
		wantOutput string
		wantType   string
		wantDetail string
	}{
		{"output", `{"Name":"Ada"}`, `{"greeting":"Hello, Ada"}`, "", ""},
		{"typed error", `{}`, "", "validation", "name is required"},
		{"plain error", `{"Name":"plain"}`, "", "", "plain failure"},
		{"panic", `{"Name":"boom"}`, "", "", "panic: exploded"},
		{"undecodable input", `[1]`, "", "validation", "input:"},
		{"empty input", ``, "", "validation", "name is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := Call([]byte(tc.input))
			if tc.wantOutput != "" {
				if err != nil || string(out) != tc.wantOutput {
					t.Fatalf("Call = %s, %v; want %s", out, err, tc.wantOutput)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Type != tc.wantType || !strings.Contains(e.Detail, tc.wantDetail) {
				t.Fatalf("Call error = %#v, want type %q with %q", err, tc.wantType, tc.wantDetail)
			}
		})
	}
}

func TestResultRegionLayout(t *testing.T) {
	t.Cleanup(func() { handler = nil })
	HandleRaw(func(in json.RawMessage) (any, error) { return in, nil })
	res := run(nil, []byte(`{"a":1}`))
	if res[0] != statusOK || string(res[1:]) != `{"a":1}` {
		t.Errorf("ok region = %q", res)
	}
	HandleRaw(func(json.RawMessage) (any, error) { return nil, &Error{Type: "runtime", Detail: "no"} })
	res = run(res[:0], nil)
	if res[0] != statusError || !strings.Contains(string(res[1:]), `"detail":"no"`) {
		t.Errorf("error region = %q", res)
	}
}

func TestNoHandlerIsAConfigurationError(t *testing.T) {
	handler = nil
	_, err := Call([]byte(`{}`))
	var e *Error
	if !errors.As(err, &e) || e.Type != "configuration" {
		t.Fatalf("err = %v", err)
	}
}
