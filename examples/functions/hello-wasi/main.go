// Command hello-wasi is a Baton function written as a plain WASI command:
// it reads its JSON input on stdin and writes its JSON output on stdout.
// Any language that compiles to WASI works the same way; each call runs a
// fresh instance of the (once compiled) module.
//
//	baton fn build examples/functions/hello-wasi --out hello-wasi.wasm
//	baton fn deploy hello-wasi --wasm hello-wasi.wasm
//	baton fn invoke hello-wasi --input '{"name":"Ada"}'
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

type input struct {
	Name string `json:"name"`
}

type output struct {
	Greeting string `json:"greeting"`
}

func main() {
	var in input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		// A non-zero exit fails the call; what was written on stderr
		// becomes the error's detail.
		fmt.Fprintln(os.Stderr, "hello-wasi: input:", err)
		os.Exit(1)
	}
	name := strings.TrimSpace(in.Name)
	if name == "" {
		name = "world"
	}
	if err := json.NewEncoder(os.Stdout).Encode(output{Greeting: "Hello, " + name + "!"}); err != nil {
		fmt.Fprintln(os.Stderr, "hello-wasi: output:", err)
		os.Exit(1)
	}
}
