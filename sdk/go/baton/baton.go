// Package baton is the guest side of Baton's WebAssembly function ABI for
// functions written in Go. A function registers its handler from init and
// has an empty main:
//
//	package main
//
//	import "github.com/batonflow/baton/sdk/go/baton"
//
//	func init() { baton.Handle(greet) }
//
//	func greet(in struct{ Name string }) (map[string]string, error) {
//		return map[string]string{"greeting": "Hello, " + in.Name}, nil
//	}
//
//	func main() {}
//
// Built with `baton fn build DIR --out FILE.wasm` (GOOS=wasip1 GOARCH=wasm go
// build -buildmode=c-shared), the module is a WASI reactor: Baton
// instantiates it once, runs the Go runtime and the init functions, and
// then calls the handler for every input without starting anything anew,
// so that a warm call costs microseconds. docs/functions.md describes the
// ABI for other languages.
//
// On other platforms the package compiles too, so that a function's
// package can be vetted and unit-tested on the host with Call.
package baton

import (
	"encoding/json"
	"errors"
	"fmt"
)

// RawHandler handles one call: the input as the caller sent it, the output
// as any JSON-encodable value.
type RawHandler func(input json.RawMessage) (any, error)

// handler is the one registered function. It is package state because the
// module's exports, which the host calls, are plain functions that can only
// reach the handler through it; it is written once, from init, before the
// host makes any call.
var handler RawHandler

// HandleRaw registers the function's handler. Call it from an init
// function; a second registration replaces the first.
func HandleRaw(h RawHandler) { handler = h }

// Handle registers a typed handler: the input is decoded into In (an input
// that does not decode fails the call with a validation error) and Out is
// encoded as the output.
func Handle[In, Out any](h func(In) (Out, error)) {
	HandleRaw(func(raw json.RawMessage) (any, error) {
		var in In
		if len(raw) > 0 {
			if err := json.Unmarshal(raw, &in); err != nil {
				return nil, &Error{Type: "validation", Status: 400, Detail: "input: " + err.Error()}
			}
		}
		return h(in)
	})
}

// Error is an error a handler returns to choose the workflow error the
// call fails with. Type is a Serverless Workflow error type, either in
// full or by its last segment ("validation", "runtime"...); the default is
// runtime.
type Error struct {
	Type   string `json:"type,omitempty"`
	Status int    `json:"status,omitempty"`
	Title  string `json:"title,omitempty"`
	Detail string `json:"detail,omitempty"`
}

func (e *Error) Error() string {
	if e.Title != "" {
		return e.Title + ": " + e.Detail
	}
	return e.Detail
}

// Result statuses: the first byte of a result region.
const (
	statusOK    byte = 0
	statusError byte = 1
)

// Call runs the registered handler on input as the host would and returns
// its JSON output, or the error the host would report. It is meant for a
// function's own tests.
func Call(input []byte) (json.RawMessage, error) {
	res := run(nil, input)
	if res[0] == statusOK {
		return json.RawMessage(res[1:]), nil
	}
	var e Error
	if err := json.Unmarshal(res[1:], &e); err != nil {
		return nil, fmt.Errorf("baton: malformed error result: %w", err)
	}
	return nil, &e
}

// run handles one call and appends the result region to dst: a status
// byte and then the JSON output or the JSON error.
func run(dst, input []byte) (res []byte) {
	defer func() {
		if r := recover(); r != nil {
			res = appendError(dst, &Error{Detail: fmt.Sprintf("panic: %v", r)})
		}
	}()
	if handler == nil {
		return appendError(dst, &Error{Type: "configuration", Status: 500,
			Detail: "the function registered no handler: call baton.Handle from an init function"})
	}
	out, err := handler(json.RawMessage(input))
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			e = &Error{Detail: err.Error()}
		}
		return appendError(dst, e)
	}
	enc, err := json.Marshal(out)
	if err != nil {
		return appendError(dst, &Error{Detail: "output: " + err.Error()})
	}
	return append(append(dst, statusOK), enc...)
}

func appendError(dst []byte, e *Error) []byte {
	enc, err := json.Marshal(e)
	if err != nil {
		enc = []byte(`{"detail":"unencodable error"}`)
	}
	return append(append(dst, statusError), enc...)
}
