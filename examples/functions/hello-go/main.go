// Command hello-go is a Baton function written with the Go SDK: a WASI
// reactor whose instance stays alive between calls.
//
//	baton fn build examples/functions/hello-go --out hello-go.wasm
//	baton fn deploy hello-go --wasm hello-go.wasm
//	baton fn invoke hello-go --input '{"name":"Ada"}'
package main

import (
	"strings"
	"time"

	"github.com/batonflow/baton/sdk/go/baton"
)

type input struct {
	Name string `json:"name"`
	// DelayMs makes the call wait that long before it answers, standing
	// in for the I/O a real function does (`baton bench coldstart
	// --work`).
	DelayMs int `json:"delayMs"`
}

type output struct {
	Greeting string `json:"greeting"`
}

func init() { baton.Handle(greet) }

func greet(in input) (output, error) {
	if in.DelayMs > 0 {
		time.Sleep(time.Duration(in.DelayMs) * time.Millisecond)
	}
	name := strings.TrimSpace(in.Name)
	if name == "" {
		name = "world"
	}
	return output{Greeting: "Hello, " + name + "!"}, nil
}

// main is empty: the module is a reactor, and Baton calls the handler
// through the SDK's exports.
func main() {}
