// Command noop is a Go SDK function that does no work: benchmarks use it
// to measure the cost of the ABI and the pool alone.
package main

import (
	"encoding/json"

	"github.com/batonflow/baton/sdk/go/baton"
)

var answer = json.RawMessage(`{"ok":true}`)

func init() {
	baton.HandleRaw(func(json.RawMessage) (any, error) { return answer, nil })
}

func main() {}
