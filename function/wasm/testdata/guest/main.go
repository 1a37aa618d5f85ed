// Command guest is a test function built with the Go SDK whose behaviour
// the input selects, so that one module exercises every way a reactor can
// succeed or fail.
package main

import (
	"errors"
	"os"
	"runtime"

	"github.com/batonflow/baton/sdk/go/baton"
)

type input struct {
	Op    string `json:"op"`
	Value any    `json:"value"`
}

type output struct {
	Value any    `json:"value,omitempty"`
	Calls int    `json:"calls"`
	Env   string `json:"env,omitempty"`
	Files string `json:"files,omitempty"`
}

// calls counts the calls this instance served: it shows that a warm call
// reuses the instance.
var calls int

var hoard [][]byte

func init() { baton.Handle(handle) }

func handle(in input) (output, error) {
	calls++
	switch in.Op {
	case "echo":
		return output{Value: in.Value, Calls: calls}, nil
	case "env":
		_, err := os.ReadDir("/")
		files := "denied"
		if err == nil {
			files = "allowed"
		}
		return output{Env: os.Getenv("GREETING") + "|" + os.Getenv("HOME"), Files: files, Calls: calls}, nil
	case "fail":
		return output{}, &baton.Error{Type: "validation", Status: 422, Detail: "value is not acceptable"}
	case "error":
		return output{}, errors.New("plain failure")
	case "panic":
		panic("handler panicked")
	case "crash":
		// A panic on another goroutine cannot be recovered by the SDK: the
		// Go runtime exits the module.
		done := make(chan struct{})
		go func() { defer close(done); panic("crash on another goroutine") }()
		<-done
		runtime.Gosched()
	case "oom":
		for {
			hoard = append(hoard, make([]byte, 8<<20))
		}
	case "loop":
		for n := 0; ; n++ {
			calls = n
		}
	}
	return output{Calls: calls}, nil
}

func main() {}
