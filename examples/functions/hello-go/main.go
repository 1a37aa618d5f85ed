// Command hello-go is a Baton function written with the Go SDK: a WASI
// reactor whose instance stays alive between calls.
//
//	baton fn build examples/functions/hello-go -o hello-go.wasm
//	baton fn deploy hello-go --wasm hello-go.wasm
//	baton fn invoke hello-go --input '{"name":"Ada"}'
package main

import (
	"strings"

	"github.com/batonflow/baton/sdk/go/baton"
)

type input struct {
	Name string `json:"name"`
}

type output struct {
	Greeting string `json:"greeting"`
}

func init() { baton.Handle(greet) }

func greet(in input) (output, error) {
	name := strings.TrimSpace(in.Name)
	if name == "" {
		name = "world"
	}
	return output{Greeting: "Hello, " + name + "!"}, nil
}

// main is empty: the module is a reactor, and Baton calls the handler
// through the SDK's exports.
func main() {}
