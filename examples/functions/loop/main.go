// Command loop is a Baton function that never returns unless asked to: it
// shows that a call running past its timeout is stopped, and that the
// function's other calls keep being served.
//
//	baton fn build examples/functions/loop --out loop.wasm
//	baton fn deploy loop --wasm loop.wasm --timeout 2s
//	baton fn invoke loop --input '{}'                    # fails with a timeout after 2s
//	baton fn invoke loop --input '{"iterations": 1000}'  # returns at once
package main

import "github.com/batonflow/baton/sdk/go/baton"

type input struct {
	// Iterations bounds the loop; zero loops forever.
	Iterations uint64 `json:"iterations"`
}

type output struct {
	Iterations uint64 `json:"iterations"`
}

func init() { baton.Handle(spin) }

func spin(in input) (output, error) {
	var n uint64
	for in.Iterations == 0 || n < in.Iterations {
		n++
	}
	return output{Iterations: n}, nil
}

func main() {}
