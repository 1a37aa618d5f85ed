// Command command is a test function written as a WASI command whose
// behaviour the input selects.
package main

import (
	"encoding/json"
	"fmt"
	"os"
)

func main() {
	var in struct {
		Op    string `json:"op"`
		Value any    `json:"value"`
	}
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fmt.Fprintln(os.Stderr, "bad input:", err)
		os.Exit(1)
	}
	switch in.Op {
	case "badjson":
		fmt.Print("this is not JSON")
	case "exit":
		fmt.Fprintln(os.Stderr, "giving up on purpose")
		os.Exit(3)
	case "files":
		_, err := os.ReadDir("/")
		json.NewEncoder(os.Stdout).Encode(map[string]any{"denied": err != nil})
	case "nothing":
	default:
		json.NewEncoder(os.Stdout).Encode(map[string]any{"value": in.Value})
	}
}
